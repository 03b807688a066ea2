// A circuit breaker for a call that leaves the process (a broker, a store, a proxy): after
// failure_threshold failures within window_ms it opens, and calls fail fast instead of
// piling up behind a dependency that is gone; after open_ms it lets half_open_trials calls
// through (half-open), and closes again once that many have succeeded in a row, or opens
// again at the first failure. Local work never waits on it.
//
// The caller asks Allow() before the call and reports the outcome with OnSuccess() or
// OnFailure(); a call that Allow() refused is not reported. The clock is injected (tests
// drive it). Not thread-safe: one breaker belongs to one loop, or is guarded by its owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace hermod::core {

class CircuitBreaker {
 public:
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };
  using Clock = uint64_t (*)();  // milliseconds, monotonic
  struct Options {
    uint32_t failure_threshold = 5;  // failures within window_ms that open the breaker
    uint64_t window_ms = 10000;
    uint64_t open_ms = 5000;        // how long it stays open before trying again
    uint32_t half_open_trials = 1;  // calls let through while half-open
  };

  CircuitBreaker(Options options, Clock clock);

  // Whether a call may go out now. While half-open, true for at most half_open_trials
  // calls whose outcome is still unknown.
  bool Allow();
  void OnSuccess();
  void OnFailure();

  // The state now (an open breaker whose open_ms has passed reports half-open).
  State state();
  uint64_t opened_total() const { return opened_total_; }      // transitions to open
  uint64_t rejected_total() const { return rejected_total_; }  // calls Allow() refused
  // Transitions into state `to` (an open breaker turns half-open when it is next asked).
  uint64_t transitions(State to) const { return transitions_[static_cast<size_t>(to)]; }

 private:
  void Open(uint64_t now);
  void Advance(uint64_t now);

  Options options_;
  Clock clock_;
  State state_ = State::kClosed;
  std::deque<uint64_t> failures_;  // times of recent failures (closed), at most threshold
  uint64_t opened_at_ = 0;
  uint32_t trials_in_flight_ = 0;
  uint32_t trial_successes_ = 0;
  uint64_t opened_total_ = 0;
  uint64_t rejected_total_ = 0;
  uint64_t transitions_[3] = {0, 0, 0};
};

}  // namespace hermod::core
