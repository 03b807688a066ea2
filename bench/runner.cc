#include "runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "client_loop.h"
#include "clock.h"
#include "interrupt.h"
#include "loop_control.h"
#include "proc_sampler.h"

namespace hermod::bench {

namespace {

constexpr auto kTick = std::chrono::milliseconds(50);

struct Totals {
  uint64_t ready = 0, failed = 0, open = 0, sent = 0, delivered = 0, accounted = 0, errors = 0,
           connects = 0, publishers_done = 0, refused = 0, lost_silently = 0, max_latency_ns = 0;
};

Totals Sum(const std::vector<std::unique_ptr<LoopProgress>>& progress) {
  Totals t;
  for (const auto& p : progress) {
    t.refused += p->refused.load(std::memory_order_relaxed);
    t.ready += p->ready.load(std::memory_order_relaxed);
    t.failed += p->failed.load(std::memory_order_relaxed);
    t.open += p->open.load(std::memory_order_relaxed);
    t.sent += p->sent.load(std::memory_order_relaxed);
    t.delivered += p->delivered.load(std::memory_order_relaxed);
    t.accounted += p->accounted.load(std::memory_order_relaxed);
    t.lost_silently += p->lost_silently.load(std::memory_order_relaxed);
    t.errors += p->errors.load(std::memory_order_relaxed);
    t.connects += p->connects.load(std::memory_order_relaxed);
    t.publishers_done += p->publishers_done.load(std::memory_order_relaxed);
    t.max_latency_ns =
        std::max(t.max_latency_ns, p->max_latency_ns.load(std::memory_order_relaxed));
  }
  return t;
}

// The live line on a terminal: rewritten in place, at most four times a second.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}
  ~ProgressLine() {
    if (enabled_ && printed_) std::fputs("\r\33[K", stderr);
  }
  void Setup(const Totals& t, uint64_t total, double s) {
    if (!Due()) return;
    std::fprintf(stderr, "\r\33[K[setup %5.1fs] ready %llu/%llu  failed %llu  open %llu", s,
                 static_cast<unsigned long long>(t.ready), static_cast<unsigned long long>(total),
                 static_cast<unsigned long long>(t.failed),
                 static_cast<unsigned long long>(t.open));
  }
  void Measure(const char* phase, const Totals& t, double s, const ServerSample* server) {
    if (!Due()) return;
    double dt = s - last_s_;
    double sent_rate = dt > 0 ? static_cast<double>(t.sent - last_.sent) / dt : 0;
    double recv_rate = dt > 0 ? static_cast<double>(t.delivered - last_.delivered) / dt : 0;
    double conn_rate = dt > 0 ? static_cast<double>(t.connects - last_.connects) / dt : 0;
    std::fprintf(stderr,
                 "\r\33[K[%s %5.1fs] sent %llu (%.0f/s)  delivered %llu (%.0f/s)  connects %.0f/s"
                 "  errors %llu  open %llu  lost silently %llu",
                 phase, s, static_cast<unsigned long long>(t.sent), sent_rate,
                 static_cast<unsigned long long>(t.delivered), recv_rate, conn_rate,
                 static_cast<unsigned long long>(t.errors), static_cast<unsigned long long>(t.open),
                 static_cast<unsigned long long>(t.lost_silently));
    if (server) {
      std::fprintf(stderr, "  server %.0f MiB %.0f%% cpu",
                   static_cast<double>(server->rss_kb) / 1024.0, server->cpu_pct);
    }
    last_ = t;
    last_s_ = s;
  }

 private:
  bool Due() {
    if (!enabled_) return false;
    uint64_t now = NowNs();
    if (now - last_print_ns_ < 250'000'000) return false;
    last_print_ns_ = now;
    printed_ = true;
    return true;
  }
  bool enabled_;
  bool printed_ = false;
  uint64_t last_print_ns_ = 0;
  Totals last_;
  double last_s_ = 0;
};

double Seconds(uint64_t from, uint64_t to) {
  return to > from ? static_cast<double>(to - from) / 1e9 : 0.0;
}

}  // namespace

