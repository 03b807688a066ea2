// The process's one logger: spdlog to stderr, as text for people or as one JSON object per
// line for machines (`--log-format json`, `log_format`, HERMOD_LOG_FORMAT).
//
// A log call never waits for stderr's reader: the line goes to a bounded buffer
// (`log_buffer_bytes`) that one writer thread writes out; a line that does not fit is dropped
// and counted (`hermod_log_lines_dropped_total`, and one line saying how many once stderr
// takes lines again). See log_buffer.h.
//
// Log calls go through spdlog's level check before any formatting, so a line below the
// level costs a comparison; the data path logs per connection only at debug, and at info
// only for errors (a refused upgrade, a disconnect with an error code).
#pragma once

#include <spdlog/formatter.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace hermod::app {

// {"time":"2026-01-02T03:04:05.678Z","level":"info","logger":"hermod","msg":"...",...}: UTC
// time with milliseconds; msg escaped for JSON (invalid UTF-8 as U+FFFD); then the fields
// the line was logged with (log::Write), e.g. "client", "user", "code", "reason", "remote".
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// Replaces the default logger: format "text" or "json", level as config's log_level, at most
// buffer_bytes of lines waiting for stderr; flush() and StopLogging wait at most
// flush_timeout for them.
void SetUpLogging(std::string_view format, std::string_view level, size_t buffer_bytes,
                  std::chrono::milliseconds flush_timeout);

// Writes what is buffered (at most the flush timeout) and ends the writer thread; lines logged
// after it are written by the caller. Before the process exits.
void StopLogging();

// Lines dropped because the buffer was full, since start.
uint64_t LogLinesDropped();

}  // namespace hermod::app
