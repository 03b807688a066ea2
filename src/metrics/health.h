// Health levels (healthy, degraded, unhealthy, critical) from a few checks, each a figure
// against its budget: every loop answers a mailbox ping within a deadline; resident memory
// against its budget; open connections against their limit; error rates (protocol-error
// closes and slow-consumer closes per second over a sliding window) against theirs; and the
// checks other rooms add (AddCheck: the broker's circuit breaker and connection). The worst
// check is the level.
//
// Error rates: each ping also reads the loop's close counters (on the loop's thread, as a
// scrape does). The monitor keeps (time, totals) samples for error_window_ms and counts the
// closes since the oldest one, divided by the whole window: a burst of N closes reads as
// N / window for as long as it stays in the window, whatever the check interval, so a level
// reached is held long enough to be seen (and tests can drive it deterministically).
//
// The monitor runs on a thread of its own, not on a loop: a stuck loop must not stop the
// check that notices it. Each round it pings every loop and waits (it may; it is no loop) up
// to the deadline. The result sits behind one mutex that only the monitor and the /health
// routes take, never the data path. Every change of level is logged and kept, with its time
// and reason, in a short history.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.h"
#include "metrics/loop_snapshot.h"
#include "metrics/prometheus_text.h"
#include "net/event_loop.h"

namespace hermod::metrics {

enum class HealthLevel : uint8_t { kHealthy, kDegraded, kUnhealthy, kCritical };
std::string_view LevelName(HealthLevel level);

struct HealthCheck {
  std::string name;
  HealthLevel level = HealthLevel::kHealthy;
  double value = 0;  // the figure checked: loops answering, bytes, connections
  double limit = 0;  // its budget; 0 when the check is off
  std::string detail;
};

struct HealthTransition {
  uint64_t unix_ms = 0;
  HealthLevel from = HealthLevel::kHealthy;
  HealthLevel to = HealthLevel::kHealthy;
  std::string reason;
};

class HealthMonitor {
 public:
  HealthMonitor(const config::Config::Health& options, std::vector<net::Loop*> loops);
  // With counters, the error-rate checks run too.
  HealthMonitor(const config::Config::Health& options, std::vector<LoopCounters> loops);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Before Start: a check another room supplies (e.g. the broker's link), run each round on
  // the monitor's thread; it must not block.
  void AddCheck(std::function<HealthCheck()> check) { extra_checks_.push_back(std::move(check)); }

  // With the loops running: checks once (so the first answer is real), then every
  // check_interval_ms on the monitor's thread.
  void Start();
  void Stop();
  // Graceful shutdown began: readiness fails from now on.
  void SetDraining();

  // Any thread.
  std::string Json() const;
  bool Ready() const;
  HealthFigures Figures() const;

 private:
  void Run();
  void CheckOnce();
  HealthLevel Grade(double percent) const;

  const config::Config::Health options_;
  struct ErrorSample {
    uint64_t at_ms = 0;  // steady clock
    uint64_t protocol_errors = 0;
    uint64_t slow_consumers = 0;
  };
  HealthCheck RateCheck(std::string name, uint64_t count, uint64_t per_second_limit) const;

  const std::vector<LoopCounters> loops_;
  std::vector<std::function<HealthCheck()>> extra_checks_;
  // The monitor thread's own (no lock): each loop's last totals, and the window's samples.
  std::vector<ErrorSample> last_totals_;
  std::deque<ErrorSample> error_samples_;
  std::thread thread_;

  mutable std::mutex mutex_;  // guards everything below; taken by the monitor and /health*
  std::condition_variable wake_;
  bool stopping_ = false;
  bool draining_ = false;
  HealthLevel level_ = HealthLevel::kHealthy;
  uint64_t checked_unix_ms_ = 0;
  std::vector<HealthCheck> checks_;
  std::deque<HealthTransition> transitions_;  // newest last, at most history_size
  uint64_t transition_count_ = 0;
};

}  // namespace hermod::metrics
