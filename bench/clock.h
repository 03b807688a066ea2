// The one clock of hermod-bench: CLOCK_MONOTONIC in nanoseconds. It is system-wide, so
// timestamps written into payloads by one process (or worker) can be compared with the
// receipt time in another process on the same machine.
#pragma once

#include <time.h>

#include <cstdint>

namespace hermod::bench {

inline uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace hermod::bench
