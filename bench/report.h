// The JSON report: a summary of the run's figures (what grades, comparisons and people read),
// the time series, errors by reason, and the raw histograms, from which every percentile can
// be recomputed and by which worker processes send their results to the parent exactly.
//
// Schema "hermod-bench/1"; tests/unit/bench/report_test.cc pins its shape.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "run_config.h"
#include "run_stats.h"
#include "runner.h"

namespace hermod::bench {

inline constexpr std::string_view kReportSchema = "hermod-bench/1";

struct LatencySummary {
  uint64_t count = 0;
  double p50 = 0, p90 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;  // microseconds
};

struct Summary {
  double measured_s = 0;
  double delivery_s = 0;  // start to the last delivery; delivery rates divide by this
  uint64_t sent = 0, delivered = 0, expected = 0, undelivered = 0, lost = 0, duplicates = 0,
           unstamped = 0, early_starts = 0;
  // lost = lost_told + lost_silently (run_stats.h), and the subscribers behind them.
  uint64_t lost_told = 0, lost_silently = 0, subscribers_lost = 0, subscribers_lost_silently = 0,
           subscribers_told = 0;
  double sent_per_s = 0, deliveries_per_s = 0, bytes_in_per_s = 0;
  LatencySummary latency;
  uint64_t connects_ok = 0, connects_failed = 0, disconnects = 0;
  double connects_per_s = 0;
  LatencySummary connect;
  uint64_t errors = 0;
  double error_rate = 0;  // (errors + lost + undelivered) / (connections tried + expected)
  // With --server-pid: the server's CPU over the measured phase and drain, and deliveries per
  // second of it (its capacity apart from the load generator's); 0 when not sampled.
  double server_cpu_s = 0;
  double deliveries_per_server_cpu_s = 0;
};

// The share of expected deliveries that never arrived (lost in a sequence, or undelivered at
// the end); 0 when nothing was expected.
inline double LossFraction(const Summary& m) {
  return m.expected == 0
             ? 0.0
             : static_cast<double>(m.lost + m.undelivered) / static_cast<double>(m.expected);
}
// "17.6%", "0%", "0.012%": a fraction as a percentage readers do not have to decode.
std::string Percent(double fraction);

LatencySummary Summarize(const Histogram& h);
Summary Summarize(const RunConfig& config, const RunResult& result);

struct GradeResult;  // grade.h

std::string ReportJson(const RunConfig& config, const RunResult& result, const Summary& summary,
                       const GradeResult* grade);

// Results of a worker process, for the parent to merge: stats and histograms in full.
std::string ResultToJson(const RunResult& result);
bool ResultFromJson(std::string_view json, RunResult& result, std::string* error);

// The figures of a report's summary by name ("deliveries_per_s", "latency_us.p99", ...), for
// --compare and bench/compare.
bool ReadSummaryFigures(std::string_view json, std::map<std::string, double>& figures,
                        std::string* error);

}  // namespace hermod::bench
