// Everything one run measures, as a plain struct that each client loop fills on its own
// thread and that the runner merges (across loops, then across worker processes) at the end.
// Nothing here is shared while a run is under way, so nothing here is atomic.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "histogram.h"

namespace hermod::bench {

// Delivery latencies of one second, coarse: four buckets per power of two (a bucket spans at
// most a quarter of its lower bound) from 1 us to 18 min, clamped at both ends. Enough for the
// report's p50/p99-over-time chart at 480 bytes a second; the run's own histogram stays exact.
struct CoarseLatency {
  static constexpr int kPerOctave = 4;
  static constexpr int kLowOctave = 10;  // 2^10 ns, about 1 us
  static constexpr size_t kBuckets = 30 * kPerOctave;
  std::array<uint32_t, kBuckets> counts{};

  void Record(uint64_t ns);
  void Merge(const CoarseLatency& other);
  uint64_t count() const;
  // The upper bound of the bucket holding the q-th value, in ns; 0 when empty.
  uint64_t ValueAt(double q) const;
  static uint64_t UpperBound(size_t index);
};

// One second of the measured phase, by receive (or send) time relative to its start.
struct Second {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t errors = 0;
  uint64_t connects = 0;
  CoarseLatency latency;  // of the deliveries that arrived in this second
};

// One sample of the server process, taken by the runner once a second (soak).
struct ServerSample {
  double t = 0;         // seconds since the measured phase started
  uint64_t rss_kb = 0;  // VmRSS
  double cpu_pct = 0;   // user+system over the last interval, 100 = one core
};

struct RunStats {
  Histogram latency;          // publish -> delivery, ns
  Histogram connect_latency;  // connect() -> protocol ready (handshake + subscribe), ns
  uint64_t sent = 0;          // publications sent in the measured phase
  uint64_t delivered = 0;     // publications received by subscribers
  // Deliveries the publishers asked for, when receivers differ per publication (stand: 1 for
  // a personal channel, the group's members for a group); 0 otherwise.
  uint64_t expected = 0;
  uint64_t bytes_in = 0;   // WebSocket data payload bytes received (inflated)
  uint64_t bytes_out = 0;  // WebSocket data payload bytes sent (before deflate)
  uint64_t lost = 0;       // sequence gaps
  // Of lost, the gaps the server announced (an unsubscribe push or a disconnect seen before
  // the gap) and the others: a silent loss is a subscriber shown holes as a clean stream.
  uint64_t lost_told = 0;
  uint64_t lost_silently = 0;
  uint64_t subscribers_lost = 0;           // subscribers with any gap
  uint64_t subscribers_lost_silently = 0;  // subscribers with a gap nobody announced
  uint64_t subscribers_told = 0;           // subscribers that saw an unsubscribe or disconnect
  uint64_t duplicates = 0;                 // sequence repeats
  uint64_t unstamped = 0;                  // data messages without a stamp (not measured)
  // Loops that learned of the measure phase from a delivery, before they read it themselves
  // (ClientLoop::Deliver): deliveries an older bench dropped, showing the next as a gap.
  uint64_t early_starts = 0;
  uint64_t connects_ok = 0;                // connections that became ready
  uint64_t connects_failed = 0;            // connect, handshake or subscribe failures
  uint64_t disconnects = 0;                // ready connections lost before the end
  uint64_t last_delivery_ns = 0;           // when the last counted delivery arrived (NowNs)
  std::map<std::string, uint64_t> errors;  // reason -> count
  std::vector<Second> timeline;
  std::vector<ServerSample> server;

  Second& At(uint64_t second);
  void AddError(const std::string& reason, uint64_t n = 1) { errors[reason] += n; }
  uint64_t error_count() const;
  void Merge(const RunStats& other);
};

}  // namespace hermod::bench
