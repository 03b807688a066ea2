#include "metrics/prometheus_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
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

// The `priority` label, low first (net::Priority counts critical first).
constexpr std::array<std::string_view, 4> kDropPriorities = {"low", "normal", "high", "critical"};

// One sample per refusal of a family, for one loop.
void RefusalSamples(PrometheusText& t, std::string_view name, const std::string& loop,
                    std::string_view label, stats::RefusalFamily family,
                    const stats::GuardStats& guard) {
  for (size_t r = 0; r < stats::kRefusals.size(); ++r) {
    if (stats::kRefusals[r].family != family) continue;
    t.Sample(name, {{"loop", loop}, {label, stats::kRefusals[r].name}}, guard.refused.values[r]);
  }
}

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

// One family with a sample per loop and value of a second label: field(s) is an array
// indexed like values.
template <size_t N, class Field>
void PerLoopBy(PrometheusText& text, const std::vector<LoopSnapshot>& loops, std::string_view name,
               std::string_view type, std::string_view help, std::string_view label,
               const std::array<std::string_view, N>& values, Field field) {
  text.Family(name, type, help);
  for (const LoopSnapshot& s : loops) {
    if (!s.answered) continue;
    std::string loop = std::to_string(s.loop);
    for (size_t i = 0; i < N; ++i)
      text.Sample(name, {{"loop", loop}, {label, values[i]}}, field(s)[i]);
  }
}

// A histogram family's samples for one label set (key empty: none); divisor turns the
// recorded unit into the exposed one (microseconds to seconds: 1e6). Dividing, not
// multiplying by 1e-6, keeps the `le` labels short: 50 / 1e6 prints as 5e-05.
template <const auto& Bounds>
void HistogramSamples(PrometheusText& t, std::string_view name, std::string_view key,
                      std::string_view value, const Histogram<Bounds>& h, double divisor) {
  std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= Bounds.size(); ++i) {
    cumulative += h.counts[i];
    std::string le =
        i < Bounds.size() ? fmt::format("{}", static_cast<double>(Bounds[i]) / divisor) : "+Inf";
    if (key.empty()) {
      t.Sample(bucket, {{"le", le}}, cumulative);
    } else {
      t.Sample(bucket, {{key, value}, {"le", le}}, cumulative);
    }
  }
  std::string sum = std::string(name) + "_sum";
  std::string count = std::string(name) + "_count";
  if (key.empty()) {
    t.Sample(sum, {}, static_cast<double>(h.sum) / divisor);
    t.Sample(count, {}, cumulative);
  } else {
    t.Sample(sum, {{key, value}}, static_cast<double>(h.sum) / divisor);
    t.Sample(count, {{key, value}}, cumulative);
  }
}

}  // namespace

