// Samples a process's resident memory and CPU use from /proc/<pid> (status: VmRSS; stat:
// utime + stime in clock ticks). CPU is the share of one core used since the previous sample.
#pragma once

#include <cstdint>

#include "run_stats.h"

namespace hermod::bench {

class ProcSampler {
 public:
  explicit ProcSampler(int pid);
  // False when the process is gone (or unreadable).
  bool Sample(double t, ServerSample& out);
  // The process's user + system CPU seconds so far; negative when it is gone.
  double CpuSeconds() const;

 private:
  bool ReadTicks(uint64_t& ticks) const;  // utime + stime

  int pid_;
  uint64_t last_ticks_ = 0;
  uint64_t last_ns_ = 0;
  long ticks_per_s_;
};

}  // namespace hermod::bench
