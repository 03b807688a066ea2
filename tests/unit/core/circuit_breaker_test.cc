#include "core/circuit_breaker.h"

#include <gtest/gtest.h>

namespace hermod::core {
namespace {

uint64_t now_ms = 0;
uint64_t Clock() { return now_ms; }

using State = CircuitBreaker::State;

CircuitBreaker::Options Options() {
  CircuitBreaker::Options o;
  o.failure_threshold = 3;
  o.window_ms = 1000;
  o.open_ms = 500;
  o.half_open_trials = 2;
  return o;
}

TEST(CircuitBreaker, OpensAfterThresholdFailuresWithinTheWindow) {
  now_ms = 0;
  CircuitBreaker b(Options(), &Clock);
  EXPECT_TRUE(b.Allow());
  b.OnFailure();
  now_ms = 400;
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kClosed);
  now_ms = 900;
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.Allow());
  EXPECT_EQ(b.rejected_total(), 1u);
  EXPECT_EQ(b.opened_total(), 1u);
}

TEST(CircuitBreaker, FailuresOlderThanTheWindowDoNotCount) {
  now_ms = 0;
  CircuitBreaker b(Options(), &Clock);
  b.OnFailure();
  now_ms = 600;
  b.OnFailure();
  now_ms = 1000;  // the first one has left the window
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kClosed);
  now_ms = 1100;
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(CircuitBreaker, HalfOpenLetsABoundedNumberOfTrialsThroughThenCloses) {
  now_ms = 0;
  CircuitBreaker b(Options(), &Clock);
  for (int i = 0; i < 3; ++i) b.OnFailure();
  now_ms = 499;
  EXPECT_FALSE(b.Allow());
  now_ms = 500;
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_TRUE(b.Allow());
  EXPECT_TRUE(b.Allow());
  EXPECT_FALSE(b.Allow());  // two trials in flight: no third
  b.OnSuccess();
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.Allow());  // one succeeded, one still in flight: the budget is spent
  b.OnSuccess();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.Allow());
  // Closed again with a clean slate: it takes the threshold to open it.
  b.OnFailure();
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kClosed);
}

TEST(CircuitBreaker, AFailedTrialOpensItAgainForAnotherPeriod) {
  now_ms = 0;
  CircuitBreaker b(Options(), &Clock);
  for (int i = 0; i < 3; ++i) b.OnFailure();
  now_ms = 500;
  EXPECT_TRUE(b.Allow());
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.opened_total(), 2u);
  now_ms = 999;
  EXPECT_FALSE(b.Allow());
  now_ms = 1000;
  EXPECT_TRUE(b.Allow());
}

TEST(CircuitBreaker, SuccessesWhileClosedDoNotHideAFailureBurst) {
  now_ms = 0;
  CircuitBreaker b(Options(), &Clock);
  b.OnFailure();
  b.OnSuccess();
  b.OnFailure();
  b.OnSuccess();
  b.OnFailure();
  EXPECT_EQ(b.state(), State::kOpen);
}

}  // namespace
}  // namespace hermod::core