RunResult RunLocal(const RunConfig& config, uint32_t begin, uint32_t end,
                   const SetupBarrier& barrier) {
  RunResult result;
  const uint32_t count = end - begin;
  const uint32_t threads = std::max<uint32_t>(1, std::min<uint32_t>(config.threads, count));
  const Scenario scenario = Effective(config);

  std::vector<std::vector<uint32_t>> indices(threads);
  uint64_t local_publishers = 0;
  for (uint32_t i = begin; i < end; ++i) {
    indices[(i - begin) % threads].push_back(i);
    if (PlanFor(config, i).publish >= 0) ++local_publishers;
  }
  LoopControl control;
  std::vector<std::unique_ptr<LoopProgress>> progress;
  std::vector<std::unique_ptr<ClientLoop>> loops;
  for (uint32_t t = 0; t < threads; ++t) {
    progress.push_back(std::make_unique<LoopProgress>());
    loops.push_back(std::make_unique<ClientLoop>(config, std::move(indices[t]), control,
                                                 *progress[t],
                                                 0x9e3779b97f4a7c15ull * (begin + t + 1)));
  }
  std::vector<std::thread> workers;
  for (auto& loop : loops) workers.emplace_back([&l = *loop] { l.Run(); });

  ProgressLine line(config.progress);
  // Setup: every connection ready or failed (the connect scenario opens none up front).
  uint64_t setup_start = NowNs();
  uint64_t setup_limit =
      setup_start + static_cast<uint64_t>(config.setup_timeout_s * 1e9) + 1'000'000'000ull;
  const uint32_t setup_count = SetupConnections(config, begin, end);
  if (setup_count > 0) {
    while (true) {
      Totals t = Sum(progress);
      line.Setup(t, setup_count, Seconds(setup_start, NowNs()));
      if (t.ready + t.failed >= setup_count || NowNs() > setup_limit) break;
      if (WaitForInterrupt(kTick)) break;
    }
  }
  Totals after_setup = Sum(progress);
  uint64_t start = barrier ? barrier(after_setup.ready, after_setup.failed) : 0;
  if (start == 0) start = NowNs();
  // Known before the sleep: a loop that hears of the phase from a delivery (ClientLoop::
  // Deliver) counts its seconds from the common start.
  control.measure_start_ns.store(start, std::memory_order_release);
  while (NowNs() < start) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  control.phase.store(Phase::kMeasure, std::memory_order_release);
  if (config.phases && !barrier) {
    std::fputs("hermod-bench: measure start\n", stderr);
    std::fflush(stderr);
  }

  // Measure: until the duration ends or every local publisher sent its message count.
  std::unique_ptr<ProcSampler> sampler;
  if (config.server_pid > 0) sampler = std::make_unique<ProcSampler>(config.server_pid);
  const double cpu_at_start = sampler ? sampler->CpuSeconds() : -1;
  uint64_t next_sample = start;
  uint64_t duration_ns = static_cast<uint64_t>(config.duration_s * 1e9);
  ServerSample last_sample;
  bool have_sample = false;
  uint64_t measure_end = start;
  bool refused = false;  // a publish refused: no drain, the run ends with the server's error
  while (true) {
    uint64_t now = NowNs();
    if (sampler && now >= next_sample) {
      ServerSample s;
      if (sampler->Sample(Seconds(start, now), s)) {
        result.stats.server.push_back(s);
        last_sample = s;
        have_sample = true;
      }
      next_sample += 1'000'000'000ull;
    }
    Totals t = Sum(progress);
    line.Measure("measure", t, Seconds(start, now), have_sample ? &last_sample : nullptr);
    bool counted_out = config.messages > 0 && local_publishers > 0 &&
                       t.publishers_done >= local_publishers && scenario != Scenario::kConnect;
    if (now - start >= duration_ns || counted_out || Interrupted() || t.refused > 0) {
      measure_end = now;
      result.interrupted = Interrupted();
      refused = t.refused > 0;
      break;
    }
    WaitForInterrupt(kTick);
  }
  result.measured_s = Seconds(start, measure_end);

  // Drain: what is in flight arrives, or stops arriving.
  control.phase.store(Phase::kDrain, std::memory_order_release);
  // Every loop sees the phase within one iteration (at most 10 ms of epoll wait); after that
  // the sent count is final.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  uint64_t drain_limit = NowNs() + static_cast<uint64_t>(config.drain_s * 1e9);
  uint64_t expected_here = 0;  // known only when every subscriber is in this process
  if (!barrier && scenario != Scenario::kConnect) {
    expected_here = Sum(progress).sent * ReceiversPerPublication(config);
  }
  uint64_t last_delivered = Sum(progress).delivered;
  uint64_t quiet_since = NowNs();
  while (NowNs() < drain_limit && scenario != Scenario::kConnect && !refused) {
    Totals t = Sum(progress);
    line.Measure("drain", t, Seconds(start, NowNs()), have_sample ? &last_sample : nullptr);
    if (expected_here > 0 && t.accounted >= expected_here) break;
    // Quiet for twice the slowest delivery seen (at least 500 ms): on an overloaded server
    // the last deliveries trail by about that, and ending sooner would call them undelivered.
    const uint64_t quiet_ns = std::max<uint64_t>(500'000'000ull, 2 * t.max_latency_ns);
    if (t.delivered != last_delivered) {
      last_delivered = t.delivered;
      quiet_since = NowNs();
    } else if (NowNs() - quiet_since > quiet_ns) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  if (sampler && cpu_at_start >= 0) {
    const double cpu_now = sampler->CpuSeconds();
    if (cpu_now >= cpu_at_start) result.server_cpu_s = cpu_now - cpu_at_start;
  }
  control.phase.store(Phase::kStop, std::memory_order_release);
  for (auto& w : workers) w.join();
  for (auto& loop : loops) result.stats.Merge(loop->stats());
  if (result.stats.last_delivery_ns > start) {
    result.delivery_s = Seconds(start, result.stats.last_delivery_ns);
  }
  return result;
}

}  // namespace hermod::bench
