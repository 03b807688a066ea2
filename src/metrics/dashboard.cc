#include "metrics/dashboard.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

#include "config/config.h"
#include "http/response.h"
#include "metrics/process_stats.h"
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

double CpuSeconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

constexpr std::string_view kNoStore = "Cache-Control: no-store\r\n";

}  // namespace

// Fires once a second on the first loop.
class Dashboard::Sampler final : public net::TimerNode {
 public:
  explicit Sampler(Dashboard& dashboard) : dashboard_(dashboard) {}
  void OnTimer() override {
    dashboard_.TakeSample();
    dashboard_.loops_.front().loop->timers().Schedule(this, kIntervalMs);
  }
  static constexpr uint64_t kIntervalMs = 1000;

 private:
  Dashboard& dashboard_;
};

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
                          const std::string& state_json, const std::vector<std::string>& nodes,
                          uint64_t unix_ms, const std::string& inboxes_json) {
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
  out += "],\"state\":";
  out += state_json.empty() ? std::string_view("null") : std::string_view(state_json);
  out += ",\"inboxes\":";
  out += inboxes_json.empty() ? std::string_view("null") : std::string_view(inboxes_json);
  out += ",\"nodes\":[";
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i > 0) out += ',';
    out += nodes[i];
  }
  out += "],\"health\":";
  // The monitor's JSON ends with a newline; a JSON value does not need it.
  std::string_view health = health_json;
  while (!health.empty() && health.back() == '\n') health.remove_suffix(1);
  out += health;
  out += "}\n";
  return out;
}

Dashboard::Dashboard(std::vector<LoopCounters> loops, const HealthMonitor& monitor,
                     uint64_t deadline_ms, std::string password, DashboardSources sources)
    : loops_(std::move(loops)),
      monitor_(monitor),
      deadline_ms_(deadline_ms),
      password_(std::move(password)),
      sources_(std::move(sources)),
      started_ms_(net::Loop::MonotonicMs()) {}

Dashboard::~Dashboard() = default;

void Dashboard::Start() {
  if (loops_.empty()) return;
  sampler_ = std::make_unique<Sampler>(*this);
  net::Loop* loop = loops_.front().loop;
  loop->Post([this, loop] { loop->timers().Schedule(sampler_.get(), 0); });
}

void Dashboard::TakeSample() {
  GatherSnapshots(
      *loops_.front().loop, loops_, deadline_ms_,
      [this](std::vector<LoopSnapshot> snapshots) {
        const LoopSnapshot all = MergeSnapshots(snapshots);
        const LoopMetrics& m = all.metrics;
        Sample s;
        s.at_ms = UnixMs();
        s.connections = all.connections;
        s.messages_in = all.ws.messages_in;
        s.messages_out = all.ws.messages_out;
        s.bytes_read = all.net.bytes_read;
        s.bytes_written = all.net.bytes_written;
        s.publications_out = m.pushes_out[static_cast<size_t>(PushType::kPublication)];
        for (uint64_t n : m.commands) s.commands += n;
        for (uint64_t n : m.api_calls) s.api_calls += n;
        // Two cheap reads (a system call and /proc/self/statm), not the whole
        // ReadProcessStats with its walk of every open descriptor.
        s.cpu_seconds = CpuSeconds();
        s.resident_bytes = ReadResidentBytes();
        if (sources_.clients) std::tie(s.clients, s.users) = sources_.clients();
        if (sources_.hub) {
          const HubFigures hub = sources_.hub();
          s.channels = hub.channels;
          s.subscriptions = hub.subscriptions;
        }
        history_.Add(s);
      },
      /*queues=*/false);  // a sample keeps no queue figures: no walk per connection
}

