// The bench's loss and duplicate detection end to end: a real bench connection against a
// server that drops every tenth message and repeats every seventh, and subscribers that
// hear of the measure phase from a delivery before their own loop reads it.
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <thread>

#include "clock.h"
#include "runner.h"
#include "test_servers.h"

namespace hermod::bench {
namespace {

TEST(LossDetectionTest, CountsDroppedAndRepeatedMessagesFromALossyServer) {
  testing::LossyEchoServer server;
  RunConfig c;
  c.url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/";
  c.port = server.port();
  c.protocol = Protocol::kEcho;
  c.scenario = Scenario::kEcho;
  c.connections = 1;
  c.rate = 5000;  // paced, so a dropped message does not stall a closed loop
  c.messages = 100;
  c.duration_s = 10;
  c.drain_s = 2;
  c.setup_timeout_s = 5;
  c.progress = false;
  RunResult r = RunLocal(c, 0, 1);
  const RunStats& s = r.stats;
  EXPECT_EQ(s.connects_ok, 1u);
  EXPECT_EQ(s.sent, 100u);
  // Dropped: k % 10 == 3 for k < 100 -> 10. Repeated: k % 7 == 5 and not dropped -> 14 - 1
  // (33 is both).
  EXPECT_EQ(s.lost, 10u);
  EXPECT_EQ(s.duplicates, 13u);
  EXPECT_EQ(s.delivered, 103u);
  EXPECT_EQ(s.latency.count(), 103u);
  EXPECT_TRUE(s.errors.empty());
}

// This process's socket whose local port is `port` (the bench's connection, seen from the
// server as its peer's port), or -1.
int SocketWithLocalPort(uint16_t port) {
  for (int fd = 3; fd < 4096; ++fd) {
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && a.sin_family == AF_INET &&
        ntohs(a.sin_port) == port) {
      return fd;
    }
  }
  return -1;
}

// Workers start measuring at one time, but each sees it by itself: a publisher's worker can
// start while a subscriber's worker still waits, and its first publications reach the
// subscriber's loop before that loop reads the phase. They are deliveries of the run; were
// they dropped, the first counted one would show a gap nobody announced (a silent loss of
// the bench's own making). The subscriber's worker here stays in its barrier until its loop
// has read several publications.
TEST(LossDetectionTest, CountsDeliveriesThatArriveBeforeTheLoopSeesTheMeasurePhase) {
  testing::BroadcastServer server;
  RunConfig c;
  c.url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/";
  c.port = server.port();
  c.protocol = Protocol::kRaw;
  c.scenario = Scenario::kFanout;
  c.connections = 1;  // index 0 subscribes, index 1 publishes
  c.publishers = 1;
  c.rate = 500;
  c.messages = 20;
  c.duration_s = 1;  // the publisher's worker ends sooner, when its 20 are sent
  c.drain_s = 5;
  c.setup_timeout_s = 5;
  c.progress = false;

  const uint64_t start = NowNs();
  std::thread publisher;
  RunResult publisher_result;
  auto subscriber_barrier = [&](uint64_t ready, uint64_t) -> uint64_t {
    EXPECT_EQ(ready, 1u);
    publisher = std::thread(
        [&] { publisher_result = RunLocal(c, 1, 2, [&](uint64_t, uint64_t) { return start; }); });
    // Wait until three publications were relayed and this process's subscriber socket has
    // nothing left unread: its loop has read them while this worker is still in setup.
    const int fd = SocketWithLocalPort(server.client_port(0));
    EXPECT_GE(fd, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int unread = -1;
      if (server.relayed() >= 3 && ioctl(fd, FIONREAD, &unread) == 0 && unread == 0) break;
      std::this_thread::yield();
    }
    return start;
  };
  RunResult r = RunLocal(c, 0, 1, subscriber_barrier);
  publisher.join();

  EXPECT_EQ(publisher_result.stats.sent, 20u);
  const RunStats& s = r.stats;
  EXPECT_EQ(s.delivered, 20u);
  EXPECT_EQ(s.lost, 0u);
  EXPECT_EQ(s.lost_silently, 0u);
  EXPECT_EQ(s.duplicates, 0u);
  EXPECT_EQ(s.early_starts, 1u);  // the subscriber's one loop, started by a delivery
}

}  // namespace
}  // namespace hermod::bench
