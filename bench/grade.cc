#include "grade.h"

#include <simdjson.h>

#include <algorithm>
#include <limits>

#include "json_writer.h"

namespace hermod::bench {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// measured / limit where lower is better; limit / measured where higher is better.
double Ratio(double value, double limit, bool higher_is_better) {
  if (higher_is_better) {
    if (value <= 0) return limit > 0 ? kInf : 0;
    return limit / value;
  }
  if (limit <= 0) return value > 0 ? kInf : 0;
  return value / limit;
}

}  // namespace

bool ParseSlo(std::string_view json, Slo& slo, std::string* error) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (parser.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(obj) != simdjson::SUCCESS) {
    *error = "SLO file is not a JSON object";
    return false;
  }
  for (auto [key, value] : obj) {
    double v = 0;
    if (value.is_double()) {
      v = value.get_double().value_unsafe();
    } else if (value.is_uint64()) {
      v = static_cast<double>(value.get_uint64().value_unsafe());
    } else if (value.is_int64()) {
      v = static_cast<double>(value.get_int64().value_unsafe());
    } else {
      *error = "SLO key " + std::string(key) + ": not a number";
      return false;
    }
    if (key == "p50_ms") {
      slo.p50_ms = v;
    } else if (key == "p95_ms") {
      slo.p95_ms = v;
    } else if (key == "p99_ms") {
      slo.p99_ms = v;
    } else if (key == "p999_ms") {
      slo.p999_ms = v;
    } else if (key == "error_rate") {
      slo.error_rate = v;
    } else if (key == "throughput") {
      slo.throughput = v;
    } else if (key == "connects_per_s") {
      slo.connects_per_s = v;
    } else {
      *error = "SLO key " + std::string(key) +
               ": unknown (p50_ms, p95_ms, p99_ms, p999_ms, error_rate, throughput, "
               "connects_per_s)";
      return false;
    }
  }
  return true;
}

std::string GradeFor(double worst) {
  if (worst <= 0.5) return "A+";
  if (worst <= 0.8) return "A";
  if (worst <= 1.0) return "B";
  if (worst <= 1.25) return "C";
  if (worst <= 1.6) return "D";
  return "F";
}

GradeResult Grade(const Slo& slo, const Summary& m) {
  GradeResult g;
  auto check = [&](const char* name, const std::optional<double>& limit, double value,
                   bool higher_is_better) {
    if (!limit) return;
    GradeCheck c;
    c.name = name;
    c.limit = *limit;
    c.value = value;
    c.ratio = Ratio(value, *limit, higher_is_better);
    c.ok = c.ratio <= 1.0;
    g.worst = std::max(g.worst, c.ratio);
    g.checks.push_back(c);
  };
  check("p50_ms", slo.p50_ms, m.latency.p50 / 1000.0, false);
  check("p95_ms", slo.p95_ms, m.latency.p95 / 1000.0, false);
  check("p99_ms", slo.p99_ms, m.latency.p99 / 1000.0, false);
  check("p999_ms", slo.p999_ms, m.latency.p999 / 1000.0, false);
  check("error_rate", slo.error_rate, m.error_rate, false);
  check("throughput", slo.throughput, m.deliveries_per_s, true);
  check("connects_per_s", slo.connects_per_s, m.connects_per_s, true);
  g.grade = GradeFor(g.worst);
  return g;
}

void WriteGrade(JsonWriter& w, const GradeResult& g) {
  w.Key("grade").BeginObject();
  w.Field("grade", g.grade).Field("worst_ratio", g.worst);
  w.Key("checks").BeginArray();
  for (const GradeCheck& c : g.checks) {
    w.BeginObject()
        .Field("name", c.name)
        .Field("limit", c.limit)
        .Field("value", c.value)
        .Field("ratio", c.ratio)
        .Field("ok", c.ok)
        .EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace hermod::bench
