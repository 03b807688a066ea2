#include "ws/handshake.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::ws {
namespace {

UpgradeRequest ValidRequest() {
  UpgradeRequest r;
  r.method = "GET";
  r.http_version = 11;
  r.host = "server.example.com";
  r.upgrade = "websocket";
  r.connection = "Upgrade";
  r.key = "dGhlIHNhbXBsZSBub25jZQ==";
  r.version = "13";
  return r;
}

bool HasHeader(const HandshakeResult& r, std::string_view line) {
  return r.response.find(std::string(line) + "\r\n") != std::string::npos;
}

// A refusal is a whole HTTP/1.1 response that closes the connection.
void ExpectRefusal(const HandshakeResult& r, int status) {
  EXPECT_EQ(r.status, status);
  EXPECT_EQ(r.response.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0), 0u) << r.response;
  EXPECT_NE(r.response.find("Connection: close"), std::string::npos) << r.response;
  EXPECT_TRUE(HasHeader(r, "Content-Type: text/plain")) << r.response;
  const size_t blank = r.response.find("\r\n\r\n");
  ASSERT_NE(blank, std::string::npos);
  const std::string body = r.response.substr(blank + 4);
  EXPECT_FALSE(body.empty());
  EXPECT_TRUE(HasHeader(r, "Content-Length: " + std::to_string(body.size()))) << r.response;
  EXPECT_FALSE(r.reason.empty());
}

