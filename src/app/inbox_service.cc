#include "app/inbox_service.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "store/memory_inbox.h"
#include "store/nats_inbox.h"
#include "store/sqlite_inbox.h"

namespace hermod::app {

class InboxService::Timer final : public net::TimerNode {
 public:
  Timer(core::Inbox& inbox, net::Loop& loop) : inbox_(inbox), loop_(loop) {}
  void Start() { loop_.timers().Schedule(this, inbox_.tick_ms()); }
  void OnTimer() override {
    inbox_.Tick();
    Start();
  }

 private:
  core::Inbox& inbox_;
  net::Loop& loop_;
};

bool InboxService::Wanted(const config::Config& config) {
  if (config.channel.inbox) return true;
  for (const config::Namespace& ns : config.namespaces) {
    if (ns.options.inbox) return true;
  }
  return false;
}

std::unique_ptr<InboxService> InboxService::Make(const config::Config& config,
                                                 std::shared_ptr<store::SqliteEngine> sqlite,
                                                 const core::ChannelRules& rules, core::Hub& hub,
                                                 std::string* error) {
  std::unique_ptr<InboxService> service(new InboxService());
  if (sqlite) {
    service->store_ = store::SqliteInboxStore::Open(sqlite, error);
    if (!service->store_) return nullptr;
    service->sqlite_ = std::move(sqlite);
    spdlog::info("inboxes in the sqlite file {} (durable)", config.sqlite.path);
  } else if (config.history_engine == "nats") {
    store::NatsInboxOptions o;
    o.url = config.nats.url;
    o.tls = config.nats.tls;
    o.bucket = config.nats.prefix + "_inbox";
    o.dial_timeout_ms = config.nats.dial_timeout.ms;
    o.reconnect_wait_ms = config.nats.reconnect_wait.ms;
    o.read_through_max = config.nats.inbox_status_read_through;
    service->store_ = store::MakeNatsInbox(o, error);
    if (!service->store_) return nullptr;
    spdlog::info("inboxes in the NATS KV bucket {} (durable, shared by the cluster)", o.bucket);
  } else {
    service->store_ = std::make_unique<store::MemoryInboxStore>();
    spdlog::warn(
        "inboxes are kept in memory (engine {}): they are NOT durable, a restart loses every "
        "unacknowledged publication; use engine \"sqlite\" or \"nats\" for durable inboxes",
        config.engine);
  }
  service->inbox_ = std::make_unique<core::Inbox>(*service->store_, rules, hub, config);
  return service;
}

InboxService::~InboxService() { Stop(); }

void InboxService::Start(net::Loop& loop) {
  timer_ = std::make_unique<Timer>(*inbox_, loop);
  timer_->Start();
}

void InboxService::Stop() {
  if (sqlite_) sqlite_->Stop();
}

namespace {

void Families(metrics::PrometheusText& t) {
  t.Family("hermod_inbox_pending", "gauge",
           "Inbox publications not yet acknowledged, by namespace.");
  t.Family("hermod_inbox_published_total", "counter", "Publications stored into inboxes.");
  t.Family("hermod_inbox_refused_total", "counter",
           "Publications refused by a full inbox (inbox_overflow reject).");
  t.Family("hermod_inbox_delivered_total", "counter", "First deliveries of inbox publications.");
  t.Family("hermod_inbox_redelivered_total", "counter",
           "Later deliveries of inbox publications (no ack within ack_timeout, or a reconnect).");
  t.Family("hermod_inbox_acked_total", "counter", "Inbox publications acknowledged.");
  t.Family("hermod_inbox_dead_total", "counter", "Inbox publications dead-lettered, by reason.");
  t.Family("hermod_inbox_dead_letters", "gauge", "Dead letters held.");
  t.Family("hermod_inbox_ack_latency_seconds", "histogram",
           "From an inbox publication to its ack.");
}

void RenderInboxStats(metrics::PrometheusText& t, const core::InboxStats& s) {
  Families(t);
  for (const auto& [ns, count] : s.pending)
    t.Sample("hermod_inbox_pending", {{"namespace", ns}}, count);
  t.Sample("hermod_inbox_published_total", {}, s.published);
  t.Sample("hermod_inbox_refused_total", {}, s.refused_full);
  t.Sample("hermod_inbox_delivered_total", {}, s.delivered);
  t.Sample("hermod_inbox_redelivered_total", {}, s.redelivered);
  t.Sample("hermod_inbox_acked_total", {}, s.acked);
  for (size_t i = 0; i < s.dead.size(); ++i) {
    t.Sample("hermod_inbox_dead_total", {{"reason", core::InboxStats::kDeadReasons[i]}}, s.dead[i]);
  }
  t.Sample("hermod_inbox_dead_letters", {}, s.dead_held);
  uint64_t cumulative = 0;
  char le[32];
  for (size_t i = 0; i < s.ack_latency_buckets.size(); ++i) {
    cumulative += s.ack_latency_buckets[i];
    if (i < core::InboxStats::kAckLatencyBounds.size()) {
      std::snprintf(le, sizeof le, "%g", core::InboxStats::kAckLatencyBounds[i]);
    } else {
      std::snprintf(le, sizeof le, "+Inf");
    }
    t.Sample("hermod_inbox_ack_latency_seconds_bucket", {{"le", le}}, cumulative);
  }
  t.Sample("hermod_inbox_ack_latency_seconds_sum", {}, s.ack_latency_sum_s);
  t.Sample("hermod_inbox_ack_latency_seconds_count", {}, cumulative);
}

}  // namespace

void RenderNoInboxMetrics(metrics::PrometheusText& text) { RenderInboxStats(text, {}); }

void InboxService::Render(metrics::PrometheusText& text) {
  RenderInboxStats(text, inbox_->Stats());
}

}  // namespace hermod::app
