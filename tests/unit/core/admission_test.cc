#include "core/admission.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace hermod::core {
namespace {

constexpr uint64_t kT = 1'000'000;  // the tests' clock, in milliseconds

TEST(Admission, WithoutLimitsEveryoneIsAdmittedAndCounted) {
  Admission admission(AdmissionLimits{}, 2);
  EXPECT_FALSE(admission.enabled());
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(admission.Admit(0, "1.2.3.4", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.connections(), 100u);
  admission.Release("1.2.3.4");
  EXPECT_EQ(admission.connections(), 99u);
  EXPECT_TRUE(admission.AddUser("u"));
}

TEST(Admission, TheNodeLimitRefusesAtCapacityAndReleaseGivesTheSlotBack) {
  AdmissionLimits limits;
  limits.connection_limit = 2;
  Admission admission(limits, 1);
  EXPECT_TRUE(admission.enabled());
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "b", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "c", kT), AdmitVerdict::kAtCapacity);
  EXPECT_EQ(admission.Admit(0, "c", kT), AdmitVerdict::kAtCapacity);
  EXPECT_EQ(admission.connections(), 2u);  // a refusal is not counted
  admission.Release("a");
  EXPECT_EQ(admission.connections(), 1u);
  EXPECT_EQ(admission.Admit(0, "c", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "d", kT), AdmitVerdict::kAtCapacity);
}

TEST(Admission, TheSoftBandAdmitsOnlyOnConditionOfRecovery) {
  AdmissionLimits limits;
  limits.soft_connection_limit = 1;
  limits.connection_limit = 3;
  Admission admission(limits, 1);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmittedIfRecovering);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmittedIfRecovering);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAtCapacity);
  EXPECT_TRUE(Admitted(AdmitVerdict::kAdmittedIfRecovering));
  EXPECT_FALSE(Admitted(AdmitVerdict::kAtCapacity));
  admission.Release("a");
  admission.Release("a");
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmittedIfRecovering);
  admission.Release("a");
  admission.Release("a");
  EXPECT_EQ(admission.connections(), 0u);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmitted);  // out of the band again
}

TEST(Admission, ThePerIpLimitCountsEachAddressApart) {
  AdmissionLimits limits;
  limits.ip_connection_limit = 2;
  Admission admission(limits, 1);
  EXPECT_EQ(admission.Admit(0, "10.0.0.1", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "10.0.0.1", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "10.0.0.1", kT), AdmitVerdict::kIpLimit);
  EXPECT_EQ(admission.Admit(0, "10.0.0.2", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.connections(), 3u);  // the refused one gave its node slot back
  admission.Release("10.0.0.1");
  EXPECT_EQ(admission.Admit(0, "10.0.0.1", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "10.0.0.1", kT), AdmitVerdict::kIpLimit);
  // Releasing another address does not free this one's slots.
  admission.Release("10.0.0.2");
  EXPECT_EQ(admission.Admit(0, "10.0.0.1", kT), AdmitVerdict::kIpLimit);
}

TEST(Admission, ThePerIpRateRefillsWithTime) {
  AdmissionLimits limits;
  limits.ip_rate = {/*rate=*/2, /*burst=*/2};
  Admission admission(limits, 1);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kIpRate);
  EXPECT_EQ(admission.Admit(0, "b", kT), AdmitVerdict::kAdmitted);  // its own bucket
  // A release gives the connection back, not the token.
  admission.Release("a");
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kIpRate);
  EXPECT_EQ(admission.connections(), 2u);
  // 2 per second: one token every 500 ms.
  EXPECT_EQ(admission.Admit(0, "a", kT + 499), AdmitVerdict::kIpRate);
  EXPECT_EQ(admission.Admit(0, "a", kT + 500), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "a", kT + 500), AdmitVerdict::kIpRate);
  EXPECT_EQ(admission.Admit(0, "a", kT + 2000), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "a", kT + 2000), AdmitVerdict::kAdmitted);  // full burst again
  EXPECT_EQ(admission.Admit(0, "a", kT + 2000), AdmitVerdict::kIpRate);
}

