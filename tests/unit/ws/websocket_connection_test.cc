#include "ws/websocket_connection.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "net/event_loop.h"
#include "ws/frame_encoder.h"

namespace hermod::ws {
namespace {

uint64_t fake_now_ms = 1'000'000;
uint64_t FakeNow() { return fake_now_ms; }

// The HTTP connection that carried the handshake, reduced to its transport.
class Plain final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

// Echoes every message back with a prefix, and records what arrived.
class Echo final : public WebSocketConnection {
 public:
  using WebSocketConnection::WebSocketConnection;
  std::vector<std::string>* received = nullptr;

 private:
  void OnWebSocketMessage(Opcode opcode, std::string_view payload) override {
    if (received != nullptr) received->emplace_back(payload);
    SendMessage(opcode, "echo:" + std::string(payload));
  }
};

struct Frame {
  uint8_t opcode;
  bool fin;
  std::string payload;
  uint16_t close_code() const {
    return payload.size() >= 2 ? static_cast<uint16_t>(static_cast<uint8_t>(payload[0]) << 8 |
                                                       static_cast<uint8_t>(payload[1]))
                               : 0;
  }
};

// Splits a server's (unmasked) byte stream into frames; a cut last frame is left out.
std::vector<Frame> ParseFrames(std::string_view bytes) {
  std::vector<Frame> frames;
  size_t at = 0;
  while (bytes.size() - at >= 2) {
    const auto b0 = static_cast<uint8_t>(bytes[at]);
    const auto b1 = static_cast<uint8_t>(bytes[at + 1]);
    EXPECT_EQ(b1 & 0x80, 0) << "a server frame is never masked";
    uint64_t len = b1 & 0x7f;
    size_t header = 2;
    if (len >= 126) {
      const size_t n = len == 126 ? 2 : 8;
      if (bytes.size() - at < 2 + n) break;
      len = 0;
      for (size_t i = 0; i < n; ++i) len = len << 8 | static_cast<uint8_t>(bytes[at + 2 + i]);
      header += n;
    }
    if (bytes.size() - at < header + len) break;
    frames.push_back({static_cast<uint8_t>(b0 & 0x0f), (b0 & 0x80) != 0,
                      std::string(bytes.substr(at + header, len))});
    at += header + len;
  }
  return frames;
}

std::string ClientFrame(Opcode opcode, std::string_view payload, bool masked = true) {
  FrameHeaderSpec spec;
  spec.opcode = opcode;
  spec.payload_len = payload.size();
  if (masked) spec.mask = std::array<uint8_t, 4>{0x12, 0x34, 0x56, 0x78};
  std::string out;
  AppendFrame(out, spec, payload);
  return out;
}

class WebSocketConnectionTest : public ::testing::Test {
 protected:
  WebSocketConnectionTest() {
    options_.ping_interval_ms = 0;
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    server_fd_ = fds[0];
    peer_ = fds[1];
  }
  ~WebSocketConnectionTest() override { close(peer_); }

