#include "core/rate_limit.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "core/admission.h"

namespace hermod::core {
namespace {

TEST(TokenBucket, StartsFullAndRefusesPastTheBurst) {
  TokenBucket b;
  RateLimit limit{100, 10};
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.TryTake(limit, 5000)) << i;
  EXPECT_FALSE(b.TryTake(limit, 5000));
  EXPECT_EQ(b.WaitMs(limit, 5000), 10u);  // 100/s: one token every 10 ms
}

TEST(TokenBucket, RefillsAtTheRateAndNoFurtherThanTheBurst) {
  TokenBucket b;
  RateLimit limit{100, 10};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.TryTake(limit, 1000));
  EXPECT_FALSE(b.TryTake(limit, 1009));
  EXPECT_TRUE(b.TryTake(limit, 1010));
  EXPECT_FALSE(b.TryTake(limit, 1010));
  // A long pause refills to the burst, not beyond.
  int taken = 0;
  while (b.TryTake(limit, 100000)) ++taken;
  EXPECT_EQ(taken, 10);
}

TEST(TokenBucket, SustainsExactlyTheRateOverTime) {
  TokenBucket b;
  RateLimit limit{100, 10};
  int taken = 0;
  for (uint64_t now = 1000; now < 11000; ++now) {  // ten seconds, a try every millisecond
    if (b.TryTake(limit, now)) ++taken;
  }
  EXPECT_EQ(taken, 10 + 1000 - 1);  // the burst, then 100/s (the first refill is at 1010 ms)
}

TEST(TokenBucket, DisabledLimitAlwaysAllows) {
  TokenBucket b;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.TryTake(RateLimit{}, 0));
}

TEST(TokenBucket, SurvivesTheThirtyTwoBitClockWrap) {
  TokenBucket b;
  RateLimit limit{1, 1};
  const uint64_t before = (1ull << 32) - 5;
  EXPECT_TRUE(b.TryTake(limit, before));
  EXPECT_FALSE(b.TryTake(limit, before + 500));
  EXPECT_TRUE(b.TryTake(limit, before + 1000));  // crosses 2^32
}

TEST(TokenBucket, IsEightBytes) { EXPECT_EQ(sizeof(TokenBucket), 8u); }

TEST(RateLimit, ShareSplitsRateAndBurstButNeverToZero) {
  RateLimit limit{100, 10};
  EXPECT_EQ(limit.Share(4).rate, 25u);
  EXPECT_EQ(limit.Share(4).burst, 2u);
  EXPECT_EQ((RateLimit{2, 1}.Share(8).rate), 1u);
  EXPECT_EQ((RateLimit{2, 1}.Share(8).burst), 1u);
  EXPECT_FALSE(RateLimit{}.Share(4).enabled());
}

CommandRateLimits Limits() {
  CommandRateLimits l;
  l.kinds[static_cast<size_t>(CommandKind::kPublish)] = {100, 10};
  l.total = {1000, 20};
  l.disconnect_after = 5;
  l.disconnect_window_ms = 1000;
  return l;
}

TEST(CommandLimiter, PublishBucketRefusesAfterItsBurstOthersGoOn) {
  CommandLimiter limiter;
  CommandRateLimits limits = Limits();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 100), CommandLimiter::Verdict::kAllow);
  }
  EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 100), CommandLimiter::Verdict::kReject);
  EXPECT_EQ(limiter.Check(limits, CommandKind::kHistory, 100), CommandLimiter::Verdict::kAllow);
}

// proto::CommandGuard drops a limiter once it is as good as a new one (an idle connection
// holds none): every bucket repaid and no refusal counted in an open window.
TEST(CommandLimiter, IsFreshOnceEveryBucketIsRepaidAndTheRefusalWindowClosed) {
  CommandLimiter limiter;
  CommandRateLimits limits = Limits();
  EXPECT_TRUE(limits.enabled());
  EXPECT_FALSE(CommandRateLimits{}.enabled());
  EXPECT_EQ(limiter.FreshInMs(limits, 100), 0u);
  EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 100), CommandLimiter::Verdict::kAllow);
  EXPECT_EQ(limiter.FreshInMs(limits, 100), 10u);  // the publish bucket: 1 token at 100/s
  EXPECT_EQ(limiter.FreshInMs(limits, 105), 5u);
  EXPECT_EQ(limiter.FreshInMs(limits, 110), 0u);
  // A refusal keeps it until its window (1 s) closes, though the buckets repay sooner.
  for (int i = 0; i < 10; ++i) limiter.Check(limits, CommandKind::kPublish, 200);
  EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 200), CommandLimiter::Verdict::kReject);
  EXPECT_EQ(limiter.FreshInMs(limits, 300), 900u);
  EXPECT_EQ(limiter.FreshInMs(limits, 1200), 0u);
}

TEST(CommandLimiter, TotalBucketCountsEveryKind) {
  CommandLimiter limiter;
  CommandRateLimits limits = Limits();
  limits.disconnect_after = 0;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(limiter.Check(limits, CommandKind::kOther, 100), CommandLimiter::Verdict::kAllow);
  }
  EXPECT_EQ(limiter.Check(limits, CommandKind::kHistory, 100), CommandLimiter::Verdict::kReject);
}

