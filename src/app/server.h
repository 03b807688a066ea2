// The running server: one worker thread per loop, each with its own listening socket
// (SO_REUSEPORT), its own HTTP and WebSocket counters, and the shared, read-only route
// table. The main thread only starts the workers, waits for SIGTERM/SIGINT and then asks
// every loop to shut down gracefully: stop accepting, close each WebSocket with 1001, let
// the writes drain, and exit within shutdown_timeout_ms.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/server_api.h"
#include "app/consumers.h"
#include "app/inbox_service.h"
#include "app/memory_trim.h"
#include "auth/token_verifier.h"
#include "broker/nats_broker.h"
#include "config/config.h"
#include "core/admission.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "core/scheduler.h"
#include "http/http_connection.h"
#include "http/router.h"
#include "metrics/dashboard.h"
#include "metrics/health.h"
#include "metrics/routes.h"
#include "net/event_loop.h"
#include "net/listener.h"
#include "net/tls.h"
#include "proto/client_registry.h"
#include "proto/client_session.h"
#include "proto/emulation.h"
#include "proto/stream_transport.h"
#include "proxy/proxies.h"
#include "store/nats_presence.h"
#include "store/sqlite_store.h"
#include "ws/handshake.h"
#include "ws/websocket_connection.h"

namespace hermod::store {
class NatsHistoryStore;
class NatsIdempotencyStore;
}  // namespace hermod::store

namespace hermod::app {

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();

  // Binds, starts the workers and blocks until a shutdown signal has been handled.
  // Returns the process exit code.
  int Run();

 private:
  struct Worker {
    // Before the loop: connections the loop closes as it is destroyed still count into these.
    http::HttpStats http_stats;
    ws::WebSocketStats ws_stats;
    stats::LoopMetrics metrics;
    std::unique_ptr<net::Loop> loop;
    std::unique_ptr<net::Listener> listener;
    std::thread thread;
    std::unique_ptr<net::TimerNode> drain_watch;     // set at shutdown
    std::unique_ptr<MemoryTrim::Timer> memory_trim;  // with memory_trim_interval
  };

  void BuildRoutes();
  // uni: /connection/uni_websocket (no permessage-deflate, the unidirectional session);
  // fragments (not null): /connection/fragments/websocket, its connect and subscribes.
  void Upgrade(http::HttpConnection& connection, http::Request& request, bool echo,
               bool uni = false, const std::string* fragments = nullptr, size_t channels = 0);
  // The query of a fragments request as the session's connect and subscribes (ids 1, 2, ...),
  // with Last-Event-ID as each channel's recovery position (from), and the positions it names
  // of channels the query did not (a token's `channels`: the connect's subs recover them;
  // named_from); false when it answered an error.
  bool FragmentCommands(http::HttpConnection& connection, const http::Request& request,
                        std::string* commands, std::vector<std::string>* channels,
                        std::vector<proto::StreamPosition>* from,
                        std::vector<proto::NamedPosition>* named_from = nullptr);
  // /connection/uni_sse and /connection/uni_http_stream: the connect request from the body
  // (or uni_sse's cf_connect), then the streamed response (proto/stream_transport.h).
  void UniStream(http::HttpConnection& connection, http::Request& request, bool sse);
  // /connection/fragments: connect with the query's token, subscribe to its channels
  // (recovering from Last-Event-ID), stream their publications as SSE events.
  void Fragments(http::HttpConnection& connection, http::Request& request);
  // Admission, then the request's connection becomes a StreamTransport fed commands.
  // The request's Origin is checked as for a WebSocket (allowed_origins: 403) and echoed
  // in Access-Control-Allow-Origin.
  void StartStream(http::HttpConnection& connection, const http::Request& request,
                   proto::StreamTransport::Format format, std::string_view commands,
                   std::vector<std::string> channels = {},
                   std::vector<proto::StreamPosition> from = {},
                   std::vector<proto::NamedPosition> named_from = {});
  // Bidirectional emulation (app/emulation_routes.cc, proto/emulation.h):
  // /connection/http_stream and /connection/sse open the stream; /emulation takes the
  // client's commands for it. CORS preflights (OPTIONS) are answered per allowed_origins.
  void EmulatedStream(http::HttpConnection& connection, http::Request& request, bool sse);
  void Emulation(http::HttpConnection& connection, http::Request& request);
  // The Access-Control-Allow-Origin lines for the request's Origin; false (answered 403)
  // when allowed_origins refuses it. OPTIONS: answers the preflight and returns false.
  bool Cors(http::HttpConnection& connection, const http::Request& request,
            std::string_view methods, std::string* headers);
  // Admission of a client-protocol upgrade; answers 503/429 and returns false on refusal.
  bool Admit(http::HttpConnection& connection, std::string* ip, bool* must_recover);
  void ForwardProxyHeaders(const http::Request& request, proto::ClientSession& session);
  void ShutdownWorker(Worker& worker);
  // Once the loops exist: the health monitor and the /metrics and /health* routes.
  void BuildMetrics();
  // presence_engine nats: its health check and /metrics families.
  void AddPresenceChecks(std::shared_ptr<const store::NatsPresenceStore::Counters> counters);
  // What the dashboard shows of the hub, the API and the broker.
  metrics::DashboardSources DashboardSources();

