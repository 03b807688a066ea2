#include "metrics/prometheus_text.h"

#include <gtest/gtest.h>

namespace hermod::metrics {
namespace {

TEST(PrometheusText, WritesHelpTypeAndSamples) {
  PrometheusText t;
  t.Family("hermod_x_total", "counter", "Things.");
  t.Sample("hermod_x_total", {{"loop", "0"}}, uint64_t{7});
  t.Sample("hermod_x_total", {}, 0.5);
  EXPECT_EQ(t.text(),
            "# HELP hermod_x_total Things.\n# TYPE hermod_x_total counter\n"
            "hermod_x_total{loop=\"0\"} 7\nhermod_x_total 0.5\n");
}

TEST(PrometheusText, EscapesBackslashQuoteAndNewlineInLabelValues) {
  PrometheusText t;
  t.Sample("m", {{"a", "x\\y\"z\nw"}, {"b", "c"}}, uint64_t{1});
  EXPECT_EQ(t.text(), "m{a=\"x\\\\y\\\"z\\nw\",b=\"c\"} 1\n");
}

TEST(PrometheusText, WritesNonFiniteValuesAsTheFormatSpells) {
  PrometheusText t;
  t.Sample("m", {}, std::numeric_limits<double>::infinity());
  t.Sample("m", {}, std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(t.text(), "m +Inf\nm NaN\n");
}

TEST(RenderMetrics, ReportsALoopThatMissedTheDeadlineAsDownAndSkipsItsCounters) {
  std::vector<LoopSnapshot> loops(2);
  loops[0].loop = 0;
  loops[0].answered = true;
  loops[0].ws.messages_in = 42;
  loops[1].loop = 1;
  std::string text =
      RenderMetrics(loops, ProcessStats{}, HealthFigures{}, BuildInfo{"1", "c"}, MethodLabels{});
  EXPECT_NE(text.find("hermod_loop_up{loop=\"0\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("hermod_loop_up{loop=\"1\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("hermod_websocket_messages_received_total{loop=\"0\"} 42\n"),
            std::string::npos);
  EXPECT_EQ(text.find("hermod_websocket_messages_received_total{loop=\"1\"}"), std::string::npos);
}

}  // namespace
}  // namespace hermod::metrics
