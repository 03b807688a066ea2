#include "proc_sampler.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "clock.h"

namespace hermod::bench {

ProcSampler::ProcSampler(int pid) : pid_(pid), ticks_per_s_(sysconf(_SC_CLK_TCK)) {}

bool ProcSampler::ReadTicks(uint64_t& ticks) const {
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after the last ')'.
  size_t paren = all.rfind(')');
  if (!stat || paren == std::string::npos) return false;
  std::istringstream fields(all.substr(paren + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // fields 3..13
  uint64_t utime = 0, stime = 0;
  fields >> utime >> stime;
  ticks = utime + stime;
  return true;
}

double ProcSampler::CpuSeconds() const {
  uint64_t ticks = 0;
  if (!ReadTicks(ticks)) return -1;
  return static_cast<double>(ticks) / static_cast<double>(ticks_per_s_);
}

bool ProcSampler::Sample(double t, ServerSample& out) {
  std::string base = "/proc/" + std::to_string(pid_);
  std::ifstream status(base + "/status");
  if (!status) return false;
  out.t = t;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) out.rss_kb = std::stoull(line.substr(6));
  }
  uint64_t ticks = 0;
  if (!ReadTicks(ticks)) return false;
  uint64_t now = NowNs();
  if (last_ns_ != 0 && now > last_ns_) {
    double cpu_s = static_cast<double>(ticks - last_ticks_) / static_cast<double>(ticks_per_s_);
    out.cpu_pct = 100.0 * cpu_s / (static_cast<double>(now - last_ns_) / 1e9);
  }
  last_ticks_ = ticks;
  last_ns_ = now;
  return true;
}

}  // namespace hermod::bench
