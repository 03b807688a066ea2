// Grades A+ to F against service-level objectives read from a JSON file:
//
//   {"p95_ms": 5, "p99_ms": 10, "error_rate": 0.001, "throughput": 50000}
//
// (any subset; also p50_ms, p999_ms and connects_per_s). Each objective gives a ratio, the
// measured figure over its limit (limit over figure for throughputs, where higher is better),
// so 1.0 is exactly on the objective. The grade is set by the worst ratio:
//
//   <= 0.5 A+   <= 0.8 A   <= 1.0 B   <= 1.25 C   <= 1.6 D   otherwise F
//
// B therefore means "meets every objective"; A and A+ mean "with that much headroom".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "report.h"

namespace hermod::bench {

class JsonWriter;

struct Slo {
  std::optional<double> p50_ms, p95_ms, p99_ms, p999_ms, error_rate, throughput, connects_per_s;
};

struct GradeCheck {
  std::string name;
  double limit = 0;
  double value = 0;
  double ratio = 0;
  bool ok = false;
};

struct GradeResult {
  std::string grade;
  double worst = 0;
  std::vector<GradeCheck> checks;
};

bool ParseSlo(std::string_view json, Slo& slo, std::string* error);
std::string GradeFor(double worst_ratio);
GradeResult Grade(const Slo& slo, const Summary& summary);
void WriteGrade(JsonWriter& w, const GradeResult& grade);

}  // namespace hermod::bench
