// This node's link to the other nodes: the circuit breaker around every call that leaves the
// process for the broker, the connection's state, and what health and /metrics show of them.
// The engine (nats_broker.h) only moves bytes; every decision about whether to send lives
// here, and runs on any thread under one mutex (never held across a network call).
//
// The breaker (core/circuit_breaker.h): a send is admitted (Admit) before it is queued; an
// open breaker refuses it, and the publication stays local (it was already delivered here,
// local delivery never waits on the broker), counted as skipped. An admitted send reports
// OnSent(ok); the connection's disconnected and reconnected events count as a failure and a
// success. After open_ms the breaker lets half_open_trials sends through; TrialDue lets an
// idle node make its own trial call (a round trip to the server) so that it recovers without
// traffic. While the breaker is not closed, or the connection is down, health is degraded;
// down longer than unhealthy_after_ms (when set) it is unhealthy.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/broker.h"
#include "core/circuit_breaker.h"
#include "metrics/health.h"
#include "metrics/prometheus_text.h"

namespace hermod::broker {

// Why a received message was not delivered: it did not decode, it was this node's own, its
// channel's namespace is unknown here, the hub refused it (a loop over its inbox budget),
// the server reported this node a slow consumer (one count per report),
// or this node no longer holds the channel (unwanted: it was in flight when the node's
// interest ended, or its subject is shared with a long name's hash, subject.h).
// Not a row of stats/reasons.h: these are cluster messages this node would not deliver,
// counted node-wide on the link's atomics from the client loop, not a loop's refusals or
// a subscriber's lost pushes, and shown in their own family (hermod_broker_received_dropped_total).
enum class ReceiveDrop : uint8_t { kDecode, kOwn, kChannel, kRefused, kSlowConsumer, kUnwanted };

// Why the connection was closed by this node, or what the server said: a protocol error
// (a malformed line, a message past max_payload), the write deadline (output that made no
// progress within dial_timeout), the server's -ERR, keepalive PINGs unanswered
// (nats.max_pings_out), TLS (a failed handshake or alert, a server without TLS when asked).
enum class ConnectionError : uint8_t { kProtocol, kWriteDeadline, kServer, kPing, kTls };

class Link {
 public:
  using Clock = core::CircuitBreaker::Clock;  // milliseconds, monotonic
  struct Options {
    core::CircuitBreaker::Options breaker;
    uint64_t unhealthy_after_ms = 0;  // disconnected this long: unhealthy; 0: never
  };
  Link(Options options, Clock clock);

  // Any thread. Whether a send of this kind may be queued now; false: skipped (counted).
  bool Admit();
  // The outcome of an admitted send (ok: handed to the connection).
  void OnSent(core::BrokerMessageKind kind, bool ok);
  void OnConnected();
  void OnDisconnected();
  // Half-open, connected, and a trial may go out now (the trial is taken: report OnTrial).
  bool TrialDue();
  void OnTrial(bool ok);

  void CountIn(core::BrokerMessageKind kind);
  void CountDropped(ReceiveDrop reason);
  void CountError(ConnectionError e) {
    errors_[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t errors(ConnectionError e) const {
    return errors_[static_cast<size_t>(e)].load(std::memory_order_relaxed);
  }
  // A message larger than the server carries (max_payload): refused before it was queued
  // (a publication, whose publisher got an error) or not sent (a join or leave). Never a
  // failure of the link: the breaker does not see it.
  void CountTooLarge(core::BrokerMessageKind kind);
  // An admitted send found too large only when it was due (max_payload learned or lowered
  // since): counted as too large, and reported to the breaker as a call that went well (the
  // server is there; a half-open trial must not stay in flight for ever).
  void OnSentTooLarge(core::BrokerMessageKind kind);
  uint64_t too_large(core::BrokerMessageKind kind) const;
  // The channel subjects this node is subscribed to, and the SUBs and UNSUBs sent for them.
  void SetSubjects(uint64_t count) { subjects_.store(count, std::memory_order_relaxed); }
  void CountInterest(bool on, uint64_t n) {
    (on ? subscribes_ : unsubscribes_).fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t subjects() const { return subjects_.load(std::memory_order_relaxed); }
  // Lost notices (lost_channels.h) sent by this node (out) or received from another (in), and
  // the channels whose subscribers here were told for a received one.
  void CountLostNotice(bool out) {
    (out ? lost_out_ : lost_in_).fetch_add(1, std::memory_order_relaxed);
  }
  void CountLostTold(uint64_t n) { lost_told_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t lost_notices(bool out) const {
    return (out ? lost_out_ : lost_in_).load(std::memory_order_relaxed);
  }

  core::CircuitBreaker::State state();
  bool connected() const;
  uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  uint64_t sent(core::BrokerMessageKind kind) const;
  uint64_t received(core::BrokerMessageKind kind) const;
  uint64_t dropped(ReceiveDrop reason) const;

  metrics::HealthCheck Health();
  // The broker and breaker families of /metrics.
  void Render(metrics::PrometheusText& text);

 private:
  // Under mutex_: logs a change of the breaker's state.
  void Note();

  const Options options_;
  const Clock clock_;
  mutable std::mutex mutex_;  // guards breaker_, last_state_, connected_, down_since_ms_
  core::CircuitBreaker breaker_;
  core::CircuitBreaker::State last_state_ = core::CircuitBreaker::State::kClosed;
  bool connected_ = false;
  uint64_t down_since_ms_;
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> sent_[3] = {};
  std::atomic<uint64_t> received_[3] = {};
  std::atomic<uint64_t> too_large_[3] = {};
  std::atomic<uint64_t> dropped_[6] = {};
  std::atomic<uint64_t> errors_[static_cast<size_t>(ConnectionError::kTls) + 1] = {};
  std::atomic<uint64_t> subjects_{0};
  std::atomic<uint64_t> subscribes_{0};
  std::atomic<uint64_t> unsubscribes_{0};
  std::atomic<uint64_t> lost_out_{0};
  std::atomic<uint64_t> lost_in_{0};
  std::atomic<uint64_t> lost_told_{0};
};

}  // namespace hermod::broker
