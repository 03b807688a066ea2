#include "html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <utility>
#include <vector>

namespace hermod::bench {

namespace {

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;
};

std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string Num(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e6 || std::fabs(v) < 0.01)) {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.4g", v);
  }
  return buf;
}

// Axis numbers read at a glance: at most three significant digits and an SI suffix (950,
// 12.5k, 1.2M), never an exponent.
std::string Short(double v) {
  const double a = std::fabs(v);
  const char* suffix = "";
  if (a >= 1e9) {
    v /= 1e9;
    suffix = "G";
  } else if (a >= 1e6) {
    v /= 1e6;
    suffix = "M";
  } else if (a >= 1e3) {
    v /= 1e3;
    suffix = "k";
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), a != 0 && a < 0.01 ? "%.2f" : "%.3g", v);
  return std::string(buf) + suffix;
}

// A duration given in milliseconds, in the unit that fits it: 172 us, 3.4 ms, 1.2 s.
std::string Millis(double ms) {
  char buf[32];
  if (ms == 0) return "0";
  if (ms < 1) {
    std::snprintf(buf, sizeof(buf), "%.3g us", ms * 1e3);
  } else if (ms < 1000) {
    std::snprintf(buf, sizeof(buf), "%.3g ms", ms);
  } else {
    std::snprintf(buf, sizeof(buf), "%.3g s", ms / 1e3);
  }
  return buf;
}

// The smallest 1, 2, 2.5 or 5 times a power of ten at or above v: tick steps people can add.
double NiceStep(double v) {
  if (v <= 0) return 1;
  const double power = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (v <= m * power * (1 + 1e-9)) return m * power;
  }
  return 10 * power;
}

// A line chart in SVG. x_labels: optional (x, label) ticks replacing numeric x ticks;
// y_format writes the y tick labels (Short, or Millis for latencies).
std::string LineChart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series,
                      const std::vector<std::pair<double, std::string>>& x_labels = {},
                      std::string (*y_format)(double) = Short) {
  // Margins wide enough for the longest tick label ("999 us", "99.999%") and the legend.
  constexpr double kW = 760, kH = 280, kL = 64, kR = 40, kT = 34, kB = 42;
  double x0 = INFINITY, x1 = -INFINITY, y1 = 0;
  for (const Series& s : series) {
    for (auto [x, y] : s.points) {
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  }
  std::string svg = "<figure><figcaption>" + Escape(title) + "</figcaption>";
  if (!std::isfinite(x0)) return svg + "<p class=empty>no data</p></figure>";
  if (x1 <= x0) x1 = x0 + 1;
  const double y_step = NiceStep((y1 > 0 ? y1 : 1) / 4);
  y1 = 4 * y_step;
  auto px = [&](double x) { return kL + (x - x0) / (x1 - x0) * (kW - kL - kR); };
  auto py = [&](double y) { return kH - kB - y / y1 * (kH - kT - kB); };
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
                "style=\"max-width:100%%;height:auto;overflow:visible\" "
                "xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">",
                kW, kH, kW, kH);
  svg += buf;
  // Axes, grid and ticks.
  for (int i = 0; i <= 4; ++i) {
    double y = y_step * i;
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                  kL, py(y), kW - kR, py(y), kL - 4, py(y) + 4);
    svg += buf + Escape(y_format(y)) + "</text>";
  }
  if (x_labels.empty()) {
    const double x_step = NiceStep((x1 - x0) / 6);
    for (double x = std::ceil(x0 / x_step) * x_step; x <= x1 + 1e-9; x += x_step) {
      std::snprintf(buf, sizeof(buf), "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", px(x),
                    kH - kB + 14);
      svg += buf + Escape(Short(x)) + "</text>";
    }
  } else {
    for (const auto& [x, label] : x_labels) {
      if (x < x0 || x > x1) continue;  // a tick past the data would land outside the chart
      std::snprintf(buf, sizeof(buf),
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                    px(x), kT * 1.0, px(x), kH - kB, px(x), kH - kB + 14);
      svg += buf + Escape(label) + "</text>";
    }
  }
  std::snprintf(buf, sizeof(buf),
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                kL, kH - kB, kW - kR, kH - kB, (kL + kW - kR) / 2, kH - 6);
  svg += buf + Escape(x_label) + "</text>";
  std::snprintf(buf, sizeof(buf),
                "<text x=\"12\" y=\"%.1f\" transform=\"rotate(-90 12 %.1f)\" "
                "text-anchor=\"middle\">",
                (kT + kH - kB) / 2, (kT + kH - kB) / 2);
  svg += buf + Escape(y_label) + "</text>";
  // Series and legend.
  double legend_x = kL + 10;
  for (const Series& s : series) {
    std::string pts;
    for (auto [x, y] : s.points) {
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", px(x), py(y));
      pts += buf;
    }
    svg += "<polyline fill=\"none\" stroke-width=\"1.8\" stroke=\"" + s.color + "\" points=\"" +
           pts + "\"/>";
    std::snprintf(buf, sizeof(buf),
                  "<rect x=\"%.1f\" y=\"10\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                  "<text x=\"%.1f\" y=\"19\">",
                  legend_x, s.color.c_str(), legend_x + 14);
    svg += buf + Escape(s.name) + "</text>";
    legend_x += 24 + 7.0 * static_cast<double>(s.name.size());
  }
  return svg + "</svg></figure>";
}

