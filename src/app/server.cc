#include "app/server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>

#include "api/methods.h"
#include "app/logging.h"
#include "app/proxy_metrics.h"
#include "app/scheduled.h"
#include "app/store_status.h"
#include "http/response.h"
#include "json/string_writer.h"
#include "log/fields.h"
#include "metrics/hub_state.h"
#include "proto/command.h"
#include "proto/encode.h"
#include "proto/prepared_push.h"
#include "proto/stream_format.h"
#include "proto/stream_transport.h"
#include "proto/websocket_transport.h"
#include "store/engines.h"
#include "store/nats_history.h"
#include "store/nats_schedule.h"

namespace hermod::app {

namespace {

constexpr std::string_view kProtobufSubprotocol = "centrifuge-protobuf";

// The client protocol's Protobuf encoding is asked for by the subprotocol, or, as Centrifugo
// accepts, by the query's `format=protobuf` or `cf_protocol=protobuf`.
bool AsksForProtobuf(std::string_view subprotocol, std::string_view query) {
  if (subprotocol == kProtobufSubprotocol) return true;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair == "format=protobuf" || pair == "cf_protocol=protobuf") return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

// The JetStream history engine's options from config: the stream keeps the largest
// history_size of any namespace per channel, and positions for history_meta_ttl.
store::NatsHistoryOptions NatsHistoryOptionsOf(const config::Config& config) {
  store::NatsHistoryOptions o;
  o.url = config.nats.url;
  o.tls = config.nats.tls;
  o.prefix = config.nats.prefix;
  o.stream = config.nats.jetstream.stream;
  o.replicas = static_cast<int64_t>(config.nats.jetstream.replicas);
  o.file_storage = config.nats.jetstream.storage != "memory";
  o.workers = config.nats.jetstream.workers;
  o.read_cache_bytes = config.nats.history_read_cache_bytes;
  uint64_t size = std::max<uint64_t>(1, config.channel.history_size);
  for (const config::Namespace& ns : config.namespaces) {
    size = std::max(size, ns.options.history_size);
  }
  o.max_msgs_per_subject = static_cast<int64_t>(size);
  o.max_age_ms = config.history_meta_ttl.ms;
  o.duplicates_ms = config.idempotency_window.ms;
  o.timeout_ms = std::max<uint64_t>(config.nats.dial_timeout.ms, 1000);
  // In a cluster the broker's interest says which channels' deliveries this node wants.
  o.deliver_by_channel = config.broker == "nats";
  return o;
}

// Waits for the loop to have no connections left, or for the deadline, then stops it.
class DrainWatch final : public net::TimerNode {
 public:
  DrainWatch(net::Loop& loop, uint64_t deadline_ms) : loop_(loop), deadline_ms_(deadline_ms) {}
  void OnTimer() override {
    if (loop_.connection_count() == 0 || loop_.now_ms() >= deadline_ms_) {
      if (loop_.connection_count() > 0) {
        spdlog::warn("loop {}: {} connections still open at the shutdown deadline", loop_.index(),
                     loop_.connection_count());
      }
      loop_.ForEachConnection([](net::Connection* c) { c->Close(); });
      loop_.Stop();
      return;
    }
    loop_.timers().Schedule(this, net::TimerWheel::kTickMs);
  }

 private:
  net::Loop& loop_;
  uint64_t deadline_ms_;
};

}  // namespace

Server::Server(config::Config config)
    : config_(std::move(config)),
      channel_rules_(config_),
      token_verifier_(auth::TokenKeys::FromConfig(config_)) {
  const auto& h = config_.http;
  http_options_.limits.max_header_bytes = static_cast<uint32_t>(h.max_header_bytes);
  http_options_.limits.max_headers = static_cast<uint32_t>(h.max_headers);
  http_options_.limits.max_body_bytes = h.max_body_bytes;
  http_options_.keepalive_timeout_ms = h.keepalive_timeout_ms;
  http_options_.max_response_bytes = h.max_response_bytes;
  http_options_.request_timeout_ms = config_.websocket.handshake_timeout_ms;

  const auto& w = config_.websocket;
  ws_options_.max_message_bytes = w.max_message_bytes;
  ws_options_.ping_interval_ms = w.ping_interval_ms;
  ws_options_.pong_timeout_ms = w.pong_timeout_ms;
  ws_options_.idle_timeout_ms = w.idle_timeout_ms;
  ws_options_.close_timeout_ms = w.close_timeout_ms;
  ws_options_.fragment_bytes = w.fragment_bytes;
  ws_options_.deflate_level = static_cast<int>(w.compression.level);
  ws_options_.deflate_min_size = w.compression.min_size;

  handshake_policy_.allowed_origins = w.allowed_origins;
  handshake_policy_.subprotocols = w.subprotocols;
  auto& d = handshake_policy_.deflate;
  d.enabled = w.compression.enabled;
  d.server_no_context_takeover = w.compression.server_no_context_takeover;
  d.client_no_context_takeover = w.compression.client_no_context_takeover;
  d.server_max_window_bits = static_cast<int>(w.compression.server_max_window_bits);
  d.client_max_window_bits = static_cast<int>(w.compression.client_max_window_bits);
  d.level = static_cast<int>(w.compression.level);
  d.min_size = w.compression.min_size;
  client_ws_options_ = ws_options_;
  client_ws_options_.ping_interval_ms = 0;
  client_handshake_policy_ = handshake_policy_;
  client_handshake_policy_.subprotocols.push_back(std::string(kProtobufSubprotocol));
  uni_ws_options_ = client_ws_options_;
  uni_ws_options_.max_message_bytes = config_.uni_websocket_message_size_limit;
  uni_handshake_policy_ = handshake_policy_;
  uni_handshake_policy_.deflate.enabled = false;
  BuildRoutes();
}

Server::~Server() = default;

void Server::BuildRoutes() {
  router_.Add("/health", {"GET"},
              [this](http::HttpConnection& c, http::Request& r) { metrics_->Health(c, r); });
  router_.Add("/health/live", {"GET"},
              [this](http::HttpConnection& c, http::Request& r) { metrics_->Live(c, r); });
  router_.Add("/health/ready", {"GET"},
              [this](http::HttpConnection& c, http::Request& r) { metrics_->Ready(c, r); });
  router_.Add("/metrics", {"GET"},
              [this](http::HttpConnection& c, http::Request& r) { metrics_->Metrics(c, r); });
  if (config_.admin) {
    router_.Add("/dashboard", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) { dashboard_->Page(c, r); });
    router_.Add("/dashboard/data", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) { dashboard_->Data(c, r); });
    router_.Add("/dashboard/history", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) { dashboard_->History(c, r); });
    // The server API with the admin's credentials (metrics/dashboard.h).
    for (std::string_view method : api::kMethodNames) {
      router_.Add("/dashboard/api/" + std::string(method), {"POST"},
                  [this](http::HttpConnection& c, http::Request& r) { dashboard_->Api(c, r); });
    }
  }
  router_.Add("/connection/websocket", {"GET"},
              [this](http::HttpConnection& c, http::Request& r) { Upgrade(c, r, false); });
  for (std::string& route : api::ServerApi::Routes()) {
    router_.Add(std::move(route), {"POST"},
                [this](http::HttpConnection& c, http::Request& r) { api_->Handle(c, r); });
  }
  // Disabled transports have no route: 404, as Centrifugo answers.
  if (config_.uni_websocket) {
    router_.Add("/connection/uni_websocket", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) { Upgrade(c, r, false, true); });
  }
  if (config_.uni_sse) {
    router_.Add("/connection/uni_sse", {"GET", "POST"},
                [this](http::HttpConnection& c, http::Request& r) { UniStream(c, r, true); });
  }
  if (config_.uni_http_stream) {
    router_.Add("/connection/uni_http_stream", {"POST"},
                [this](http::HttpConnection& c, http::Request& r) { UniStream(c, r, false); });
  }
  if (config_.http_stream) {
    router_.Add("/connection/http_stream", {"POST", "OPTIONS"},
                [this](http::HttpConnection& c, http::Request& r) { EmulatedStream(c, r, false); });
  }
  if (config_.sse) {
    router_.Add("/connection/sse", {"GET", "POST", "OPTIONS"},
                [this](http::HttpConnection& c, http::Request& r) { EmulatedStream(c, r, true); });
  }
  if (config_.http_stream || config_.sse) {
    router_.Add("/emulation", {"POST", "OPTIONS"},
                [this](http::HttpConnection& c, http::Request& r) { Emulation(c, r); });
  }
  if (config_.fragments) {
    router_.Add("/connection/fragments", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) { Fragments(c, r); });
  }
  if (config_.fragments_websocket) {
    router_.Add("/connection/fragments/websocket", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) {
                  std::string commands;
                  std::vector<std::string> channels;
                  std::vector<proto::StreamPosition> from;
                  if (!FragmentCommands(c, r, &commands, &channels, &from)) return;
                  Upgrade(c, r, false, false, &commands, channels.size());
                });
  }
  if (config_.echo) {
    router_.Add("/connection/echo", {"GET"},
                [this](http::HttpConnection& c, http::Request& r) { Upgrade(c, r, true); });
  }
}

