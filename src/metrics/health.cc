#include "metrics/health.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "metrics/process_stats.h"

namespace hermod::metrics {

namespace {

using config::AppendJsonString;

// One round of pings: each loop answers on its own thread; the monitor waits on cv.
struct PingRound {
  explicit PingRound(size_t n)
      : answered(n, false), connections(n, 0), protocol_errors(n, 0), slow_consumers(n, 0) {}
  std::mutex mutex;  // guards the fields below
  std::condition_variable cv;
  std::vector<bool> answered;
  std::vector<uint64_t> connections;
  std::vector<uint64_t> protocol_errors;
  std::vector<uint64_t> slow_consumers;
  size_t count = 0;
};

}  // namespace

std::string_view LevelName(HealthLevel level) {
  switch (level) {
    case HealthLevel::kHealthy:
      return "healthy";
    case HealthLevel::kDegraded:
      return "degraded";
    case HealthLevel::kUnhealthy:
      return "unhealthy";
    case HealthLevel::kCritical:
      return "critical";
  }
  return "unknown";
}

namespace {

std::vector<LoopCounters> LoopsAlone(const std::vector<net::Loop*>& loops) {
  std::vector<LoopCounters> counters;
  for (net::Loop* loop : loops) counters.push_back({loop, nullptr, nullptr, nullptr});
  return counters;
}

}  // namespace

HealthMonitor::HealthMonitor(const config::Config::Health& options, std::vector<net::Loop*> loops)
    : HealthMonitor(options, LoopsAlone(loops)) {}

HealthMonitor::HealthMonitor(const config::Config::Health& options, std::vector<LoopCounters> loops)
    : options_(options), loops_(std::move(loops)), last_totals_(loops_.size()) {}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::Start() {
  CheckOnce();
  thread_ = std::thread([this] { Run(); });
}

void HealthMonitor::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthMonitor::SetDraining() {
  std::lock_guard lock(mutex_);
  if (draining_) return;
  draining_ = true;
  spdlog::info("health: draining, readiness now fails");
}

void HealthMonitor::Run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::milliseconds(options_.check_interval_ms));
    if (stopping_) break;
    lock.unlock();
    CheckOnce();
    lock.lock();
  }
}

HealthLevel HealthMonitor::Grade(double percent) const {
  if (percent >= static_cast<double>(options_.critical_percent)) return HealthLevel::kCritical;
  if (percent >= static_cast<double>(options_.unhealthy_percent)) return HealthLevel::kUnhealthy;
  if (percent >= static_cast<double>(options_.degraded_percent)) return HealthLevel::kDegraded;
  return HealthLevel::kHealthy;
}