// Latency against "nines": x = -log10(1 - q), so 90 %, 99 %, 99.9 % are evenly spaced.
std::string PercentileChart(const Histogram& h, const std::string& title) {
  Series s{"latency", "#1f77b4", {}};
  if (h.count() > 0) {
    double top = std::min(5.0, std::log10(static_cast<double>(h.count())));
    for (double n = 0; n <= top + 1e-9; n += 0.05) {
      double q = 1 - std::pow(10.0, -n);
      s.points.emplace_back(n, static_cast<double>(h.ValueAt(q)) / 1e6);
    }
    s.points.emplace_back(top + 0.2, static_cast<double>(h.max()) / 1e6);
  }
  std::vector<std::pair<double, std::string>> ticks = {{0, "0%"},    {1, "90%"},    {2, "99%"},
                                                       {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}};
  return LineChart(title, "percentile", "latency", {s}, ticks, Millis);
}

void Row(std::string& html, std::string_view name, const std::string& value) {
  html += "<tr><th>" + Escape(name) + "</th><td>" + Escape(value) + "</td></tr>";
}

}  // namespace

std::string ReportHtml(const RunConfig& config, const RunResult& result, const Summary& m,
                       const GradeResult* grade) {
  const RunStats& s = result.stats;
  std::string title = std::string("hermod-bench: ") + ScenarioName(config.scenario) + " / " +
                      ProtocolName(config.protocol) + " / " + config.url;
  std::string html =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + Escape(title) +
      "</title><style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
      "table{border-collapse:collapse;margin:1em 0}th,td{padding:3px 10px;border-bottom:1px "
      "solid #eee;text-align:left}td{font-variant-numeric:tabular-nums}"
      "figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:4px}"
      ".grade{font-size:40px;font-weight:700}.bad{color:#c00}.empty{color:#888}"
      "</style></head><body><h1>" +
      Escape(title) + "</h1>";
  if (grade) {
    html += "<p><span class=grade>" + Escape(grade->grade) + "</span> worst ratio to SLO " +
            Num(grade->worst) +
            "</p><table><tr><th>objective</th><th>limit</th><th>value</th>"
            "<th>ratio</th></tr>";
    for (const GradeCheck& c : grade->checks) {
      html += std::string("<tr") + (c.ok ? "" : " class=bad") + "><td>" + Escape(c.name) +
              "</td><td>" + Num(c.limit) + "</td><td>" + Num(c.value) + "</td><td>" + Num(c.ratio) +
              "</td></tr>";
    }
    html += "</table>";
  }
  if (IsOverloadTest(config)) {
    html +=
        "<p class=bad><b>Overload test</b> (-r 0: publishers send as fast as they can): "
        "loss " +
        Percent(LossFraction(m)) + " of " + std::to_string(m.expected) +
        " expected deliveries; latency is queueing under overload.</p>";
  }
  html += "<h2>Summary</h2><table>";
  Row(html, "connections", std::to_string(TotalConnections(config)));
  Row(html, "measured", Num(m.measured_s) + " s");
  Row(html, "sent", std::to_string(m.sent) + " (" + Short(m.sent_per_s) + "/s)");
  Row(html, "delivered", std::to_string(m.delivered) + " (" + Short(m.deliveries_per_s) + "/s)");
  Row(html, "received bytes/s", Short(m.bytes_in_per_s));
  Row(html, "latency p50 / p90 / p99 / p99.9 / max",
      Millis(m.latency.p50 / 1e3) + " / " + Millis(m.latency.p90 / 1e3) + " / " +
          Millis(m.latency.p99 / 1e3) + " / " + Millis(m.latency.p999 / 1e3) + " / " +
          Millis(m.latency.max / 1e3));
  Row(html, "lost silently (subscribers)",
      std::to_string(m.lost_silently) + " (" + std::to_string(m.subscribers_lost_silently) + ")");
  Row(html, "lost / duplicated / undelivered",
      std::to_string(m.lost) + " / " + std::to_string(m.duplicates) + " / " +
          std::to_string(m.undelivered));
  Row(html, "connects ok / failed",
      std::to_string(m.connects_ok) + " / " + std::to_string(m.connects_failed));
  Row(html, "connects/s (measured)", Num(m.connects_per_s));
  Row(html, "connect latency p50 / p99 / max",
      Millis(m.connect.p50 / 1e3) + " / " + Millis(m.connect.p99 / 1e3) + " / " +
          Millis(m.connect.max / 1e3));
  Row(html, "errors, loss", std::to_string(m.errors) + ", " + Percent(LossFraction(m)));
  Row(html, "disconnects", std::to_string(m.disconnects));
  html += "</table>";

  if (s.latency.count() > 0) {
    html += PercentileChart(s.latency, "Delivery latency by percentile");
    Series p50{"p50", "#1f77b4", {}}, p99{"p99", "#d62728", {}};
    for (size_t i = 0; i < s.timeline.size(); ++i) {
      const CoarseLatency& l = s.timeline[i].latency;
      if (l.count() == 0) continue;
      p50.points.emplace_back(static_cast<double>(i), static_cast<double>(l.ValueAt(0.5)) / 1e6);
      p99.points.emplace_back(static_cast<double>(i), static_cast<double>(l.ValueAt(0.99)) / 1e6);
    }
    html += LineChart("Delivery latency over time (per second, within 25 %)", "seconds", "latency",
                      {p99, p50}, {}, Millis);
  }
  if (s.connect_latency.count() > 0) {
    html += PercentileChart(s.connect_latency, "Connect + handshake latency by percentile");
  }
  Series sent{"sent/s", "#ff7f0e", {}}, delivered{"delivered/s", "#1f77b4", {}},
      connects{"connects/s", "#2ca02c", {}}, errors{"errors/s", "#d62728", {}};
  for (size_t i = 0; i < s.timeline.size(); ++i) {
    double t = static_cast<double>(i);
    sent.points.emplace_back(t, static_cast<double>(s.timeline[i].sent));
    delivered.points.emplace_back(t, static_cast<double>(s.timeline[i].delivered));
    connects.points.emplace_back(t, static_cast<double>(s.timeline[i].connects));
    errors.points.emplace_back(t, static_cast<double>(s.timeline[i].errors));
  }
  std::vector<Series> rate_series = {delivered, sent};
  if (m.connects_per_s > 0) rate_series.push_back(connects);
  if (m.errors > 0) rate_series.push_back(errors);
  html += LineChart("Throughput over time", "seconds", "per second", rate_series);
  if (!s.server.empty()) {
    Series rss{"RSS MiB", "#9467bd", {}}, cpu{"CPU %", "#8c564b", {}};
    for (const ServerSample& p : s.server) {
      rss.points.emplace_back(p.t, static_cast<double>(p.rss_kb) / 1024.0);
      cpu.points.emplace_back(p.t, p.cpu_pct);
    }
    html += LineChart("Server resident memory", "seconds", "MiB", {rss});
    html += LineChart("Server CPU", "seconds", "% of one core", {cpu});
  }
  if (!s.errors.empty()) {
    html += "<h2>Errors</h2><table>";
    for (const auto& [reason, n] : s.errors) Row(html, reason, std::to_string(n));
    html += "</table>";
  }
  return html + "</body></html>\n";
}

}  // namespace hermod::bench
