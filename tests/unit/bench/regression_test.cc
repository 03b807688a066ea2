#include "regression.h"

#include <gtest/gtest.h>

namespace hermod::bench {
namespace {

std::map<std::string, double> Figures(double throughput, double p99, double error_rate) {
  return {{"delivered", 1000},        {"deliveries_per_s", throughput},
          {"latency_us.count", 1000}, {"latency_us.p50", p99 / 4},
          {"latency_us.p99", p99},    {"error_rate", error_rate}};
}

TEST(RegressionTest, WithinToleranceIsNotARegression) {
  Comparison c = CompareFigures(Figures(10'000, 1000, 0), Figures(9'100, 1090, 0), 0.1);
  EXPECT_FALSE(c.regression) << FormatComparison(c);
}

TEST(RegressionTest, LowerThroughputBeyondToleranceRegresses) {
  Comparison c = CompareFigures(Figures(10'000, 1000, 0), Figures(8'900, 1000, 0), 0.1);
  EXPECT_TRUE(c.regression);
  EXPECT_NEAR(c.figures[0].worse_by, 0.11, 1e-9);
}

TEST(RegressionTest, HigherLatencyBeyondToleranceRegresses) {
  Comparison c = CompareFigures(Figures(10'000, 1000, 0), Figures(10'000, 1200, 0), 0.1);
  EXPECT_TRUE(c.regression);
  EXPECT_NE(FormatComparison(c).find("REGRESSION"), std::string::npos);
}

TEST(RegressionTest, ImprovementsNeverRegress) {
  Comparison c = CompareFigures(Figures(10'000, 1000, 0.01), Figures(20'000, 500, 0), 0.0);
  EXPECT_FALSE(c.regression) << FormatComparison(c);
}

TEST(RegressionTest, ErrorRateFromZeroRegressesOnlyAboveTheFloor) {
  EXPECT_FALSE(CompareFigures(Figures(1, 1, 0), Figures(1, 1, 5e-5), 0.1).regression);
  EXPECT_TRUE(CompareFigures(Figures(1, 1, 0), Figures(1, 1, 0.01), 0.1).regression);
}

TEST(RegressionTest, FiguresAbsentFromTheOldRunAreSkipped) {
  std::map<std::string, double> old_figures = {{"deliveries_per_s", 0}, {"delivered", 0}};
  Comparison c = CompareFigures(old_figures, Figures(1, 1, 0), 0.1);
  EXPECT_FALSE(c.regression);
  EXPECT_TRUE(c.figures.empty());
}

}  // namespace
}  // namespace hermod::bench
