#include "histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace hermod::bench {
namespace {

// The exact quantile of sorted values, with the histogram's rank rule (ceil(q * n)).
uint64_t Exact(const std::vector<uint64_t>& sorted, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void ExpectWithinResolution(const Histogram& h, std::vector<uint64_t> values) {
  std::sort(values.begin(), values.end());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    double exact = static_cast<double>(Exact(values, q));
    double got = static_cast<double>(h.ValueAt(q));
    // Bucket width is at most 1/128 of its lowest value; the midpoint is within half of that.
    EXPECT_LE(std::fabs(got - exact), exact / 128.0 + 1.0) << "q=" << q;
  }
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.count(), values.size());
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 0; v < 256; ++v) h.Record(v);
  EXPECT_EQ(h.ValueAt(0.5), 127u);
  EXPECT_EQ(h.ValueAt(1.0), 255u);
  EXPECT_EQ(h.ValueAt(0.0), 0u);
}

TEST(HistogramTest, BucketsTileTheRangeWithoutGaps) {
  for (size_t i = 0; i + 1 < Histogram::kBuckets; ++i) {
    ASSERT_EQ(Histogram::LowestIn(i) + Histogram::WidthOf(i), Histogram::LowestIn(i + 1)) << i;
    ASSERT_EQ(Histogram::IndexOf(Histogram::LowestIn(i)), i);
  }
  EXPECT_EQ(Histogram::IndexOf(UINT64_MAX), Histogram::kBuckets - 1);
}

TEST(HistogramTest, UniformDistributionPercentilesWithinOnePercent) {
  const uint32_t seed = 12345;
  std::printf("seed %u\n", seed);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint64_t> dist(1'000, 10'000'000);
  Histogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    uint64_t v = dist(rng);
    values.push_back(v);
    h.Record(v);
  }
  ExpectWithinResolution(h, values);
  EXPECT_NEAR(static_cast<double>(h.ValueAt(0.5)), 5'000'500.0, 5'000'500.0 * 0.01);
}

TEST(HistogramTest, ExponentialDistributionPercentilesWithinOnePercent) {
  const uint32_t seed = 777;
  std::printf("seed %u\n", seed);
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> dist(1.0 / 250'000.0);  // mean 250 us in ns
  Histogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    uint64_t v = static_cast<uint64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.Record(v);
  }
  ExpectWithinResolution(h, values);
  // Analytic p99 of the exponential: mean * ln(100).
  EXPECT_NEAR(static_cast<double>(h.ValueAt(0.99)), 250'000.0 * std::log(100.0),
              250'000.0 * std::log(100.0) * 0.03);
  EXPECT_NEAR(h.mean(), 250'000.0, 250'000.0 * 0.02);
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(42);
  Histogram a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    uint64_t v = rng() % 100'000'000;
    (i % 3 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.NonZero(), all.NonZero());
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double q : {0.5, 0.99, 0.999}) EXPECT_EQ(a.ValueAt(q), all.ValueAt(q));
}

TEST(HistogramTest, RestoreRoundTripsTheBuckets) {
  Histogram h;
  for (uint64_t v : {5u, 900u, 70'000u, 123'456'789u}) h.RecordN(v, 3);
  Histogram r;
  ASSERT_TRUE(r.Restore(h.NonZero(), h.min(), h.max(), h.sum()));
  EXPECT_EQ(r.NonZero(), h.NonZero());
  EXPECT_EQ(r.ValueAt(0.9), h.ValueAt(0.9));
  EXPECT_FALSE(r.Restore({{static_cast<uint32_t>(Histogram::kBuckets), 1}}, 0, 0, 0));
}

TEST(HistogramTest, EmptyHistogramReportsZero) {
  Histogram h;
  EXPECT_EQ(h.ValueAt(0.99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

}  // namespace
}  // namespace hermod::bench