void Server::Upgrade(http::HttpConnection& connection, http::Request& request, bool echo, bool uni,
                     const std::string* fragments, size_t channels) {
  std::string upgrade = request.HeaderList("Upgrade");
  std::string connection_header = request.HeaderList("Connection");
  std::string protocols = request.HeaderList("Sec-WebSocket-Protocol");
  std::string extensions = request.HeaderList("Sec-WebSocket-Extensions");
  ws::UpgradeRequest upgrade_request;
  upgrade_request.method = request.method;
  upgrade_request.http_version = request.version;
  upgrade_request.host = request.Header("Host");
  upgrade_request.upgrade = upgrade;
  upgrade_request.connection = connection_header;
  // RFC 6455 §11.3.1: the key appears once; a repeated one joins into a list that fails the
  // key check (base64 has no comma), so it gets 400 like any bad key.
  std::string key = request.HeaderList("Sec-WebSocket-Key");
  upgrade_request.key = key;
  upgrade_request.version = request.Header("Sec-WebSocket-Version");
  upgrade_request.origin = request.Header("Origin");
  upgrade_request.protocols = protocols;
  upgrade_request.extensions = extensions;
  ws::HandshakeResult result =
      ws::AcceptUpgrade(upgrade_request, echo               ? handshake_policy_
                                         : uni || fragments ? uni_handshake_policy_
                                                            : client_handshake_policy_);
  if (result.status != 101) {
    // The path only: a query may carry credentials; bounded, it is the client's text.
    std::string_view path = std::string_view(request.target).substr(0, 128);
    const std::string remote = connection.PeerIp();
    log::Write(spdlog::level::info,
               {{"code", result.status}, {"reason", result.reason}, {"remote", remote}},
               "ws: upgrade on {} refused with {}: {}", path.substr(0, path.find('?')),
               result.status, result.reason);
    connection.Respond(result.response, false);
    return;
  }
  // Admission before the 101: a refused client gets a whole HTTP answer, never a WebSocket.
  std::string ip;
  bool must_recover = false;
  if (!echo && !Admit(connection, &ip, &must_recover)) return;
  connection.Send(result.response);
  Worker& worker = *workers_[static_cast<size_t>(connection.loop().index())];
  if (echo) {
    connection.Upgrade<ws::EchoConnection>(ws_options_, result, worker.ws_stats);
  } else if (fragments != nullptr) {
    // RFC 6455 pings keep the page's socket alive: htmx reads no protocol pings.
    auto* client = connection.Upgrade<proto::FragmentsWebSocketTransport>(
        ws_options_, result, worker.ws_stats, *client_context_);
    if (admission_->enabled()) client->session().SetAdmitted(std::move(ip), must_recover);
    ForwardProxyHeaders(request, client->session());
    client->Start(*fragments, channels);
  } else if (uni) {
    auto* client = connection.Upgrade<proto::UniWebSocketTransport>(
        uni_ws_options_, result, worker.ws_stats, *client_context_);
    if (admission_->enabled()) client->session().SetAdmitted(std::move(ip), must_recover);
    ForwardProxyHeaders(request, client->session());
  } else {
    auto* client = connection.Upgrade<proto::WebSocketTransport>(
        client_ws_options_, result, worker.ws_stats, *client_context_,
        AsksForProtobuf(result.subprotocol, request.Query()) ? proto::Format::kProtobuf
                                                             : proto::Format::kJson);
    if (admission_->enabled()) client->session().SetAdmitted(std::move(ip), must_recover);
    ForwardProxyHeaders(request, client->session());
  }
}

