#include "stats/loop_metrics.h"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string_view>

#include "stats/reasons.h"

namespace hermod::stats {
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
  RecordApiCall(0, 10);
  RecordPresenceEvents(PresenceKind::kJoin, PresenceOutcome::kSent);
  EXPECT_EQ(Local(), nullptr);
}

TEST(Recording, ApiCallsAndCommandsLandInTheBoundLoopMetricsByIndex) {
  LoopMetrics m;
  BindThread(&m);
  RecordApiCall(8, 120);
  RecordApiCall(kMaxMethods, 5);  // past the capacity: ignored, never out of bounds
  const std::array<uint32_t, 3> counts = {0, 2, 1};
  RecordCommandMessage(counts, 40, 300);
  BindThread(nullptr);
  EXPECT_EQ(m.api_calls[8], 1u);
  EXPECT_EQ(m.api_latency[8].sum, 120u);
  EXPECT_EQ(m.commands[1], 2u);
  EXPECT_EQ(m.commands[2], 1u);
  EXPECT_EQ(m.command_latency[1].sum, 600u);
  EXPECT_EQ(m.command_messages_in, 1u);
  EXPECT_EQ(m.command_bytes_in, 40u);
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

TEST(Reasons, EveryRefusalHasANameUniqueWithinItsFamilyAndACode) {
  std::set<std::pair<RefusalFamily, std::string_view>> seen;
  for (const RefusalRow& row : kRefusals) {
    EXPECT_FALSE(row.name.empty());
    EXPECT_NE(row.code, 0);
    EXPECT_TRUE(seen.insert({row.family, row.name}).second) << row.name;
  }
  EXPECT_EQ(Row(Refusal::kUserLimit).code, 3504);
  EXPECT_EQ(Row(Refusal::kRateLimitDisconnect).code, 3013);
  EXPECT_EQ(Row(Refusal::kLimitedChannel).code, 111);
}

TEST(Reasons, GuardStatsCountByTypedReason) {
  GuardStats guard;
  guard.Count(Refusal::kIpRate);
  guard.Count(Refusal::kIpRate);
  guard.Count(Refusal::kLimitedTotal);
  EXPECT_EQ(guard.refused[Refusal::kIpRate], 2u);
  EXPECT_EQ(guard.refused[Refusal::kLimitedTotal], 1u);
  EXPECT_EQ(guard.refused[Refusal::kCapacity], 0u);
}

}  // namespace
}  // namespace hermod::stats