LoopSnapshot MergeSnapshots(const std::vector<LoopSnapshot>& loops) {
  LoopSnapshot all;
  all.loop = -1;
  all.answered = true;
  for (const LoopSnapshot& s : loops) {
    if (!s.answered) continue;
    all.connections += s.connections;
    all.net.accepted += s.net.accepted;
    all.net.accept_emfile += s.net.accept_emfile;
    all.net.closed += s.net.closed;
    all.net.write_overflow += s.net.write_overflow;
    all.net.read_pauses += s.net.read_pauses;
    all.net.register_failed += s.net.register_failed;
    all.net.bytes_read += s.net.bytes_read;
    all.net.bytes_written += s.net.bytes_written;
    all.net.writes += s.net.writes;
    all.net.frames_joined += s.net.frames_joined;
    all.net.messages_joined += s.net.messages_joined;
    all.net.wait_us += s.net.wait_us;
    all.net.busy_us += s.net.busy_us;
    for (size_t r = 0; r < all.net.send_dropped.values.size(); ++r) {
      for (size_t p = 0; p < net::kPriorities; ++p) {
        all.net.send_dropped.values[r][p] += s.net.send_dropped.values[r][p];
      }
    }
    for (size_t r = 0; r < all.net.slow_consumer_disconnects.values.size(); ++r) {
      all.net.slow_consumer_disconnects.values[r] += s.net.slow_consumer_disconnects.values[r];
    }
    all.send_queue_footprint += s.send_queue_footprint;
    all.http.requests += s.http.requests;
    all.http.errors_4xx += s.http.errors_4xx;
    all.http.timeouts += s.http.timeouts;
    all.http.continues += s.http.continues;
    for (size_t r = 0; r < std::size(all.http.rejected); ++r) {
      all.http.rejected[r] += s.http.rejected[r];
    }
    all.ws.opened += s.ws.opened;
    all.ws.messages_in += s.ws.messages_in;
    all.ws.messages_out += s.ws.messages_out;
    for (size_t r = 0; r < all.ws.closed_by.values.size(); ++r) {
      all.ws.closed_by.values[r] += s.ws.closed_by.values[r];
    }
    for (const auto& [code, n] : s.ws.close_codes) all.ws.close_codes[code] += n;
    all.ws.duration_ms.Add(s.ws.duration_ms);
    const LoopMetrics& m = s.metrics;
    LoopMetrics& a = all.metrics;
    for (size_t i = 0; i < m.commands.size(); ++i) {
      a.commands[i] += m.commands[i];
      a.command_latency[i].Add(m.command_latency[i]);
    }
    a.command_messages_in += m.command_messages_in;
    for (size_t i = 0; i < m.malformed_messages.size(); ++i) {
      a.malformed_messages[i] += m.malformed_messages[i];
    }
    for (size_t i = 0; i < m.emulation_requests.size(); ++i) {
      a.emulation_requests[i] += m.emulation_requests[i];
    }
    a.command_bytes_in += m.command_bytes_in;
    for (size_t i = 0; i < m.messages_out.size(); ++i) {
      a.messages_out[i] += m.messages_out[i];
      a.bytes_out[i] += m.bytes_out[i];
    }
    for (size_t i = 0; i < m.pushes_out.size(); ++i) a.pushes_out[i] += m.pushes_out[i];
    a.publish_to_queue.Add(m.publish_to_queue);
    a.fanout.Add(m.fanout);
    for (size_t i = 0; i < m.api_calls.size(); ++i) {
      a.api_calls[i] += m.api_calls[i];
      a.api_latency[i].Add(m.api_latency[i]);
    }
    for (size_t k = 0; k < m.presence_events.size(); ++k) {
      for (size_t o = 0; o < m.presence_events[k].size(); ++o) {
        a.presence_events[k][o] += m.presence_events[k][o];
      }
    }
    all.queued_bytes += s.queued_bytes;
    all.max_queued_bytes = std::max(all.max_queued_bytes, s.max_queued_bytes);
    all.queued_connections += s.queued_connections;
  }
  return all;
}

uint64_t ProtocolErrorCloses(const LoopSnapshot& s) {
  // WebSocket protocol errors (1002, 1007, 1009) and the client protocol's bad request.
  auto bad_request = s.ws.close_codes.find(3501);
  return s.ws.closed_by[stats::WsClose::kProtocolError] +
         (bad_request == s.ws.close_codes.end() ? 0 : bad_request->second);
}

uint64_t SlowConsumerCloses(const LoopSnapshot& s) {
  // write_overflow counts the cuts at the queue's bound; the deadline's are net's own.
  return s.net.write_overflow + s.net.slow_consumer_disconnects[stats::SlowReason::kDeadline] +
         s.net.slow_consumer_disconnects[stats::SlowReason::kMissed];
}