// proxy_http_headers: the request's headers the backend proxies are sent, kept for the
// connection's calls (only those listed), whatever transport carries the session.
void Server::ForwardProxyHeaders(const http::Request& request, proto::ClientSession& session) {
  if (!proxies_ || proxies_->forwarded_headers().empty()) return;
  const auto& allow = proxies_->forwarded_headers();
  std::vector<std::string> forwarded;
  for (const auto& [name, value] : request.headers) {
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (std::find(allow.begin(), allow.end(), lower) != allow.end()) {
      forwarded.push_back(name + ": " + value);
    }
  }
  session.SetProxyHeaders(std::move(forwarded));
}

namespace {

// A plain-text refusal of a stream's request (the connection stays open for the next one).
void RefuseStream(http::HttpConnection& connection, const http::Request& request, int status,
                  std::string_view why) {
  connection.Respond(http::BuildResponse(status, "text/plain; charset=utf-8",
                                         std::string(why) + "\n", request.keep_alive),
                     request.keep_alive);
}

// The chunked stream needs HTTP/1.1; a HEAD learns the head of an answer and nothing more.
bool StreamRequestOk(http::HttpConnection& connection, const http::Request& request,
                     std::string_view type) {
  if (request.version < 11) {
    RefuseStream(connection, request, 400, "streaming needs HTTP/1.1");
    return false;
  }
  if (request.method == "HEAD") {
    connection.Respond(http::BuildResponse(200, type, {}, request.keep_alive), request.keep_alive);
    return false;
  }
  return true;
}

}  // namespace

void Server::StartStream(http::HttpConnection& connection, const http::Request& request,
                         proto::StreamTransport::Format format, std::string_view commands,
                         std::vector<std::string> channels, std::vector<proto::StreamPosition> from,
                         std::vector<proto::NamedPosition> named_from) {
  const std::string_view origin = request.Header("Origin");
  if (!ws::OriginAllowed(origin, request.Header("Host"), handshake_policy_.allowed_origins)) {
    return RefuseStream(connection, request, 403, "origin not allowed");
  }
  std::string headers;
  if (!origin.empty()) {
    headers = "Access-Control-Allow-Origin: " + std::string(origin) + "\r\nVary: Origin\r\n";
  }
  std::string ip;
  bool must_recover = false;
  if (!Admit(connection, &ip, &must_recover)) return;
  auto* stream = connection.Upgrade<proto::StreamTransport>(format, *client_context_);
  if (admission_->enabled()) stream->session().SetAdmitted(std::move(ip), must_recover);
  ForwardProxyHeaders(request, stream->session());
  stream->Start(commands, std::move(channels), std::move(headers), std::move(from),
                std::move(named_from));
}

void Server::UniStream(http::HttpConnection& connection, http::Request& request, bool sse) {
  if (!StreamRequestOk(connection, request, sse ? "text/event-stream" : "application/json")) {
    return;
  }
  const uint64_t limit =
      sse ? config_.uni_sse_max_request_body_size : config_.uni_http_stream_max_request_body_size;
  std::string connect;
  std::vector<proto::NamedPosition> named_from;
  if (request.method == "GET") {
    // uni_sse: the connect request is the cf_connect query parameter (EventSource cannot POST).
    std::vector<std::pair<std::string, std::string>> params;
    if (!http::ParseQuery(request.Query(), &params)) {
      return RefuseStream(connection, request, 400, "bad query string");
    }
    for (auto& [name, value] : params) {
      if (name == "cf_connect") connect = std::move(value);
    }
    // An EventSource that reconnects by itself sends the URL it began with (stale positions,
    // or none) and the id of the last event it saw: each channel's newer position.
    std::vector<proto::StreamPosition> positional;
    const std::string_view last = request.Header("Last-Event-ID");
    if (sse && !last.empty() && !proto::ParseEventPositions(last, 0, &positional, &named_from)) {
      connection.loop().stats().guard.Count(stats::Refusal::kBadLastEventId);
      return RefuseStream(connection, request, 400, "bad Last-Event-ID");
    }
  } else {
    connect = std::move(request.body);
  }
  if (connect.size() > limit) {
    return RefuseStream(connection, request, 413, "connect request too large");
  }
  std::string command;
  if (!proto::WrapConnect(connect, named_from, &command)) {
    return RefuseStream(connection, request, 400, "the connect request is not a JSON object");
  }
  StartStream(
      connection, request,
      sse ? proto::StreamTransport::Format::kUniSse : proto::StreamTransport::Format::kUniJsonLines,
      command, {}, {}, std::move(named_from));
}

void Server::Fragments(http::HttpConnection& connection, http::Request& request) {
  if (!StreamRequestOk(connection, request, "text/event-stream")) return;
  std::string commands;
  std::vector<std::string> channels;
  std::vector<proto::StreamPosition> from;
  std::vector<proto::NamedPosition> named_from;
  if (!FragmentCommands(connection, request, &commands, &channels, &from, &named_from)) return;
  StartStream(connection, request, proto::StreamTransport::Format::kFragments, commands,
              std::move(channels), std::move(from), std::move(named_from));
}

