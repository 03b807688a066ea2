#include "run_stats.h"

#include <algorithm>
#include <cmath>

namespace hermod::bench {

void CoarseLatency::Record(uint64_t ns) {
  const int msb = ns == 0 ? 0 : 63 - __builtin_clzll(ns);
  size_t index = 0;
  if (msb >= kLowOctave) {
    // The two bits below the leading one pick the quarter of the octave.
    const uint64_t quarter = (ns >> (msb - 2)) & 3;
    index = std::min(kBuckets - 1, static_cast<size_t>(msb - kLowOctave) * kPerOctave + quarter);
  }
  ++counts[index];
}

void CoarseLatency::Merge(const CoarseLatency& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts[i] += other.counts[i];
}

uint64_t CoarseLatency::count() const {
  uint64_t n = 0;
  for (uint32_t c : counts) n += c;
  return n;
}

uint64_t CoarseLatency::UpperBound(size_t index) {
  const size_t octave = index / kPerOctave + kLowOctave;
  const uint64_t quarter = index % kPerOctave;
  return (uint64_t{1} << octave) + ((quarter + 1) << (octave - 2));
}

uint64_t CoarseLatency::ValueAt(double q) const {
  const uint64_t n = count();
  if (n == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return UpperBound(i);
  }
  return UpperBound(kBuckets - 1);
}

Second& RunStats::At(uint64_t second) {
  // Bounded: a run longer than a day keeps adding to its last second.
  second = std::min<uint64_t>(second, 86400);
  if (timeline.size() <= second) timeline.resize(second + 1);
  return timeline[second];
}

uint64_t RunStats::error_count() const {
  uint64_t n = 0;
  for (const auto& [reason, count] : errors) n += count;
  return n;
}

void RunStats::Merge(const RunStats& other) {
  latency.Merge(other.latency);
  connect_latency.Merge(other.connect_latency);
  sent += other.sent;
  delivered += other.delivered;
  expected += other.expected;
  bytes_in += other.bytes_in;
  bytes_out += other.bytes_out;
  lost += other.lost;
  lost_told += other.lost_told;
  lost_silently += other.lost_silently;
  subscribers_lost += other.subscribers_lost;
  subscribers_lost_silently += other.subscribers_lost_silently;
  subscribers_told += other.subscribers_told;
  duplicates += other.duplicates;
  unstamped += other.unstamped;
  early_starts += other.early_starts;
  connects_ok += other.connects_ok;
  connects_failed += other.connects_failed;
  disconnects += other.disconnects;
  last_delivery_ns = std::max(last_delivery_ns, other.last_delivery_ns);
  for (const auto& [reason, count] : other.errors) errors[reason] += count;
  if (timeline.size() < other.timeline.size()) timeline.resize(other.timeline.size());
  for (size_t i = 0; i < other.timeline.size(); ++i) {
    Second& s = timeline[i];
    const Second& o = other.timeline[i];
    s.sent += o.sent;
    s.delivered += o.delivered;
    s.bytes_in += o.bytes_in;
    s.bytes_out += o.bytes_out;
    s.errors += o.errors;
    s.connects += o.connects;
    s.latency.Merge(o.latency);
  }
  if (server.empty()) server = other.server;
}

}  // namespace hermod::bench
