#include "metrics/loop_metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "metrics/dashboard.h"
#include "metrics/hub_state.h"
#include "metrics/prometheus_text.h"

namespace hermod::metrics {
namespace {

TEST(Histogram, CountsIntoTheFirstBucketWhoseBoundIsNotBelowTheValue) {
  LatencyHistogram h;
  h.Record(0);
  h.Record(50);       // le 50: bounds are inclusive, as Prometheus' `le`
  h.Record(51);       // le 100
  h.Record(6000000);  // past the last bound: +Inf
  h.RecordN(1000, 3);
  EXPECT_EQ(h.counts[0], 2u);
  EXPECT_EQ(h.counts[1], 1u);
  EXPECT_EQ(h.counts[4], 3u);
  EXPECT_EQ(h.counts[kLatencyBoundsUs.size()], 1u);
  EXPECT_EQ(h.count(), 7u);
  EXPECT_EQ(h.sum, 0u + 50 + 51 + 6000000 + 3000);
}

TEST(Recording, WithoutABoundThreadNothingIsRecordedAndNothingBreaks) {
  BindThread(nullptr);
  RecordSendQueueDrop(DropReason::kShed, DropPriority::kLow);
  RecordSlowConsumerDisconnect();
  RecordApiCall("publish", 10);
  EXPECT_EQ(Local(), nullptr);
}

TEST(Recording, DropsAndApiCallsLandInTheBoundLoopMetrics) {
  LoopMetrics m;
  BindThread(&m);
  RecordSendQueueDrop(DropReason::kShed, DropPriority::kLow, 3);
  RecordSendQueueDrop(DropReason::kExpired, DropPriority::kCritical);
  RecordSlowConsumerDisconnect();
  RecordApiCall("history", 120);
  RecordApiCall("no_such_method", 5);
  BindThread(nullptr);
  EXPECT_EQ(m.queue_dropped[1][0], 3u);
  EXPECT_EQ(m.queue_dropped[2][3], 1u);
  EXPECT_EQ(m.slow_consumer_disconnects, 1u);
  const size_t history =
      std::find(kApiMethods.begin(), kApiMethods.end(), "history") - kApiMethods.begin();
  EXPECT_EQ(m.api_calls[history], 1u);
  EXPECT_EQ(m.api_calls[kApiMethods.size() - 1], 1u);  // "unknown"
  EXPECT_EQ(m.api_latency[history].sum, 120u);
}

TEST(Recording, ARunOfSendsOfOnePushIsOneFanOutTimedOnce) {
  LoopMetrics m;
  BindThread(&m);
  int clock_reads = 0;
  auto now = [&clock_reads] {
    ++clock_reads;
    return uint64_t{1500};
  };
  using Carried = std::array<uint16_t, kPushTypes.size()>;
  auto ten = [] { return size_t{10}; };
  auto publication = [] { return Carried{1, 0, 0, 0, 0}; };
  auto join = [] { return Carried{0, 1, 0, 0, 0}; };
  for (int i = 0; i < 5; ++i) RecordPushQueued(1, 1000, ten, publication, now);
  for (int i = 0; i < 2; ++i) RecordPushQueued(2, 0, ten, join, now);  // no publish time
  m.EndFanoutRun();
  BindThread(nullptr);
  EXPECT_EQ(clock_reads, 1);  // the join has no publish time
  EXPECT_EQ(m.publish_to_queue.count(), 1u);
  EXPECT_EQ(m.publish_to_queue.sum, 500u);
  EXPECT_EQ(m.fanout.count(), 2u);
  EXPECT_EQ(m.fanout.sum, 7u);
  EXPECT_EQ(m.pushes_out[0], 5u);
  EXPECT_EQ(m.pushes_out[1], 2u);
  EXPECT_EQ(m.messages_out[static_cast<size_t>(SentType::kPush)], 7u);
  EXPECT_EQ(m.bytes_out[static_cast<size_t>(SentType::kPush)], 70u);
}

TEST(RenderMetrics, HistogramsAreCumulativeWithSumCountAndInf) {
  std::vector<LoopSnapshot> loops(2);
  for (int i = 0; i < 2; ++i) {
    loops[i].loop = i;
    loops[i].answered = true;
    loops[i].metrics.command_latency[1].Record(40);  // connect, 40 us, on both loops
  }
  loops[1].metrics.command_latency[1].Record(2000);
  std::string text = RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"});
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
  loops[0].metrics.slow_consumer_disconnects = 1;
  loops[0].metrics.queue_dropped[0][2] = 5;  // overflow, high
  std::string text = RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"});
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"overflow\",priority=\"normal\"} "
                      "2\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_send_queue_dropped_total{reason=\"overflow\",priority=\"high\"} "
                      "5\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_slow_consumer_disconnects_total 3\n"), std::string::npos);
}

TEST(RenderMetrics, LatestValueReplacementsAreNotShed) {
  std::vector<LoopSnapshot> loops(1);
  loops[0].answered = true;
  // net counts by its own priority order: 0 critical, 1 high, 2 normal, 3 low.
  loops[0].net.send_dropped[net::LoopStats::kDropReplaced][1] = 4;
  loops[0].net.send_dropped[net::LoopStats::kDropWatermark][2] = 7;
  loops[0].net.send_dropped[net::LoopStats::kDropCut][0] = 2;
  loops[0].net.send_dropped[net::LoopStats::kDropTold][2] = 3;
  loops[0].net.slow_consumer_disconnects[net::LoopStats::kSlowMissed] = 1;
  std::string text = RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"});
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
  std::vector<core::Hub::StateStats> state(2);
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