bool Server::FragmentCommands(http::HttpConnection& connection, const http::Request& request,
                              std::string* out, std::vector<std::string>* channels_out,
                              std::vector<proto::StreamPosition>* from_out,
                              std::vector<proto::NamedPosition>* named_out) {
  std::vector<std::pair<std::string, std::string>> params;
  if (!http::ParseQuery(request.Query(), &params)) {
    RefuseStream(connection, request, 400, "bad query string");
    return false;
  }
  std::string token;
  std::vector<std::string> channels;
  for (auto& [name, value] : params) {
    if (name == "token") {
      token = std::move(value);
    } else if (name == "channel") {
      if (std::find(channels.begin(), channels.end(), value) == channels.end()) {
        channels.push_back(std::move(value));
      }
    }
  }
  if (channels.empty()) {
    RefuseStream(connection, request, 400, "no channel");
    return false;
  }
  if (channels.size() > config_.client_channel_limit && config_.client_channel_limit > 0) {
    RefuseStream(connection, request, 400, "too many channels");
    return false;
  }
  // The browser's reconnect names the last event it saw, whose id is the stream's position
  // in every channel (proto/stream_format.h): each channel recovers from its own. The id
  // has room for kMaxLastEventIdBytes / kMaxPositionBytes channels.
  if (channels.size() > proto::kMaxLastEventIdBytes / proto::kMaxPositionBytes) {
    RefuseStream(connection, request, 400, "too many channels");
    return false;
  }
  std::vector<proto::StreamPosition> from;
  std::vector<proto::NamedPosition> named;
  const std::string_view last = request.Header("Last-Event-ID");
  if (!last.empty() && !proto::ParseEventPositions(last, channels.size(), &from, &named)) {
    connection.loop().stats().guard.Count(stats::Refusal::kBadLastEventId);
    RefuseStream(connection, request, 400, "bad Last-Event-ID");
    return false;
  }
  auto append_position = [](std::string& out, const proto::StreamPosition& p) {
    out += "\"recover\":true,\"epoch\":";
    json::AppendJsonString(out, p.epoch);
    out += ",\"offset\":";
    out += std::to_string(p.offset);
  };
  std::string& commands = *out;
  commands = "{\"id\":1,\"connect\":{";
  if (!token.empty()) {
    commands += "\"token\":";
    json::AppendJsonString(commands, token);
    commands += ',';
  }
  // A channel the token's `channels` subscribes server-side recovers at the connect.
  commands += "\"subs\":{";
  bool first = true;
  for (size_t i = 0; i < from.size(); ++i) {
    if (!from[i].known) continue;
    if (!first) commands += ',';
    first = false;
    json::AppendJsonString(commands, channels[i]);
    commands += ":{";
    append_position(commands, from[i]);
    commands += '}';
  }
  // The channels the query did not name recover by name (the token still subscribes them).
  std::erase_if(named, [&](const proto::NamedPosition& n) {
    return std::find(channels.begin(), channels.end(), n.channel) != channels.end();
  });
  for (const proto::NamedPosition& n : named) {
    if (!first) commands += ',';
    first = false;
    json::AppendJsonString(commands, n.channel);
    commands += ":{";
    append_position(commands, n.position);
    commands += '}';
  }
  commands += "}}}";
  uint32_t id = 2;
  for (size_t i = 0; i < channels.size(); ++i) {
    commands += "\n{\"id\":";
    commands += std::to_string(id++);
    commands += ",\"subscribe\":{\"channel\":";
    json::AppendJsonString(commands, channels[i]);
    commands += ",\"recoverable\":true";
    if (i < from.size() && from[i].known) {
      commands += ',';
      append_position(commands, from[i]);
    }
    commands += "}}";
  }
  *from_out = std::move(from);
  *channels_out = std::move(channels);
  if (named_out != nullptr) *named_out = std::move(named);
  return true;
}

bool Server::Admit(http::HttpConnection& connection, std::string* ip, bool* must_recover) {
  if (!admission_->enabled()) return true;
  net::Loop& loop = connection.loop();
  *ip = connection.PeerIp();
  core::AdmitVerdict verdict =
      admission_->Admit(static_cast<size_t>(loop.index()), *ip, loop.now_ms());
  if (core::Admitted(verdict)) {
    *must_recover = verdict == core::AdmitVerdict::kAdmittedIfRecovering;
    return true;
  }
  stats::Refusal refusal = stats::Refusal::kIpRate;
  switch (verdict) {
    case core::AdmitVerdict::kAtCapacity:
      refusal = stats::Refusal::kCapacity;
      break;
    case core::AdmitVerdict::kNodeRate:
      refusal = stats::Refusal::kNodeRate;
      break;
    case core::AdmitVerdict::kIpLimit:
      refusal = stats::Refusal::kIpLimit;
      break;
    default:
      break;
  }
  loop.stats().guard.Count(refusal);
  const int status = stats::Row(refusal).code;
  thread_local core::LogThrottle log;
  uint64_t suppressed = 0;
  if (log.Allow(loop.now_ms(), &suppressed)) {
    spdlog::warn(
        "upgrade from {} refused with {} ({}; {} connections; {} more refusals on "
        "this loop since)",
        *ip, status, core::AdmitVerdictName(verdict), admission_->connections(), suppressed);
  }
  const std::string retry_after =
      "Retry-After: " + std::to_string(admission_->limits().retry_after_s) + "\r\n";
  connection.Respond(http::ErrorResponse(status, retry_after), false);
  return false;
}