  config::Config config_;
  http::HttpOptions http_options_;
  ws::WebSocketOptions ws_options_;
  ws::HandshakePolicy handshake_policy_;
  // The client endpoint's: also offers `centrifuge-protobuf` (the SDK's protobuf build).
  ws::HandshakePolicy client_handshake_policy_;
  http::Router router_;
  std::unique_ptr<net::TlsContext> tls_;
  // The client protocol on /connection/websocket: its WebSocket options (pings
  // are the protocol's `{}`, not RFC 6455 pings), the channel rules, the hub, and what
  // every client connection shares. The hub is built in Run, once the loop count is known;
  // declared before workers_ so that it outlives the loops (their connections unsubscribe).
  ws::WebSocketOptions client_ws_options_;
  ws::WebSocketOptions uni_ws_options_;       // uni_websocket: its message size limit
  ws::HandshakePolicy uni_handshake_policy_;  // uni_websocket: no permessage-deflate
  core::ChannelRules channel_rules_;
  auth::TokenVerifier token_verifier_;
  std::unique_ptr<core::Hub> hub_;
  // Namespaces with `inbox: true` (app/inbox_service.h): after hub_, so it goes first.
  std::unique_ptr<InboxService> inbox_;
  // The store engine's status for /metrics and /health (empty: the memory engine).
  std::function<store::StoreStatus()> store_status_;
  MemoryTrim memory_trim_;
  // Config broker "nats": other nodes' publications enter the hub from libnats's threads;
  // built and stopped in Run, declared after hub_ so that it goes first.
  std::unique_ptr<broker::NatsBroker> broker_;
  // history_engine "nats": the engine the hub owns, stopped with the broker.
  store::NatsHistoryStore* nats_history_ = nullptr;
  // engine nats: the fire keys of firings delivered here (hermod_scheduled_fire_keys*).
  const store::NatsIdempotencyStore* nats_fire_keys_ = nullptr;
  // presence_engine "nats" (store/nats_presence.h): owned by the hub, stopped in Run after
  // the loops and before the broker (which tears libnats down).
  store::NatsPresenceStore* nats_presence_ = nullptr;
  // Connected clients: the API's info (clients, users) and its per-user actions.
  std::unique_ptr<proto::ClientRegistry> client_registry_;
  std::unique_ptr<proxy::Proxies> proxies_;  // null: no proxy endpoint configured
  std::unique_ptr<proto::ClientContext> client_context_;
  // http_stream or sse: routes /emulation's commands to the sessions (outlives the loops).
  std::unique_ptr<proto::EmulationRegistry> emulation_;
  // Connection limits shared by every loop (core/admission.h), built in Run.
  std::unique_ptr<core::Admission> admission_;
  std::unique_ptr<api::ServerApi> api_;  // /api/<method>, built in Run beside the hub
  // Scheduled delivery (core/scheduler.h): fires through api_ on the loops; stopped first.
  std::unique_ptr<core::Scheduler> scheduler_;
  // Async consumers (config `consumers`): stopped before the loops, which execute for them.
  std::vector<std::unique_ptr<JetStreamConsumer>> consumers_;
  // GET /metrics and /health*, built in Run once the loops exist.
  std::unique_ptr<metrics::HealthMonitor> health_;
  std::unique_ptr<metrics::Routes> metrics_;
  std::unique_ptr<metrics::Dashboard> dashboard_;  // config admin: GET /dashboard
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace hermod::app
