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
  ASSERT_EQ(ParseAll(parser, "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                     &consumed),
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

// Parses text whole, then again one byte at a time (as a slow socket delivers it): both must
// reach the same outcome, since framing checks that depend on how bytes arrive are holes.
struct Outcome {
  RequestParser::Status status;
  int error_status = 0;
  Rejection rejection = Rejection::kCount;
  size_t consumed = 0;
  std::string body;
  std::string target;
};

Outcome ParseWhole(const std::string& text, const ParserLimits& limits = {}) {
  RequestParser parser(limits);
  Outcome o;
  o.status = ParseAll(parser, text, &o.consumed);
  if (o.status == RequestParser::Status::kError) {
    o.error_status = parser.error_status();
    o.rejection = parser.rejection();
  } else if (o.status == RequestParser::Status::kDone) {
    o.body = parser.request().body;
    o.target = parser.request().target;
  }
  return o;
}

Outcome ParseBytewise(const std::string& text, const ParserLimits& limits = {}) {
  RequestParser parser(limits);
  Outcome o;
  std::string pending;
  for (char c : text) {
    pending += c;
    size_t consumed = 0;
    o.status = ParseAll(parser, pending, &consumed);
    o.consumed += consumed;
    pending.erase(0, consumed);
    if (o.status == RequestParser::Status::kError) {
      o.error_status = parser.error_status();
      o.rejection = parser.rejection();
      return o;
    }
    if (o.status == RequestParser::Status::kDone) {
      o.body = parser.request().body;
      o.target = parser.request().target;
      return o;
    }
  }
  return o;
}

void ExpectRefused(const std::string& text, int status, Rejection why) {
  for (const Outcome& o : {ParseWhole(text), ParseBytewise(text)}) {
    EXPECT_EQ(o.status, RequestParser::Status::kError) << text;
    EXPECT_EQ(o.error_status, status) << text;
    EXPECT_EQ(RejectionName(o.rejection), RejectionName(why)) << text;
  }
}

const std::string kPost = "POST /api/publish HTTP/1.1\r\nHost: a\r\n";
const std::string kSmuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

TEST(RequestParser, RefusesTransferEncodingWhoseFinalCodingIsNotChunked) {
  // RFC 9112 §6.3. Beast 1.74 takes these as bodiless, and the body as the next request.
  for (std::string te : {"chunked, identity", "xchunked", "identity", "chunked;x=1", "chunked,x",
                         "", ",", "chunked, chunked", "chunked\r\nTransfer-Encoding: x"}) {
    ExpectRefused(kPost + "Transfer-Encoding: " + te + "\r\n\r\n" + kSmuggled, 400,
                  Rejection::kTransferEncoding);
  }
}

TEST(RequestParser, RefusesTransferEncodingWithContentLengthInEitherOrder) {
  // RFC 9112 §6.1: refuse, or frame by TE alone; hermod refuses.
  ExpectRefused(kPost + "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n" + kSmuggled, 400,
                Rejection::kTeWithLength);
  ExpectRefused(kPost + "Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n" + kSmuggled, 400,
                Rejection::kTransferEncoding);  // Beast's own check, at the field
  ExpectRefused(kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + kSmuggled, 400,
                Rejection::kContentLength);  // Beast's own check, at the field
  ExpectRefused(kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + kSmuggled, 400,
                Rejection::kTransferEncoding);
}

TEST(RequestParser, RefusesTransferEncodingInHttp10) {
  ExpectRefused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
                Rejection::kTransferEncoding);
}

TEST(RequestParser, AnswersCodingsOtherThanChunkedWith501) {
  ExpectRefused(kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
                Rejection::kUnsupportedCoding);
}

TEST(RequestParser, AnswersAnotherMajorVersionWith505AndAMalformedOneWith400) {
  // RFC 9110 §15.6.6: 505 for a major version the server does not support.
  ExpectRefused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, Rejection::kVersion);
  ExpectRefused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, Rejection::kVersion);
  ExpectRefused("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, Rejection::kVersion);
  ExpectRefused("GET / HTTP/x.1\r\nHost: a\r\n\r\n", 400, Rejection::kMalformed);
  ExpectRefused("GET / HTTP/2.0x\r\nHost: a\r\n\r\n", 400, Rejection::kMalformed);
  ExpectRefused("GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400, Rejection::kMalformed);
}

TEST(RequestParser, RefusesDifferingOrInvalidContentLengths) {
  ExpectRefused(kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400,
                Rejection::kContentLength);
  ExpectRefused(kPost + "Content-Length: 5, 6\r\n\r\nhello!", 400, Rejection::kContentLength);
  ExpectRefused(kPost + "Content-Length: +5\r\n\r\nhello", 400, Rejection::kContentLength);
  ExpectRefused(kPost + "Content-Length: 0x5\r\n\r\nhello", 400, Rejection::kContentLength);
}

TEST(RequestParser, RefusesObsFold) {
  // RFC 9112 §5.2: reject or unfold; Beast unfolds, hermod rejects.
  ExpectRefused(kPost + "X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n" + kSmuggled, 400,
                Rejection::kObsFold);
  ExpectRefused(kPost + "Transfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n", 400,
                Rejection::kObsFold);
  ExpectRefused("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, Rejection::kObsFold);
}

TEST(RequestParser, RefusesWhitespaceBeforeTheColon) {
  // RFC 9112 §5.1: MUST be rejected with 400.
  ExpectRefused(kPost + "Content-Length : 5\r\n\r\nhello", 400, Rejection::kMalformed);
  ExpectRefused(kPost + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400,
                Rejection::kMalformed);
}

TEST(RequestParser, RefusesBadChunkSizes) {
  const std::string head = kPost + "Transfer-Encoding: chunked\r\n\r\n";
  for (std::string chunk : {"zz\r\n", "-1\r\n", "0x5\r\nhello\r\n", " 5\r\nhello\r\n",
                            "1ffffffffffffffff\r\n", "5\r\nhelloXX0\r\n\r\n"}) {
    ExpectRefused(head + chunk + kSmuggled, 400, Rejection::kChunk);
  }
}

TEST(RequestParser, AcceptsChunkExtensionsAndDropsTrailers) {
  // RFC 9112 §7.1.1: unknown extensions are ignored; §7.1.2 and RFC 9110 §6.5.1: a trailer
  // never becomes a header (an API key sent as a trailer must not authorize the request).
  const std::string text = kPost +
                           "Transfer-Encoding: chunked\r\n\r\n"
                           "5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\nX-API-Key: k\r\n\r\n";
  for (const Outcome& o : {ParseWhole(text), ParseBytewise(text)}) {
    ASSERT_EQ(o.status, RequestParser::Status::kDone);
    EXPECT_EQ(o.body, "hello");
    EXPECT_EQ(o.consumed, text.size());
  }
  ParserLimits limits;
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, text, &consumed), RequestParser::Status::kDone);
  EXPECT_EQ(parser.request().Header("X-API-Key"), "");
}

