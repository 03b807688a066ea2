#include "metrics/dashboard.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "config/config.h"
#include "http/response.h"
#include "metrics/prometheus_text.h"

namespace hermod::metrics {

namespace {

using config::AppendJsonString;

template <class Counts>
void AppendArray(std::string& out, const Counts& counts) {
  out += '[';
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i > 0) out += ',';
    fmt::format_to(std::back_inserter(out), "{}", counts[i]);
  }
  out += ']';
}

// All methods' latency histograms in one.
template <size_t N>
LatencyHistogram Sum(const std::array<LatencyHistogram, N>& histograms) {
  LatencyHistogram all;
  for (const LatencyHistogram& h : histograms) all.Add(h);
  return all;
}

void AppendState(std::string& out, const stats::HubState& s) {
  fmt::format_to(std::back_inserter(out),
                 "{{\"channels\":{},\"subscriptions\":{},\"history_entries\":{},"
                 "\"history_bytes\":{},\"presence_entries\":{},\"idempotency_keys\":{},"
                 "\"reclaim_backlog\":{}}}",
                 s.channels, s.subscriptions, s.history_entries, s.history_bytes,
                 s.presence_entries, s.idempotency_keys, s.reclaim_backlog);
}

uint64_t UnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

bool BasicPasswordMatches(std::string_view authorization, std::string_view password) {
  constexpr std::string_view kScheme = "basic ";
  if (authorization.size() <= kScheme.size() || password.empty()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if ((authorization[i] | 0x20) != kScheme[i]) return false;
  }
  std::string_view encoded = authorization.substr(kScheme.size());
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  if (encoded.empty() || encoded.size() % 4 != 0 || encoded.size() > 4096) return false;
  std::string decoded(encoded.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                          reinterpret_cast<const unsigned char*>(encoded.data()),
                          static_cast<int>(encoded.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts the padding's zero bytes as data.
  size_t length = static_cast<size_t>(n);
  for (size_t i = encoded.size(); i > 0 && encoded[i - 1] == '=' && length > 0; --i) --length;
  decoded.resize(length);
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  std::string_view given = std::string_view(decoded).substr(colon + 1);
  // Constant time in the password's content (its length is no secret worth the trouble).
  unsigned char difference = given.size() == password.size() ? 0 : 1;
  for (size_t i = 0; i < password.size(); ++i) {
    difference |= static_cast<unsigned char>(password[i] ^ (i < given.size() ? given[i] : 0));
  }
  return difference == 0;
}

std::string DashboardJson(const std::vector<LoopSnapshot>& loops, const std::string& health_json,
                          const std::vector<std::pair<std::string, size_t>>& channels,
                          const std::vector<stats::HubState>& state, uint64_t unix_ms) {
  const LoopSnapshot all = MergeSnapshots(loops);
  const LoopMetrics& m = all.metrics;
  std::string out;
  auto back = std::back_inserter(out);
  uint64_t commands = 0;
  for (uint64_t n : m.commands) commands += n;
  uint64_t api_calls = 0;
  for (uint64_t n : m.api_calls) api_calls += n;
  fmt::format_to(back,
                 "{{\"at_ms\":{},\"totals\":{{\"connections\":{},\"accepted\":{},\"closed\":{},"
                 "\"messages_in\":{},\"messages_out\":{},\"bytes_read\":{},\"bytes_written\":{},"
                 "\"commands\":{},\"publications_out\":{},\"api_calls\":{},\"queued_bytes\":{},"
                 "\"slow_consumer_disconnects\":{},\"protocol_error_closes\":{}}},\"loops\":[",
                 unix_ms, all.connections, all.net.accepted, all.net.closed, all.ws.messages_in,
                 all.ws.messages_out, all.net.bytes_read, all.net.bytes_written, commands,
                 m.pushes_out[static_cast<size_t>(PushType::kPublication)], api_calls,
                 all.queued_bytes, SlowConsumerCloses(all), ProtocolErrorCloses(all));
  for (size_t i = 0; i < loops.size(); ++i) {
    const LoopSnapshot& s = loops[i];
    fmt::format_to(back,
                   "{}{{\"loop\":{},\"up\":{},\"connections\":{},\"busy_us\":{},\"wait_us\":{},"
                   "\"queued_bytes\":{}}}",
                   i == 0 ? "" : ",", s.loop, s.answered, s.connections, s.net.busy_us,
                   s.net.wait_us, s.queued_bytes);
  }
  out += "],\"latency\":{\"bounds_us\":";
  AppendArray(out, kLatencyBoundsUs);
  out += ",\"command\":";
  AppendArray(out, Sum(m.command_latency).counts);
  out += ",\"publish_to_queue\":";
  AppendArray(out, m.publish_to_queue.counts);
  out += ",\"api\":";
  AppendArray(out, Sum(m.api_latency).counts);
  out += "},\"channels\":[";
  for (size_t i = 0; i < channels.size(); ++i) {
    out += i == 0 ? "{\"channel\":" : ",{\"channel\":";
    AppendJsonString(out, channels[i].first);
    fmt::format_to(back, ",\"subscribers\":{}}}", channels[i].second);
  }
  out += "],\"state\":{\"total\":";
  AppendState(out, SumHubState(state));
  out += ",\"loops\":[";
  for (size_t i = 0; i < state.size(); ++i) {
    if (i > 0) out += ',';
    AppendState(out, state[i]);
  }
  out += "]},\"health\":";
  // The monitor's JSON ends with a newline; a JSON value does not need it.
  std::string_view health = health_json;
  while (!health.empty() && health.back() == '\n') health.remove_suffix(1);
  out += health;
  out += "}\n";
  return out;
}

Dashboard::Dashboard(std::vector<LoopCounters> loops, const HealthMonitor& monitor, HubSource hub,
                     uint64_t deadline_ms, std::string password)
    : loops_(std::move(loops)),
      monitor_(monitor),
      hub_(std::move(hub)),
      deadline_ms_(deadline_ms),
      password_(std::move(password)) {}

bool Dashboard::Authorized(http::HttpConnection& c, const http::Request& request) const {
  if (BasicPasswordMatches(request.Header("Authorization"), password_)) return true;
  c.Respond(
      http::BuildResponse(401, "text/plain; charset=utf-8", "unauthorized\n", request.keep_alive,
                          "WWW-Authenticate: Basic realm=\"hermod dashboard\", "
                          "charset=\"UTF-8\"\r\nCache-Control: no-store\r\n"),
      request.keep_alive);
  return false;
}

void Dashboard::Page(http::HttpConnection& c, http::Request& request) {
  if (!Authorized(c, request)) return;
  c.Respond(http::BuildResponse(
                200, "text/html; charset=utf-8", kDashboardHtml, request.keep_alive,
                "Cache-Control: no-store\r\n"
                "Content-Security-Policy: default-src 'self'; "
                "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\r\n"),
            request.keep_alive);
}

void Dashboard::Data(http::HttpConnection& c, http::Request& request) {
  if (!Authorized(c, request)) return;
  // The busiest channels: the hub walks its shards (one lock each, briefly) once per poll.
  std::vector<std::pair<std::string, size_t>> channels = hub_.channels();
  const size_t top = std::min(kTopChannels, channels.size());
  std::partial_sort(channels.begin(), channels.begin() + static_cast<ptrdiff_t>(top),
                    channels.end(), [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  channels.resize(top);
  std::vector<stats::HubState> state = hub_.state();  // the same walk, once more
  http::DeferredResponse answer = c.Defer();
  bool keep_alive = request.keep_alive;
  GatherSnapshots(c.loop(), loops_, deadline_ms_,
                  [this, answer, keep_alive, channels = std::move(channels),
                   state = std::move(state)](std::vector<LoopSnapshot> snapshots) {
                    std::string body =
                        DashboardJson(snapshots, monitor_.Json(), channels, state, UnixMs());
                    answer.Respond(http::BuildResponse(200, "application/json", body, keep_alive,
                                                       "Cache-Control: no-store\r\n"),
                                   keep_alive);
                  });
}

}  // namespace hermod::metrics