  // The upgrade: the plain connection hands its socket over (the loop frees both).
  Echo& Open() {
    auto* plain = new Plain(loop_, server_fd_, nullptr);
    auto* ws = new Echo(*plain, options_, HandshakeResult{}, stats_);
    ws->received = &received_;
    return *ws;
  }
  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  void Write(std::string_view bytes) {
    ASSERT_EQ(write(peer_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // Reads what is there; eof is set when the server closed (or half-closed) its side.
  std::string Read(bool* eof = nullptr) {
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = read(peer_, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
    if (eof != nullptr) *eof = n == 0;
    return out;
  }

  uint64_t clock_reset_ = fake_now_ms = 1'000'000;
  // Before the loop: closing the connections at its destruction counts into stats_.
  WebSocketOptions options_;
  WebSocketStats stats_;
  net::Loop loop_{0, 65536, &FakeNow};
  std::vector<std::string> received_;
  int server_fd_ = -1;
  int peer_ = -1;
};

TEST_F(WebSocketConnectionTest, ATextMessageReachesTheSubclassAndItsReplyThePeer) {
  Open();
  EXPECT_EQ(stats_.opened, 1u);
  Write(ClientFrame(Opcode::kText, "hello") + ClientFrame(Opcode::kBinary, std::string("\0\1", 2)));
  RunOnce();
  EXPECT_EQ(received_, (std::vector<std::string>{"hello", std::string("\0\1", 2)}));
  const std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kText));
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "echo:hello");
  EXPECT_EQ(frames[1].opcode, static_cast<uint8_t>(Opcode::kBinary));
  EXPECT_EQ(frames[1].payload, std::string("echo:\0\1", 7));
  EXPECT_EQ(stats_.messages_in, 2u);
  EXPECT_EQ(stats_.messages_out, 2u);
}

TEST_F(WebSocketConnectionTest, AMessageSplitAcrossReadsAndFramesIsDeliveredWhole) {
  Open();
  FrameHeaderSpec first;
  first.opcode = Opcode::kText;
  first.fin = false;
  first.payload_len = 3;
  first.mask = std::array<uint8_t, 4>{1, 2, 3, 4};
  FrameHeaderSpec rest = first;
  rest.opcode = Opcode::kContinuation;
  rest.fin = true;
  std::string bytes;
  AppendFrame(bytes, first, "abc");
  AppendFrame(bytes, rest, "def");
  Write(bytes.substr(0, 4));
  RunOnce();
  EXPECT_TRUE(received_.empty());
  Write(bytes.substr(4));
  RunOnce();
  EXPECT_EQ(received_, std::vector<std::string>{"abcdef"});
}

TEST_F(WebSocketConnectionTest, APingIsAnsweredWithAPongOfTheSamePayload) {
  Open();
  Write(ClientFrame(Opcode::kPing, "are you there"));
  RunOnce();
  const std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kPong));
  EXPECT_EQ(frames[0].payload, "are you there");
  EXPECT_TRUE(received_.empty());  // control frames are not messages
}

TEST_F(WebSocketConnectionTest, ThePeersCloseIsEchoedAndTheServerClosesFirst) {
  Open();
  Write(ClientFrame(Opcode::kClose, ClosePayload(1000, "bye")));
  RunOnce();
  bool eof = false;
  const std::vector<Frame> frames = ParseFrames(Read(&eof));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kClose));
  EXPECT_EQ(frames[0].close_code(), 1000);
  EXPECT_TRUE(eof);  // §7.1.1: the server ends the TCP connection (half-close, then linger)
  // After its Close, data from the peer is not delivered.
  Write(ClientFrame(Opcode::kText, "late"));
  shutdown(peer_, SHUT_WR);
  for (int i = 0; i < 10 && loop_.connection_count() > 0; ++i) RunOnce();
  EXPECT_TRUE(received_.empty());
  EXPECT_EQ(loop_.connection_count(), 0u);
  EXPECT_EQ(stats_.close_codes[1000], 1u);
}

TEST_F(WebSocketConnectionTest, AnUnmaskedClientFrameFailsTheConnectionWith1002) {
  Open();
  Write(ClientFrame(Opcode::kText, "no mask", /*masked=*/false));
  RunOnce();
  bool eof = false;
  const std::vector<Frame> frames = ParseFrames(Read(&eof));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kClose));
  EXPECT_EQ(frames[0].close_code(), 1002);
  EXPECT_TRUE(eof);
  EXPECT_TRUE(received_.empty());
  EXPECT_EQ(stats_.closed_by[stats::WsClose::kProtocolError], 1u);
  EXPECT_EQ(stats_.close_codes[1002], 1u);
}

TEST_F(WebSocketConnectionTest, AnOversizeMessageFailsTheConnectionWith1009) {
  options_.max_message_bytes = 16;
  Open();
  Write(ClientFrame(Opcode::kText, std::string(16, 'a')));  // at the bound: fine
  Write(ClientFrame(Opcode::kText, std::string(17, 'b')));
  RunOnce();
  const std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, "echo:" + std::string(16, 'a'));
  EXPECT_EQ(frames[1].opcode, static_cast<uint8_t>(Opcode::kClose));
  EXPECT_EQ(frames[1].close_code(), 1009);
  EXPECT_EQ(received_.size(), 1u);
  EXPECT_EQ(stats_.close_codes[1009], 1u);
}

