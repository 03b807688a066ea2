// The running server: one worker thread per loop, each with its own listening socket
// (SO_REUSEPORT), its own HTTP and WebSocket counters, and the shared, read-only route
// table. The main thread only starts the workers, waits for SIGTERM/SIGINT and then asks
// every loop to shut down gracefully: stop accepting, close each WebSocket with 1001, let
// the writes drain, and exit within shutdown_timeout_ms.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "http/http_connection.h"
#include "http/router.h"
#include "net/event_loop.h"
#include "net/listener.h"
#include "net/tls.h"
#include "ws/handshake.h"
#include "ws/websocket_connection.h"

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
    std::unique_ptr<net::Loop> loop;
    std::unique_ptr<net::Listener> listener;
    http::HttpStats http_stats;
    ws::WebSocketStats ws_stats;
    std::thread thread;
    std::unique_ptr<net::TimerNode> drain_watch;  // set at shutdown
  };

  void BuildRoutes();
  void Upgrade(http::HttpConnection& connection, http::Request& request, bool echo);
  void ShutdownWorker(Worker& worker);

  config::Config config_;
  http::HttpOptions http_options_;
  ws::WebSocketOptions ws_options_;
  ws::HandshakePolicy handshake_policy_;
  http::Router router_;
  std::unique_ptr<net::TlsContext> tls_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace hermod::app
