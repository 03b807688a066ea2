#include "broker/link.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace hermod::broker {

namespace {

using State = core::CircuitBreaker::State;

constexpr const char* kKindNames[] = {"publication", "join", "leave"};
constexpr const char* kDropNames[] = {"decode",  "own",           "channel",
                                      "refused", "slow_consumer", "unwanted"};

size_t KindIndex(core::BrokerMessageKind kind) { return static_cast<size_t>(kind) - 1; }

const char* StateName(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

}  // namespace

Link::Link(Options options, Clock clock)
    : options_(options), clock_(clock), breaker_(options.breaker, clock), down_since_ms_(clock()) {}

void Link::Note() {
  const State now = breaker_.state();
  if (now == last_state_) return;
  if (now == State::kOpen) {
    spdlog::warn("broker: circuit breaker {} -> open: publications stay on this node for {} ms",
                 StateName(last_state_), options_.breaker.open_ms);
  } else {
    spdlog::info("broker: circuit breaker {} -> {}", StateName(last_state_), StateName(now));
  }
  last_state_ = now;
}

bool Link::Admit() {
  std::lock_guard lock(mutex_);
  const bool allowed = breaker_.Allow();
  Note();
  if (!allowed) skipped_.fetch_add(1, std::memory_order_relaxed);
  return allowed;
}

void Link::OnSent(core::BrokerMessageKind kind, bool ok) {
  if (ok) {
    sent_[KindIndex(kind)].fetch_add(1, std::memory_order_relaxed);
  } else {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
  std::lock_guard lock(mutex_);
  ok ? breaker_.OnSuccess() : breaker_.OnFailure();
  Note();
}

void Link::OnSentTooLarge(core::BrokerMessageKind kind) {
  CountTooLarge(kind);
  std::lock_guard lock(mutex_);
  breaker_.OnSuccess();
  Note();
}

void Link::OnConnected() {
  std::lock_guard lock(mutex_);
  connected_ = true;
  breaker_.state();  // an open breaker past open_ms is half-open: the reconnect is its trial
  breaker_.OnSuccess();
  Note();
}

void Link::OnDisconnected() {
  std::lock_guard lock(mutex_);
  if (connected_) down_since_ms_ = clock_();
  connected_ = false;
  breaker_.OnFailure();
  Note();
}

bool Link::TrialDue() {
  std::lock_guard lock(mutex_);
  if (!connected_ || breaker_.state() != State::kHalfOpen) return false;
  const bool allowed = breaker_.Allow();
  Note();
  return allowed;
}

void Link::OnTrial(bool ok) {
  std::lock_guard lock(mutex_);
  ok ? breaker_.OnSuccess() : breaker_.OnFailure();
  Note();
}

void Link::CountIn(core::BrokerMessageKind kind) {
  received_[KindIndex(kind)].fetch_add(1, std::memory_order_relaxed);
}

void Link::CountTooLarge(core::BrokerMessageKind kind) {
  too_large_[KindIndex(kind)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t Link::too_large(core::BrokerMessageKind kind) const {
  return too_large_[KindIndex(kind)].load(std::memory_order_relaxed);
}

void Link::CountDropped(ReceiveDrop reason) {
  dropped_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

State Link::state() {
  std::lock_guard lock(mutex_);
  const State s = breaker_.state();
  Note();
  return s;
}

bool Link::connected() const {
  std::lock_guard lock(mutex_);
  return connected_;
}

uint64_t Link::sent(core::BrokerMessageKind kind) const {
  return sent_[KindIndex(kind)].load(std::memory_order_relaxed);
}
uint64_t Link::received(core::BrokerMessageKind kind) const {
  return received_[KindIndex(kind)].load(std::memory_order_relaxed);
}
uint64_t Link::dropped(ReceiveDrop reason) const {
  return dropped_[static_cast<size_t>(reason)].load(std::memory_order_relaxed);
}

metrics::HealthCheck Link::Health() {
  std::lock_guard lock(mutex_);
  const State s = breaker_.state();
  Note();
  const uint64_t now = clock_();
  metrics::HealthCheck check{"broker", metrics::HealthLevel::kHealthy, static_cast<double>(s),
                             static_cast<double>(options_.breaker.failure_threshold), ""};
  std::string detail;
  if (s == State::kOpen) {
    detail = fmt::format(
        "circuit breaker open after {} failures within {} ms: publications stay on this node "
        "({} sends skipped)",
        options_.breaker.failure_threshold, options_.breaker.window_ms, skipped());
  } else if (s == State::kHalfOpen) {
    detail = fmt::format("circuit breaker half-open: trying {} calls",
                         options_.breaker.half_open_trials);
  } else {
    detail = "circuit breaker closed";
  }
  if (s != State::kClosed) check.level = metrics::HealthLevel::kDegraded;
  if (connected_) {
    detail += "; connected";
  } else {
    const uint64_t down = now - down_since_ms_;
    detail += fmt::format("; disconnected for {} ms", down);
    check.level = std::max(check.level, metrics::HealthLevel::kDegraded);
    if (options_.unhealthy_after_ms > 0 && down >= options_.unhealthy_after_ms) {
      check.level = metrics::HealthLevel::kUnhealthy;
    }
  }
  check.detail = std::move(detail);
  return check;
}

void Link::Render(metrics::PrometheusText& t) {
  State s;
  uint64_t transitions[3];
  bool up;
  {
    std::lock_guard lock(mutex_);
    s = breaker_.state();
    Note();
    for (State to : {State::kClosed, State::kOpen, State::kHalfOpen}) {
      transitions[static_cast<size_t>(to)] = breaker_.transitions(to);
    }
    up = connected_;
  }
  t.Family("hermod_broker_messages_total", "counter",
           "Broker messages sent to (out) and received from (in) other nodes, by kind.");
  for (core::BrokerMessageKind k :
       {core::BrokerMessageKind::kPublication, core::BrokerMessageKind::kJoin,
        core::BrokerMessageKind::kLeave}) {
    t.Sample("hermod_broker_messages_total",
             {{"direction", "out"}, {"kind", kKindNames[KindIndex(k)]}}, sent(k));
  }
  for (core::BrokerMessageKind k :
       {core::BrokerMessageKind::kPublication, core::BrokerMessageKind::kJoin,
        core::BrokerMessageKind::kLeave}) {
    t.Sample("hermod_broker_messages_total",
             {{"direction", "in"}, {"kind", kKindNames[KindIndex(k)]}}, received(k));
  }
  t.Family("hermod_broker_publish_failures_total", "counter",
           "Broker sends that failed (disconnected, send queue full, client error).");
  t.Sample("hermod_broker_publish_failures_total", {}, failures());
  t.Family("hermod_broker_publish_too_large_total", "counter",
           "Messages larger than the NATS server's max_payload, by kind: publications refused "
           "to their publisher (error 106, never delivered anywhere), joins and leaves not "
           "sent. Not failures: the circuit breaker does not count them.");
  for (core::BrokerMessageKind k :
       {core::BrokerMessageKind::kPublication, core::BrokerMessageKind::kJoin,
        core::BrokerMessageKind::kLeave}) {
    t.Sample("hermod_broker_publish_too_large_total", {{"kind", kKindNames[KindIndex(k)]}},
             too_large(k));
  }
  t.Family("hermod_broker_publish_skipped_total", "counter",
           "Broker sends skipped while the circuit breaker was open (delivered locally only).");
  t.Sample("hermod_broker_publish_skipped_total", {}, skipped());
  t.Family("hermod_broker_received_dropped_total", "counter",
           "Broker messages received and not delivered, by reason.");
  for (ReceiveDrop r :
       {ReceiveDrop::kDecode, ReceiveDrop::kOwn, ReceiveDrop::kChannel, ReceiveDrop::kRefused,
        ReceiveDrop::kSlowConsumer, ReceiveDrop::kUnwanted}) {
    t.Sample("hermod_broker_received_dropped_total",
             {{"reason", kDropNames[static_cast<size_t>(r)]}}, dropped(r));
  }
  t.Family("hermod_broker_connection_errors_total", "counter",
           "Broker connections closed for a protocol error (kind protocol) or output not "
           "written within nats.dial_timeout (write_deadline) or nats.max_pings_out keepalive "
           "PINGs unanswered (ping) or TLS (tls: a failed handshake, a certificate refused), "
           "and the server's -ERR (server).");
  t.Sample("hermod_broker_connection_errors_total", {{"kind", "protocol"}},
           errors(ConnectionError::kProtocol));
  t.Sample("hermod_broker_connection_errors_total", {{"kind", "write_deadline"}},
           errors(ConnectionError::kWriteDeadline));
  t.Sample("hermod_broker_connection_errors_total", {{"kind", "server"}},
           errors(ConnectionError::kServer));
  t.Sample("hermod_broker_connection_errors_total", {{"kind", "ping"}},
           errors(ConnectionError::kPing));
  t.Sample("hermod_broker_connection_errors_total", {{"kind", "tls"}},
           errors(ConnectionError::kTls));
  t.Family("hermod_broker_subjects", "gauge",
           "Channel subjects this node is subscribed to: the channels it holds.");
  t.Sample("hermod_broker_subjects", {}, subjects());
  t.Family("hermod_broker_interest_changes_total", "counter",
           "Channel subject subscriptions sent to NATS (op sub) and ended (op unsub).");
  t.Sample("hermod_broker_interest_changes_total", {{"op", "sub"}},
           subscribes_.load(std::memory_order_relaxed));
  t.Sample("hermod_broker_interest_changes_total", {{"op", "unsub"}},
           unsubscribes_.load(std::memory_order_relaxed));
  t.Family("hermod_broker_lost_notices_total", "counter",
           "Lost notices: sent by this node (out: publications to these channels may not have "
           "reached the other nodes) and received from another node (in).");
  t.Sample("hermod_broker_lost_notices_total", {{"direction", "out"}}, lost_notices(true));
  t.Sample("hermod_broker_lost_notices_total", {{"direction", "in"}}, lost_notices(false));
  t.Family("hermod_broker_lost_told_total", "counter",
           "Channels held here whose subscribers were told they missed publications because "
           "another node's lost notice named them (or all).");
  t.Sample("hermod_broker_lost_told_total", {}, lost_told_.load(std::memory_order_relaxed));
  t.Family("hermod_broker_connected", "gauge", "1 while the broker connection is up, else 0.");
  t.Sample("hermod_broker_connected", {}, uint64_t{up ? 1u : 0u});
  t.Family("hermod_circuit_breaker_state", "gauge",
           "Circuit breaker state: 0 closed, 1 open, 2 half-open.");
  t.Sample("hermod_circuit_breaker_state", {{"name", "broker"}}, static_cast<uint64_t>(s));
  t.Family("hermod_circuit_breaker_transitions_total", "counter",
           "Circuit breaker transitions, by the state entered.");
  for (State to : {State::kClosed, State::kOpen, State::kHalfOpen}) {
    t.Sample("hermod_circuit_breaker_transitions_total",
             {{"name", "broker"}, {"to", StateName(to)}}, transitions[static_cast<size_t>(to)]);
  }
}

}  // namespace hermod::broker
