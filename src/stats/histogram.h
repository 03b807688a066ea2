// Histograms with fixed buckets (Prometheus `le` bounds known at compile time): recording is a
// short linear scan and an increment, a scrape copies the arrays through the loop's mailbox
// and the merge adds them up. Plain integers: a histogram belongs to one loop's thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace hermod::stats {

// Bucket upper bounds, in the unit the histogram records; Prometheus' +Inf is implicit.
// Latencies are recorded in microseconds and exposed in seconds.
inline constexpr std::array<uint64_t, 15> kLatencyBoundsUs = {
    50,    100,   250,    500,    1000,   2500,    5000,   10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 5000000};
// Connection durations, recorded in milliseconds, exposed in seconds.
inline constexpr std::array<uint64_t, 11> kDurationBoundsMs = {
    100, 1000, 10000, 60000, 300000, 900000, 3600000, 10800000, 43200000, 86400000, 604800000};
// Subscribers reached by one push on one loop.
inline constexpr std::array<uint64_t, 12> kFanoutBounds = {1,   2,    5,    10,    50,    100,
                                                           500, 1000, 5000, 10000, 50000, 100000};

template <const auto& Bounds>
struct Histogram {
  static constexpr size_t N = Bounds.size();
  static constexpr const auto& bounds = Bounds;
  std::array<uint64_t, N + 1> counts{};  // not cumulative; the last is +Inf
  uint64_t sum = 0;                      // in the recorded unit

  void Record(uint64_t value) {
    size_t i = 0;
    while (i < N && value > Bounds[i]) ++i;
    ++counts[i];
    sum += value;
  }
  void RecordN(uint64_t value, uint64_t n) {
    size_t i = 0;
    while (i < N && value > Bounds[i]) ++i;
    counts[i] += n;
    sum += value * n;
  }
  void Add(const Histogram& other) {
    for (size_t i = 0; i <= N; ++i) counts[i] += other.counts[i];
    sum += other.sum;
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) n += c;
    return n;
  }
};
using LatencyHistogram = Histogram<kLatencyBoundsUs>;
using DurationHistogram = Histogram<kDurationBoundsMs>;
using FanoutHistogram = Histogram<kFanoutBounds>;

}  // namespace hermod::stats