std::string RenderMetrics(const std::vector<LoopSnapshot>& loops, const ProcessStats& process,
                          const HealthFigures& health, const BuildInfo& build,
                          const MethodLabels& methods) {
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
    // Admission (core/admission.h) and the connect's own limits.
    RefusalSamples(t, "hermod_connections_rejected_total", loop, "reason",
                   stats::RefusalFamily::kConnection, s.net.guard);
  }
  PerLoop(t, loops, "hermod_write_buffer_overflows_total", "counter",
          "Connections closed for passing the write buffer limit (slow consumers).",
          [](const LoopSnapshot& s) { return s.net.write_overflow; });
  PerLoop(t, loops, "hermod_read_pauses_total", "counter",
          "Connections whose reads were paused after a publication because the history "
          "engine's writer was behind (sqlite.pause_reads_at); each resumes when it drains.",
          [](const LoopSnapshot& s) { return s.net.read_pauses; });

  PerLoop(t, loops, "hermod_send_queue_footprint_bytes", "gauge",
          "What the loop's output queues hold of their own (copied bytes and a record per "
          "queued frame; shared frames are not counted per queue): send_queue.loop_budget_bytes "
          "bounds it.",
          [](const LoopSnapshot& s) { return s.send_queue_footprint; });

  PerLoop(t, loops, "hermod_network_read_bytes_total", "counter", "Bytes read from sockets.",
          [](const LoopSnapshot& s) { return s.net.bytes_read; });
  PerLoop(t, loops, "hermod_network_written_bytes_total", "counter", "Bytes written to sockets.",
          [](const LoopSnapshot& s) { return s.net.bytes_written; });
  PerLoop(t, loops, "hermod_network_writes_total", "counter",
          "Write syscalls on sockets (send, sendmsg, SSL_write; one that found the socket full "
          "included).",
          [](const LoopSnapshot& s) { return s.net.writes; });

  PerLoop(t, loops, "hermod_http_requests_total", "counter", "HTTP requests parsed.",
          [](const LoopSnapshot& s) { return s.http.requests; });
  PerLoop(t, loops, "hermod_http_client_errors_total", "counter",
          "HTTP requests answered with a 4xx status by the HTTP layer.",
          [](const LoopSnapshot& s) { return s.http.errors_4xx; });
  PerLoop(t, loops, "hermod_http_request_timeouts_total", "counter",
          "HTTP requests that did not arrive whole in time (408), and connections closed with no "
          "request begun within the request timeout of their accept.",
          [](const LoopSnapshot& s) { return s.http.timeouts; });
  PerLoop(t, loops, "hermod_http_continues_total", "counter",
          "100 Continue responses sent to requests with Expect: 100-continue.",
          [](const LoopSnapshot& s) { return s.http.continues; });
  PerLoop(t, loops, "hermod_websocket_opened_total", "counter", "WebSocket handshakes completed.",
          [](const LoopSnapshot& s) { return s.ws.opened; });
  PerLoop(t, loops, "hermod_websocket_messages_received_total", "counter",
          "WebSocket data messages received.",
          [](const LoopSnapshot& s) { return s.ws.messages_in; });
  PerLoop(t, loops, "hermod_websocket_messages_sent_total", "counter",
          "WebSocket data messages sent.", [](const LoopSnapshot& s) { return s.ws.messages_out; });
  PerLoop(t, loops, "hermod_websocket_frames_joined_total", "counter",
          "WebSocket messages built at flush by joining JSON replies and pushes queued to one "
          "connection (websocket.join_max_bytes).",
          [](const LoopSnapshot& s) { return s.net.frames_joined; });
  PerLoop(t, loops, "hermod_websocket_joined_messages_total", "counter",
          "Queued messages that left inside a joined message (minus "
          "hermod_websocket_frames_joined_total: the messages saved).",
          [](const LoopSnapshot& s) { return s.net.messages_joined; });
  // The WebSocket layer's own closes, one family per row of stats::kWsCloses.
  static constexpr std::array<std::string_view, stats::kWsCloses.size()> kWsCloseHelp = {
      "WebSocket connections closed by us for a protocol error (1002, 1007, 1009).",
      "WebSocket connections closed for not answering a ping in time.",
      "WebSocket connections closed for being idle too long.",
  };
  for (size_t r = 0; r < stats::kWsCloses.size(); ++r) {
    const std::string family =
        "hermod_websocket_" + std::string(stats::kWsCloses[r].metric) + "_total";
    PerLoop(t, loops, family, "counter", kWsCloseHelp[r],
            [r](const LoopSnapshot& s) { return s.ws.closed_by.values[r]; });
  }

  // Rate limits and the accept throttle.
  t.Family("hermod_client_commands_rate_limited_total", "counter",
           "Client commands answered with error 111, by the bucket that refused them "
           "(channel: a namespace's publish_rate_limit).");
  for (const LoopSnapshot& s : loops) {
    if (!s.answered) continue;
    std::string loop = std::to_string(s.loop);
    RefusalSamples(t, "hermod_client_commands_rate_limited_total", loop, "kind",
                   stats::RefusalFamily::kCommand, s.net.guard);
  }
  PerLoop(t, loops, "hermod_client_rate_limit_disconnects_total", "counter",
          "Client connections disconnected with 3013 for refused commands past the threshold.",
          [](const LoopSnapshot& s) {
            return s.net.guard.refused[stats::Refusal::kRateLimitDisconnect];
          });
  PerLoop(t, loops, "hermod_accept_throttled_total", "counter",
          "Times the listener paused accepting for admission.accept_rate_per_loop.",
          [](const LoopSnapshot& s) { return s.net.guard.accept_throttled; });

  // Per-loop scratch buffers and what bounds replies.
  PerLoopBy(t, loops, "hermod_scratch_high_water_bytes", "gauge",
            "The largest capacity each per-loop scratch buffer reached (reply, command copy, "
            "deflate output, inflated input).",
            "buffer", stats::kScratchBuffers,
            [](const LoopSnapshot& s) { return s.metrics.scratch_high_water; });
  PerLoopBy(t, loops, "hermod_scratch_bytes", "gauge",
            "The capacity each per-loop scratch buffer keeps now: a buffer grown past its keep "
            "size is released after the message that grew it.",
            "buffer", stats::kScratchBuffers,
            [](const LoopSnapshot& s) { return s.metrics.scratch_kept; });
  PerLoopBy(t, loops, "hermod_client_replies_limited_total", "counter",
            "History and presence replies bounded by the connection's write budget: cut "
            "short, or refused with error 106 when they did not fit.",
            "outcome", stats::kReplyLimits,
            [](const LoopSnapshot& s) { return s.metrics.replies_limited; });
  PerLoop(t, loops, "hermod_history_meta_evicted_total", "counter",
          "History positions of erased channels forgotten before their history_meta_ttl, to "
          "stay within history_meta_max_channels.",
          [](const LoopSnapshot& s) { return s.metrics.history_meta_evicted; });

  const LoopSnapshot all = MergeSnapshots(loops);
  const LoopMetrics& m = all.metrics;
  t.Family("hermod_http_rejected_total", "counter",
           "HTTP requests refused by the HTTP layer, by reason (each closes its connection), "
           "and responses refused (response_too_large: 500 over http.max_response_bytes) or "
           "abandoned (response_stalled: the peer read none of it for "
           "http.keepalive_timeout_ms).");
  for (size_t r = 0; r < std::size(all.http.rejected); ++r) {
    t.Sample("hermod_http_rejected_total",
             {{"reason", http::RejectionName(static_cast<http::Rejection>(r))}},
             all.http.rejected[r]);
  }

  constexpr double kUs = 1e6;  // recorded in microseconds, exposed in seconds
  t.Family("hermod_websocket_closed_total", "counter",
           "WebSocket connections closed, by the code of the Close that ended them (ours or "
           "the peer's, whichever came first; 1006: no Close was exchanged).");
  for (const auto& [code, n] : all.ws.close_codes) {
    t.Sample("hermod_websocket_closed_total", {{"code", std::to_string(code)}}, n);
  }
  t.Family("hermod_websocket_connection_duration_seconds", "histogram",
           "How long closed WebSocket connections were open.");
  HistogramSamples(t, "hermod_websocket_connection_duration_seconds", "", "", all.ws.duration_ms,
                   1e3);

  t.Family("hermod_client_malformed_messages_total", "counter",
           "Client messages that did not decode (disconnect 3501), by format.");
  t.Sample("hermod_client_malformed_messages_total", {{"format", "json"}}, m.malformed_messages[0]);
  t.Sample("hermod_client_malformed_messages_total", {{"format", "protobuf"}},
           m.malformed_messages[1]);
  t.Family("hermod_emulation_requests_total", "counter",
           "POSTs to /emulation (commands of http_stream and sse clients), by outcome.");
  for (size_t i = 0; i < stats::kEmulationOutcomes.size(); ++i) {
    t.Sample("hermod_emulation_requests_total", {{"result", stats::kEmulationOutcomes[i]}},
             m.emulation_requests[i]);
  }
  t.Family("hermod_client_commands_total", "counter", "Client protocol commands, by method.");
  for (size_t i = 0; i < methods.commands.size() && i < stats::kMaxMethods; ++i) {
    t.Sample("hermod_client_commands_total", {{"method", methods.commands[i]}}, m.commands[i]);
  }
  t.Family("hermod_client_command_duration_seconds", "histogram",
           "Time from a command message's arrival to its replies being queued, by method (the "
           "commands of one message share its time).");
  for (size_t i = 0; i < methods.commands.size() && i < stats::kMaxMethods; ++i) {
    HistogramSamples(t, "hermod_client_command_duration_seconds", "method", methods.commands[i],
                     m.command_latency[i], kUs);
  }
  t.Family("hermod_client_messages_received_total", "counter",
           "Client protocol WebSocket messages received, by type.");
  t.Sample("hermod_client_messages_received_total", {{"type", "command"}}, m.command_messages_in);
  t.Family("hermod_client_received_bytes_total", "counter",
           "Client protocol message bytes received, by type (payloads, after inflation).");
  t.Sample("hermod_client_received_bytes_total", {{"type", "command"}}, m.command_bytes_in);
  t.Family("hermod_client_messages_sent_total", "counter",
           "Client protocol WebSocket messages queued, by type (a push message may carry "
           "several coalesced pushes).");
  for (size_t i = 0; i < stats::kSentTypes.size(); ++i) {
    t.Sample("hermod_client_messages_sent_total", {{"type", stats::kSentTypes[i]}},
             m.messages_out[i]);
  }
  t.Family("hermod_client_sent_bytes_total", "counter",
           "Client protocol message bytes queued, by type (uncompressed payload).");
  for (size_t i = 0; i < stats::kSentTypes.size(); ++i) {
    t.Sample("hermod_client_sent_bytes_total", {{"type", stats::kSentTypes[i]}}, m.bytes_out[i]);
  }
  t.Family("hermod_client_pushes_sent_total", "counter", "Pushes queued to clients, by push type.");
  for (size_t i = 0; i < stats::kPushTypes.size(); ++i) {
    t.Sample("hermod_client_pushes_sent_total", {{"type", stats::kPushTypes[i]}}, m.pushes_out[i]);
  }

  t.Family("hermod_publish_to_queue_seconds", "histogram",
           "Time from Hub::Publish to the publication being queued for a subscriber's socket, "
           "once per publication per loop (its first subscriber there).");
  HistogramSamples(t, "hermod_publish_to_queue_seconds", "", "", m.publish_to_queue, kUs);
  t.Family("hermod_fanout_subscribers", "histogram", "Subscribers one push reached on one loop.");
  HistogramSamples(t, "hermod_fanout_subscribers", "", "", m.fanout, 1.0);

  PerLoop(t, loops, "hermod_send_queue_bytes", "gauge",
          "Bytes queued for writing, summed over the loop's connections.",
          [](const LoopSnapshot& s) { return s.queued_bytes; });
  PerLoop(t, loops, "hermod_send_queue_max_bytes", "gauge",
          "The longest write queue of the loop's connections, in bytes.",
          [](const LoopSnapshot& s) { return s.max_queued_bytes; });
  PerLoop(t, loops, "hermod_send_queue_connections", "gauge",
          "Connections of the loop with bytes queued for writing.",
          [](const LoopSnapshot& s) { return s.queued_connections; });
  t.Family("hermod_send_queue_dropped_total", "counter",
           "Messages dropped from send queues, by reason and priority (shed: droppable pushes "
           "left out silently; overflow includes the connections closed for passing "
           "websocket.max_write_buffer_bytes; replaced: an unsent push superseded by a newer "
           "one of the same key, delivery: latest; told: not queued, the subscriber told at "
           "once; cut: unsent when its connection was disconnected as a slow consumer).");
  // overflow: the connections cut for passing the queue's bound, as one normal drop each;
  // shed: every net reason labelled so; expired: kept at 0 for dashboards and alerts (a
  // queued push past its deadline cuts its connection: cut).
  for (std::string_view label : {"overflow", "shed", "expired"}) {
    for (size_t p = 0; p < kDropPriorities.size(); ++p) {
      // net counts by its own priority order (critical first).
      const auto priority = static_cast<net::Priority>(kDropPriorities.size() - 1 - p);
      uint64_t n = 0;
      if (label == "overflow" && priority == net::Priority::kNormal) n = all.net.write_overflow;
      for (size_t why = 0; why < stats::kDropReasons.size(); ++why) {
        if (stats::kDropReasons[why].label == label) {
          n += all.net.send_dropped.values[why][static_cast<size_t>(priority)];
        }
      }
      t.Sample("hermod_send_queue_dropped_total",
               {{"reason", label}, {"priority", kDropPriorities[p]}}, n);
    }
  }
  // Latest-value replacement is by design (the client gets the newer value), not a loss: kept
  // apart from shed so that a high or critical drop always means a missed push. shed counts
  // only droppable pushes (lost silently, by the channel's choice). told: a push that may
  // not be dropped was not queued and its subscriber was told at once (unsubscribe 2500, or
  // a disconnect for a server-side subscription); cut: the pushes a slow consumer still had
  // queued when it was disconnected (3008). Silent loss of a non-droppable push: none.
  for (stats::DropReason why :
       {stats::DropReason::kReplaced, stats::DropReason::kCut, stats::DropReason::kTold}) {
    for (size_t p = 0; p < kDropPriorities.size(); ++p) {
      t.Sample("hermod_send_queue_dropped_total",
               {{"reason", stats::kDropReasons[static_cast<size_t>(why)].label},
                {"priority", kDropPriorities[p]}},
               all.net.send_dropped[why][kDropPriorities.size() - 1 - p]);
    }
  }
  t.Family("hermod_slow_consumer_disconnects_total", "counter",
           "Connections closed for not reading fast enough.");
  t.Sample("hermod_slow_consumer_disconnects_total", {}, SlowConsumerCloses(all));

  t.Family("hermod_presence_events_total", "counter",
           "Presence join/leave events, by kind and outcome: sent (alone or in a batch) or "
           "cancelled (a join and a leave of one client within join_leave_batch_delay).");
  for (size_t k = 0; k < stats::kPresenceKinds.size(); ++k) {
    for (size_t o = 0; o < stats::kPresenceOutcomes.size(); ++o) {
      t.Sample("hermod_presence_events_total",
               {{"kind", stats::kPresenceKinds[k]}, {"outcome", stats::kPresenceOutcomes[o]}},
               m.presence_events[k][o]);
    }
  }

  t.Family("hermod_api_calls_total", "counter", "Server HTTP API calls, by method.");
  for (size_t i = 0; i < methods.api.size() && i < stats::kMaxMethods; ++i) {
    t.Sample("hermod_api_calls_total", {{"method", methods.api[i]}}, m.api_calls[i]);
  }
  t.Family("hermod_api_call_duration_seconds", "histogram",
           "Server HTTP API call time (parse and execute), by method.");
  for (size_t i = 0; i < methods.api.size() && i < stats::kMaxMethods; ++i) {
    HistogramSamples(t, "hermod_api_call_duration_seconds", "method", methods.api[i],
                     m.api_latency[i], kUs);
  }

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
  // The same figures under the names every Prometheus client library exports, which stock
  // dashboards and alerts query (prometheus.io/docs/instrumenting/writing_clientlibs,
  // "Process metrics"); the hermod_process_* names above stay for existing dashboards.
  t.Family("process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
  t.Sample("process_cpu_seconds_total", {}, process.cpu_seconds);
  t.Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  t.Sample("process_resident_memory_bytes", {}, process.resident_bytes);
  t.Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  t.Sample("process_virtual_memory_bytes", {}, process.virtual_bytes);
  t.Family("process_open_fds", "gauge", "Number of open file descriptors.");
  t.Sample("process_open_fds", {}, process.open_fds);
  t.Family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
  t.Sample("process_max_fds", {}, process.max_fds);
  t.Family("process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
  t.Sample("process_start_time_seconds", {}, process.start_time_seconds);
  return t.text();
}

}  // namespace hermod::metrics
