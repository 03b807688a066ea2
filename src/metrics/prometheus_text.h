// The Prometheus text exposition format, version 0.0.4, written by hand: one `# HELP` and
// one `# TYPE` line per family, then its samples, `name{label="value"} number`. Label values
// are escaped (backslash, double quote, newline) as the format asks; HELP text is ours and
// plain.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/loop_snapshot.h"
#include "metrics/process_stats.h"

namespace hermod::metrics {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

class PrometheusText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // type: "counter", "gauge" or "histogram".
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, Labels labels, uint64_t value);
  void Sample(std::string_view name, Labels labels, double value);

  const std::string& text() const { return out_; }

 private:
  void Head(std::string_view name, Labels labels);
  std::string out_;
};

// What the health monitor adds to a scrape.
struct HealthFigures {
  int level = 0;  // 0 healthy, 1 degraded, 2 unhealthy, 3 critical
  uint64_t transitions = 0;
  bool ready = true;
};

struct BuildInfo {
  std::string_view version;
  std::string_view compiler;
};

// The `method` labels, owned by the rooms whose methods they name (proto::kMethodNames,
// api::kMethodLabels) and handed over at start: the counters are indexed like these lists.
struct MethodLabels {
  std::span<const std::string_view> commands;
  std::span<const std::string_view> api;
};

// Every answered loop's figures added up (histograms merged; max_queued_bytes the largest).
LoopSnapshot MergeSnapshots(const std::vector<LoopSnapshot>& loops);
// What the error-rate health checks count.
uint64_t ProtocolErrorCloses(const LoopSnapshot& s);
uint64_t SlowConsumerCloses(const LoopSnapshot& s);

// The whole /metrics body.
std::string RenderMetrics(const std::vector<LoopSnapshot>& loops, const ProcessStats& process,
                          const HealthFigures& health, const BuildInfo& build,
                          const MethodLabels& methods);

}  // namespace hermod::metrics
