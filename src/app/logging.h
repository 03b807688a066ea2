// The process's one logger: spdlog to stderr, as text for people or as one JSON object per
// line for machines (`--log-format json`, `log_format`, HERMOD_LOG_FORMAT).
//
// Log calls go through spdlog's level check before any formatting, so a line below the
// level costs a comparison; the data path logs per connection only at debug, and at info
// only for errors (a refused upgrade, a disconnect with an error code).
#pragma once

#include <spdlog/formatter.h>

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

// Replaces the default logger: format "text" or "json", level as config's log_level.
void SetUpLogging(std::string_view format, std::string_view level);

}  // namespace hermod::app
