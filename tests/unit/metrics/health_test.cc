#include "metrics/health.h"

#include <gtest/gtest.h>

#include <thread>

namespace hermod::metrics {
namespace {

config::Config::Health Options() {
  config::Config::Health o;
  o.loop_deadline_ms = 50;
  o.check_interval_ms = 60 * 1000;  // only the first, synchronous check runs
  return o;
}

TEST(HealthMonitor, HealthyWhenEveryLoopAnswers) {
  net::Loop a(0, 4096);
  std::thread ta([&] { a.Run(); });
  HealthMonitor monitor(Options(), std::vector<net::Loop*>{&a});
  monitor.Start();
  EXPECT_TRUE(monitor.Ready());
  EXPECT_EQ(monitor.Figures().level, 0);
  EXPECT_NE(monitor.Json().find("\"level\":\"healthy\""), std::string::npos);
  monitor.Stop();
  a.Post([&] { a.Stop(); });
  ta.join();
}

TEST(HealthMonitor, ALoopMissingTheDeadlineIsUnhealthyAndNamedInTheTransition) {
  net::Loop a(0, 4096), stuck(1, 4096);  // `stuck` never runs
  std::thread ta([&] { a.Run(); });
  HealthMonitor monitor(Options(), std::vector<net::Loop*>{&a, &stuck});
  monitor.Start();
  EXPECT_FALSE(monitor.Ready());
  EXPECT_EQ(monitor.Figures().level, 2);
  EXPECT_EQ(monitor.Figures().transitions, 1u);
  std::string json = monitor.Json();
  EXPECT_NE(json.find("\"level\":\"unhealthy\""), std::string::npos);
  EXPECT_NE(json.find("loops 1 did not answer within 50 ms"), std::string::npos) << json;
  monitor.Stop();
  a.Post([&] { a.Stop(); });
  ta.join();
}

TEST(HealthMonitor, NoLoopAnsweringIsCritical) {
  net::Loop stuck(0, 4096);
  HealthMonitor monitor(Options(), std::vector<net::Loop*>{&stuck});
  monitor.Start();
  EXPECT_EQ(monitor.Figures().level, 3);
  monitor.Stop();
}

TEST(HealthMonitor, DrainingFailsReadinessWhateverTheLevel) {
  net::Loop a(0, 4096);
  std::thread ta([&] { a.Run(); });
  HealthMonitor monitor(Options(), std::vector<net::Loop*>{&a});
  monitor.Start();
  ASSERT_TRUE(monitor.Ready());
  monitor.SetDraining();
  EXPECT_FALSE(monitor.Ready());
  EXPECT_NE(monitor.Json().find("\"draining\":true"), std::string::npos);
  monitor.Stop();
  a.Post([&] { a.Stop(); });
  ta.join();
}

}  // namespace
}  // namespace hermod::metrics
