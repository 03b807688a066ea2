#include "net/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
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

namespace hermod::net {
namespace {

// The next deadline against a brute-force reference: the wheel's answer (found through its
// occupancy bitmap) must equal a walk over the model's timers, for random schedules,
// reschedules, cancels and advances, across the wrap of the slot index and of laps.
struct Counted final : TimerNode {
  int id = 0;
  std::vector<int>* fired = nullptr;
  void OnTimer() override { fired->push_back(id); }
};

struct Model {
  uint64_t tick;
  std::vector<int64_t> expiry;  // per timer; -1: not scheduled

  // The definition NextTimeoutMs implements: the first tick after the current one whose
  // slot holds any timer (of any lap), at most kLookAhead - 1 ticks ahead.
  int NextTimeoutMs(uint64_t now_ms) const {
    bool any = false;
    for (int64_t e : expiry) any = any || e >= 0;
    if (!any) return -1;
    uint64_t next = tick + TimerWheel::kLookAhead;
    for (uint64_t t = tick + 1; t < tick + TimerWheel::kLookAhead; ++t) {
      const bool busy = std::any_of(expiry.begin(), expiry.end(), [t](int64_t e) {
        return e >= 0 && static_cast<uint64_t>(e) % TimerWheel::kSlots == t % TimerWheel::kSlots;
      });
      if (busy) {
        next = t;
        break;
      }
    }
    const uint64_t ms = next * TimerWheel::kTickMs;
    return ms > now_ms ? static_cast<int>(ms - now_ms) : 0;
  }
};

void RunRandomSchedule(uint64_t start_ms, uint32_t seed) {
  std::mt19937 rng(seed);
  constexpr int kTimers = 40;
  uint64_t now = start_ms;
  TimerWheel wheel(now);
  Model model{now / TimerWheel::kTickMs, std::vector<int64_t>(kTimers, -1)};
  std::vector<int> fired;
  std::vector<Counted> timers(kTimers);
  for (int i = 0; i < kTimers; ++i) {
    timers[i].id = i;
    timers[i].fired = &fired;
  }
  auto delay = [&rng]() -> uint64_t {
    switch (rng() % 4) {
      case 0:
        return rng() % 40;  // within a few ticks
      case 1:
        return rng() % 700;  // within the look-ahead
      case 2:
        return rng() % 12000;  // up to past one lap
      default:
        return rng() % 40000;  // several laps
    }
  };
  for (int step = 0; step < 20000; ++step) {
    const int i = static_cast<int>(rng() % kTimers);
    switch (rng() % 5) {
      case 0:
      case 1: {
        const uint64_t d = delay();
        wheel.Schedule(&timers[i], d);
        const uint64_t ticks =
            std::max<uint64_t>(1, (d + TimerWheel::kTickMs - 1) / TimerWheel::kTickMs);
        model.expiry[i] = static_cast<int64_t>(model.tick + ticks);
        break;
      }
      case 2:
        wheel.Cancel(&timers[i]);
        model.expiry[i] = -1;
        break;
      default: {
        // Mostly short steps (a busy loop), sometimes a long one, rarely a stall of laps.
        const uint32_t r = rng() % 100;
        now += r < 80 ? rng() % 25 : r < 98 ? rng() % 2000 : rng() % 30000;
        fired.clear();
        wheel.Advance(now);
        const uint64_t target = now / TimerWheel::kTickMs;
        std::vector<int> due;
        if (target > model.tick) {
          for (int t = 0; t < kTimers; ++t) {
            if (model.expiry[t] >= 0 && static_cast<uint64_t>(model.expiry[t]) <= target) {
              due.push_back(t);
              model.expiry[t] = -1;
            }
          }
          model.tick = target;
        }
        std::sort(fired.begin(), fired.end());
        ASSERT_EQ(fired, due) << "seed " << seed << " step " << step << " now " << now;
        break;
      }
    }
    size_t scheduled = 0;
    for (int t = 0; t < kTimers; ++t) {
      ASSERT_EQ(timers[t].scheduled(), model.expiry[t] >= 0);
      scheduled += model.expiry[t] >= 0;
    }
    ASSERT_EQ(wheel.size(), scheduled);
    // The loop asks at its own clock, which may run ahead of the wheel's tick by < 1 tick.
    const uint64_t asked = now + rng() % TimerWheel::kTickMs;
    ASSERT_EQ(wheel.NextTimeoutMs(asked), model.NextTimeoutMs(asked))
        << "seed " << seed << " step " << step << " now " << now;
  }
}

TEST(TimerWheelNextDeadline, MatchesABruteForceReference) {
  for (uint32_t seed = 1; seed <= 8; ++seed) RunRandomSchedule(1'000'000 + seed * 777, seed);
}

TEST(TimerWheelNextDeadline, MatchesAcrossTheWrapOfTheSlotIndex) {
  // Start a few ticks before slot 0 comes round again, and near a word boundary of the
  // bitmap, so look-aheads straddle both.
  const uint64_t lap = TimerWheel::kTickMs * TimerWheel::kSlots;
  RunRandomSchedule(50 * lap - 3 * TimerWheel::kTickMs, 101);
  RunRandomSchedule(50 * lap + 61 * TimerWheel::kTickMs, 102);
}

TEST(TimerWheelNextDeadline, FindsATimerAtEveryDistance) {
  // One timer at each distance from the current tick, from every start within a lap's
  // first two words (so the search crosses a word at every offset).
  for (uint64_t start_tick = 0; start_tick < 130; ++start_tick) {
    for (uint64_t ticks = 1; ticks <= 70; ++ticks) {
      const uint64_t now = (5 * TimerWheel::kSlots + start_tick) * TimerWheel::kTickMs;
      TimerWheel wheel(now);
      Recorder r;
      std::vector<uint64_t> fired;
      uint64_t clock = now;
      r.fired = &fired;
      r.now = &clock;
      wheel.Schedule(&r, ticks * TimerWheel::kTickMs);
      const uint64_t expect = std::min<uint64_t>(ticks, TimerWheel::kLookAhead);
      ASSERT_EQ(wheel.NextTimeoutMs(now), static_cast<int>(expect * TimerWheel::kTickMs))
          << start_tick << " " << ticks;
      wheel.Cancel(&r);
      ASSERT_EQ(wheel.NextTimeoutMs(now), -1);
    }
  }
}

}  // namespace
}  // namespace hermod::net
