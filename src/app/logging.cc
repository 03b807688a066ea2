#include "app/logging.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/details/os.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>

#include "app/log_buffer.h"
#include "json/string_writer.h"
#include "log/fields.h"

namespace hermod::app {

namespace {

// Escapes into a per-thread scratch string, then into spdlog's buffer: the escaping is
// json/string_writer.h's, shared with every other JSON hermod writes. Messages may carry
// bytes from clients; invalid UTF-8 becomes U+FFFD, so each line stays valid JSON.
void AppendEscaped(spdlog::memory_buf_t& dest, std::string_view text) {
  thread_local std::string scratch;
  scratch.clear();
  json::AppendEscaped(scratch, text);
  dest.append(scratch.data(), scratch.data() + scratch.size());
}

}  // namespace

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const auto since_epoch = msg.time.time_since_epoch();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(msg.time);
  const auto ms = duration_cast<milliseconds>(since_epoch).count() % 1000;
  std::tm utc;
  gmtime_r(&seconds, &utc);
  char time[32];
  size_t n = std::strftime(time, sizeof time, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(time + n, sizeof time - n, ".%03dZ", static_cast<int>(ms));
  dest.append(std::string_view("{\"time\":\""));
  dest.append(std::string_view(time));
  dest.append(std::string_view("\",\"level\":\""));
  const auto level = spdlog::level::to_string_view(msg.level);
  dest.append(level.data(), level.data() + level.size());
  dest.append(std::string_view("\",\"logger\":\""));
  AppendEscaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
  dest.append(std::string_view("\",\"msg\":\""));
  AppendEscaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
  dest.push_back('"');
  // The line's fields, when it was logged with log::Write on this thread (log/fields.h).
  for (const log::Field& field : log::CurrentFields()) {
    dest.append(std::string_view(",\""));
    AppendEscaped(dest, field.key);
    dest.append(std::string_view("\":"));
    if (field.is_number) {
      fmt::format_to(std::back_inserter(dest), "{}", field.number);
    } else {
      dest.push_back('"');
      AppendEscaped(dest, field.text);
      dest.push_back('"');
    }
  }
  dest.append(std::string_view("}\n"));
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

namespace {

// Writes all of `bytes`, waiting as long as the output takes (only the writer thread calls
// it). false: the output failed (closed, or an error); the rest is discarded.
bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};  // an inherited non-blocking stderr
      ::poll(&p, 1, -1);
    } else if (n < 0 && errno != EINTR) {
      return false;
    }
  }
  return true;
}

// spdlog's colours for the level in the text format, as its ansicolor sink writes them.
std::string_view LevelColor(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "\033[37m";
    case spdlog::level::debug:
      return "\033[36m";
    case spdlog::level::info:
      return "\033[32m";
    case spdlog::level::warn:
      return "\033[33m\033[1m";
    case spdlog::level::err:
      return "\033[31m\033[1m";
    case spdlog::level::critical:
      return "\033[1m\033[41m";
    default:
      return "\033[m";
  }
}

// What the sink and its writer thread share. The thread holds it too, so a writer still
// stuck on the output when the process ends (Stop gave up on it) never outlives it.
struct LogOutput {
  LogOutput(int fd, size_t capacity) : fd(fd), buffer(capacity) {}

  const int fd;
  LogBuffer buffer;
  std::mutex notice_mu;
  std::unique_ptr<spdlog::formatter> notice_formatter;  // guarded by notice_mu
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;  // guarded by done_mu: the writer has written everything and ended
};

// The notice for lines dropped, in the log's format, as a warning of the logger.
std::string DroppedNotice(LogOutput& out, std::string_view logger, uint64_t dropped) {
  const std::string text =
      fmt::format("{} log lines dropped: the log output was not read", dropped);
  spdlog::details::log_msg msg(
      spdlog::source_loc{}, spdlog::string_view_t(logger.data(), logger.size()),
      spdlog::level::warn, spdlog::string_view_t(text.data(), text.size()));
  spdlog::memory_buf_t line;
  std::lock_guard lock(out.notice_mu);
  if (out.notice_formatter) out.notice_formatter->format(msg, line);
  return std::string(line.data(), line.size());
}

void RunWriter(std::shared_ptr<LogOutput> out, std::string logger) {
  std::string lines;
  uint64_t dropped = 0;
  while (out->buffer.Take(lines, dropped)) {
    const size_t taken = lines.size();
    // How many the output missed, after the lines logged before, and stamped now, as they
    // are taken: lines logged while this write waits for a slow reader come after it, in
    // time order.
    if (dropped > 0) lines += DroppedNotice(*out, logger, dropped);
    WriteAll(out->fd, lines);
    out->buffer.MarkWritten(taken);
  }
  std::lock_guard lock(out->done_mu);
  out->done = true;
  out->done_cv.notify_all();
}