TEST(CommandLimiter, TellsWhichBucketRefused) {
  CommandLimiter limiter;
  CommandRateLimits limits = Limits();
  limits.disconnect_after = 0;
  bool by_total = true;
  for (int i = 0; i < 10; ++i) limiter.Check(limits, CommandKind::kPublish, 100);
  EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 100, &by_total),
            CommandLimiter::Verdict::kReject);
  EXPECT_FALSE(by_total);
  for (int i = 0; i < 10; ++i) limiter.Check(limits, CommandKind::kOther, 100);
  EXPECT_EQ(limiter.Check(limits, CommandKind::kHistory, 100, &by_total),
            CommandLimiter::Verdict::kReject);
  EXPECT_TRUE(by_total);
}

TEST(CommandLimiter, SustainedRejectionsInTheWindowAreAbuse) {
  CommandLimiter limiter;
  CommandRateLimits limits = Limits();
  for (int i = 0; i < 10; ++i) limiter.Check(limits, CommandKind::kPublish, 100);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 100), CommandLimiter::Verdict::kReject);
  }
  EXPECT_EQ(limiter.Check(limits, CommandKind::kPublish, 100), CommandLimiter::Verdict::kAbuse);
}

TEST(CommandLimiter, RejectionsSpreadOverWindowsAreNotAbuse) {
  CommandLimiter limiter;
  CommandRateLimits limits = Limits();
  limits.kinds[0] = {1, 1};
  uint64_t now = 10000;
  for (int window = 0; window < 5; ++window) {
    for (int i = 0; i < 4; ++i) {
      EXPECT_NE(limiter.Check(limits, CommandKind::kPublish, now), CommandLimiter::Verdict::kAbuse);
    }
    now += 1500;
  }
}

TEST(LogThrottle, LetsOneLineThroughPerIntervalAndCountsTheRest) {
  LogThrottle log(1000);
  uint64_t suppressed = 99;
  EXPECT_TRUE(log.Allow(5000, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_FALSE(log.Allow(5001, &suppressed));
  EXPECT_FALSE(log.Allow(5999, &suppressed));
  EXPECT_TRUE(log.Allow(6000, &suppressed));
  EXPECT_EQ(suppressed, 2u);
}

TEST(Admission, NodeLimitRefusesPastItAndReleaseFreesAPlace) {
  AdmissionLimits l;
  l.connection_limit = 2;
  Admission a(l, 1);
  EXPECT_EQ(a.Admit(0, "1.1.1.1", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "1.1.1.2", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "1.1.1.3", 0), AdmitVerdict::kAtCapacity);
  EXPECT_EQ(a.connections(), 2u);
  a.Release("1.1.1.1");
  EXPECT_EQ(a.Admit(0, "1.1.1.3", 0), AdmitVerdict::kAdmitted);
}

TEST(Admission, SoftBandAdmitsOnCondition) {
  AdmissionLimits l;
  l.connection_limit = 3;
  l.soft_connection_limit = 1;
  Admission a(l, 1);
  EXPECT_EQ(a.Admit(0, "x", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "x", 0), AdmitVerdict::kAdmittedIfRecovering);
  EXPECT_EQ(a.Admit(0, "x", 0), AdmitVerdict::kAdmittedIfRecovering);
  EXPECT_EQ(a.Admit(0, "x", 0), AdmitVerdict::kAtCapacity);
}

TEST(Admission, PerIpCountAndRate) {
  AdmissionLimits l;
  l.ip_connection_limit = 2;
  l.ip_rate = {10, 3};
  Admission a(l, 1);
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kIpLimit);
  EXPECT_EQ(a.Admit(0, "b", 0), AdmitVerdict::kAdmitted);  // another address is not affected
  a.Release("a");
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kAdmitted);  // the burst's third token
  a.Release("a");
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kIpRate);      // a's 3-token burst is spent
  EXPECT_EQ(a.Admit(0, "a", 100), AdmitVerdict::kAdmitted);  // 10/s: one more after 100 ms
  EXPECT_EQ(a.connections(), 3u);                            // refusals leave no count behind
}

TEST(Admission, NodeRateIsSharedOutPerLoop) {
  AdmissionLimits l;
  l.node_rate = {4, 4};
  Admission a(l, 2);
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kAdmitted);
  EXPECT_EQ(a.Admit(0, "a", 0), AdmitVerdict::kNodeRate);
  EXPECT_EQ(a.Admit(1, "a", 0), AdmitVerdict::kAdmitted);
}

TEST(Admission, UserLimit) {
  AdmissionLimits l;
  l.user_connection_limit = 2;
  Admission a(l, 1);
  EXPECT_TRUE(a.AddUser("u"));
  EXPECT_TRUE(a.AddUser("u"));
  EXPECT_FALSE(a.AddUser("u"));
  EXPECT_TRUE(a.AddUser("v"));
  EXPECT_TRUE(a.AddUser(""));  // anonymous connections are not counted
  a.RemoveUser("u");
  EXPECT_TRUE(a.AddUser("u"));
}

TEST(Admission, CountsStayExactUnderContentionFromSeveralLoops) {
  AdmissionLimits l;
  l.connection_limit = 1000;
  l.ip_connection_limit = 1000000;
  Admission a(l, 4);
  std::vector<std::thread> threads;
  std::atomic<int> admitted{0};
  for (size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        if (Admitted(a.Admit(t, "ip" + std::to_string(i % 7), 0))) ++admitted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1000);
  EXPECT_EQ(a.connections(), 1000u);
}

}  // namespace
}  // namespace hermod::core
