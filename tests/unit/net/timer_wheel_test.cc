#include "net/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace hermod::net {
namespace {

struct Recorder final : TimerNode {
  std::vector<uint64_t>* fired;
  uint64_t* now;
  void OnTimer() override { fired->push_back(*now); }
};

TEST(TimerWheel, FiresAtTheTickAfterTheDelay) {
  uint64_t now = 1000;
  std::vector<uint64_t> fired;
  TimerWheel wheel(now);
  Recorder r;
  r.fired = &fired;
  r.now = &now;
  wheel.Schedule(&r, 25);
  for (now = 1000; now <= 1100; now += 5) wheel.Advance(now);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_GE(fired[0], 1025u);
  EXPECT_LE(fired[0], 1035u);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, TimersLongerThanOneLapWaitForTheirLap) {
  uint64_t now = 0;
  std::vector<uint64_t> fired;
  TimerWheel wheel(now);
  Recorder r;
  r.fired = &fired;
  r.now = &now;
  const uint64_t delay = TimerWheel::kTickMs * TimerWheel::kSlots * 2 + 50;
  wheel.Schedule(&r, delay);
  for (now = 0; now < delay; now += 10) wheel.Advance(now);
  EXPECT_TRUE(fired.empty());
  wheel.Advance(delay + 10);
  ASSERT_EQ(fired.size(), 1u);
}

TEST(TimerWheel, CancelledTimerNeverFires) {
  uint64_t now = 0;
  std::vector<uint64_t> fired;
  TimerWheel wheel(now);
  Recorder a, b;
  a.fired = b.fired = &fired;
  a.now = b.now = &now;
  wheel.Schedule(&a, 30);
  wheel.Schedule(&b, 30);
  wheel.Cancel(&a);
  EXPECT_FALSE(a.scheduled());
  wheel.Advance(1000);
  EXPECT_EQ(fired.size(), 1u);
}

TEST(TimerWheel, RescheduleReplacesTheDeadline) {
  uint64_t now = 0;
  std::vector<uint64_t> fired;
  TimerWheel wheel(now);
  Recorder r;
  r.fired = &fired;
  r.now = &now;
  wheel.Schedule(&r, 20);
  wheel.Schedule(&r, 500);
  now = 100;
  wheel.Advance(now);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(wheel.size(), 1u);
  now = 600;
  wheel.Advance(now);
  EXPECT_EQ(fired.size(), 1u);
}

struct CancelsOther final : TimerNode {
  TimerWheel* wheel;
  TimerNode* other;
  int fired = 0;
  void OnTimer() override {
    ++fired;
    wheel->Cancel(other);
  }
};

TEST(TimerWheel, CallbackMayCancelATimerDueInTheSameTick) {
  TimerWheel wheel(0);
  CancelsOther a, b;
  a.wheel = b.wheel = &wheel;
  a.other = &b;
  b.other = &a;
  wheel.Schedule(&a, 10);
  wheel.Schedule(&b, 10);
  wheel.Advance(100);
  EXPECT_EQ(a.fired + b.fired, 1);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, NextTimeoutIsMinusOneWhenEmpty) {
  TimerWheel wheel(0);
  EXPECT_EQ(wheel.NextTimeoutMs(0), -1);
  Recorder r;
  std::vector<uint64_t> fired;
  uint64_t now = 0;
  r.fired = &fired;
  r.now = &now;
  wheel.Schedule(&r, 50);
  EXPECT_EQ(wheel.NextTimeoutMs(0), 50);  // sleeps until the first busy slot
  wheel.Schedule(&r, 100000);
  // Far timers: the loop wakes after a bounded look-ahead, not every tick.
  EXPECT_GT(wheel.NextTimeoutMs(0), static_cast<int>(TimerWheel::kTickMs));
  EXPECT_LE(wheel.NextTimeoutMs(0), 1000);
}

}  // namespace
}  // namespace hermod::net

namespace hermod::net {
namespace {

TEST(TimerWheel, ATimerSetAfterAnIdleSpellCountsFromNow) {
  uint64_t now = 0;
  std::vector<uint64_t> fired;
  TimerWheel wheel(now);
  Recorder r;
  r.fired = &fired;
  r.now = &now;
  now = 60000;  // a minute with no timers at all
  wheel.Advance(now);
  wheel.Schedule(&r, 5000);
  wheel.Advance(now);
  now += 100;
  wheel.Advance(now);
  EXPECT_TRUE(fired.empty());
  now += 5000;
  wheel.Advance(now);
  EXPECT_EQ(fired.size(), 1u);
}

TEST(TimerWheel, AStalledLoopFiresEveryOverdueTimerInOneSweep) {
  uint64_t now = 0;
  std::vector<uint64_t> fired;
  TimerWheel wheel(now);
  std::vector<Recorder> timers(100);
  for (size_t i = 0; i < timers.size(); ++i) {
    timers[i].fired = &fired;
    timers[i].now = &now;
    wheel.Schedule(&timers[i], 10 * (i + 1));
  }
  Recorder later;
  later.fired = &fired;
  later.now = &now;
  wheel.Schedule(&later, 10'000'000);
  now = 3'600'000;  // an hour late: many laps
  wheel.Advance(now);
  EXPECT_EQ(fired.size(), 100u);
  EXPECT_EQ(wheel.size(), 1u);
}

}  // namespace
}  // namespace hermod::net
