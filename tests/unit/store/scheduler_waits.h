// How long this process's scheduler threads (named hermod-sched) have waited for a CPU: the
// timer tests bound a firing's lateness by their precision plus this wait, so a loaded
// machine does not fail them while a late timer still does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace hermod::test {

// Milliseconds the hermod-sched threads spent runnable but not running (schedstat's second
// field), summed; 0 where the kernel has no schedstat.
inline int64_t SchedulerCpuWaitMs() {
  uint64_t waited_ns = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (!std::getline(comm, name) || name != "hermod-sched") continue;
    std::ifstream stat(task.path() / "schedstat");
    uint64_t ran = 0, waited = 0;
    if (stat >> ran >> waited) waited_ns += waited;
  }
  return static_cast<int64_t>(waited_ns / 1'000'000);
}

}  // namespace hermod::test
