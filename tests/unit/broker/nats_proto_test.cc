#include "broker/nats_proto.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hermod::broker {
namespace {

// Records every message as one line of text, payloads included.
class Recorder final : public NatsParser::Handler {
 public:
  void OnInfo(std::string_view json) override { got.push_back("INFO " + std::string(json)); }
  void OnMsg(std::string_view subject, uint64_t sid, std::string_view reply,
             std::string_view payload) override {
    got.push_back("MSG " + std::string(subject) + " " + std::to_string(sid) + " [" +
                  std::string(reply) + "] " + std::string(payload));
  }
  void OnPing() override { got.emplace_back("PING"); }
  void OnPong() override { got.emplace_back("PONG"); }
  void OnOk() override { got.emplace_back("OK"); }
  void OnErr(std::string_view text) override { got.push_back("ERR " + std::string(text)); }
  std::vector<std::string> got;
};

const std::string kStream =
    "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"
    "PING\r\n"
    "MSG a.b 7 12\r\nhello\r\nworld\r\n"
    "MSG a.c 8 _INBOX.r 0\r\n\r\n"
    "+OK\r\n"
    "msg a.d\t9  3\r\nxyz\r\n"
    "PONG\r\n"
    "-ERR 'Permissions Violation for Publish to x'\r\n";

const std::vector<std::string> kExpected = {
    "INFO {\"server_id\":\"x\",\"max_payload\":1048576}",
    "PING",
    "MSG a.b 7 [] hello\r\nworld",
    "MSG a.c 8 [_INBOX.r] ",
    "OK",
    "MSG a.d 9 [] xyz",
    "PONG",
    "ERR Permissions Violation for Publish to x",
};

TEST(NatsParser, WholeStream) {
  Recorder r;
  NatsParser p(r);
  ASSERT_TRUE(p.Feed(kStream)) << p.error();
  EXPECT_EQ(r.got, kExpected);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(NatsParser, SplitAtEveryByte) {
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    Recorder r;
    NatsParser p(r);
    ASSERT_TRUE(p.Feed(std::string_view(kStream).substr(0, cut))) << cut << p.error();
    ASSERT_TRUE(p.Feed(std::string_view(kStream).substr(cut))) << cut << p.error();
    EXPECT_EQ(r.got, kExpected) << "cut at " << cut;
  }
}

TEST(NatsParser, ByteAtATime) {
  Recorder r;
  NatsParser p(r);
  for (char c : kStream) ASSERT_TRUE(p.Feed(std::string_view(&c, 1))) << p.error();
  EXPECT_EQ(r.got, kExpected);
}

TEST(NatsParser, PayloadOfExactlyMaxPayloadAndOneMore) {
  Recorder r;
  NatsParser p(r);
  p.set_max_payload(16);
  const std::string ok = "MSG s 1 16\r\n" + std::string(16, 'x') + "\r\n";
  ASSERT_TRUE(p.Feed(ok)) << p.error();
  ASSERT_EQ(r.got.size(), 1u);
  EXPECT_FALSE(p.Feed("MSG s 1 17\r\n"));
  EXPECT_NE(p.error().find("max_payload"), std::string::npos);
  EXPECT_FALSE(p.Feed("PING\r\n"));  // failed until Reset
  p.Reset();
  EXPECT_TRUE(p.Feed("PING\r\n"));
  EXPECT_EQ(r.got.back(), "PING");
}

TEST(NatsParser, HugeLineIsAnError) {
  Recorder r;
  NatsParser p(r, 128);
  // Cut, never ended: refused once the held bytes pass the bound.
  EXPECT_TRUE(p.Feed("INFO " + std::string(100, 'a')));
  EXPECT_FALSE(p.Feed(std::string(100, 'a')));
  // Whole, in one read.
  NatsParser q(r, 128);
  EXPECT_FALSE(q.Feed("INFO " + std::string(200, 'a') + "\r\n"));
}

// A line of exactly max_line bytes is taken whole, so it is taken cut too: also when the read
// ends between its CR and LF (the held bytes are then one more than max_line).
TEST(NatsParser, LineOfExactlyMaxLineCutBeforeItsLf) {
  const std::string line = "INFO " + std::string(123, 'a');  // 128 bytes
  Recorder whole;
  NatsParser p(whole, 128);
  ASSERT_TRUE(p.Feed(line + "\r\n")) << p.error();
  Recorder cut;
  NatsParser q(cut, 128);
  ASSERT_TRUE(q.Feed(line + "\r")) << q.error();
  ASSERT_TRUE(q.Feed("\n")) << q.error();
  EXPECT_EQ(cut.got, whole.got);
  ASSERT_EQ(cut.got.size(), 1u);
  // One byte more is refused, cut or not.
  NatsParser r(cut, 128);
  EXPECT_FALSE(r.Feed(line + "a\r"));
}

TEST(NatsParser, MalformedLinesAreErrors) {
  for (const char* bad :
       {"BOGUS\r\n", "\r\n", "MSG a 1\r\n", "MSG a x 3\r\nabc\r\n", "MSG a 1 -3\r\n",
        "MSG a 1 b c 3\r\n", "MSG a 1 3\r\nabcXY", "PING extra\r\n",
        "MSG a 1 99999999999999999999\r\n", "HMSG a 1 3 3\r\n"}) {
    Recorder r;
    NatsParser p(r);
    EXPECT_FALSE(p.Feed(bad)) << bad;
    EXPECT_FALSE(p.error().empty()) << bad;
    EXPECT_TRUE(r.got.empty()) << bad;
  }
}

TEST(NatsParser, InfoMaxPayload) {
  EXPECT_EQ(InfoMaxPayload("{\"max_payload\":1048576,\"x\":1}"), 1048576u);
  EXPECT_EQ(InfoMaxPayload("{\"max_payload\" : 42}"), 42u);
  EXPECT_EQ(InfoMaxPayload("{\"server_id\":\"a\"}"), 0u);
  EXPECT_EQ(InfoMaxPayload("{\"max_payload\":\"x\"}"), 0u);
  EXPECT_EQ(InfoMaxPayload("{\"max_payload\":"), 0u);
}

TEST(NatsParser, Writers) {
  std::string out;
  AppendPub(out, "a.b", "hi");
  AppendSub(out, "a.b", 3);
  AppendUnsub(out, 3);
  EXPECT_EQ(out, "PUB a.b 2\r\nhi\r\nSUB a.b 3\r\nUNSUB 3\r\n");
  std::string connect;
  AppendConnect(connect, {"n\"1", "u", "p\\w", ""});
  EXPECT_EQ(connect,
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"headers\":false,"
            "\"lang\":\"C++\",\"version\":\"hermod\",\"protocol\":1,\"name\":\"n\\\"1\","
            "\"user\":\"u\",\"pass\":\"p\\\\w\"}\r\n");
}

}  // namespace
}  // namespace hermod::broker
