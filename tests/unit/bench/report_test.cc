#include "report.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "grade.h"

namespace hermod::bench {
namespace {

RunResult SampleResult() {
  RunResult r;
  r.measured_s = 2.0;
  RunStats& s = r.stats;
  for (uint64_t i = 1; i <= 1000; ++i) s.latency.Record(i * 1000);  // 1 us .. 1 ms
  s.connect_latency.Record(250'000);
  s.sent = 1000;
  s.delivered = 990;
  s.lost = 4;
  s.duplicates = 2;
  s.bytes_in = 64'000;
  s.connects_ok = 11;
  s.connects_failed = 1;
  s.AddError("connect: Connection refused");
  s.At(0).delivered = 500;
  s.At(1).delivered = 490;
  s.server.push_back({1.0, 20480, 55.5});
  return r;
}

RunConfig SampleConfig() {
  RunConfig c;
  c.url = "ws://127.0.0.1:8080/";
  c.scenario = Scenario::kFanout;
  c.protocol = Protocol::kNats;
  c.connections = 10;
  c.publishers = 1;
  return c;
}

TEST(ReportTest, SummaryFiguresFollowFromTheStats) {
  Summary m = Summarize(SampleConfig(), SampleResult());
  EXPECT_EQ(m.expected, 10'000u);  // 1,000 sent x 10 subscribers
  EXPECT_EQ(m.undelivered, 10'000u - 990 - 4);
  EXPECT_DOUBLE_EQ(m.deliveries_per_s, 495.0);
  EXPECT_NEAR(m.latency.p50, 500.0, 5.0);  // microseconds
  EXPECT_NEAR(m.latency.p99, 990.0, 8.0);
  EXPECT_EQ(m.errors, 1u);
}

// A burst published in 50 ms (publishers counted out) whose deliveries arrive over 2 s, as
// -r 0 -n does: the rates are over the 2 s, not the 50 ms (which made them 40 times too high).
TEST(ReportTest, DeliveryRatesSpanTheDeliveriesNotJustThePublishing) {
  RunResult r = SampleResult();
  r.measured_s = 0.05;
  r.delivery_s = 2.0;
  r.stats.delivered = 10'000;
  r.stats.bytes_in = 640'000;
  Summary m = Summarize(SampleConfig(), r);
  EXPECT_DOUBLE_EQ(m.deliveries_per_s, 5'000.0);
  EXPECT_DOUBLE_EQ(m.bytes_in_per_s, 320'000.0);
  EXPECT_DOUBLE_EQ(m.sent_per_s, 1000 / 0.05);  // publishing: over the measured phase
  EXPECT_DOUBLE_EQ(m.delivery_s, 2.0);
  // Deliveries that all arrived within the measured phase: over the measured phase.
  r.delivery_s = 0.04;
  EXPECT_DOUBLE_EQ(Summarize(SampleConfig(), r).deliveries_per_s, 10'000 / 0.05);
}

// With --server-pid the server's CPU over the measured phase and drain gives its capacity
// apart from the load generator's; without it the figures are absent, not zero-divided.
TEST(ReportTest, DeliveriesPerServerCpuSecondComeFromTheSampledWindow) {
  RunResult r = SampleResult();
  r.server_cpu_s = 0.5;
  Summary m = Summarize(SampleConfig(), r);
  EXPECT_DOUBLE_EQ(m.deliveries_per_server_cpu_s, static_cast<double>(r.stats.delivered) / 0.5);
  std::string json = ReportJson(SampleConfig(), r, m, nullptr);
  EXPECT_NE(json.find("\"deliveries_per_server_cpu_s\""), std::string::npos) << json;
  r.server_cpu_s = 0;
  m = Summarize(SampleConfig(), r);
  EXPECT_EQ(m.deliveries_per_server_cpu_s, 0.0);
  EXPECT_EQ(ReportJson(SampleConfig(), r, m, nullptr).find("server_cpu_s"), std::string::npos);
}

TEST(ReportTest, JsonHasTheDocumentedSchema) {
  RunConfig c = SampleConfig();
  RunResult r = SampleResult();
  Summary m = Summarize(c, r);
  Slo slo;
  slo.p99_ms = 10;
  GradeResult g = Grade(slo, m);
  std::string json = ReportJson(c, r, m, &g);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::string_view(doc["schema"]), kReportSchema);
  EXPECT_EQ(std::string_view(doc["config"]["protocol"]), "nats");
  EXPECT_EQ(std::string_view(doc["config"]["scenario"]), "fanout");
  EXPECT_EQ(uint64_t(doc["config"]["connections"]), 11u);
  for (const char* key :
       {"measured_s", "delivery_s", "sent", "delivered", "expected", "undelivered", "lost",
        "duplicates", "sent_per_s", "deliveries_per_s", "bytes_in_per_s", "errors", "error_rate",
        "disconnects", "latency_us", "connect"}) {
    EXPECT_FALSE(doc["summary"][key].error()) << key;
  }
  for (const char* key : {"count", "p50", "p90", "p95", "p99", "p999", "max", "mean"}) {
    EXPECT_FALSE(doc["summary"]["latency_us"][key].error()) << key;
    EXPECT_FALSE(doc["summary"]["connect"]["latency_us"][key].error()) << key;
  }
  EXPECT_EQ(std::string_view(doc["grade"]["grade"]), "A+");
  EXPECT_EQ(uint64_t(doc["errors"]["connect: Connection refused"]), 1u);
  EXPECT_EQ(simdjson::dom::array(doc["timeline"]).size(), 2u);
  EXPECT_EQ(uint64_t(doc["timeline"].at(1)["delivered"]), 490u);
  EXPECT_EQ(uint64_t(doc["server"].at(0)["rss_kb"]), 20480u);
  EXPECT_EQ(uint64_t(doc["histograms"]["latency"]["count"]), 1000u);

  std::map<std::string, double> figures;
  std::string error;
  ASSERT_TRUE(ReadSummaryFigures(json, figures, &error)) << error;
  EXPECT_DOUBLE_EQ(figures["deliveries_per_s"], 495.0);
  EXPECT_GT(figures["latency_us.p99"], 900.0);
  EXPECT_EQ(figures.count("connect.latency_us.p99"), 1u);
}

TEST(ReportTest, WorkerResultsMergeExactly) {
  RunResult a = SampleResult(), b = SampleResult();
  a.delivery_s = 2.5;
  a.stats.last_delivery_ns = 7'000;  // the latest of the loops' (not sent across processes)
  b.stats.latency.Record(5'000'000);
  std::string error;
  RunResult a2, b2;
  ASSERT_TRUE(ResultFromJson(ResultToJson(a), a2, &error)) << error;
  ASSERT_TRUE(ResultFromJson(ResultToJson(b), b2, &error)) << error;
  RunStats merged;
  merged.Merge(a2.stats);
  merged.Merge(b2.stats);
  RunStats direct = a.stats;
  direct.Merge(b.stats);
  EXPECT_EQ(merged.latency.NonZero(), direct.latency.NonZero());
  EXPECT_EQ(merged.latency.max(), 5'000'000u);
  EXPECT_EQ(merged.latency.ValueAt(0.999), direct.latency.ValueAt(0.999));
  EXPECT_EQ(merged.delivered, 1980u);
  EXPECT_EQ(merged.lost, 8u);
  EXPECT_EQ(merged.errors.at("connect: Connection refused"), 2u);
  EXPECT_EQ(merged.timeline.at(1).delivered, 980u);
  EXPECT_DOUBLE_EQ(a2.measured_s, 2.0);
  EXPECT_DOUBLE_EQ(a2.delivery_s, 2.5);
  EXPECT_EQ(direct.last_delivery_ns, 7'000u);  // loops merge by the latest
}

TEST(ReportTest, RejectsWhatIsNotAReport) {
  std::map<std::string, double> figures;
  std::string error;
  EXPECT_FALSE(ReadSummaryFigures("{\"schema\":\"other\"}", figures, &error));
  EXPECT_FALSE(ReadSummaryFigures("not json", figures, &error));
  RunResult r;
  EXPECT_FALSE(ResultFromJson("{}", r, &error));
}

}  // namespace
}  // namespace hermod::bench
