// Rendering the per-loop counters (stats/loop_metrics.h) as Prometheus text and dashboard JSON.
#include <gtest/gtest.h>

#include <string>

#include "metrics/dashboard.h"
#include "metrics/hub_state.h"
#include "metrics/prometheus_text.h"

namespace hermod::metrics {
namespace {

// Labels as a room would hand them over; only their order matters here.
constexpr std::string_view kCommands[] = {"pong", "connect"};
constexpr std::string_view kApi[] = {"publish", "unknown"};
constexpr MethodLabels kMethods{kCommands, kApi};

TEST(RenderMetrics, HistogramsAreCumulativeWithSumCountAndInf) {
  std::vector<LoopSnapshot> loops(2);
  for (int i = 0; i < 2; ++i) {
    loops[i].loop = i;
    loops[i].answered = true;
    loops[i].metrics.command_latency[1].Record(40);  // connect, 40 us, on both loops
  }
  loops[1].metrics.command_latency[1].Record(2000);
  std::string text =
      RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"}, kMethods);
  EXPECT_NE(text.find("# TYPE hermod_client_command_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_client_command_duration_seconds_bucket{method=\"connect\","
                      "le=\"5e-05\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hermod_client_command_duration_seconds_bucket{method=\"connect\","
                      "le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_client_command_duration_seconds_count{method=\"connect\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_client_command_duration_seconds_sum{method=\"connect\"} 0.00208\n"),
            std::string::npos);
}

TEST(RenderMetrics, WriteOverflowsCountAsOverflowDropsAndSlowConsumers) {
  std::vector<LoopSnapshot> loops(1);
  loops[0].answered = true;
  loops[0].net.write_overflow = 2;
  loops[0].net.slow_consumer_disconnects[stats::SlowReason::kOverflow] = 2;
  loops[0].net.slow_consumer_disconnects[stats::SlowReason::kDeadline] = 1;
  std::string text =
      RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"}, kMethods);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"overflow\",priority=\"normal\"} "
                      "2\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"overflow\",priority=\"high\"} "
                      "0\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"expired\",priority=\"normal\"} "
                      "0\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_slow_consumer_disconnects_total 3\n"), std::string::npos);
}

TEST(RenderMetrics, LatestValueReplacementsAreNotShed) {
  std::vector<LoopSnapshot> loops(1);
  loops[0].answered = true;
  // net counts by its own priority order: 0 critical, 1 high, 2 normal, 3 low.
  loops[0].net.send_dropped[stats::DropReason::kReplaced][1] = 4;
  loops[0].net.send_dropped[stats::DropReason::kWatermark][2] = 7;
  loops[0].net.send_dropped[stats::DropReason::kCut][0] = 2;
  loops[0].net.send_dropped[stats::DropReason::kTold][2] = 3;
  loops[0].net.slow_consumer_disconnects[stats::SlowReason::kMissed] = 1;
  std::string text =
      RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"}, kMethods);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"replaced\",priority=\"high\"} "
                      "4\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"shed\",priority=\"high\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"shed\",priority=\"normal\"} "
                      "7\n"),
            std::string::npos);  // Pushes lost with a cut slow consumer: their own reason, so an
                                 // urgent loss is seen.
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"cut\",priority=\"critical\"} "
                      "2\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"shed\",priority=\"critical\"} "
                      "0\n"),
            std::string::npos);
  // Told: not queued, the subscriber told at once: never counted as shed, which
  // keeps only the silent drops of channels that accept losses.
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"told\",priority=\"normal\"} "
                      "3\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_slow_consumer_disconnects_total 1\n"), std::string::npos);
}

