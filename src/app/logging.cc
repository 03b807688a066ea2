#include "app/logging.h"

#include <simdjson.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <string>

namespace hermod::app {

namespace {

void AppendEscaped(spdlog::memory_buf_t& dest, std::string_view text) {
  // Messages may carry bytes from clients; JSON needs valid UTF-8.
  const bool utf8 = simdjson::validate_utf8(text.data(), text.size());
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : text) {
    auto byte = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      dest.push_back('\\');
      dest.push_back(ch);
    } else if (ch == '\n') {
      dest.append(std::string_view("\\n"));
    } else if (byte < 0x20 || (byte >= 0x80 && !utf8)) {
      const char escape[] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 15]};
      dest.append(escape, escape + sizeof escape);
    } else {
      dest.push_back(ch);
    }
  }
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
  dest.append(std::string_view("\"}\n"));
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
