// What the kernel knows about this process, read from /proc on demand (each scrape, each
// health check): resident memory, CPU time, open and allowed file descriptors, start time.
// Nothing is cached; a read costs a few small file reads and one directory walk.
#pragma once

#include <chrono>
#include <cstdint>

namespace hermod::metrics {

struct ProcessStats {
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  double cpu_seconds = 0;         // user + system
  double start_time_seconds = 0;  // since the Unix epoch
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;  // the soft RLIMIT_NOFILE
  uint64_t threads = 0;
};

// Fields that cannot be read stay 0.
ProcessStats ReadProcessStats();

// Resident set size alone (one small read: /proc/self/statm).
uint64_t ReadResidentBytes();

// Wall-clock milliseconds since the Unix epoch, as the dashboard and /health report times.
inline uint64_t UnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace hermod::metrics
