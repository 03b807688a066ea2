#include "metrics/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace hermod::metrics {

namespace {

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Seconds since the epoch at which the machine booted (/proc/stat "btime").
uint64_t BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("btime ")) return std::stoull(line.substr(6));
  }
  return 0;
}

}  // namespace

uint64_t ReadResidentBytes() {
  std::string statm = ReadSmallFile("/proc/self/statm");
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(statm.c_str(), "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

ProcessStats ReadProcessStats() {
  ProcessStats s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  // proc(5): the command name, field 2, is in parentheses and may hold spaces; the fields
  // after its closing parenthesis start at field 3 (state).
  std::string stat = ReadSmallFile("/proc/self/stat");
  size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    for (int index = 3; fields >> field; ++index) {
      if (index == 14) s.cpu_seconds += static_cast<double>(std::stoull(field)) / ticks;
      if (index == 15) s.cpu_seconds += static_cast<double>(std::stoull(field)) / ticks;
      if (index == 20) s.threads = std::stoull(field);
      if (index == 22) {
        s.start_time_seconds = static_cast<double>(BootTimeSeconds()) +
                               static_cast<double>(std::stoull(field)) / ticks;
      }
      if (index == 23) s.virtual_bytes = std::stoull(field);
      if (index == 24) {
        s.resident_bytes = std::stoull(field) * page;
        break;
      }
    }
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++s.open_fds;
    }
    closedir(dir);
    if (s.open_fds > 0) --s.open_fds;  // the directory's own fd
  }
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = limit.rlim_cur;
  return s;
}

}  // namespace hermod::metrics
