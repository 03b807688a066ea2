// Handing memory back to the kernel after a peak.
//
// glibc's malloc keeps what a peak freed: each loop thread allocates from an arena of its
// own, and an arena returns pages only from its top, so after 20,000 connections come and go
// the freed chunks stay mapped (measured: RSS 8 MiB at start, 28 MiB after the churn, with
// the connections gone). malloc_trim(0) walks every arena and gives free pages back with
// madvise; measured: 13 MiB after the same churn (docs/benchmarks.md). mimalloc did as well
// (14 MiB) as a new dependency; jemalloc's decay kept 22-28 MiB after 10 s (README, "Why
// these dependencies").
//
// When: each loop has a timer (memory_trim_interval); when it fires on a loop that was idle
// for most of the interval (busy under a quarter), and the gap between the process's RSS and
// the heap bytes in use (mallinfo2) has grown more than kSlackBytes since the last trim,
// that loop trims for the process. The gap is what a trim could give back (plus code and
// stacks, which the baseline taken after each trim cancels out): a steady server, or one
// whose memory is live, never trims over and over; one whose peak has gone trims once.
// Idleness keeps the trim (which locks each arena while it walks it, a millisecond or a
// few) off loops that are serving a burst. One trim at a time.
#pragma once

#include <atomic>
#include <cstdint>

#include "metrics/prometheus_text.h"
#include "net/event_loop.h"
#include "net/timer_wheel.h"

namespace hermod::app {

// Process-wide: what the loops' timers share.
class MemoryTrim {
 public:
  static constexpr uint64_t kSlackBytes = uint64_t{2} << 20;

  // The hermod_memory_trim* families.
  void Render(metrics::PrometheusText& text) const;

  // On a loop, from its timer: trims when the RSS-minus-live gap grew kSlackBytes past the
  // gap after the last trim.
  void MaybeTrim();

  // One loop's timer; interval_ms > 0.
  class Timer final : public net::TimerNode {
   public:
    Timer(MemoryTrim& trim, net::Loop& loop, uint64_t interval_ms)
        : trim_(trim), loop_(loop), interval_ms_(interval_ms) {}
    void Start();
    void OnTimer() override;

   private:
    MemoryTrim& trim_;
    net::Loop& loop_;
    const uint64_t interval_ms_;
    uint64_t busy_us_ = 0;  // the loop's counters at the last tick
    uint64_t wait_us_ = 0;
  };

 private:
  std::atomic<bool> trimming_{false};
  std::atomic<uint64_t> baseline_gap_{0};  // RSS minus heap in use after the last trim
  std::atomic<uint64_t> trims_{0};
  std::atomic<uint64_t> released_bytes_{0};  // RSS before minus after, summed
};

}  // namespace hermod::app