TEST(AcceptKey, MatchesTheRfc6455Sample) {
  EXPECT_EQ(AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(HeaderHasToken, FindsTokensCaseInsensitivelyInLists) {
  EXPECT_TRUE(HeaderHasToken("Upgrade", "upgrade"));
  EXPECT_TRUE(HeaderHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(HeaderHasToken(" keep-alive ,\tUPGRADE ", "upgrade"));
  EXPECT_FALSE(HeaderHasToken("keep-alive", "upgrade"));
  EXPECT_FALSE(HeaderHasToken("upgraded", "upgrade"));
  EXPECT_FALSE(HeaderHasToken("", "upgrade"));
}

TEST(AcceptUpgrade, AnswersTheRfcSampleWith101) {
  HandshakeResult r = AcceptUpgrade(ValidRequest(), HandshakePolicy{});
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  EXPECT_FALSE(r.deflate);
  EXPECT_TRUE(r.subprotocol.empty());
}

TEST(AcceptUpgrade, AcceptsTokenListsAndMixedCase) {
  UpgradeRequest req = ValidRequest();
  req.upgrade = "foo/1, WebSocket";
  req.connection = "keep-alive, upgrade";
  EXPECT_EQ(AcceptUpgrade(req, HandshakePolicy{}).status, 101);
}

TEST(AcceptUpgrade, RefusesOtherMethodsWith405AndAllow) {
  UpgradeRequest req = ValidRequest();
  req.method = "POST";
  HandshakeResult r = AcceptUpgrade(req, HandshakePolicy{});
  ExpectRefusal(r, 405);
  EXPECT_TRUE(HasHeader(r, "Allow: GET"));
}

TEST(AcceptUpgrade, RefusesHttp10With400) {
  UpgradeRequest req = ValidRequest();
  req.http_version = 10;
  ExpectRefusal(AcceptUpgrade(req, HandshakePolicy{}), 400);
}

TEST(AcceptUpgrade, AcceptsHttpVersionsAfter11) {
  UpgradeRequest req = ValidRequest();
  req.http_version = 12;
  EXPECT_EQ(AcceptUpgrade(req, HandshakePolicy{}).status, 101);
}

TEST(AcceptUpgrade, RefusesAMissingHostWith400) {
  UpgradeRequest req = ValidRequest();
  req.host = "";
  ExpectRefusal(AcceptUpgrade(req, HandshakePolicy{}), 400);
}

TEST(AcceptUpgrade, RefusesAMissingUpgradeWith426NamingWebsocket) {
  for (std::string_view upgrade : {"", "h2c", "websockets"}) {
    UpgradeRequest req = ValidRequest();
    req.upgrade = upgrade;
    HandshakeResult r = AcceptUpgrade(req, HandshakePolicy{});
    ExpectRefusal(r, 426);
    EXPECT_TRUE(HasHeader(r, "Upgrade: websocket"));
  }
}

TEST(AcceptUpgrade, RefusesAConnectionHeaderWithoutUpgradeWith400) {
  UpgradeRequest req = ValidRequest();
  req.connection = "keep-alive";
  ExpectRefusal(AcceptUpgrade(req, HandshakePolicy{}), 400);
}

TEST(AcceptUpgrade, RefusesOtherVersionsWith426AndVersion13) {
  for (std::string_view version : {"", "8", "12", "14", "13, 8"}) {
    UpgradeRequest req = ValidRequest();
    req.version = version;
    HandshakeResult r = AcceptUpgrade(req, HandshakePolicy{});
    ExpectRefusal(r, 426);
    EXPECT_TRUE(HasHeader(r, "Sec-WebSocket-Version: 13")) << version;
  }
}

TEST(AcceptUpgrade, RefusesKeysThatAreNotBase64Of16BytesWith400) {
  for (std::string_view key :
       {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
        "dGhlIHNhbXBsZSBub25j!Q==", "dGhlIHNhbXBsZSBub25jZSE=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    UpgradeRequest req = ValidRequest();
    req.key = key;
    ExpectRefusal(AcceptUpgrade(req, HandshakePolicy{}), 400);
  }
}

TEST(AcceptUpgrade, ChecksOriginAgainstTheAllowedList) {
  HandshakePolicy policy;
  policy.allowed_origins = {"https://app.example.com", "http://localhost:8080"};
  UpgradeRequest req = ValidRequest();
  req.origin = "https://APP.example.com";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
  req.origin = "http://localhost:8080";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
  req.origin = "https://evil.example.com";
  ExpectRefusal(AcceptUpgrade(req, policy), 403);
  req.origin = "http://app.example.com";  // scheme matters
  ExpectRefusal(AcceptUpgrade(req, policy), 403);
  req.origin = "null";
  ExpectRefusal(AcceptUpgrade(req, policy), 403);
  req.origin = "";  // not a browser
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
}

TEST(AcceptUpgrade, StarAllowsEveryOrigin) {
  HandshakePolicy policy;
  policy.allowed_origins = {"*"};
  UpgradeRequest req = ValidRequest();
  req.origin = "https://anything.example";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
  req.origin = "null";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
}

TEST(AcceptUpgrade, EmptyOriginListAllowsOnlySameHost) {
  HandshakePolicy policy;
  UpgradeRequest req = ValidRequest();
  req.host = "chat.example.com:8000";
  req.origin = "http://chat.example.com:8000";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
  req.origin = "https://Chat.Example.com:8000";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
  req.origin = "http://chat.example.com";
  ExpectRefusal(AcceptUpgrade(req, policy), 403);
  req.origin = "http://other.example.com:8000";
  ExpectRefusal(AcceptUpgrade(req, policy), 403);
  req.origin = "chat.example.com:8000";  // not an origin
  ExpectRefusal(AcceptUpgrade(req, policy), 403);
  req.origin = "";
  EXPECT_EQ(AcceptUpgrade(req, policy).status, 101);
}

TEST(AcceptUpgrade, PicksTheServersPreferredSubprotocolAmongOffered) {
  HandshakePolicy policy;
  policy.subprotocols = {"centrifuge-protobuf", "centrifuge-json"};
  UpgradeRequest req = ValidRequest();
  req.protocols = "foo, centrifuge-json, centrifuge-protobuf";
  HandshakeResult r = AcceptUpgrade(req, policy);
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.subprotocol, "centrifuge-protobuf");
  EXPECT_TRUE(HasHeader(r, "Sec-WebSocket-Protocol: centrifuge-protobuf"));
  req.protocols = "centrifuge-json";
  EXPECT_EQ(AcceptUpgrade(req, policy).subprotocol, "centrifuge-json");
  req.protocols = "mqtt";
  r = AcceptUpgrade(req, policy);
  EXPECT_EQ(r.status, 101);
  EXPECT_TRUE(r.subprotocol.empty());
  EXPECT_EQ(r.response.find("Sec-WebSocket-Protocol"), std::string::npos);
  req.protocols = "Centrifuge-JSON";  // subprotocol names are case-sensitive
  EXPECT_TRUE(AcceptUpgrade(req, policy).subprotocol.empty());
}

TEST(AcceptUpgrade, NegotiatesDeflateWhenEnabled) {
  HandshakePolicy policy;
  policy.deflate.enabled = true;
  UpgradeRequest req = ValidRequest();
  req.extensions = "permessage-deflate; client_max_window_bits";
  HandshakeResult r = AcceptUpgrade(req, policy);
  EXPECT_EQ(r.status, 101);
  EXPECT_TRUE(r.deflate);
  EXPECT_TRUE(
      HasHeader(r, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15"))
      << r.response;
  EXPECT_EQ(r.response.substr(r.response.size() - 4), "\r\n\r\n");
  policy.deflate.enabled = false;
  r = AcceptUpgrade(req, policy);
  EXPECT_FALSE(r.deflate);
  EXPECT_EQ(r.response.find("Sec-WebSocket-Extensions"), std::string::npos);
}

}  // namespace
}  // namespace hermod::ws
