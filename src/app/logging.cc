#include "app/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <iterator>
#include <string>

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

void SetUpLogging(std::string_view format, std::string_view level) {
  spdlog::drop("hermod");
  std::shared_ptr<spdlog::logger> logger;
  if (format == "json") {
    logger = spdlog::stderr_logger_mt("hermod");
    logger->set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    logger = spdlog::stderr_color_mt("hermod");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace hermod::app
