// What /metrics and /health show of a store engine (hermod_store_*, the `store` check), and
// StatusKeeper: an engine's status and its circuit breaker, for any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "core/circuit_breaker.h"

namespace hermod::store {

// What /metrics and /health show of a store engine (any engine; the memory engine has none).
struct StoreStatus {
  enum Kind : size_t { kAppend, kRead, kRecover, kRemove, kKey, kTrim, kKinds };
  enum Reason : size_t { kIo, kFileGone, kBreakerOpen, kQueueFull, kReasons };
  static constexpr std::array<const char*, kKinds> kKindNames = {"append", "read", "recover",
                                                                 "remove", "key",  "trim"};
  static constexpr std::array<const char*, kReasons> kReasonNames = {"io", "file_gone",
                                                                     "breaker_open", "queue_full"};
  static constexpr std::array<double, 10> kLatencyBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025,  0.05,  0.1,    0.25,  1};
  std::string engine;
  std::array<uint64_t, kKinds> operations{};
  std::array<uint64_t, kReasons> errors{};
  // Queue to completion, per operation: counts per bound (not cumulative), then +Inf.
  std::array<uint64_t, kLatencyBounds.size() + 1> latency_buckets{};
  double latency_sum_s = 0;
  uint64_t latency_count = 0;
  uint64_t queue_depth = 0;
  core::CircuitBreaker::State breaker = core::CircuitBreaker::State::kClosed;
  uint32_t failure_threshold = 0;
  std::string last_error;  // empty while it works
};

// An engine's StoreStatus and circuit breaker under one mutex (the nats history engine's;
// the sqlite engine keeps its own beside its queue). Failures open the breaker; while it is
// open, appends are refused at once (Open) and counted as breaker_open.
class StatusKeeper {
 public:
  StatusKeeper(std::string engine, core::CircuitBreaker::Options breaker);
  // The breaker is open: refuse at once (counted).
  bool RefuseNow();
  // Whether a call may go out (half-open: a trial); false is counted as breaker_open.
  bool Allow();
  // A call that went out: its outcome, to the breaker and the status.
  void Succeeded();
  void Failed(StoreStatus::Reason reason, std::string message);
  // n operations of kind, queued at queued_us (SteadyUs), completed now.
  void Record(StoreStatus::Kind kind, uint64_t queued_us, size_t n = 1);
  void Queued(int64_t delta);
  StoreStatus Status() const;
  static uint64_t SteadyUs();

 private:
  mutable std::mutex mutex_;
  mutable core::CircuitBreaker breaker_;  // state() advances its clock
  StoreStatus status_;
};

}  // namespace hermod::store
