// The inboxes of a running server (core/inbox.h): their engine (sqlite when the server's
// engine is, with its file and writer; a NATS KV bucket shared by the cluster with engine
// nats; otherwise memory, which says at start-up that it is not durable), the timer that redelivers (on loop 0), and their /metrics families
// (hermod_inbox_*). Built by Server::Run only when a namespace has `inbox: true`.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "core/inbox.h"
#include "metrics/prometheus_text.h"
#include "net/event_loop.h"
#include "net/timer_wheel.h"
#include "store/sqlite_store.h"

namespace hermod::app {

class InboxService {
 public:
  // Whether any namespace (or the top level) has inbox: true.
  static bool Wanted(const config::Config& config);
  // nullptr with *error when the engine cannot open its tables. sqlite: null for memory.
  static std::unique_ptr<InboxService> Make(const config::Config& config,
                                            std::shared_ptr<store::SqliteEngine> sqlite,
                                            const core::ChannelRules& rules, core::Hub& hub,
                                            std::string* error);
  ~InboxService();
  core::Inbox& inbox() { return *inbox_; }
  // Before loop runs: the redelivery timer on it.
  void Start(net::Loop& loop);
  // After the loops stopped: completes what the engine holds (its callbacks reach inbox_).
  void Stop();
  void Render(metrics::PrometheusText& text);

 private:
  class Timer;
  InboxService() = default;
  std::shared_ptr<store::SqliteEngine> sqlite_;
  std::unique_ptr<core::InboxStore> store_;
  std::unique_ptr<core::Inbox> inbox_;
  std::unique_ptr<Timer> timer_;
};

// The families at zero, for a server without inboxes (the README's table lists them).
void RenderNoInboxMetrics(metrics::PrometheusText& text);

}  // namespace hermod::app