void HealthMonitor::CheckOnce() {
  {
    // Loops stop one by one while draining: their silence is no news.
    std::lock_guard lock(mutex_);
    if (draining_) return;
  }
  auto round = std::make_shared<PingRound>(loops_.size());
  for (size_t i = 0; i < loops_.size(); ++i) {
    const LoopCounters counters = loops_[i];
    net::Loop* loop = counters.loop;
    loop->Post([round, counters, loop, i] {
      uint64_t connections = loop->connection_count();
      // The figures the error-rate checks count, read on the loop's thread.
      LoopSnapshot s;
      s.net = loop->stats();
      if (counters.ws != nullptr) {
        s.ws.closed_by = counters.ws->closed_by;
        if (auto it = counters.ws->close_codes.find(3501); it != counters.ws->close_codes.end()) {
          s.ws.close_codes.emplace(*it);
        }
      }
      std::lock_guard lock(round->mutex);
      round->answered[i] = true;
      round->connections[i] = connections;
      round->protocol_errors[i] = ProtocolErrorCloses(s);
      round->slow_consumers[i] = SlowConsumerCloses(s);
      ++round->count;
      round->cv.notify_all();
    });
  }
  std::vector<HealthCheck> checks;
  {
    std::unique_lock lock(round->mutex);
    round->cv.wait_for(lock, std::chrono::milliseconds(options_.loop_deadline_ms),
                       [&] { return round->count == loops_.size(); });
    HealthCheck loops{"loops", HealthLevel::kHealthy, static_cast<double>(round->count),
                      static_cast<double>(loops_.size()), ""};
    std::string late;
    uint64_t connections = 0;
    for (size_t i = 0; i < loops_.size(); ++i) {
      connections += round->connections[i];
      if (!round->answered[i]) late += (late.empty() ? "" : ",") + std::to_string(i);
    }
    if (round->count < loops_.size()) {
      loops.level = round->count == 0 ? HealthLevel::kCritical : HealthLevel::kUnhealthy;
      loops.detail =
          fmt::format("loops {} did not answer within {} ms", late, options_.loop_deadline_ms);
    } else {
      loops.detail = fmt::format("all {} loops answered within {} ms", loops_.size(),
                                 options_.loop_deadline_ms);
    }
    checks.push_back(std::move(loops));

    uint64_t limit = options_.max_connections;
    rlimit fds;
    if (limit == 0 && getrlimit(RLIMIT_NOFILE, &fds) == 0) limit = fds.rlim_cur;
    HealthCheck conns{"connections", HealthLevel::kHealthy, static_cast<double>(connections),
                      static_cast<double>(limit), ""};
    double percent = limit > 0 ? 100.0 * static_cast<double>(connections) / limit : 0;
    if (limit > 0) conns.level = Grade(percent);
    conns.detail = fmt::format("{} connections of {} ({:.1f}%)", connections, limit, percent);
    checks.push_back(std::move(conns));

    // A loop that did not answer keeps its last totals.
    ErrorSample now{net::Loop::MonotonicMs(), 0, 0};
    for (size_t i = 0; i < loops_.size(); ++i) {
      if (round->answered[i]) {
        last_totals_[i].protocol_errors = round->protocol_errors[i];
        last_totals_[i].slow_consumers = round->slow_consumers[i];
      }
      now.protocol_errors += last_totals_[i].protocol_errors;
      now.slow_consumers += last_totals_[i].slow_consumers;
    }
    // Keep one sample at or before the window's start: the count since it covers the window.
    while (error_samples_.size() >= 2 &&
           error_samples_[1].at_ms + options_.error_window_ms <= now.at_ms) {
      error_samples_.pop_front();
    }
    if (error_samples_.empty()) error_samples_.push_back({now.at_ms, 0, 0});  // from the start
    const ErrorSample& oldest = error_samples_.front();
    checks.push_back(RateCheck("protocol_errors", now.protocol_errors - oldest.protocol_errors,
                               options_.max_protocol_error_closes_per_second));
    checks.push_back(RateCheck("slow_consumers", now.slow_consumers - oldest.slow_consumers,
                               options_.max_slow_consumer_closes_per_second));
    error_samples_.push_back(now);
  }

  uint64_t rss = ReadResidentBytes();
  uint64_t budget = options_.memory_budget_bytes;
  HealthCheck memory{"memory", HealthLevel::kHealthy, static_cast<double>(rss),
                     static_cast<double>(budget), ""};
  if (budget > 0) {
    double percent = 100.0 * static_cast<double>(rss) / static_cast<double>(budget);
    memory.level = Grade(percent);
    memory.detail = fmt::format("resident {} bytes of budget {} ({:.1f}%)", rss, budget, percent);
  } else {
    memory.detail = fmt::format("resident {} bytes; no budget set", rss);
  }
  checks.push_back(std::move(memory));
  for (const auto& check : extra_checks_) checks.push_back(check());

  HealthLevel level = HealthLevel::kHealthy;
  std::string reason;
  for (const HealthCheck& check : checks) {
    level = std::max(level, check.level);
    if (check.level != HealthLevel::kHealthy) {
      if (!reason.empty()) reason += "; ";
      reason += fmt::format("{} {}: {}", check.name, LevelName(check.level), check.detail);
    }
  }
  if (reason.empty()) reason = "all checks pass";

  std::lock_guard lock(mutex_);
  checked_unix_ms_ = UnixMs();
  checks_ = std::move(checks);
  if (level == level_) return;
  HealthTransition transition{checked_unix_ms_, level_, level, reason};
  if (level > level_) {
    spdlog::warn("health: {} -> {}: {}", LevelName(level_), LevelName(level), reason);
  } else {
    spdlog::info("health: {} -> {}: {}", LevelName(level_), LevelName(level), reason);
  }
  level_ = level;
  ++transition_count_;
  transitions_.push_back(std::move(transition));
  while (transitions_.size() > options_.history_size) transitions_.pop_front();
}

