#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::http {
namespace {

RequestParser::Status ParseAll(RequestParser& parser, const std::string& text, size_t* consumed) {
  return parser.Parse(reinterpret_cast<const uint8_t*>(text.data()), text.size(), consumed);
}

TEST(RequestParser, ParsesAnUpgradeRequest) {
  ParserLimits limits;
  RequestParser parser(limits);
  std::string text =
      "GET /connection/websocket?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, text, &consumed), RequestParser::Status::kDone);
  EXPECT_EQ(consumed, text.size());
  Request& r = parser.request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.Path(), "/connection/websocket");
  EXPECT_EQ(r.Query(), "x=1");
  EXPECT_EQ(r.version, 11);
  EXPECT_EQ(r.Header("upgrade"), "websocket");
  EXPECT_TRUE(r.keep_alive);
}

TEST(RequestParser, NeedsMoreUntilTheHeaderEnds) {
  ParserLimits limits;
  RequestParser parser(limits);
  size_t consumed = 0;
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  ASSERT_EQ(ParseAll(parser, head, &consumed), RequestParser::Status::kNeedMore);
  // Beast may take the request line early; the caller keeps whatever was not consumed.
  std::string rest = head.substr(consumed) + "\r\n";
  ASSERT_EQ(ParseAll(parser, rest, &consumed), RequestParser::Status::kDone);
  EXPECT_EQ(parser.request().Header("host"), "a");
}

TEST(RequestParser, StopsAtTheEndOfTheFirstPipelinedRequest) {
  ParserLimits limits;
  RequestParser parser(limits);
  std::string one = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, one + "GET /b HTTP/1.1\r\n\r\n", &consumed),
            RequestParser::Status::kDone);
  EXPECT_EQ(consumed, one.size());
}

TEST(RequestParser, ReadsAContentLengthBody) {
  ParserLimits limits;
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, "POST /api HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", &consumed),
            RequestParser::Status::kDone);
  EXPECT_EQ(parser.request().body, "hello");
}

TEST(RequestParser, AnswersGarbageWith400) {
  ParserLimits limits;
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, "NOT HTTP AT ALL\r\n\r\n", &consumed), RequestParser::Status::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(RequestParser, AnswersTooManyHeadersWith431) {
  ParserLimits limits;
  limits.max_headers = 3;
  RequestParser parser(limits);
  std::string text = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) text += "X-" + std::to_string(i) + ": v\r\n";
  text += "\r\n";
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, text, &consumed), RequestParser::Status::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(RequestParser, AnswersAnOverlongHeaderWith431) {
  ParserLimits limits;
  limits.max_header_bytes = 256;
  RequestParser parser(limits);
  std::string text = "GET / HTTP/1.1\r\nX-Big: " + std::string(400, 'a') + "\r\n\r\n";
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, text, &consumed), RequestParser::Status::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(RequestParser, AnswersAnOversizedBodyWith413) {
  ParserLimits limits;
  limits.max_body_bytes = 10;
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &consumed),
            RequestParser::Status::kError);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST(RequestParser, Http10WithoutKeepAliveCloses) {
  ParserLimits limits;
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, "GET / HTTP/1.0\r\n\r\n", &consumed), RequestParser::Status::kDone);
  EXPECT_EQ(parser.request().version, 10);
  EXPECT_FALSE(parser.request().keep_alive);
}

TEST(Request, HeaderListJoinsRepeatedHeaders) {
  Request r;
  r.headers = {{"Connection", "keep-alive"}, {"connection", "Upgrade"}};
  EXPECT_EQ(r.HeaderList("Connection"), "keep-alive, Upgrade");
}

}  // namespace
}  // namespace hermod::http
