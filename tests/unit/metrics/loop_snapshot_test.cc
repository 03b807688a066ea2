#include "metrics/loop_snapshot.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace hermod::metrics {
namespace {

// Gathers from loop 0 (running) over both loops; returns what done received.
std::vector<LoopSnapshot> GatherFrom(net::Loop& origin, const std::vector<LoopCounters>& loops,
                                     uint64_t deadline_ms) {
  std::promise<std::vector<LoopSnapshot>> result;
  origin.Post([&] {
    GatherSnapshots(origin, loops, deadline_ms,
                    [&](std::vector<LoopSnapshot> s) { result.set_value(std::move(s)); });
  });
  return result.get_future().get();
}

TEST(GatherSnapshots, CollectsEveryLoopsCountersOnTheAskingLoop) {
  net::Loop a(0, 4096), b(1, 4096);
  http::HttpStats http_a, http_b;
  ws::WebSocketStats ws_a, ws_b;
  http_a.requests = 3;
  ws_b.messages_in = 5;
  std::thread ta([&] { a.Run(); }), tb([&] { b.Run(); });
  auto snapshots = GatherFrom(a, {{&a, &http_a, &ws_a}, {&b, &http_b, &ws_b}}, 5000);
  a.Post([&] { a.Stop(); });
  b.Post([&] { b.Stop(); });
  ta.join();
  tb.join();
  ASSERT_EQ(snapshots.size(), 2u);
  EXPECT_TRUE(snapshots[0].answered);
  EXPECT_TRUE(snapshots[1].answered);
  EXPECT_EQ(snapshots[0].loop, 0);
  EXPECT_EQ(snapshots[1].loop, 1);
  EXPECT_EQ(snapshots[0].http.requests, 3u);
  EXPECT_EQ(snapshots[1].ws.messages_in, 5u);
}

TEST(GatherSnapshots, AnswersAtTheDeadlineWithoutALoopThatDoesNotRun) {
  net::Loop a(0, 4096), stuck(1, 4096);  // `stuck` never runs: its mailbox is never read
  http::HttpStats http;
  ws::WebSocketStats ws;
  std::thread ta([&] { a.Run(); });
  auto snapshots = GatherFrom(a, {{&a, &http, &ws}, {&stuck, &http, &ws}}, 50);
  a.Post([&] { a.Stop(); });
  ta.join();
  ASSERT_EQ(snapshots.size(), 2u);
  EXPECT_TRUE(snapshots[0].answered);
  EXPECT_FALSE(snapshots[1].answered);
  EXPECT_EQ(snapshots[1].loop, 1);
}

}  // namespace
}  // namespace hermod::metrics
