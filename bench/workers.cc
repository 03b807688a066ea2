#include "workers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "clock.h"
#include "interrupt.h"
#include "proc_sampler.h"
#include "report.h"

namespace hermod::bench {

namespace {

bool WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool ReadAll(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

struct Worker {
  pid_t pid = -1;
  int to = -1;    // parent -> worker
  int from = -1;  // worker -> parent
  std::string output;
  bool ready = false;
  bool done = false;
};

// A SIGINT read by the parent reaches the workers too: a terminal's Ctrl-C already did (it
// signals the whole process group), a `kill -INT` of the parent did not. A second one is
// harmless: the workers' interrupt is latched.
void ForwardInterrupt(std::vector<Worker>& workers, bool& forwarded) {
  if (forwarded || !Interrupted()) return;
  forwarded = true;
  for (Worker& w : workers) {
    if (!w.done) kill(w.pid, SIGINT);
  }
}

[[noreturn]] void WorkerMain(RunConfig config, uint32_t begin, uint32_t end, int in, int out) {
  auto barrier = [&](uint64_t ready, uint64_t failed) -> uint64_t {
    uint64_t counts[2] = {ready, failed};
    uint64_t start = 0;
    if (!WriteAll(out, counts, sizeof(counts)) || !ReadAll(in, &start, sizeof(start))) _exit(3);
    return start;
  };
  RunResult result = RunLocal(config, begin, end, barrier);
  std::string json = ResultToJson(result);
  _exit(WriteAll(out, json.data(), json.size()) ? 0 : 4);
}

// Waits up to 250 ms on the pipes of the workers still pending (pending(w) true) and on the
// interrupt fd, passes a Ctrl-C on to the workers, and returns the workers with input.
template <class Pending>
std::vector<Worker*> PollWorkers(std::vector<Worker>& workers, Pending pending, bool& forwarded) {
  std::vector<pollfd> fds;
  std::vector<Worker*> owners;
  for (Worker& w : workers) {
    if (!pending(w)) continue;
    fds.push_back({w.from, POLLIN, 0});
    owners.push_back(&w);
  }
  if (InterruptFd() >= 0) fds.push_back({InterruptFd(), POLLIN, 0});
  poll(fds.data(), fds.size(), 250);
  ForwardInterrupt(workers, forwarded);
  std::vector<Worker*> readable;
  for (size_t i = 0; i < owners.size(); ++i) {
    if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) readable.push_back(owners[i]);
  }
  return readable;
}

}  // namespace

RunResult RunDistributed(const RunConfig& config) {
  const uint32_t total = TotalConnections(config);
  if (total <= config.per_process || config.per_process == 0) {
    return RunLocal(config, 0, total);
  }
  const uint32_t count = (total + config.per_process - 1) / config.per_process;
  if (count > 250) {
    std::fprintf(stderr, "hermod-bench: %u workers needed; at most 250 source addresses\n", count);
    std::exit(2);
  }
  const bool tty = config.progress && isatty(STDERR_FILENO);
  std::vector<Worker> workers(count);
  for (uint32_t w = 0; w < count; ++w) {
    uint32_t begin = static_cast<uint32_t>(uint64_t{total} * w / count);
    uint32_t end = static_cast<uint32_t>(uint64_t{total} * (w + 1) / count);
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) {
      std::perror("hermod-bench: pipe");
      std::exit(2);
    }
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("hermod-bench: fork");
      std::exit(2);
    }
    if (pid == 0) {
      for (uint32_t o = 0; o < w; ++o) {
        close(workers[o].to);
        close(workers[o].from);
      }
      close(down[1]);
      close(up[0]);
      RunConfig c = config;
      c.source = "127.0.0." + std::to_string(2 + w);
      c.server_pid = 0;
      c.progress = false;
      double share = static_cast<double>(end - begin) / total;
      c.ramp = config.ramp * share;
      c.connect_rate = config.connect_rate * share;
      if (Effective(config) == Scenario::kStand) {
        // The stand's churners are the last indices: the workers holding them churn.
        const uint32_t churners = StandChurners(config);
        const uint32_t first = total - churners;
        const uint32_t mine = end <= first ? 0 : end - std::max(begin, first);
        c.connect_rate = churners == 0 ? 0 : config.connect_rate * mine / churners;
      }
      WorkerMain(c, begin, end, down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    workers[w].pid = pid;
    workers[w].to = down[1];
    workers[w].from = up[0];
  }

  // Setup: wait for every worker's "ready" (16 bytes: one pipe write, readable at once).
  uint64_t ready = 0, failed = 0;
  bool forwarded = false;
  for (size_t waiting = workers.size(); waiting > 0;) {
    for (Worker* ready_worker : PollWorkers(
             workers, [](const Worker& w) { return !w.ready; }, forwarded)) {
      Worker& w = *ready_worker;
      w.ready = true;
      --waiting;
      uint64_t counts[2] = {0, 0};
      if (!ReadAll(w.from, counts, sizeof(counts))) {
        std::fprintf(stderr, "hermod-bench: worker %d died during setup\n", w.pid);
        continue;
      }
      ready += counts[0];
      failed += counts[1];
      if (tty) {
        std::fprintf(stderr, "\r\33[K[setup] workers ready: %llu connections, %llu failed",
                     static_cast<unsigned long long>(ready),
                     static_cast<unsigned long long>(failed));
      }
    }
  }
  uint64_t start = NowNs() + 20'000'000;  // all workers begin together, 20 ms from now
  for (Worker& w : workers) WriteAll(w.to, &start, sizeof(start));
  if (config.phases) {
    while (NowNs() < start) poll(nullptr, 0, 1);
    std::fputs("hermod-bench: measure start\n", stderr);
    std::fflush(stderr);
  }

  // Measure: sample the server while the workers run; collect their results.
  RunResult merged;
  ProcSampler sampler(config.server_pid);
  uint64_t next_sample = start;
  // Server CPU over the workers' measure and drain (from 20 ms before their start).
  const double cpu_at_start = config.server_pid > 0 ? sampler.CpuSeconds() : -1;
  size_t remaining = workers.size();
  char buf[65536];
  while (remaining > 0) {
    uint64_t now = NowNs();
    if (config.server_pid > 0 && now >= next_sample) {
      ServerSample s;
      if (sampler.Sample(static_cast<double>(now - start) / 1e9, s)) {
        merged.stats.server.push_back(s);
      }
      next_sample += 1'000'000'000ull;
    }
    if (tty) {
      std::fprintf(stderr, "\r\33[K[measure %5.1fs] %zu of %u workers running",
                   now > start ? static_cast<double>(now - start) / 1e9 : 0.0, remaining, count);
    }
    for (Worker* worker : PollWorkers(
             workers, [](const Worker& w) { return !w.done; }, forwarded)) {
      ssize_t n = read(worker->from, buf, sizeof(buf));
      if (n > 0) {
        worker->output.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        worker->done = true;
        --remaining;
      }
    }
  }
  if (tty) std::fputs("\r\33[K", stderr);
  if (cpu_at_start >= 0) {
    const double cpu_now = sampler.CpuSeconds();
    if (cpu_now >= cpu_at_start) merged.server_cpu_s = cpu_now - cpu_at_start;
  }
  for (Worker& w : workers) {
    close(w.to);
    close(w.from);
    int status = 0;
    waitpid(w.pid, &status, 0);
    RunResult part;
    std::string error;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !ResultFromJson(w.output, part, &error)) {
      merged.stats.AddError("worker failed: pid " + std::to_string(w.pid));
      continue;
    }
    merged.stats.Merge(part.stats);
    merged.measured_s = std::max(merged.measured_s, part.measured_s);
    merged.delivery_s = std::max(merged.delivery_s, part.delivery_s);
    merged.interrupted = merged.interrupted || part.interrupted;
  }
  return merged;
}

}  // namespace hermod::bench
