#include "net/connection.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "net/event_loop.h"

namespace hermod::net {
namespace {

class Recorder final : public Connection {
 public:
  Recorder(Loop& loop, int fd, std::string* received, bool* closed)
      : Connection(loop, fd, nullptr), received_(received), closed_(closed) {}
  void OnData(uint8_t* data, size_t len) override {
    received_->append(reinterpret_cast<char*>(data), len);
    loop().Stop();
  }
  void OnClosed() override {
    *closed_ = true;
    loop().Stop();
  }

 private:
  std::string* received_;
  bool* closed_;
};

struct Pair {
  int server;
  int peer;
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    server = fds[0];
    peer = fds[1];
  }
  ~Pair() { close(peer); }
  std::string ReadPeer() {
    char buffer[65536];
    std::string out;
    ssize_t n;
    while ((n = read(peer, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
    return out;
  }
};

TEST(Connection, CorksEverySendOfAnIterationIntoOneWrite) {
  Loop loop(0, 4096);
  Pair pair;
  std::string received;
  bool closed = false;
  // The loop owns connections; it frees this one when closed or destroyed.
  auto* c = new Recorder(loop, pair.server, &received, &closed);
  loop.Post([&] {
    EXPECT_EQ(c->Send("one "), SendStatus::kQueued);
    EXPECT_EQ(c->Send("two "), SendStatus::kQueued);
    EXPECT_EQ(c->Send("three"), SendStatus::kQueued);
    EXPECT_EQ(c->queued_bytes(), 13u);  // nothing written yet: corked
    loop.Stop();
  });
  loop.Run();
  EXPECT_EQ(c->queued_bytes(), 0u);
  EXPECT_EQ(pair.ReadPeer(), "one two three");
  EXPECT_EQ(loop.stats().bytes_written, 13u);
}

TEST(Connection, DeliversReadsToOnData) {
  Loop loop(0, 4096);
  Pair pair;
  std::string received;
  bool closed = false;
  new Recorder(loop, pair.server, &received, &closed);
  ASSERT_EQ(write(pair.peer, "ping", 4), 4);
  loop.Run();
  EXPECT_EQ(received, "ping");
}

TEST(Connection, ClosesWhenTheWriteBufferLimitIsPassed) {
  Loop loop(0, 4096);
  loop.set_max_write_buffer_bytes(100);
  Pair pair;
  std::string received;
  bool closed = false;
  auto* c = new Recorder(loop, pair.server, &received, &closed);
  loop.Post([&] {
    EXPECT_EQ(c->Send(std::string(60, 'a')), SendStatus::kQueued);
    EXPECT_EQ(c->Send(std::string(60, 'b')), SendStatus::kOverflow);
    EXPECT_EQ(c->Send("more"), SendStatus::kDropped);
  });
  loop.Run();
  EXPECT_TRUE(closed);
  EXPECT_EQ(loop.stats().write_overflow, 1u);
  EXPECT_EQ(loop.connection_count(), 0u);
}

TEST(Connection, CloseAfterFlushSendsEverythingThenHalfCloses) {
  Loop loop(0, 4096);
  Pair pair;
  std::string received;
  bool closed = false;
  auto* c = new Recorder(loop, pair.server, &received, &closed);
  loop.Post([&] {
    c->Send("last words");
    c->CloseAfterFlush();
  });
  // The peer sees the bytes, then EOF (our half-close); its own close ends the linger.
  loop.Post([&] {});
  fcntl(pair.peer, F_SETFL, 0);  // the peer thread blocks in read
  std::thread peer([&] {
    std::string got;
    char buffer[64];
    for (;;) {
      ssize_t n = read(pair.peer, buffer, sizeof buffer);
      if (n > 0) {
        got.append(buffer, static_cast<size_t>(n));
      } else {
        break;
      }
    }
    EXPECT_EQ(got, "last words");
    shutdown(pair.peer, SHUT_WR);
  });
  loop.Run();
  peer.join();
  EXPECT_TRUE(closed);
}

TEST(Connection, PeerCloseClosesTheConnection) {
  Loop loop(0, 4096);
  Pair pair;
  std::string received;
  bool closed = false;
  new Recorder(loop, pair.server, &received, &closed);
  shutdown(pair.peer, SHUT_WR);
  loop.Run();
  EXPECT_TRUE(closed);
  EXPECT_EQ(loop.connection_count(), 0u);
}

}  // namespace
}  // namespace hermod::net
