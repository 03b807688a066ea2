// The JSON log format: one object per line, whatever bytes the message carries.
#include "app/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>

#include "log/fields.h"

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

TEST(JsonLogFormatter, WritesTheFieldsOfLogWriteAsMembers) {
  // The formatter as the logger calls it, inside log::Write, where the line's fields are set.
  std::ostringstream stream;
  auto logger = std::make_shared<spdlog::logger>(
      "hermod", std::make_shared<spdlog::sinks::ostream_sink_st>(stream));
  logger->set_formatter(std::make_unique<JsonLogFormatter>());
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  log::Write(spdlog::level::info,
             {{"client", "c-1"}, {"user", "a\"b"}, {"code", 3008}, {"reason", "slow"}},
             "client {}: disconnect {}", "c-1", 3008);
  const std::string with_fields = stream.str();
  stream.str("");
  spdlog::info("no fields");
  const std::string line = stream.str();
  spdlog::set_default_logger(previous);
  EXPECT_NE(with_fields.find(R"("msg":"client c-1: disconnect 3008","client":"c-1",)"
                             R"("user":"a\"b","code":3008,"reason":"slow"})"
                             "\n"),
            std::string::npos)
      << with_fields;
  // The fields belong to their line only.
  EXPECT_NE(line.find(R"("msg":"no fields"})"), std::string::npos) << line;
}

}  // namespace
}  // namespace hermod::app
