// The JSON log format: one object per line, whatever bytes the message carries.
#include "app/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <chrono>
#include <string>

namespace hermod::app {
namespace {

std::string Format(std::string_view payload, spdlog::level::level_enum level) {
  const auto time = spdlog::log_clock::time_point(std::chrono::milliseconds(1'234));
  spdlog::details::log_msg msg(time, spdlog::source_loc{}, "hermod", level,
                               spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t out;
  JsonLogFormatter().format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(JsonLogFormatter, WritesTimeLevelLoggerAndMessageOnOneLine) {
  EXPECT_EQ(Format("listening on http://127.0.0.1:8000", spdlog::level::info),
            R"({"time":"1970-01-01T00:00:01.234Z","level":"info","logger":"hermod",)"
            R"("msg":"listening on http://127.0.0.1:8000"})"
            "\n");
  EXPECT_NE(Format("x", spdlog::level::warn).find(R"("level":"warning")"), std::string::npos);
}

TEST(JsonLogFormatter, EscapesQuotesBackslashesAndControlBytes) {
  EXPECT_EQ(Format("a\"b\\c\nd\x01", spdlog::level::info),
            R"({"time":"1970-01-01T00:00:01.234Z","level":"info","logger":"hermod",)"
            R"("msg":"a\"b\\c\nd\u0001"})"
            "\n");
}

TEST(JsonLogFormatter, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_NE(Format("caf\xc3\xa9", spdlog::level::info).find("\"msg\":\"caf\xc3\xa9\""),
            std::string::npos);
  // Invalid UTF-8 (a lone 0xff) becomes U+FFFD; the valid bytes around it are kept.
  EXPECT_NE(
      Format("caf\xc3\xa9\xff", spdlog::level::info).find("\"msg\":\"caf\xc3\xa9\xef\xbf\xbd\""),
      std::string::npos);
}

}  // namespace
}  // namespace hermod::app