void Server::BuildMetrics() {
  std::vector<metrics::LoopCounters> counters;
  for (auto& worker : workers_) {
    counters.push_back(
        {worker->loop.get(), &worker->http_stats, &worker->ws_stats, &worker->metrics});
  }
  health_ = std::make_unique<metrics::HealthMonitor>(config_.health, counters);
  // The metrics room reads the hub through these callbacks and never includes it.
  core::Hub* hub = hub_.get();
  metrics::HubSource hub_source{[hub] {
                                  std::vector<stats::HubState> loops;
                                  for (size_t i = 0; i < hub->loop_count(); ++i)
                                    loops.push_back(hub->State(i));
                                  return loops;
                                },
                                [hub] { return hub->Channels(); }};
  // In a cluster every node keeps its samples, so that it can tell the others about itself,
  // whether or not it serves the dashboard's routes.
  if (config_.admin || broker_) {
    dashboard_ =
        std::make_unique<metrics::Dashboard>(counters, *health_, config_.health.loop_deadline_ms,
                                             config_.admin_password, DashboardSources());
    dashboard_->Start();
    if (broker_) {
      broker_->SetNodeInfo([dashboard = dashboard_.get()] { return dashboard->NodeJson(); });
    }
  }
  metrics_ = std::make_unique<metrics::Routes>(
      std::move(counters), *health_, config_.health.loop_deadline_ms,
      metrics::BuildInfo{HERMOD_VERSION, __VERSION__},
      metrics::MethodLabels{proto::kMethodNames, api::kMethodLabels});
  metrics_->AddRenderer([state = hub_source.state](metrics::PrometheusText& text) {
    metrics::RenderHubState(text, state());
  });
  metrics_->AddRenderer(
      [trim = &memory_trim_](metrics::PrometheusText& text) { trim->Render(text); });
  metrics_->AddRenderer([](metrics::PrometheusText& text) {
    text.Family("hermod_log_lines_dropped_total", "counter",
                "Log lines dropped because stderr's reader fell log_buffer_bytes behind.");
    text.Sample("hermod_log_lines_dropped_total", {}, LogLinesDropped());
  });
  metrics_->AddRenderer([status = store_status_](metrics::PrometheusText& text) {
    RenderStoreMetrics(text, status);
  });
  metrics_->AddRenderer([inbox = inbox_.get()](metrics::PrometheusText& text) {
    inbox ? inbox->Render(text) : RenderNoInboxMetrics(text);
  });
  metrics_->AddRenderer(
      [scheduler = scheduler_.get(), keys = nats_fire_keys_](metrics::PrometheusText& text) {
        RenderScheduled(text, *scheduler, keys);
      });
  if (store_status_) {
    health_->AddCheck([status = store_status_] { return StoreHealth(status()); });
  }
  // The history engine's failures (publications refused), offset races and duplicates: the
  // memory engine has none of them.
  metrics_->AddRenderer(
      [history = nats_history_, engine = config_.history_engine](metrics::PrometheusText& text) {
        const std::pair<const char*, uint64_t> families[] = {
            {"hermod_store_append_failures_total", history ? history->store_errors() : 0},
            {"hermod_store_offset_conflicts_total", history ? history->conflicts() : 0},
            {"hermod_store_duplicates_total", history ? history->duplicates() : 0}};
        const char* help[] = {
            "Publications the history engine could not store (refused to their publisher).",
            "Appends retried because another node took the offset first (history_engine nats).",
            "Keyed publications the engine answered as duplicates (history_engine nats)."};
        for (size_t i = 0; i < 3; ++i) {
          text.Family(families[i].first, "counter", help[i]);
          text.Sample(families[i].first, {{"engine", engine}}, families[i].second);
        }
        text.Family("hermod_store_delivery_gaps_total", "counter",
                    "Deliveries that came past a gap (missed while NATS was away, or while a "
                    "channel's subscription was on its way): filled from the stream, or lost "
                    "(history_engine nats).");
        text.Sample("hermod_store_delivery_gaps_total", {{"result", "filled"}},
                    history ? history->gaps_filled() : 0);
        text.Sample("hermod_store_delivery_gaps_total", {{"result", "lost"}},
                    history ? history->gaps_lost() : 0);
        const store::NatsHistoryStore::ReadCounts reads =
            history ? history->read_counts() : store::NatsHistoryStore::ReadCounts{};
        text.Family("hermod_store_history_reads_total", "counter",
                    "History reads and recoveries: folded (only the messages stored since the "
                    "channel's last read fetched) or rebuilt (every message the channel keeps "
                    "fetched) (history_engine nats).");
        text.Sample("hermod_store_history_reads_total", {{"result", "folded"}}, reads.folded);
        text.Sample("hermod_store_history_reads_total", {{"result", "rebuilt"}}, reads.rebuilt);
        text.Family("hermod_store_history_read_messages_total", "counter",
                    "JetStream messages fetched for history reads and recoveries "
                    "(history_engine nats).");
        text.Sample("hermod_store_history_read_messages_total", {}, reads.messages);
        text.Family("hermod_store_history_read_cache_bytes", "gauge",
                    "Bytes of channel histories kept between reads, at most "
                    "nats.history_read_cache_bytes (history_engine nats).");
        text.Sample("hermod_store_history_read_cache_bytes", {}, reads.cache_bytes);
        text.Family("hermod_store_history_read_cache_evictions_total", "counter",
                    "Channel histories dropped from the read cache for its budget "
                    "(history_engine nats).");
        text.Sample("hermod_store_history_read_cache_evictions_total", {}, reads.evicted);
      });
  if (nats_presence_ != nullptr) AddPresenceChecks(nats_presence_->counters());
  if (proxies_) {
    proxy::Proxies* proxies = proxies_.get();
    health_->AddCheck([proxies] { return ProxiesHealth(*proxies); });
    metrics_->AddRenderer(
        [proxies](metrics::PrometheusText& text) { RenderProxies(*proxies, text); });
  }
  metrics_->AddRenderer([consumers = &consumers_](metrics::PrometheusText& text) {
    RenderConsumers(*consumers, text);
  });
  if (broker_) {
    broker::Link* link = &broker_->link();
    health_->AddCheck([link] { return link->Health(); });
    metrics_->AddRenderer([link](metrics::PrometheusText& text) { link->Render(text); });
  }
}

void Server::AddPresenceChecks(std::shared_ptr<const store::NatsPresenceStore::Counters> c) {
  health_->AddCheck([c] {
    const bool up = c->connected.load();
    metrics::HealthCheck check{"presence", metrics::HealthLevel::kHealthy, up ? 1.0 : 0.0, 1.0,
                               "presence engine nats: connected"};
    if (!up) {
      check.level = metrics::HealthLevel::kDegraded;
      check.detail =
          "presence engine nats: not connected to NATS: presence and presence_stats answer "
          "errors, this node's entries are put again once it connects";
    }
    return check;
  });
  metrics_->AddRenderer([c](metrics::PrometheusText& t) {
    t.Family("hermod_store_presence_operations_total", "counter",
             "Presence engine nats: writes sent (puts, deletes, refreshes) and reads made");
    t.Sample("hermod_store_presence_operations_total", {{"kind", "write"}}, c->writes.load());
    t.Sample("hermod_store_presence_operations_total", {{"kind", "read"}}, c->reads.load());
    t.Sample("hermod_store_presence_operations_total", {{"kind", "read_shared"}},
             c->reads_shared.load());
    t.Family("hermod_store_presence_errors_total", "counter",
             "Presence engine nats: writes not acknowledged, reads answered with an error, "
             "deletes dropped past the bound of those kept during an outage");
    t.Sample("hermod_store_presence_errors_total", {{"kind", "write"}}, c->write_errors.load());
    t.Sample("hermod_store_presence_errors_total", {{"kind", "read"}}, c->read_errors.load());
    t.Sample("hermod_store_presence_errors_total", {{"kind", "delete_dropped"}},
             c->deletes_dropped.load());
    t.Family("hermod_store_presence_entries", "gauge",
             "Presence engine nats: this node's entries, refreshed every presence_ttl/3");
    t.Sample("hermod_store_presence_entries", {}, c->entries.load());
    t.Family("hermod_store_presence_queue_depth", "gauge",
             "Presence engine nats: operations waiting for the engine's thread");
    t.Sample("hermod_store_presence_queue_depth", {}, c->queued.load());
    t.Family("hermod_store_presence_pending_deletes", "gauge",
             "Presence engine nats: deletes made while NATS was unreachable, sent once it is back");
    t.Sample("hermod_store_presence_pending_deletes", {}, c->pending_deletes.load());
  });
}