TEST(RequestParser, RefusesMalformedChunkExtensionsAndTrailers) {
  const std::string head = kPost + "Transfer-Encoding: chunked\r\n\r\n";
  ExpectRefused(head + "5;\r\nhello\r\n0\r\n\r\n", 400, Rejection::kChunk);
  // An unterminated quoted string runs on until the connection's cap on a chunk line (431)
  // or the request timeout: it never completes a request.
  EXPECT_EQ(ParseWhole(head + "5;a=\"open\r\nhello\r\n0\r\n\r\n" + kSmuggled).status,
            RequestParser::Status::kNeedMore);
  ExpectRefused(head + "5;a\nhello\r\n0\r\n\r\n" + kSmuggled, 400, Rejection::kChunk);
  ExpectRefused(head + "5\r\nhello\r\n0\r\nNot a trailer\r\n\r\n", 400, Rejection::kMalformed);
  ExpectRefused(head + "5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", 400,
                Rejection::kContentLength);
}

TEST(RequestParser, CountsTrailersAgainstTheHeaderLimit) {
  ParserLimits limits;
  limits.max_headers = 4;
  std::string text = kPost + "Transfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 5; ++i) text += "X-T" + std::to_string(i) + ": v\r\n";
  text += "\r\n";
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, text, &consumed), RequestParser::Status::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(RequestParser, AcceptsTheAbsoluteFormAndTakesItsHost) {
  // RFC 9112 §3.2.2 and §3.2.3.
  for (std::string target :
       {"http://example.com/health?x=1", "HTTPS://example.com:8443/health?x=1"}) {
    ParserLimits limits;
    RequestParser parser(limits);
    size_t consumed = 0;
    ASSERT_EQ(ParseAll(parser, "GET " + target + " HTTP/1.1\r\nHost: other\r\n\r\n", &consumed),
              RequestParser::Status::kDone);
    EXPECT_EQ(parser.request().Path(), "/health");
    EXPECT_EQ(parser.request().Query(), "x=1");
    EXPECT_EQ(parser.request().HeaderList("Host").find("other"), std::string::npos);
  }
  EXPECT_EQ(ParseWhole("GET http://example.com HTTP/1.1\r\nHost: a\r\n\r\n").target, "/");
  EXPECT_EQ(ParseWhole("GET http://example.com?q HTTP/1.1\r\nHost: a\r\n\r\n").target, "/?q");
  ExpectRefused("GET http:///health HTTP/1.1\r\nHost: a\r\n\r\n", 400, Rejection::kMalformed);
  ExpectRefused("GET http://u@h/health HTTP/1.1\r\nHost: a\r\n\r\n", 400, Rejection::kMalformed);
  // Not absolute: a path that merely holds "://".
  EXPECT_EQ(ParseWhole("GET /a/http://b HTTP/1.1\r\nHost: a\r\n\r\n").target, "/a/http://b");
}

