#include "report.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "grade.h"
#include "json_writer.h"

namespace hermod::bench {

namespace {

double Us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

void WriteLatency(JsonWriter& w, std::string_view key, const LatencySummary& l) {
  w.Key(key).BeginObject();
  w.Field("count", l.count)
      .Field("p50", l.p50)
      .Field("p90", l.p90)
      .Field("p95", l.p95)
      .Field("p99", l.p99)
      .Field("p999", l.p999)
      .Field("max", l.max)
      .Field("mean", l.mean);
  w.EndObject();
}

void WriteHistogram(JsonWriter& w, std::string_view key, const Histogram& h) {
  w.Key(key).BeginObject();
  w.Field("sub_bits", Histogram::kSubBits)
      .Field("count", h.count())
      .Field("min", h.min())
      .Field("max", h.max())
      .Field("sum", h.sum());
  w.Key("buckets").BeginArray();
  for (const auto& [index, n] : h.NonZero()) w.BeginArray().Uint(index).Uint(n).EndArray();
  w.EndArray();
  w.EndObject();
}

void WriteStats(JsonWriter& w, const RunStats& s) {
  w.Key("errors").BeginObject();
  for (const auto& [reason, n] : s.errors) w.Field(reason, n);
  w.EndObject();
  w.Key("timeline").BeginArray();
  for (size_t i = 0; i < s.timeline.size(); ++i) {
    const Second& t = s.timeline[i];
    w.BeginObject()
        .Field("t", static_cast<uint64_t>(i))
        .Field("sent", t.sent)
        .Field("delivered", t.delivered)
        .Field("bytes_in", t.bytes_in)
        .Field("bytes_out", t.bytes_out)
        .Field("errors", t.errors)
        .Field("connects", t.connects);
    // Coarse delivery latency of the second: p50/p99 for readers, the buckets for merging.
    w.Field("latency_p50_us", Us(t.latency.ValueAt(0.5)))
        .Field("latency_p99_us", Us(t.latency.ValueAt(0.99)));
    w.Key("latency_buckets").BeginArray();
    for (size_t b = 0; b < t.latency.counts.size(); ++b) {
      if (t.latency.counts[b] != 0) w.BeginArray().Uint(b).Uint(t.latency.counts[b]).EndArray();
    }
    w.EndArray().EndObject();
  }
  w.EndArray();
  w.Key("server").BeginArray();
  for (const ServerSample& p : s.server) {
    w.BeginObject().Field("t", p.t).Field("rss_kb", p.rss_kb).Field("cpu_pct", p.cpu_pct);
    w.EndObject();
  }
  w.EndArray();
  w.Key("histograms").BeginObject();
  WriteHistogram(w, "latency", s.latency);
  WriteHistogram(w, "connect", s.connect_latency);
  w.EndObject();
}

uint64_t U(simdjson::dom::element e, const char* key) {
  uint64_t v = 0;
  if (e[key].get_uint64().get(v) != simdjson::SUCCESS) {
    double d = 0;
    if (e[key].get_double().get(d) == simdjson::SUCCESS && d > 0) v = static_cast<uint64_t>(d);
  }
  return v;
}

double D(simdjson::dom::element e, const char* key) {
  double v = 0;
  simdjson::dom::element x;
  if (e[key].get(x) != simdjson::SUCCESS) return 0;
  if (x.is_double()) return x.get_double().value_unsafe();
  if (x.is_uint64()) return static_cast<double>(x.get_uint64().value_unsafe());
  if (x.is_int64()) return static_cast<double>(x.get_int64().value_unsafe());
  return v;
}

bool ReadHistogram(simdjson::dom::element e, Histogram& h) {
  std::vector<std::pair<uint32_t, uint64_t>> buckets;
  simdjson::dom::array arr;
  if (e["buckets"].get_array().get(arr) != simdjson::SUCCESS) return false;
  for (simdjson::dom::element b : arr) {
    uint64_t index = 0, n = 0;
    if (b.at(0).get_uint64().get(index) || b.at(1).get_uint64().get(n)) return false;
    buckets.emplace_back(static_cast<uint32_t>(index), n);
  }
  return h.Restore(buckets, U(e, "min"), U(e, "max"), D(e, "sum"));
}

void Flatten(simdjson::dom::element e, const std::string& prefix,
             std::map<std::string, double>& out) {
  if (e.is_object()) {
    for (auto [key, value] : simdjson::dom::object(e)) {
      Flatten(value, prefix.empty() ? std::string(key) : prefix + "." + std::string(key), out);
    }
  } else if (e.is_number()) {
    double v = 0;
    if (e.is_double()) {
      v = e.get_double().value_unsafe();
    } else if (e.is_uint64()) {
      v = static_cast<double>(e.get_uint64().value_unsafe());
    } else {
      v = static_cast<double>(e.get_int64().value_unsafe());
    }
    out[prefix] = v;
  }
}

}  // namespace

std::string Percent(double fraction) {
  const double pct = fraction * 100;
  char buf[32];
  if (pct == 0 || pct >= 0.1) {
    std::snprintf(buf, sizeof buf, "%.1f%%", pct);
  } else {
    std::snprintf(buf, sizeof buf, "%.2g%%", pct);  // keep a small loss visible: 0.012%
  }
  std::string out = buf;
  if (out == "0.0%") out = "0%";
  return out;
}

LatencySummary Summarize(const Histogram& h) {
  LatencySummary l;
  l.count = h.count();
  l.p50 = Us(h.ValueAt(0.50));
  l.p90 = Us(h.ValueAt(0.90));
  l.p95 = Us(h.ValueAt(0.95));
  l.p99 = Us(h.ValueAt(0.99));
  l.p999 = Us(h.ValueAt(0.999));
  l.max = Us(h.max());
  l.mean = h.mean() / 1000.0;
  return l;
}

Summary Summarize(const RunConfig& config, const RunResult& result) {
  const RunStats& s = result.stats;
  Summary m;
  m.measured_s = result.measured_s;
  m.delivery_s = std::max(result.measured_s, result.delivery_s);
  double secs = std::max(result.measured_s, 1e-9);
  // Deliveries counted include those that arrived during the drain: over the span they
  // arrived in, not over the publishing time (a burst published in 50 ms and delivered
  // over 2 s is not 40x faster than it was).
  double delivery_secs = std::max(m.delivery_s, 1e-9);
  m.sent = s.sent;
  m.delivered = s.delivered;
  // A broadcast server also returns messages to their publishers, which are not counted, and
  // echo-style scenarios are exact; both are expected = sent x receivers.
  m.expected =
      Effective(config) == Scenario::kStand ? s.expected : s.sent * ReceiversPerPublication(config);
  m.undelivered = m.expected > s.delivered + s.lost ? m.expected - s.delivered - s.lost : 0;
  m.lost = s.lost;
  m.lost_told = s.lost_told;
  m.lost_silently = s.lost_silently;
  m.subscribers_lost = s.subscribers_lost;
  m.subscribers_lost_silently = s.subscribers_lost_silently;
  m.subscribers_told = s.subscribers_told;
  m.duplicates = s.duplicates;
  m.unstamped = s.unstamped;
  m.early_starts = s.early_starts;
  m.sent_per_s = static_cast<double>(s.sent) / secs;
  m.deliveries_per_s = static_cast<double>(s.delivered) / delivery_secs;
  m.bytes_in_per_s = static_cast<double>(s.bytes_in) / delivery_secs;
  m.latency = Summarize(s.latency);
  m.connects_ok = s.connects_ok;
  m.connects_failed = s.connects_failed;
  m.disconnects = s.disconnects;
  uint64_t measured_connects = 0;
  for (const Second& t : s.timeline) measured_connects += t.connects;
  m.connects_per_s = static_cast<double>(measured_connects) / secs;
  m.connect = Summarize(s.connect_latency);
  m.errors = s.error_count();
  double operations = static_cast<double>(s.connects_ok + s.connects_failed + m.expected);
  double failures = static_cast<double>(m.errors + m.lost + m.undelivered);
  m.error_rate = operations > 0 ? failures / operations : 0;
  m.server_cpu_s = result.server_cpu_s;
  if (result.server_cpu_s > 0) {
    m.deliveries_per_server_cpu_s = static_cast<double>(s.delivered) / result.server_cpu_s;
  }
  return m;
}

std::string ReportJson(const RunConfig& config, const RunResult& result, const Summary& m,
                       const GradeResult* grade) {
  JsonWriter w;
  w.BeginObject();
  w.Field("schema", kReportSchema);
  w.Key("tool").BeginObject().Field("name", "hermod-bench").Field("version", "0.1.0");
  w.EndObject();
  w.Field("created_unix", static_cast<uint64_t>(std::time(nullptr)));
  w.Field("interrupted", result.interrupted);
  w.Key("config").BeginObject();
  w.Field("url", config.url)
      .Field("protocol", ProtocolName(config.protocol))
      .Field("scenario", ScenarioName(config.scenario))
      .Field("load", ScenarioName(Effective(config)))
      .Field("connections", TotalConnections(config))
      .Field("subscribers", config.connections)
      .Field("channels", config.channels)
      .Field("subscribers_per_channel", config.subscribers)
      .Field("publishers", PublisherCount(config))
      .Field("size", config.size)
      .Field("deflate", config.deflate)
      .Field("rate", config.rate)
      .Field("inflight", config.inflight)
      .Field("duration_s", config.duration_s)
      .Field("messages", config.messages)
      .Field("ramp", config.ramp)
      .Field("connect_rate", config.connect_rate)
      .Field("threads", config.threads)
      .Field("per_process", config.per_process);
  if (Effective(config) == Scenario::kStand) {
    w.Field("group_size", config.group_size)
        .Field("personal_rate", config.personal_rate)
        .Field("group_rate", config.group_rate)
        .Field("churners", StandChurners(config))
        .Field("targets", static_cast<uint64_t>(config.targets.size()));
  }
  w.EndObject();
  w.Key("summary").BeginObject();
  w.Field("measured_s", m.measured_s)
      .Field("delivery_s", m.delivery_s)
      .Field("sent", m.sent)
      .Field("delivered", m.delivered)
      .Field("expected", m.expected)
      .Field("undelivered", m.undelivered)
      .Field("lost", m.lost)
      .Field("lost_told", m.lost_told)
      .Field("lost_silently", m.lost_silently)
      .Field("subscribers_lost", m.subscribers_lost)
      .Field("subscribers_lost_silently", m.subscribers_lost_silently)
      .Field("subscribers_told", m.subscribers_told)
      .Field("duplicates", m.duplicates)
      .Field("unstamped", m.unstamped)
      .Field("early_starts", m.early_starts)
      .Field("sent_per_s", m.sent_per_s)
      .Field("deliveries_per_s", m.deliveries_per_s)
      .Field("bytes_in_per_s", m.bytes_in_per_s)
      .Field("errors", m.errors)
      .Field("error_rate", m.error_rate)
      .Field("disconnects", m.disconnects);
  if (m.server_cpu_s > 0) {
    w.Field("server_cpu_s", m.server_cpu_s)
        .Field("deliveries_per_server_cpu_s", m.deliveries_per_server_cpu_s);
  }
  WriteLatency(w, "latency_us", m.latency);
  w.Key("connect").BeginObject();
  w.Field("ok", m.connects_ok).Field("failed", m.connects_failed);
  w.Field("per_s", m.connects_per_s);
  WriteLatency(w, "latency_us", m.connect);
  w.EndObject();
  w.EndObject();
  if (grade) WriteGrade(w, *grade);
  WriteStats(w, result.stats);
  w.EndObject();
  return w.str() + "\n";
}

std::string ResultToJson(const RunResult& result) {
  const RunStats& s = result.stats;
  JsonWriter w;
  w.BeginObject();
  w.Field("measured_s", result.measured_s)
      .Field("delivery_s", result.delivery_s)
      .Field("interrupted", result.interrupted)
      .Field("sent", s.sent)
      .Field("delivered", s.delivered)
      .Field("expected", s.expected)
      .Field("bytes_in", s.bytes_in)
      .Field("bytes_out", s.bytes_out)
      .Field("lost", s.lost)
      .Field("lost_told", s.lost_told)
      .Field("lost_silently", s.lost_silently)
      .Field("subscribers_lost", s.subscribers_lost)
      .Field("subscribers_lost_silently", s.subscribers_lost_silently)
      .Field("subscribers_told", s.subscribers_told)
      .Field("duplicates", s.duplicates)
      .Field("unstamped", s.unstamped)
      .Field("early_starts", s.early_starts)
      .Field("connects_ok", s.connects_ok)
      .Field("connects_failed", s.connects_failed)
      .Field("disconnects", s.disconnects);
  WriteStats(w, s);
  w.EndObject();
  return w.str();
}

bool ResultFromJson(std::string_view json, RunResult& result, std::string* error) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS) {
    *error = "worker result is not JSON";
    return false;
  }
  RunStats& s = result.stats;
  result.measured_s = D(doc, "measured_s");
  result.delivery_s = D(doc, "delivery_s");
  bool interrupted = false;
  if (doc["interrupted"].get_bool().get(interrupted) == simdjson::SUCCESS) {
    result.interrupted = interrupted;
  }
  s.sent = U(doc, "sent");
  s.delivered = U(doc, "delivered");
  s.expected = U(doc, "expected");
  s.bytes_in = U(doc, "bytes_in");
  s.bytes_out = U(doc, "bytes_out");
  s.lost = U(doc, "lost");
  s.lost_told = U(doc, "lost_told");
  s.lost_silently = U(doc, "lost_silently");
  s.subscribers_lost = U(doc, "subscribers_lost");
  s.subscribers_lost_silently = U(doc, "subscribers_lost_silently");
  s.subscribers_told = U(doc, "subscribers_told");
  s.duplicates = U(doc, "duplicates");
  s.unstamped = U(doc, "unstamped");
  s.early_starts = U(doc, "early_starts");
  s.connects_ok = U(doc, "connects_ok");
  s.connects_failed = U(doc, "connects_failed");
  s.disconnects = U(doc, "disconnects");
  simdjson::dom::object errors;
  if (doc["errors"].get_object().get(errors) == simdjson::SUCCESS) {
    for (auto [reason, n] : errors) {
      uint64_t v = 0;
      if (n.get_uint64().get(v) == simdjson::SUCCESS) s.errors[std::string(reason)] += v;
    }
  }
  simdjson::dom::array timeline;
  if (doc["timeline"].get_array().get(timeline) == simdjson::SUCCESS) {
    for (simdjson::dom::element t : timeline) {
      Second& sec = s.At(U(t, "t"));
      sec.sent += U(t, "sent");
      sec.delivered += U(t, "delivered");
      sec.bytes_in += U(t, "bytes_in");
      sec.bytes_out += U(t, "bytes_out");
      sec.errors += U(t, "errors");
      sec.connects += U(t, "connects");
      simdjson::dom::array buckets;
      if (t["latency_buckets"].get_array().get(buckets) == simdjson::SUCCESS) {
        for (simdjson::dom::element b : buckets) {
          uint64_t index = 0, n = 0;
          if (b.at(0).get_uint64().get(index) == simdjson::SUCCESS &&
              b.at(1).get_uint64().get(n) == simdjson::SUCCESS &&
              index < sec.latency.counts.size()) {
            sec.latency.counts[index] += static_cast<uint32_t>(n);
          }
        }
      }
    }
  }
  simdjson::dom::element latency, connect;
  if (doc["histograms"]["latency"].get(latency) != simdjson::SUCCESS ||
      doc["histograms"]["connect"].get(connect) != simdjson::SUCCESS ||
      !ReadHistogram(latency, s.latency) || !ReadHistogram(connect, s.connect_latency)) {
    *error = "worker result has no valid histograms";
    return false;
  }
  return true;
}

bool ReadSummaryFigures(std::string_view json, std::map<std::string, double>& figures,
                        std::string* error) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS) {
    *error = "not JSON";
    return false;
  }
  std::string_view schema;
  if (doc["schema"].get_string().get(schema) != simdjson::SUCCESS || schema != kReportSchema) {
    *error = "not a hermod-bench report (schema)";
    return false;
  }
  simdjson::dom::element summary;
  if (doc["summary"].get(summary) != simdjson::SUCCESS) {
    *error = "report has no summary";
    return false;
  }
  Flatten(summary, "", figures);
  return true;
}

}  // namespace hermod::bench