TEST_F(WebSocketConnectionTest, CloseWithSendsTheCodeAndStopsSending) {
  Echo& ws = Open();
  loop_.Post([&] {
    ws.CloseWith(4000, "custom");
    EXPECT_EQ(ws.SendMessage(Opcode::kText, "after"), net::SendStatus::kDropped);
  });
  RunOnce();
  const std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].close_code(), 4000);
  EXPECT_EQ(frames[0].payload.substr(2), "custom");
  // The peer never answers: the close timeout ends the connection.
  EXPECT_EQ(loop_.connection_count(), 1u);
  fake_now_ms += options_.close_timeout_ms + 10;
  RunOnce();
  EXPECT_EQ(loop_.connection_count(), 0u);
}

TEST_F(WebSocketConnectionTest, AnUnansweredPingClosesTheConnection) {
  options_.ping_interval_ms = 1000;
  options_.pong_timeout_ms = 500;
  Open();
  fake_now_ms += 1000;
  RunOnce();
  std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kPing));
  fake_now_ms += 600;
  RunOnce();
  EXPECT_EQ(stats_.closed_by[stats::WsClose::kPongTimeout], 1u);
  EXPECT_EQ(loop_.connection_count(), 0u);
}

TEST_F(WebSocketConnectionTest, ALongMessageIsSentInFragmentsOfTheConfiguredSize) {
  options_.fragment_bytes = 4;
  Echo& ws = Open();
  loop_.Post(
      [&] { EXPECT_EQ(ws.SendMessage(Opcode::kText, "abcdefghij"), net::SendStatus::kQueued); });
  RunOnce();
  const std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kText));
  EXPECT_FALSE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "abcd");
  EXPECT_EQ(frames[1].opcode, static_cast<uint8_t>(Opcode::kContinuation));
  EXPECT_FALSE(frames[1].fin);
  EXPECT_EQ(frames[1].payload, "efgh");
  EXPECT_EQ(frames[2].opcode, static_cast<uint8_t>(Opcode::kContinuation));
  EXPECT_TRUE(frames[2].fin);
  EXPECT_EQ(frames[2].payload, "ij");
}

TEST_F(WebSocketConnectionTest, AFragmentedMessageThatOverflowsSendsNoOrphanContinuations) {
  options_.fragment_bytes = 16;
  loop_.set_max_write_buffer_bytes(64);
  Echo& ws = Open();
  loop_.Post([&] {
    EXPECT_EQ(ws.SendMessage(Opcode::kText, std::string(200, 'f')), net::SendStatus::kOverflow);
  });
  RunOnce();
  const std::vector<Frame> frames = ParseFrames(Read());
  ASSERT_EQ(frames.size(), 1u);  // the unsent fragments were dropped: the Close alone
  EXPECT_EQ(frames[0].opcode, static_cast<uint8_t>(Opcode::kClose));
  EXPECT_EQ(frames[0].close_code(), 1008);
}

TEST_F(WebSocketConnectionTest, AReaderThatDoesNotReadIsClosedAtTheWriteBufferBound) {
  // A small socket buffer, so that the peer's not reading shows in the server's queue.
  const int small = 4096;
  ASSERT_EQ(setsockopt(server_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  loop_.set_max_write_buffer_bytes(64 * 1024);
  Echo& ws = Open();
  const std::string message(16 * 1024, 'm');
  net::SendStatus status = net::SendStatus::kQueued;
  int rounds = 0;
  for (; rounds < 100 && status == net::SendStatus::kQueued; ++rounds) {
    loop_.Post([&] { status = ws.SendMessage(Opcode::kText, message); });
    RunOnce();
  }
  EXPECT_EQ(status, net::SendStatus::kOverflow);
  EXPECT_GT(rounds, 1);
  EXPECT_EQ(stats_.close_codes[1008], 1u);  // a slow consumer: policy violation
  // What the peer finally reads ends with the Close, after whole frames only.
  std::string bytes;
  bool eof = false;
  for (int i = 0; i < 1000 && !eof; ++i) {
    bytes += Read(&eof);
    RunOnce();
  }
  EXPECT_TRUE(eof);
  const std::vector<Frame> frames = ParseFrames(bytes);
  ASSERT_GE(frames.size(), 2u);
  for (size_t i = 0; i + 1 < frames.size(); ++i) EXPECT_EQ(frames[i].payload, message);
  EXPECT_EQ(frames.back().opcode, static_cast<uint8_t>(Opcode::kClose));
  EXPECT_EQ(frames.back().close_code(), 1008);
}

}  // namespace
}  // namespace hermod::ws
