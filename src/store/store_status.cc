#include "store/store_status.h"

#include <chrono>
#include <utility>

namespace hermod::store {

namespace {
uint64_t SteadyMs() { return StatusKeeper::SteadyUs() / 1000; }
}  // namespace

uint64_t StatusKeeper::SteadyUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

StatusKeeper::StatusKeeper(std::string engine, core::CircuitBreaker::Options breaker)
    : breaker_(breaker, &SteadyMs) {
  status_.engine = std::move(engine);
  status_.failure_threshold = breaker.failure_threshold;
}

bool StatusKeeper::RefuseNow() {
  std::lock_guard lock(mutex_);
  if (breaker_.state() != core::CircuitBreaker::State::kOpen) return false;
  ++status_.errors[StoreStatus::kBreakerOpen];
  return true;
}

bool StatusKeeper::Allow() {
  std::lock_guard lock(mutex_);
  if (breaker_.Allow()) return true;
  ++status_.errors[StoreStatus::kBreakerOpen];
  return false;
}

void StatusKeeper::Succeeded() {
  std::lock_guard lock(mutex_);
  breaker_.OnSuccess();
  status_.last_error.clear();
}

void StatusKeeper::Failed(StoreStatus::Reason reason, std::string message) {
  std::lock_guard lock(mutex_);
  breaker_.OnFailure();
  ++status_.errors[reason];
  if (!message.empty()) status_.last_error = std::move(message);
}

void StatusKeeper::Record(StoreStatus::Kind kind, uint64_t queued_us, size_t n) {
  const double seconds = static_cast<double>(SteadyUs() - queued_us) / 1e6;
  size_t bucket = 0;
  while (bucket < StoreStatus::kLatencyBounds.size() &&
         seconds > StoreStatus::kLatencyBounds[bucket]) {
    ++bucket;
  }
  std::lock_guard lock(mutex_);
  status_.operations[kind] += n;
  status_.latency_buckets[bucket] += n;
  status_.latency_sum_s += seconds * static_cast<double>(n);
  status_.latency_count += n;
}

void StatusKeeper::Queued(int64_t delta) {
  std::lock_guard lock(mutex_);
  status_.queue_depth = static_cast<uint64_t>(static_cast<int64_t>(status_.queue_depth) + delta);
}

StoreStatus StatusKeeper::Status() const {
  std::lock_guard lock(mutex_);
  StoreStatus s = status_;
  s.breaker = breaker_.state();
  return s;
}

}  // namespace hermod::store
