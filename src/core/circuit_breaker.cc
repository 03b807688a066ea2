#include "core/circuit_breaker.h"

namespace hermod::core {

CircuitBreaker::CircuitBreaker(Options options, Clock clock) : options_(options), clock_(clock) {
  if (options_.failure_threshold == 0) options_.failure_threshold = 1;
  if (options_.half_open_trials == 0) options_.half_open_trials = 1;
}

void CircuitBreaker::Advance(uint64_t now) {
  if (state_ == State::kOpen && now >= opened_at_ + options_.open_ms) {
    state_ = State::kHalfOpen;
    ++transitions_[static_cast<size_t>(State::kHalfOpen)];
    trials_in_flight_ = 0;
    trial_successes_ = 0;
  }
}

CircuitBreaker::State CircuitBreaker::state() {
  Advance(clock_());
  return state_;
}

bool CircuitBreaker::Allow() {
  Advance(clock_());
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      ++rejected_total_;
      return false;
    case State::kHalfOpen:
      if (trials_in_flight_ + trial_successes_ >= options_.half_open_trials) {
        ++rejected_total_;
        return false;
      }
      ++trials_in_flight_;
      return true;
  }
  return false;
}

void CircuitBreaker::Open(uint64_t now) {
  state_ = State::kOpen;
  opened_at_ = now;
  failures_.clear();
  trials_in_flight_ = 0;
  trial_successes_ = 0;
  ++opened_total_;
  ++transitions_[static_cast<size_t>(State::kOpen)];
}

void CircuitBreaker::OnSuccess() {
  if (state_ != State::kHalfOpen) return;  // closed: successes do not erase failures
  if (trials_in_flight_ > 0) --trials_in_flight_;
  if (++trial_successes_ >= options_.half_open_trials) {
    state_ = State::kClosed;
    ++transitions_[static_cast<size_t>(State::kClosed)];
    failures_.clear();
  }
}

void CircuitBreaker::OnFailure() {
  const uint64_t now = clock_();
  Advance(now);
  if (state_ == State::kHalfOpen) return Open(now);  // the trial failed: back to open
  if (state_ == State::kOpen) return;                // a call from before it opened: nothing new
  failures_.push_back(now);
  while (!failures_.empty() && failures_.front() + options_.window_ms <= now) {
    failures_.pop_front();
  }
  if (failures_.size() >= options_.failure_threshold) Open(now);
  // Bounded: only the last threshold failures can matter.
  while (failures_.size() > options_.failure_threshold) failures_.pop_front();
}

}  // namespace hermod::core
