#include "regression.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

namespace hermod::bench {

namespace {

struct Figure {
  const char* name;
  bool higher_is_better;
  const char* present_if;  // compared only when this figure is non-zero in the old report
};

constexpr Figure kFigures[] = {
    {"deliveries_per_s", true, "delivered"},
    {"latency_us.p50", false, "latency_us.count"},
    {"latency_us.p99", false, "latency_us.count"},
    {"connect.per_s", true, "connect.per_s"},
    {"connect.latency_us.p99", false, "connect.latency_us.count"},
    {"error_rate", false, nullptr},
};

// Error rates near zero make fractions meaningless: below this, a change is not a regression.
constexpr double kErrorRateFloor = 1e-4;

}  // namespace

Comparison CompareFigures(const std::map<std::string, double>& old_figures,
                          const std::map<std::string, double>& new_figures, double tolerance) {
  Comparison c;
  for (const Figure& f : kFigures) {
    auto o = old_figures.find(f.name);
    auto n = new_figures.find(f.name);
    if (o == old_figures.end() || n == new_figures.end()) continue;
    if (f.present_if) {
      auto p = old_figures.find(f.present_if);
      if (p == old_figures.end() || p->second == 0) continue;
    }
    FigureChange ch;
    ch.name = f.name;
    ch.old_value = o->second;
    ch.new_value = n->second;
    if (std::string_view(f.name) == "error_rate") {
      double base = std::max(ch.old_value, kErrorRateFloor);
      ch.worse_by = (ch.new_value - ch.old_value) / base;
      ch.regression = ch.new_value > kErrorRateFloor && ch.worse_by > tolerance;
    } else if (ch.old_value > 0) {
      ch.worse_by = f.higher_is_better ? (ch.old_value - ch.new_value) / ch.old_value
                                       : (ch.new_value - ch.old_value) / ch.old_value;
      ch.regression = ch.worse_by > tolerance;
    }
    c.regression = c.regression || ch.regression;
    c.figures.push_back(ch);
  }
  return c;
}

std::string FormatComparison(const Comparison& c) {
  std::string out = "figure                            old           new  worse by\n";
  for (const FigureChange& f : c.figures) {
    char line[160];
    std::snprintf(line, sizeof(line), "%-24s %12.4g  %12.4g  %+8.1f%% %s\n", f.name.c_str(),
                  f.old_value, f.new_value, 100.0 * f.worse_by, f.regression ? "REGRESSION" : "");
    out += line;
  }
  out += c.regression ? "result: regression\n" : "result: no regression\n";
  return out;
}

}  // namespace hermod::bench