std::string Dashboard::NodeJson() const {
  const std::vector<Sample> last = history_.Last2();
  Sample now = last.empty() ? Sample{} : last.back();
  double cpu_percent = 0;
  double in_rate = 0;
  double out_rate = 0;
  if (last.size() == 2 && now.at_ms > last[0].at_ms) {
    const double seconds = static_cast<double>(now.at_ms - last[0].at_ms) / 1000;
    cpu_percent = std::max(0.0, (now.cpu_seconds - last[0].cpu_seconds) / seconds * 100);
    in_rate = static_cast<double>(now.messages_in - last[0].messages_in) / seconds;
    out_rate = static_cast<double>(now.messages_out - last[0].messages_out) / seconds;
  }
  std::string out = "{\"id\":";
  AppendJsonString(out, sources_.node_id);
  out += ",\"name\":";
  AppendJsonString(out, sources_.node_name);
  out += ",\"version\":";
  AppendJsonString(out, sources_.version);
  fmt::format_to(std::back_inserter(out),
                 ",\"uptime_s\":{},\"resident_bytes\":{},\"cpu_percent\":{:.1f},"
                 "\"connections\":{},\"clients\":{},\"users\":{},\"channels\":{},"
                 "\"subscriptions\":{},\"messages_in_per_s\":{:.1f},"
                 "\"messages_out_per_s\":{:.1f},\"at_ms\":{}}}",
                 (net::Loop::MonotonicMs() - started_ms_) / 1000, now.resident_bytes, cpu_percent,
                 now.connections, now.clients, now.users, now.channels, now.subscriptions, in_rate,
                 out_rate, now.at_ms);
  return out;
}

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
  std::vector<std::pair<std::string, size_t>> channels;
  if (sources_.channels) channels = sources_.channels();
  const size_t top = std::min(kTopChannels, channels.size());
  std::partial_sort(channels.begin(), channels.begin() + static_cast<ptrdiff_t>(top),
                    channels.end(), [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  channels.resize(top);
  std::string state;  // the same walk, once more
  if (sources_.hub_state) state = sources_.hub_state();
  std::string inboxes;
  if (sources_.inboxes) inboxes = sources_.inboxes();
  std::vector<std::string> nodes{NodeJson()};
  if (sources_.other_nodes) {
    for (std::string& node : sources_.other_nodes()) nodes.push_back(std::move(node));
  }
  http::DeferredResponse answer = c.Defer();
  bool keep_alive = request.keep_alive;
  GatherSnapshots(
      c.loop(), loops_, deadline_ms_,
      [this, answer, keep_alive, channels = std::move(channels), state = std::move(state),
       nodes = std::move(nodes),
       inboxes = std::move(inboxes)](std::vector<LoopSnapshot> snapshots) {
        std::string body =
            DashboardJson(snapshots, monitor_.Json(), channels, state, nodes, UnixMs(), inboxes);
        answer.Respond(http::BuildResponse(200, "application/json", body, keep_alive, kNoStore),
                       keep_alive);
      });
}

void Dashboard::History(http::HttpConnection& c, http::Request& request) {
  if (!Authorized(c, request)) return;
  uint64_t after = 0;
  std::string_view query = request.Query();
  constexpr std::string_view kAfter = "after=";
  if (size_t at = query.find(kAfter);
      at != std::string_view::npos && (at == 0 || query[at - 1] == '&')) {
    std::string_view value = query.substr(at + kAfter.size());
    std::from_chars(value.data(), value.data() + value.size(), after);  // bad: 0, all
  }
  c.Respond(http::BuildResponse(200, "application/json", SamplesJson(history_.Since(after)),
                                request.keep_alive, kNoStore),
            request.keep_alive);
}

void Dashboard::Api(http::HttpConnection& c, http::Request& request) {
  if (!Authorized(c, request)) return;
  const bool keep_alive = request.keep_alive;
  if (request.Header("X-Hermod-Admin") != "1") {
    c.Respond(http::BuildResponse(403, "text/plain; charset=utf-8",
                                  "forbidden: the header X-Hermod-Admin: 1 is required\n",
                                  keep_alive, kNoStore),
              keep_alive);
    return;
  }
  std::string_view path = request.Path();
  std::string_view method = path.substr(path.rfind('/') + 1);
  // The answer, built once the status is known (at once, or when a store engine answers).
  auto response = [keep_alive, method = std::string(method), peer = c.PeerIp()](int status,
                                                                                std::string out) {
    // Who did what: an operator's action through the dashboard leaves a line.
    spdlog::info("dashboard: api {} from {} answered {}", method, peer, status);
    if (status == 200 || status == 413) {
      out += '\n';
      return http::BuildResponse(status, "application/json", out, keep_alive, kNoStore);
    }
    return http::BuildResponse(status, "text/plain; charset=utf-8",
                               status == 404 ? "not found\n" : "bad request\n", keep_alive,
                               kNoStore);
  };
  // Set once the call is known to answer later; the completion runs after this returns.
  auto deferred = std::make_shared<http::DeferredResponse>();
  std::string out;
  // Counted as an API call of its method by the source (app/ knows the method table).
  const int status =
      sources_.api ? sources_.api(method, request.body, out, c.loop(),
                                  [deferred, response, keep_alive](int status, std::string out) {
                                    deferred->Respond(response(status, std::move(out)), keep_alive);
                                  })
                   : 404;
  if (status == 0) {
    *deferred = c.Defer();
    return;
  }
  c.Respond(response(status, std::move(out)), keep_alive);
}

}  // namespace hermod::metrics
