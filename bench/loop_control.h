// What the runner and the client loops share while a run is under way: the phase (set by the
// runner, read by the loops) and a few counters the loops publish for the progress line and
// for the runner's phase decisions. Each loop writes only its own LoopProgress, with plain
// relaxed stores once per iteration, so the hot path takes no shared cache line.
#pragma once

#include <atomic>
#include <cstdint>

namespace hermod::bench {

enum class Phase : int {
  kSetup = 0,    // open connections (at the ramp rate), handshake, subscribe
  kMeasure = 1,  // publish and measure
  kDrain = 2,    // stop publishing; keep receiving what is in flight
  kStop = 3,     // close every connection and return
};

struct alignas(64) LoopProgress {
  std::atomic<uint64_t> ready{0};   // connections ready (setup done)
  std::atomic<uint64_t> failed{0};  // connections that failed setup
  std::atomic<uint64_t> open{0};    // connections open now
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> accounted{0};      // sequence numbers received or known lost
  std::atomic<uint64_t> lost_silently{0};  // gaps no unsubscribe or disconnect announced
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> connects{0};         // connect scenario: completed handshakes
  std::atomic<uint64_t> publishers_done{0};  // publishers that sent their message count
  std::atomic<uint64_t> refused{0};  // publishers the server refused (adapter.h): stop the run
  std::atomic<uint64_t> max_latency_ns{0};  // the slowest delivery so far (the drain's wait)
  std::atomic<bool> finished{false};        // the loop has closed everything and returned
};

struct LoopControl {
  std::atomic<Phase> phase{Phase::kSetup};
  std::atomic<uint64_t> measure_start_ns{0};
};

}  // namespace hermod::bench