// The writer thread starts with every signal blocked: it is made before the server blocks
// SIGTERM and SIGINT for its sigwait, and a signal delivered to it would end the process.
std::thread StartWriter(std::shared_ptr<LogOutput> out, std::string logger) {
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  std::thread writer(RunWriter, std::move(out), std::move(logger));
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return writer;
}

// The logger's one sink. A log call formats its line on its own thread (the JSON format reads
// the line's fields from that thread, log/fields.h), appends it to the bounded LogBuffer and
// returns; one writer thread writes the buffer to stderr, and only it waits when the reader
// does not read. spdlog's async logger is not used: it formats on its worker thread (the
// fields would be gone by then), and of its full-queue policies overrun_oldest drops old lines
// without a count and block blocks the caller, the event loop this is here to protect.
class BufferedSink final : public spdlog::sinks::sink {
 public:
  BufferedSink(int fd, size_t capacity, std::string logger, std::chrono::milliseconds flush_timeout)
      : out_(std::make_shared<LogOutput>(fd, capacity)),
        color_(spdlog::details::os::in_terminal(stderr) &&
               spdlog::details::os::is_color_terminal()),
        flush_timeout_(flush_timeout),
        writer_(StartWriter(out_, std::move(logger))) {}

  ~BufferedSink() override { Stop(); }

  void log(const spdlog::details::log_msg& msg) override {
    std::lock_guard lock(format_mu_);
    line_.clear();
    formatter_->format(msg, line_);
    std::string_view text(line_.data(), line_.size());
    if (color_ && msg.color_range_end > msg.color_range_start) {
      colored_.clear();
      colored_.append(text.substr(0, msg.color_range_start));
      colored_.append(LevelColor(msg.level));
      colored_.append(
          text.substr(msg.color_range_start, msg.color_range_end - msg.color_range_start));
      colored_.append("\033[m");
      colored_.append(text.substr(msg.color_range_end));
      text = colored_;
    }
    // After Stop, with the writer ended: the process is ending and no loop runs, so a line
    // logged that late is written here.
    if (stopped_) {
      WriteAll(out_->fd, text);
    } else {
      out_->buffer.Append(text);
    }
  }

  // Waits, at most flush_timeout, for the lines logged so far to be written.
  void flush() override { out_->buffer.WaitWritten(flush_timeout_); }

  void set_pattern(const std::string& pattern) override {
    set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
  }

  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    {
      std::lock_guard lock(out_->notice_mu);
      out_->notice_formatter = formatter->clone();
    }
    std::lock_guard lock(format_mu_);
    formatter_ = std::move(formatter);
  }

  uint64_t dropped() const { return out_->buffer.dropped_total(); }

  // Ends the writer once it has written every line, waiting at most flush_timeout; a writer
  // still stuck on the output then is left to the process's exit (it owns what it uses).
  void Stop() {
    if (!writer_.joinable()) return;
    out_->buffer.Close();
    std::unique_lock done_lock(out_->done_mu);
    const bool done =
        out_->done_cv.wait_for(done_lock, flush_timeout_, [this] { return out_->done; });
    done_lock.unlock();
    if (!done) {
      writer_.detach();
      return;
    }
    writer_.join();
    std::lock_guard lock(format_mu_);
    stopped_ = true;
  }

 private:
  const std::shared_ptr<LogOutput> out_;
  const bool color_;
  const std::chrono::milliseconds flush_timeout_;
  std::mutex format_mu_;
  std::unique_ptr<spdlog::formatter> formatter_;  // guarded by format_mu_
  spdlog::memory_buf_t line_;                     // guarded by format_mu_
  std::string colored_;                           // guarded by format_mu_
  bool stopped_ = false;                          // guarded by format_mu_
  std::thread writer_;
};

std::mutex sink_mu;
std::shared_ptr<BufferedSink> sink;  // guarded by sink_mu: the logger's, for Stop and metrics

}  // namespace

void SetUpLogging(std::string_view format, std::string_view level, size_t buffer_bytes,
                  std::chrono::milliseconds flush_timeout) {
  spdlog::drop("hermod");
  auto output =
      std::make_shared<BufferedSink>(STDERR_FILENO, buffer_bytes, "hermod", flush_timeout);
  if (format == "json") {
    output->set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    output->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  auto logger = std::make_shared<spdlog::logger>("hermod", output);
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(std::move(logger));
  std::shared_ptr<BufferedSink> previous;
  {
    std::lock_guard lock(sink_mu);
    previous = std::exchange(sink, std::move(output));
  }
  if (previous) previous->Stop();
}

void StopLogging() {
  std::shared_ptr<BufferedSink> current;
  {
    std::lock_guard lock(sink_mu);
    current = sink;
  }
  if (current) current->Stop();
}

uint64_t LogLinesDropped() {
  std::lock_guard lock(sink_mu);
  return sink ? sink->dropped() : 0;
}

}  // namespace hermod::app