HealthCheck HealthMonitor::RateCheck(std::string name, uint64_t count,
                                     uint64_t per_second_limit) const {
  const double window_s = static_cast<double>(options_.error_window_ms) / 1000.0;
  const double rate = static_cast<double>(count) / window_s;
  HealthCheck check{std::move(name), HealthLevel::kHealthy, rate,
                    static_cast<double>(per_second_limit), ""};
  if (per_second_limit == 0) {
    check.detail = fmt::format("{} closes in the last {:g} s; check off", count, window_s);
    return check;
  }
  const double percent = 100.0 * rate / static_cast<double>(per_second_limit);
  check.level = Grade(percent);
  check.detail = fmt::format("{} closes in the last {:g} s: {:g}/s of {}/s ({:.1f}%)", count,
                             window_s, rate, per_second_limit, percent);
  return check;
}

bool HealthMonitor::Ready() const {
  std::lock_guard lock(mutex_);
  return !draining_ && level_ < HealthLevel::kUnhealthy;
}

HealthFigures HealthMonitor::Figures() const {
  std::lock_guard lock(mutex_);
  return {static_cast<int>(level_), transition_count_,
          !draining_ && level_ < HealthLevel::kUnhealthy};
}

std::string HealthMonitor::Json() const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto back = std::back_inserter(out);
  bool ready = !draining_ && level_ < HealthLevel::kUnhealthy;
  fmt::format_to(back,
                 "{{\"status\":\"{}\",\"level\":\"{}\",\"ready\":{},\"draining\":{},"
                 "\"checked_at_ms\":{},\"checks\":[",
                 level_ < HealthLevel::kUnhealthy ? "ok" : "fail", LevelName(level_), ready,
                 draining_, checked_unix_ms_);
  for (size_t i = 0; i < checks_.size(); ++i) {
    const HealthCheck& c = checks_[i];
    fmt::format_to(back,
                   "{}{{\"name\":\"{}\",\"level\":\"{}\",\"value\":{},\"limit\":{},\"detail\":",
                   i == 0 ? "" : ",", c.name, LevelName(c.level), c.value, c.limit);
    AppendJsonString(out, c.detail);
    out += '}';
  }
  fmt::format_to(back,
                 "],\"thresholds\":{{\"check_interval_ms\":{},\"loop_deadline_ms\":{},"
                 "\"memory_budget_bytes\":{},\"max_connections\":{},\"degraded_percent\":{},"
                 "\"unhealthy_percent\":{},\"critical_percent\":{},\"error_window_ms\":{},"
                 "\"max_protocol_error_closes_per_second\":{},"
                 "\"max_slow_consumer_closes_per_second\":{}}},\"transitions\":[",
                 options_.check_interval_ms, options_.loop_deadline_ms,
                 options_.memory_budget_bytes, options_.max_connections, options_.degraded_percent,
                 options_.unhealthy_percent, options_.critical_percent, options_.error_window_ms,
                 options_.max_protocol_error_closes_per_second,
                 options_.max_slow_consumer_closes_per_second);
  // Newest first.
  for (auto it = transitions_.rbegin(); it != transitions_.rend(); ++it) {
    fmt::format_to(back, "{}{{\"at_ms\":{},\"from\":\"{}\",\"to\":\"{}\",\"reason\":",
                   it == transitions_.rbegin() ? "" : ",", it->unix_ms, LevelName(it->from),
                   LevelName(it->to));
    AppendJsonString(out, it->reason);
    out += '}';
  }
  out += "]}\n";
  return out;
}

}  // namespace hermod::metrics