TEST(Admission, TheNodeRateIsSplitIntoOneBucketPerLoop) {
  AdmissionLimits limits;
  limits.node_rate = {/*rate=*/4, /*burst=*/4};
  Admission admission(limits, 2);  // each loop: 2/s, burst 2
  EXPECT_EQ(admission.Admit(0, "a", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "b", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "c", kT), AdmitVerdict::kNodeRate);
  EXPECT_EQ(admission.Admit(1, "c", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(1, "d", kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(1, "e", kT), AdmitVerdict::kNodeRate);
  EXPECT_EQ(admission.connections(), 4u);
  EXPECT_EQ(admission.Admit(0, "c", kT + 500), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, "c", kT + 500), AdmitVerdict::kNodeRate);
}

TEST(Admission, UsersAreLimitedApartAndRemovalGivesTheSlotBack) {
  AdmissionLimits limits;
  limits.user_connection_limit = 2;
  Admission admission(limits, 1);
  EXPECT_TRUE(admission.AddUser("alice"));
  EXPECT_TRUE(admission.AddUser("alice"));
  EXPECT_FALSE(admission.AddUser("alice"));
  EXPECT_FALSE(admission.AddUser("alice"));  // a refusal counts nothing
  EXPECT_TRUE(admission.AddUser("bob"));
  admission.RemoveUser("alice");
  EXPECT_TRUE(admission.AddUser("alice"));
  EXPECT_FALSE(admission.AddUser("alice"));
  admission.RemoveUser("alice");
  admission.RemoveUser("alice");
  admission.RemoveUser("alice");  // one too many: ignored, not negative
  EXPECT_TRUE(admission.AddUser("alice"));
  EXPECT_TRUE(admission.AddUser("alice"));
  EXPECT_FALSE(admission.AddUser("alice"));
  // Anonymous connections have no user to count.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(admission.AddUser(""));
}

TEST(Admission, AFullIpTableForgetsTheRateMemoryOfIdleAddresses) {
  AdmissionLimits limits;
  limits.ip_rate = {/*rate=*/1, /*burst=*/1};
  limits.ip_table_size = 0;  // one entry per shard at most
  Admission admission(limits, 1);
  // Another address in the same shard (16 shards, by the same hash).
  const std::string a = "10.0.0.1";
  std::string b;
  for (int i = 2; b.empty(); ++i) {
    const std::string candidate = "10.0.0." + std::to_string(i);
    if (std::hash<std::string_view>()(candidate) % 16 == std::hash<std::string_view>()(a) % 16) {
      b = candidate;
    }
  }
  EXPECT_EQ(admission.Admit(0, a, kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, a, kT), AdmitVerdict::kIpRate);
  admission.Release(a);
  // b's entry does not fit: a, idle, is dropped with its rate memory (erring towards
  // admission), so a is admitted again at once.
  EXPECT_EQ(admission.Admit(0, b, kT), AdmitVerdict::kAdmitted);
  EXPECT_EQ(admission.Admit(0, a, kT), AdmitVerdict::kAdmitted);
  // b, just admitted, still remembers its connect.
  EXPECT_EQ(admission.Admit(0, b, kT), AdmitVerdict::kIpRate);
}

TEST(Admission, VerdictNamesAreTheMetricsLabels) {
  EXPECT_EQ(AdmitVerdictName(AdmitVerdict::kAdmitted), "admitted");
  EXPECT_EQ(AdmitVerdictName(AdmitVerdict::kAdmittedIfRecovering), "soft_limit");
  EXPECT_EQ(AdmitVerdictName(AdmitVerdict::kAtCapacity), "capacity");
  EXPECT_EQ(AdmitVerdictName(AdmitVerdict::kNodeRate), "node_rate");
  EXPECT_EQ(AdmitVerdictName(AdmitVerdict::kIpLimit), "ip_limit");
  EXPECT_EQ(AdmitVerdictName(AdmitVerdict::kIpRate), "ip_rate");
}

}  // namespace
}  // namespace hermod::core
