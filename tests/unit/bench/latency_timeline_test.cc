// The per-second latency behind the report's latency-over-time chart: coarse buckets that
// bound each value within a quarter of an octave, merged exactly across loops and worker
// processes (through the worker result JSON), and the loss percentage the summary prints.
#include <gtest/gtest.h>

#include "report.h"
#include "run_stats.h"

namespace hermod::bench {
namespace {

TEST(CoarseLatency, QuantilesAreWithinAQuarterOctaveAbove) {
  CoarseLatency l;
  EXPECT_EQ(l.ValueAt(0.5), 0u);
  for (uint64_t us = 1; us <= 1000; ++us) l.Record(us * 1000);
  EXPECT_EQ(l.count(), 1000u);
  for (auto [q, exact] : {std::pair{0.5, 500'000.0}, {0.99, 990'000.0}, {0.01, 10'000.0}}) {
    const double v = static_cast<double>(l.ValueAt(q));
    EXPECT_GE(v, exact) << q;
    EXPECT_LE(v, exact * 1.25 + 1) << q;
  }
  // Below 1 us and past 18 minutes: clamped into the end buckets, never out of range.
  l.Record(0);
  l.Record(uint64_t{1} << 62);
  EXPECT_EQ(l.count(), 1002u);
  EXPECT_GE(l.ValueAt(1.0), uint64_t{1} << 39);
}

TEST(CoarseLatency, SurvivesTheWorkerResultJsonAndMerges) {
  RunResult a;
  for (int i = 0; i < 100; ++i) a.stats.At(2).latency.Record(3'000'000);  // 3 ms
  a.stats.latency.Record(3'000'000);
  a.stats.connect_latency.Record(1'000);
  RunResult back;
  std::string error;
  ASSERT_TRUE(ResultFromJson(ResultToJson(a), back, &error)) << error;
  ASSERT_EQ(back.stats.timeline.size(), 3u);
  EXPECT_EQ(back.stats.timeline[2].latency.counts, a.stats.timeline[2].latency.counts);
  back.stats.Merge(a.stats);
  EXPECT_EQ(back.stats.timeline[2].latency.count(), 200u);
  EXPECT_EQ(back.stats.timeline[0].latency.count(), 0u);
}

TEST(Summary, LossIsAPercentageOfExpectedDeliveries) {
  Summary m;
  EXPECT_EQ(Percent(LossFraction(m)), "0%");  // nothing expected
  m.expected = 1000;
  m.lost = 100;
  m.undelivered = 76;
  EXPECT_EQ(Percent(LossFraction(m)), "17.6%");
  m.lost = 0;
  m.undelivered = 0;
  EXPECT_EQ(Percent(LossFraction(m)), "0%");
  m.expected = 1'000'000;
  m.lost = 12;
  EXPECT_EQ(Percent(LossFraction(m)), "0.0012%");  // small, but not rounded to nothing
}

}  // namespace
}  // namespace hermod::bench