TEST(Dashboard, BasicPasswordMatchesOnlyTheExactPassword) {
  // "admin:s3cret", "admin:s3cre", ":s3cret", "admin:s3cretx", "s3cret" (no colon)
  EXPECT_TRUE(BasicPasswordMatches("Basic YWRtaW46czNjcmV0", "s3cret"));
  EXPECT_TRUE(BasicPasswordMatches("basic OnMzY3JldA==", "s3cret"));
  EXPECT_FALSE(BasicPasswordMatches("Basic YWRtaW46czNjcmU=", "s3cret"));
  EXPECT_FALSE(BasicPasswordMatches("Basic YWRtaW46czNjcmV0eA==", "s3cret"));
  EXPECT_FALSE(BasicPasswordMatches("Basic czNjcmV0", "s3cret"));
  EXPECT_FALSE(BasicPasswordMatches("Bearer YWRtaW46czNjcmV0", "s3cret"));
  EXPECT_FALSE(BasicPasswordMatches("Basic !!!!", "s3cret"));
  EXPECT_FALSE(BasicPasswordMatches("Basic YWRtaW46", ""));  // no password set: never
  EXPECT_FALSE(BasicPasswordMatches("", "s3cret"));
}

TEST(Dashboard, DataNamesLoopsChannelsAndEmbedsTheHealthJson) {
  std::vector<LoopSnapshot> loops(1);
  loops[0].answered = true;
  loops[0].connections = 3;
  std::vector<stats::HubState> state(2);
  state[0].channels = 5;
  state[1].channels = 6;
  state[1].history_bytes = 70;
  std::string json =
      DashboardJson(loops, "{\"level\":\"healthy\"}\n", {{"a\"b", 7}}, HubStateJson(state),
                    {"{\"id\":\"n1\"}", "{\"id\":\"n2\"}"}, 123);
  EXPECT_NE(json.find("\"at_ms\":123"), std::string::npos);
  EXPECT_NE(json.find("\"connections\":3"), std::string::npos);
  EXPECT_NE(json.find("{\"channel\":\"a\\\"b\",\"subscribers\":7}"), std::string::npos);
  EXPECT_NE(json.find("\"health\":{\"level\":\"healthy\"}}\n"), std::string::npos);
  // The hub's state: the sum, then each loop.
  EXPECT_NE(json.find("\"state\":{\"total\":{\"channels\":11,"), std::string::npos);
  EXPECT_NE(json.find("\"history_bytes\":70,"), std::string::npos);
  EXPECT_NE(json.find("\"loops\":[{\"channels\":5,"), std::string::npos);
  // Every node of the cluster, this one first.
  EXPECT_NE(json.find("\"nodes\":[{\"id\":\"n1\"},{\"id\":\"n2\"}]"), std::string::npos);
  EXPECT_FALSE(kDashboardHtml.empty());
  EXPECT_NE(kDashboardHtml.find("/dashboard/data"), std::string_view::npos);
}

TEST(Dashboard, HistoryKeepsTheLastTenMinutesOldestFirst) {
  SampleRing ring;
  EXPECT_TRUE(ring.Since(0).empty());
  EXPECT_TRUE(ring.Last2().empty());
  const size_t total = SampleRing::kCapacity + 50;
  for (size_t i = 1; i <= total; ++i) {
    Sample s;
    s.at_ms = 1000 * i;
    s.messages_out = 100000 * i;
    ring.Add(s);
  }
  std::vector<Sample> all = ring.Since(0);
  ASSERT_EQ(all.size(), SampleRing::kCapacity);
  EXPECT_EQ(all.front().at_ms, 1000 * (total - SampleRing::kCapacity + 1));
  EXPECT_EQ(all.back().at_ms, 1000 * total);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const Sample& a, const Sample& b) { return a.at_ms < b.at_ms; }));
  // A page that has everything up to a time gets only what came after it.
  std::vector<Sample> newer = ring.Since(1000 * (total - 2));
  ASSERT_EQ(newer.size(), 2u);
  EXPECT_EQ(newer[0].at_ms, 1000 * (total - 1));
  std::vector<Sample> last = ring.Last2();
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[1].at_ms, 1000 * total);
  const std::string json = SamplesJson(newer);
  EXPECT_NE(json.find("\"at_ms\":[" + std::to_string(1000 * (total - 1)) + "," +
                      std::to_string(1000 * total) + "]"),
            std::string::npos);
  EXPECT_NE(json.find("\"messages_out\":[" + std::to_string(100000 * (total - 1)) + ","),
            std::string::npos);
}

}  // namespace
}  // namespace hermod::metrics