metrics::DashboardSources Server::DashboardSources() {
  metrics::DashboardSources s;
  s.node_id = broker_ ? fmt::format("{:016x}", broker_->node_id()) : "local";
  char host[256] = {};
  s.node_name = gethostname(host, sizeof(host) - 1) == 0 ? host : "hermod";
  s.version = HERMOD_VERSION;
  s.clients = [this] { return client_registry_->Get(); };
  s.channels = [hub = hub_.get()] { return hub->Channels(); };
  s.hub = [hub = hub_.get()] {
    const core::Hub::Counts totals = hub->Totals();
    return metrics::HubFigures{totals.channels, totals.subscriptions};
  };
  s.hub_state = [hub = hub_.get()] {
    std::vector<stats::HubState> state;
    for (size_t i = 0; i < hub->loop_count(); ++i) state.push_back(hub->State(i));
    return metrics::HubStateJson(state);
  };
  s.api = [api = api_.get()](std::string_view method, std::string& body, std::string& out,
                             net::Loop& loop, std::function<void(int, std::string)> later) {
    const uint64_t started_us = net::Loop::MonotonicUs();
    const size_t index = api::MethodLabelIndex(method);
    api::LaterAnswer answer;
    const int status = api->Call(method, body, out, SIZE_MAX, &loop, &answer);
    if (status != api::ServerApi::kLater) {
      stats::RecordApiCall(index, net::Loop::MonotonicUs() - started_us);
      return status;
    }
    answer.Then([later = std::move(later), index, started_us](int status, std::string out) {
      stats::RecordApiCall(index, net::Loop::MonotonicUs() - started_us);
      later(status, std::move(out));
    });
    return 0;
  };
  if (broker_) s.other_nodes = [broker = broker_.get()] { return broker->OtherNodes(); };
  if (inbox_) {
    s.inboxes = [inbox = &inbox_->inbox()] {
      const core::InboxStats stats = inbox->Stats();
      uint64_t pending = 0;
      std::string namespaces;
      for (const auto& [ns, count] : stats.pending) {
        pending += count;
        namespaces += namespaces.empty() ? "{\"namespace\":" : ",{\"namespace\":";
        json::AppendJsonString(namespaces, ns);
        namespaces += ",\"pending\":" + std::to_string(count) + "}";
      }
      return "{\"pending\":" + std::to_string(pending) +
             ",\"dead\":" + std::to_string(stats.dead_held) + ",\"namespaces\":[" + namespaces +
             "]}";
    };
  }
  return s;
}

void Server::ShutdownWorker(Worker& worker) {
  worker.listener->Stop();
  worker.loop->ForEachConnection([](net::Connection* c) { c->OnShutdown(); });
  worker.drain_watch = std::make_unique<DrainWatch>(
      *worker.loop, worker.loop->now_ms() + config_.shutdown_timeout_ms);
  worker.loop->timers().Schedule(worker.drain_watch.get(), 0);
}

