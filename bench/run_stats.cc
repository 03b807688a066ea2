#include "run_stats.h"

#include <algorithm>

namespace hermod::bench {

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
  }
  if (server.empty()) server = other.server;
}

}  // namespace hermod::bench