TEST(RequestParser, IgnoresEmptyLinesBeforeTheRequestLineWithinABound) {
  // RFC 9112 §2.2: at least one should be ignored.
  const std::string get = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
  for (const Outcome& o : {ParseWhole("\r\n" + get), ParseBytewise("\r\n\r\n" + get)}) {
    ASSERT_EQ(o.status, RequestParser::Status::kDone);
    EXPECT_EQ(o.target, "/health");
  }
  std::string many;
  for (int i = 0; i < 9; ++i) many += "\r\n";
  ExpectRefused(many + get, 400, Rejection::kEmptyLines);
  ExpectRefused("\r\r\n" + get, 400, Rejection::kMalformed);
}

TEST(RequestParser, AsksForContinueOnlyWhileAnHttp11BodyIsToCome) {
  const std::string head =
      "POST /api HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
  {
    ParserLimits limits;
    RequestParser parser(limits);
    size_t consumed = 0;
    ASSERT_EQ(ParseAll(parser, head, &consumed), RequestParser::Status::kNeedMore);
    EXPECT_TRUE(parser.header_done());
    EXPECT_TRUE(parser.wants_continue());
    parser.ContinueSent();
    EXPECT_FALSE(parser.wants_continue());
    ASSERT_EQ(ParseAll(parser, "hello", &consumed), RequestParser::Status::kDone);
  }
  {
    ParserLimits limits;
    RequestParser parser(limits);
    size_t consumed = 0;
    ASSERT_EQ(ParseAll(parser, head + "hel", &consumed), RequestParser::Status::kNeedMore);
    // Some of the body is here already: §10.1.1 lets the server skip 100, but the client
    // may still wait for it, so it is sent.
    EXPECT_TRUE(parser.wants_continue());
  }
  for (std::string text :
       {"POST /api HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        "POST /api HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"}) {
    ParserLimits limits;
    RequestParser parser(limits);
    size_t consumed = 0;
    ParseAll(parser, text, &consumed);
    EXPECT_FALSE(parser.wants_continue()) << text;
  }
}

TEST(Request, HeaderListJoinsRepeatedHeaders) {
  Request r;
  r.headers = {{"Connection", "keep-alive"}, {"connection", "Upgrade"}};
  EXPECT_EQ(r.HeaderList("Connection"), "keep-alive, Upgrade");
}

TEST(RequestParser, RefusesHttp11WithoutHostAndAnyRequestWithTwo) {
  // RFC 9112 §3.2: two Host fields could name two hosts to two readers of one request.
  ExpectRefused("GET / HTTP/1.1\r\n\r\n", 400, Rejection::kHost);
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, Rejection::kHost);
  ExpectRefused("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400, Rejection::kHost);
  // The absolute form still needs its Host field, whose value it then overrides.
  ExpectRefused("GET http://x/health HTTP/1.1\r\n\r\n", 400, Rejection::kHost);
  ParserLimits limits;
  RequestParser parser(limits);
  size_t consumed = 0;
  ASSERT_EQ(ParseAll(parser, "GET / HTTP/1.0\r\n\r\n", &consumed), RequestParser::Status::kDone);
}

}  // namespace
}  // namespace hermod::http
