// The bench's loss and duplicate detection end to end: a real bench connection against a
// server that drops every tenth message and repeats every seventh.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace hermod::bench
