#include "metrics/prometheus_text.h"

#include <fmt/format.h>

#include <cmath>
#include <iterator>
#include <utility>

namespace hermod::metrics {

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void PrometheusText::Head(std::string_view name, Labels labels) {
  out_ += name;
  if (labels.size() == 0) {
    out_ += ' ';
    return;
  }
  char separator = '{';
  for (const auto& [key, value] : labels) {
    out_ += separator;
    separator = ',';
    out_ += key;
    out_ += "=\"";
    for (char c : value) {
      if (c == '\\') {
        out_ += "\\\\";
      } else if (c == '"') {
        out_ += "\\\"";
      } else if (c == '\n') {
        out_ += "\\n";
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  out_ += "} ";
}

void PrometheusText::Sample(std::string_view name, Labels labels, uint64_t value) {
  Head(name, labels);
  fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void PrometheusText::Sample(std::string_view name, Labels labels, double value) {
  Head(name, labels);
  if (std::isnan(value)) {
    out_ += "NaN\n";
  } else if (std::isinf(value)) {
    out_ += value > 0 ? "+Inf\n" : "-Inf\n";
  } else {
    fmt::format_to(std::back_inserter(out_), "{}\n", value);
  }
}

namespace {

// One family with a sample per loop.
template <class Field>
void PerLoop(PrometheusText& text, const std::vector<LoopSnapshot>& loops, std::string_view name,
             std::string_view type, std::string_view help, Field field) {
  text.Family(name, type, help);
  for (const LoopSnapshot& s : loops) {
    if (!s.answered) continue;
    std::string loop = std::to_string(s.loop);
    text.Sample(name, {{"loop", loop}}, field(s));
  }
}

}  // namespace

std::string RenderMetrics(const std::vector<LoopSnapshot>& loops, const ProcessStats& process,
                          const HealthFigures& health, const BuildInfo& build) {
  PrometheusText t;
  t.Family("hermod_build_info", "gauge", "Build information; the value is always 1.");
  t.Sample("hermod_build_info", {{"version", build.version}, {"compiler", build.compiler}},
           uint64_t{1});

  t.Family("hermod_loops", "gauge", "Event loops (one thread each).");
  t.Sample("hermod_loops", {}, static_cast<uint64_t>(loops.size()));
  t.Family("hermod_loop_up", "gauge",
           "1 when the loop answered this scrape through its mailbox in time, else 0.");
  for (const LoopSnapshot& s : loops) {
    std::string loop = std::to_string(s.loop);
    t.Sample("hermod_loop_up", {{"loop", loop}}, uint64_t{s.answered ? 1u : 0u});
  }
  PerLoop(t, loops, "hermod_loop_busy_seconds_total", "counter",
          "Time the loop spent working (events, mailbox, timers, flushes).",
          [](const LoopSnapshot& s) { return static_cast<double>(s.net.busy_us) / 1e6; });
  PerLoop(t, loops, "hermod_loop_wait_seconds_total", "counter",
          "Time the loop spent blocked in epoll_wait.",
          [](const LoopSnapshot& s) { return static_cast<double>(s.net.wait_us) / 1e6; });

  PerLoop(t, loops, "hermod_connections_active", "gauge", "Open connections (HTTP and WebSocket).",
          [](const LoopSnapshot& s) { return s.connections; });
  PerLoop(t, loops, "hermod_connections_accepted_total", "counter", "Accepted connections.",
          [](const LoopSnapshot& s) { return s.net.accepted; });
  PerLoop(t, loops, "hermod_connections_closed_total", "counter", "Closed connections.",
          [](const LoopSnapshot& s) { return s.net.closed; });
  t.Family("hermod_connections_rejected_total", "counter",
           "Connections refused, by reason (emfile: out of file descriptors; epoll: epoll "
           "refused the socket; capacity, node_rate: 503 at the upgrade; ip_limit, ip_rate: "
           "429 at the upgrade; soft_limit: connect without a recovery position in the soft "
           "band; user_limit: disconnect 3504).");
  for (const LoopSnapshot& s : loops) {
    if (!s.answered) continue;
    std::string loop = std::to_string(s.loop);
    t.Sample("hermod_connections_rejected_total", {{"loop", loop}, {"reason", "emfile"}},
             s.net.accept_emfile);
    t.Sample("hermod_connections_rejected_total", {{"loop", loop}, {"reason", "epoll"}},
             s.net.register_failed);
    // Admission (issue 6).
    const net::GuardStats& g = s.net.guard;
    for (auto [reason, value] :
         {std::pair{"capacity", g.rejected_capacity}, std::pair{"node_rate", g.rejected_node_rate},
          std::pair{"ip_limit", g.rejected_ip_limit}, std::pair{"ip_rate", g.rejected_ip_rate},
          std::pair{"soft_limit", g.rejected_soft_limit},
          std::pair{"user_limit", g.rejected_user_limit}}) {
      t.Sample("hermod_connections_rejected_total", {{"loop", loop}, {"reason", reason}}, value);
    }
  }
  PerLoop(t, loops, "hermod_write_buffer_overflows_total", "counter",
          "Connections closed for passing the write buffer limit (slow consumers).",
          [](const LoopSnapshot& s) { return s.net.write_overflow; });
  PerLoop(t, loops, "hermod_network_read_bytes_total", "counter", "Bytes read from sockets.",
          [](const LoopSnapshot& s) { return s.net.bytes_read; });
  PerLoop(t, loops, "hermod_network_written_bytes_total", "counter", "Bytes written to sockets.",
          [](const LoopSnapshot& s) { return s.net.bytes_written; });

  PerLoop(t, loops, "hermod_http_requests_total", "counter", "HTTP requests parsed.",
          [](const LoopSnapshot& s) { return s.http.requests; });
  PerLoop(t, loops, "hermod_http_client_errors_total", "counter",
          "HTTP requests answered with a 4xx status by the HTTP layer.",
          [](const LoopSnapshot& s) { return s.http.errors_4xx; });
  PerLoop(t, loops, "hermod_http_request_timeouts_total", "counter",
          "HTTP requests that did not arrive whole in time (408).",
          [](const LoopSnapshot& s) { return s.http.timeouts; });

  PerLoop(t, loops, "hermod_websocket_opened_total", "counter", "WebSocket handshakes completed.",
          [](const LoopSnapshot& s) { return s.ws.opened; });
  PerLoop(t, loops, "hermod_websocket_messages_received_total", "counter",
          "WebSocket data messages received.",
          [](const LoopSnapshot& s) { return s.ws.messages_in; });
  PerLoop(t, loops, "hermod_websocket_messages_sent_total", "counter",
          "WebSocket data messages sent.", [](const LoopSnapshot& s) { return s.ws.messages_out; });
  PerLoop(t, loops, "hermod_websocket_protocol_error_closes_total", "counter",
          "WebSocket connections closed by us for a protocol error (1002, 1007, 1009).",
          [](const LoopSnapshot& s) { return s.ws.protocol_errors; });
  PerLoop(t, loops, "hermod_websocket_pong_timeouts_total", "counter",
          "WebSocket connections closed for not answering a ping in time.",
          [](const LoopSnapshot& s) { return s.ws.pong_timeouts; });
  PerLoop(t, loops, "hermod_websocket_idle_timeouts_total", "counter",
          "WebSocket connections closed for being idle too long.",
          [](const LoopSnapshot& s) { return s.ws.idle_timeouts; });

  // Rate limits and the accept throttle (issue 6).
  t.Family("hermod_client_commands_rate_limited_total", "counter",
           "Client commands answered with error 111, by the bucket that refused them "
           "(channel: a namespace's publish_rate_limit).");
  for (const LoopSnapshot& s : loops) {
    if (!s.answered) continue;
    std::string loop = std::to_string(s.loop);
    static constexpr const char* kKinds[] = {"publish", "subscribe", "history", "presence",
                                             "rpc",     "total",     "channel"};
    for (size_t i = 0; i < std::size(kKinds); ++i) {
      t.Sample("hermod_client_commands_rate_limited_total", {{"loop", loop}, {"kind", kKinds[i]}},
               s.net.guard.commands_limited[i]);
    }
  }
  PerLoop(t, loops, "hermod_client_rate_limit_disconnects_total", "counter",
          "Client connections disconnected with 3013 for refused commands past the threshold.",
          [](const LoopSnapshot& s) { return s.net.guard.rate_limit_disconnects; });
  PerLoop(t, loops, "hermod_accept_throttled_total", "counter",
          "Times the listener paused accepting for admission.accept_rate_per_loop.",
          [](const LoopSnapshot& s) { return s.net.guard.accept_throttled; });

  t.Family("hermod_health_level", "gauge",
           "Health level: 0 healthy, 1 degraded, 2 unhealthy, 3 critical.");
  t.Sample("hermod_health_level", {}, static_cast<uint64_t>(health.level));
  t.Family("hermod_health_ready", "gauge", "1 when /health/ready answers 200, else 0.");
  t.Sample("hermod_health_ready", {}, uint64_t{health.ready ? 1u : 0u});
  t.Family("hermod_health_transitions_total", "counter", "Changes of the health level.");
  t.Sample("hermod_health_transitions_total", {}, health.transitions);

  t.Family("hermod_process_resident_memory_bytes", "gauge", "Resident set size.");
  t.Sample("hermod_process_resident_memory_bytes", {}, process.resident_bytes);
  t.Family("hermod_process_virtual_memory_bytes", "gauge", "Virtual memory size.");
  t.Sample("hermod_process_virtual_memory_bytes", {}, process.virtual_bytes);
  t.Family("hermod_process_cpu_seconds_total", "counter", "User and system CPU time.");
  t.Sample("hermod_process_cpu_seconds_total", {}, process.cpu_seconds);
  t.Family("hermod_process_open_fds", "gauge", "Open file descriptors.");
  t.Sample("hermod_process_open_fds", {}, process.open_fds);
  t.Family("hermod_process_max_fds", "gauge", "The file descriptor limit (soft RLIMIT_NOFILE).");
  t.Sample("hermod_process_max_fds", {}, process.max_fds);
  t.Family("hermod_process_threads", "gauge", "Threads in the process.");
  t.Sample("hermod_process_threads", {}, process.threads);
  t.Family("hermod_process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch.");
  t.Sample("hermod_process_start_time_seconds", {}, process.start_time_seconds);
  return t.text();
}

}  // namespace hermod::metrics
