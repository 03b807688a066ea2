#include "grade.h"

#include <gtest/gtest.h>

namespace hermod::bench {
namespace {

Summary WithLatencyMs(double p95, double p99) {
  Summary m;
  m.latency.p95 = p95 * 1000;
  m.latency.p99 = p99 * 1000;
  m.deliveries_per_s = 10'000;
  return m;
}

TEST(GradeTest, WorstRatioSetsTheGrade) {
  EXPECT_EQ(GradeFor(0.0), "A+");
  EXPECT_EQ(GradeFor(0.5), "A+");
  EXPECT_EQ(GradeFor(0.51), "A");
  EXPECT_EQ(GradeFor(0.8), "A");
  EXPECT_EQ(GradeFor(1.0), "B");
  EXPECT_EQ(GradeFor(1.2), "C");
  EXPECT_EQ(GradeFor(1.5), "D");
  EXPECT_EQ(GradeFor(1.61), "F");
}

TEST(GradeTest, MeetingEveryObjectiveExactlyIsB) {
  Slo slo;
  slo.p95_ms = 5;
  slo.p99_ms = 10;
  slo.throughput = 10'000;
  GradeResult g = Grade(slo, WithLatencyMs(5, 10));
  EXPECT_EQ(g.grade, "B");
  ASSERT_EQ(g.checks.size(), 3u);
  for (const GradeCheck& c : g.checks) EXPECT_TRUE(c.ok) << c.name;
}

TEST(GradeTest, ThroughputIsHigherIsBetter) {
  Slo slo;
  slo.throughput = 40'000;  // measured 10,000: four times short
  GradeResult g = Grade(slo, WithLatencyMs(1, 1));
  EXPECT_EQ(g.grade, "F");
  EXPECT_DOUBLE_EQ(g.worst, 4.0);
  slo.throughput = 4'000;
  EXPECT_EQ(Grade(slo, WithLatencyMs(1, 1)).grade, "A+");
}

TEST(GradeTest, OneMissedObjectiveOutweighsTheRest) {
  Slo slo;
  slo.p95_ms = 100;
  slo.p99_ms = 10;
  GradeResult g = Grade(slo, WithLatencyMs(1, 12));  // p99 20 % over
  EXPECT_EQ(g.grade, "C");
  EXPECT_FALSE(g.checks[1].ok);
}

TEST(GradeTest, ZeroErrorRateObjectiveFailsOnAnyError) {
  Slo slo;
  slo.error_rate = 0;
  Summary m;
  m.error_rate = 0;
  EXPECT_EQ(Grade(slo, m).grade, "A+");
  m.error_rate = 1e-6;
  EXPECT_EQ(Grade(slo, m).grade, "F");
}

TEST(GradeTest, ParsesSloFilesAndNamesBadKeys) {
  Slo slo;
  std::string error;
  ASSERT_TRUE(ParseSlo(R"({"p95_ms": 5, "p99_ms": 10.5, "error_rate": 0.001,
                          "throughput": 50000})",
                       slo, &error))
      << error;
  EXPECT_DOUBLE_EQ(*slo.p99_ms, 10.5);
  EXPECT_DOUBLE_EQ(*slo.throughput, 50000);
  EXPECT_FALSE(slo.p50_ms.has_value());
  EXPECT_FALSE(ParseSlo(R"({"p98_ms": 5})", slo, &error));
  EXPECT_NE(error.find("p98_ms"), std::string::npos);
  EXPECT_FALSE(ParseSlo(R"({"p95_ms": "fast"})", slo, &error));
  EXPECT_FALSE(ParseSlo("[1]", slo, &error));
}

}  // namespace
}  // namespace hermod::bench