int Server::Run() {
  // A server holds many sockets: take the whole hard limit.
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  signal(SIGPIPE, SIG_IGN);
  // A shell starts background jobs with SIGINT ignored, and an ignored signal is discarded
  // even while blocked: restore the default so that sigwait below receives it.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // inherited by the workers

  if (!config_.tls.cert_file.empty()) {
    std::string error;
    tls_ = net::TlsContext::Create(config_.tls.cert_file, config_.tls.key_file, &error);
    if (!tls_) {
      spdlog::error("{}", error);
      return 1;
    }
  }

  size_t count =
      config_.workers != 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  uint16_t port = static_cast<uint16_t>(config_.port);
  // Before anything binds: our listeners' SO_REUSEPORT would share a busy port silently.
  if (std::string error; port != 0 && !net::ProbePortFree(config_.bind, port, &error)) {
    spdlog::error("{}", error);
    return 1;
  }
  store::EngineConfig engine_config;
  engine_config.engine = config_.engine;
  // JetStream history is built below, once the hub it delivers into exists.
  const bool nats_history_on = config_.history_engine == "nats";
  engine_config.history_engine = nats_history_on ? "memory" : config_.history_engine;
  // Presence on NATS KV is built below too: it needs its options and a start.
  const bool nats_presence_on = config_.presence_engine == "nats";
  engine_config.presence_engine = nats_presence_on ? "memory" : config_.presence_engine;
  engine_config.sqlite.path = config_.sqlite.path;
  engine_config.sqlite.max_batch = config_.sqlite.max_batch;
  engine_config.sqlite.max_queue = config_.sqlite.max_queue;
  engine_config.sqlite.max_trim = config_.sqlite.max_trim;
  engine_config.sqlite.pause_reads_at = config_.sqlite.pause_reads_at;
  engine_config.sqlite.resume_reads_at =
      std::min(config_.sqlite.resume_reads_at, config_.sqlite.pause_reads_at);
  engine_config.sqlite.synchronous_full = config_.sqlite.synchronous == "full";
  engine_config.sqlite.secure_delete = config_.sqlite.secure_delete;
  engine_config.sqlite.idempotency_window_ms = config_.idempotency_window.ms;
  store::Engines engines;
  if (std::string error; !store::MakeEngines(engine_config, &engines, &error)) {
    spdlog::error("{}", error);
    return 1;
  }
  store_status_ = std::move(engines.status);
  std::shared_ptr<store::SqliteEngine> engines_sqlite = engines.sqlite;
  store::NatsHistoryStore* nats_history = nullptr;
  if (nats_history_on) {
    // History and idempotency on JetStream, shared by the cluster (store/nats_history.h).
    auto history = std::make_unique<store::NatsHistoryStore>(NatsHistoryOptionsOf(config_));
    nats_history = history.get();
    // Its breaker and counters: hermod_store_* with engine="nats", the /health `store` check.
    store_status_ = [nats_history] { return nats_history->Status(); };
    engines.stores.history = std::move(history);
    auto keys = std::make_unique<store::NatsIdempotencyStore>(config_.nats.schedule_fire_keys);
    nats_fire_keys_ = keys.get();
    engines.stores.idempotency = std::move(keys);
    engines.stores.history_inline = false;
    engines.stores.history_delivers = true;
  }
  if (nats_history_on) {
    // Scheduled publications in a KV bucket shared by the cluster (store/nats_schedule.h).
    store::NatsScheduleOptions o;
    o.url = config_.nats.url;
    o.tls = config_.nats.tls;
    o.bucket = config_.nats.prefix + "_schedules";
    o.claims_bucket = config_.nats.prefix + "_schedule_claims";
    o.dial_timeout_ms = config_.nats.dial_timeout.ms;
    o.reconnect_wait_ms = config_.nats.reconnect_wait.ms;
    o.lease_ms = config_.nats.schedule_claim_lease.ms;
    std::string error;
    engines.schedules = store::MakeNatsSchedules(o, &error);
    if (!engines.schedules) {
      spdlog::error("{}", error);
      return 1;
    }
  }
  if (nats_presence_on) {
    auto presence = store::MakeNatsPresence(config_);
    if (std::string error; !presence->Start(&error)) {
      spdlog::error("{}", error);
      return 1;
    }
    nats_presence_ = presence.get();
    engines.stores.presence = std::move(presence);
    engines.stores.presence_inline = false;
  }
  hub_ = std::make_unique<core::Hub>(
      count,
      proto::JsonPushCodec(handshake_policy_.deflate.level,
                           handshake_policy_.deflate.server_max_window_bits),
      std::move(engines.stores));
  if (nats_history != nullptr) {
    nats_history_ = nats_history;
    nats_history->SetDelivered([hub = hub_.get(), rules = &channel_rules_](
                                   std::string_view channel, const core::StreamPosition& p,
                                   std::string_view publication, bool delta) {
      if (const config::ChannelOptions* options = rules->Find(channel)) {
        hub->Deliver(channel, *options, p, publication, delta);
      }
    });
    nats_history->SetLost([hub = hub_.get()](std::string_view channel) {
      spdlog::warn(
          "channel \"{}\": publications missed while NATS was away are no longer in the "
          "stream; this node's subscribers are told to recover",
          channel);
      hub->TellMissed(channel);
    });
    // A stream whose config conflicts, or no JetStream at all, stops start-up here.
    if (std::string error; !nats_history->Start(&error)) {
      spdlog::error("{}", error);
      return 1;
    }
    spdlog::info("history on JetStream stream {} at {}", config_.nats.jetstream.stream,
                 config_.nats.url);
  }
  if (InboxService::Wanted(config_)) {
    std::string error;
    inbox_ = InboxService::Make(config_, engines_sqlite, channel_rules_, *hub_, &error);
    if (!inbox_) {
      spdlog::error("{}", error);
      return 1;
    }
  }
  // With the nats schedules, a firing's key rides with it to the other nodes (hub.h).
  hub_->set_limits({config_.send_queue.inbox_budget_bytes, config_.idempotency_window.ms,
                    config_.history_meta_ttl.ms, config_.history_meta_max_channels,
                    nats_history_on});
  core::AdmissionLimits limits;
  limits.connection_limit = config_.client_connection_limit;
  limits.soft_connection_limit = config_.admission.soft_connection_limit;
  limits.user_connection_limit = config_.client_user_connection_limit;
  limits.ip_connection_limit = config_.admission.ip_connection_limit;
  limits.ip_rate = {static_cast<uint32_t>(config_.admission.ip_connection_rate),
                    static_cast<uint32_t>(config_.admission.ip_connection_burst)};
  // The node's rate: a second's worth of burst, so that a quiet node takes a short storm.
  limits.node_rate = {
      static_cast<uint32_t>(config_.client_connection_rate_limit),
      static_cast<uint32_t>(std::max<uint64_t>(1, config_.client_connection_rate_limit))};
  limits.ip_table_size = config_.admission.ip_table_size;
  limits.retry_after_s = (config_.admission.retry_after.ms + 999) / 1000;
  admission_ = std::make_unique<core::Admission>(limits, count);
  client_registry_ = std::make_unique<proto::ClientRegistry>(count);
  // The backend proxies' HTTP client thread starts here; it stops after the loops.
  proxies_ = proxy::Proxies::FromConfig(config_, [] { return net::Loop::MonotonicMs(); });
  client_context_ = std::make_unique<proto::ClientContext>(proto::ClientContext{
      *hub_, channel_rules_, token_verifier_, proto::ClientOptions::FromConfig(config_),
      client_registry_.get(), admission_.get(), proxies_.get()});
  if (inbox_) client_context_->inbox = &inbox_->inbox();
  if (config_.http_stream || config_.sse) {
    emulation_ = std::make_unique<proto::EmulationRegistry>(count);
  }
  if (config_.user_subscribe_to_personal) {
    client_context_->personal_namespace = config_.user_personal_channel_namespace;
  }
  // The API's per-client methods: every loop looks the user up in its part of the registry.
  api_ = std::make_unique<api::ServerApi>(
      *hub_, channel_rules_, config_.api_key,
      [this](std::string user, std::string client, api::ClientAction action) {
        for (auto& worker : workers_) {
          net::Loop* loop = worker->loop.get();
          loop->Post([this, loop, user, client, action] {
            client_registry_->ForEachOfUser(*loop, user, client, action);
          });
        }
      },
      api::NodeInfo{HERMOD_VERSION, [this] { return client_registry_->Get(); }});
  if (inbox_) api_->set_inbox(&inbox_->inbox());
  scheduler_ = std::make_unique<core::Scheduler>(std::move(engines.schedules),
                                                 config_.schedule_max_delay.ms);
  api_->set_scheduler(scheduler_.get());
  std::vector<int> listening;
  for (size_t i = 0; i < count; ++i) {
    std::string error;
    // The first bind resolves port 0; the others share that port through SO_REUSEPORT.
    int fd =
        net::BindListener(config_.bind, port, static_cast<int>(config_.backlog), &port, &error);
    if (fd < 0) {
      spdlog::error("{}", error);
      return 1;
    }
    listening.push_back(fd);
    auto worker = std::make_unique<Worker>();
    worker->loop = std::make_unique<net::Loop>(static_cast<int>(i), config_.read_buffer_bytes);
    worker->loop->set_max_write_buffer_bytes(config_.websocket.max_write_buffer_bytes);
    if (std::string error; config_.io_uring && !worker->loop->EnableIoUring(&error)) {
      spdlog::error("config key io_uring: {}", error);
      return 1;
    }
    // Watermarks above the connection's bound act as the bound.
    const uint64_t bound = config_.websocket.max_write_buffer_bytes;
    // A joined message is one frame: with fragment_bytes set, none may pass it.
    const uint64_t join =
        config_.websocket.fragment_bytes == 0
            ? config_.websocket.join_max_bytes
            : std::min(config_.websocket.join_max_bytes, config_.websocket.fragment_bytes);
    worker->loop->set_send_limits({std::min(config_.send_queue.drop_low_bytes, bound),
                                   std::min(config_.send_queue.drop_normal_bytes, bound), bound,
                                   config_.send_queue.urgent_deadline_ms,
                                   config_.send_queue.normal_deadline_ms,
                                   config_.send_queue.loop_budget_bytes, join});
    worker->loop->set_behind_threshold_us(config_.send_queue.coalesce_when_busy_us);
    hub_->AttachLoop(*worker->loop);
    // Publishers paused while the history engine's writer is behind resume once it drains
    // (an engine that answers at once never pauses anyone).
    if (config_.sqlite.pause_reads_at != 0) {
      worker->loop->set_read_gate([hub = hub_.get()] { return hub->history_drained(); });
    }
    if (emulation_) emulation_->SetLoop(i, worker->loop.get());
    if (inbox_ && i == 0) inbox_->Start(*worker->loop);
    if (config_.memory_trim_interval.ms > 0) {
      worker->memory_trim = std::make_unique<MemoryTrim::Timer>(memory_trim_, *worker->loop,
                                                                config_.memory_trim_interval.ms);
      worker->memory_trim->Start();
    }
    Worker* w = worker.get();
    worker->listener = std::make_unique<net::Listener>(
        *worker->loop, fd, tls_.get(), [this, w](net::Loop& loop, int client, SSL* ssl) {
          // The loop owns every Connection and frees it once closed.
          new http::HttpConnection(loop, client, ssl, http_options_, router_, w->http_stats);
        });
    worker->listener->SetAcceptRate(config_.admission.accept_rate_per_loop);
    workers_.push_back(std::move(worker));
  }
  // Bound, not yet serving: a server that took the port since the probe is seen now.
  if (std::string error; !net::PortOwned(config_.bind, port, listening, &error)) {
    spdlog::error("{}", error);
    return 1;
  }
  // Cluster mode: with every loop attached to the hub, before any runs.
  if (config_.broker == "nats") {
    // Its connection lives on the first loop (broker/nats_client.h).
    broker_ = std::make_unique<broker::NatsBroker>(broker::NatsBroker::Options::FromConfig(config_),
                                                   *hub_, channel_rules_, *workers_[0]->loop);
    if (nats_history_ != nullptr) {
      // The channels with history this node holds: their JetStream deliveries, subscribed in
      // the broker's rounds (store/nats_history.h).
      broker_->SetInterestHook([history = nats_history_, rules = &channel_rules_](
                                   const std::vector<std::pair<std::string, bool>>& changes) {
        std::vector<std::pair<std::string, bool>> with_history;
        for (const auto& [channel, on] : changes) {
          const config::ChannelOptions* options = rules->Find(channel);
          if (options != nullptr && options->history_size > 0)
            with_history.emplace_back(channel, on);
        }
        if (!with_history.empty()) history->Interest(with_history);
      });
    }
  }
  {
    std::vector<net::Loop*> loops;
    for (auto& worker : workers_) loops.push_back(worker->loop.get());
    consumers_ = MakeConsumers(config_, *api_, loops);
  }
  // Before the threads start: the routes read metrics_ from every loop. Before the broker
  // starts: it sends the dashboard's word about this node to the others.
  BuildMetrics();
  if (broker_) {
    std::string error;
    if (!broker_->Start(&error)) {
      spdlog::error("{}", error);
      return 1;
    }
    hub_->set_broker(broker_.get());
  }
  // Before the loops run: what it fires waits in their mailboxes until they do.
  {
    std::vector<net::Loop*> loops;
    for (auto& worker : workers_) loops.push_back(worker->loop.get());
    if (std::string error; !scheduler_->Start(
            FireThroughApi(*api_, std::move(loops), config_.fault_kill_at == "scheduled_published",
                           [broker = broker_.get()] {
                             if (broker != nullptr) broker->Flush(1000);
                           }),
            &error)) {
      spdlog::error("{}", error);
      return 1;
    }
    if (!scheduler_->durable()) {
      spdlog::info("scheduled publications are kept in memory: a restart loses those pending");
    }
  }
  // What they fetch waits in a loop's mailbox until the loops run.
  for (auto& consumer : consumers_) consumer->Start();
  for (auto& worker : workers_) {
    worker->thread = std::thread([loop = worker->loop.get(), m = &worker->metrics] {
      stats::BindThread(m);  // the loop's records (stats/loop_metrics.h) go here
      loop->Run();
    });
  }
  health_->Start();  // its first check pings the loops
  spdlog::info("listening on {}://{}:{} ({} workers{})", tls_ ? "https" : "http", config_.bind,
               port, count, config_.echo ? ", echo on" : "");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("{}: shutting down (deadline {} ms)", strsignal(signal_number),
               config_.shutdown_timeout_ms);
  scheduler_->Stop();  // what has not fired stays in the store
  // While the loops still run: the commands they execute are acked.
  for (auto& consumer : consumers_) consumer->Stop();
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->loop->Post([this, w] { ShutdownWorker(*w); });
  }
  health_->SetDraining();
  for (auto& worker : workers_) worker->thread.join();
  // The clients' leaving removed their entries: sent before the connection closes.
  if (nats_presence_ != nullptr) nats_presence_->Stop();
  if (broker_) broker_->Stop();  // the loops have stopped: it closes its connection here
  if (nats_history_ != nullptr) nats_history_->Stop();  // so do its deliveries
  if (proxies_) proxies_->Stop();                       // its answers post to the loops too
  if (inbox_) inbox_->Stop();  // its engine's completions reach the inboxes
  health_->Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace hermod::app
