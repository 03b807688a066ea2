// Async consumers (config `consumers`, type "nats_jetstream"): a backend writes server API
// commands to a NATS JetStream stream (the outbox pattern) and hermod executes them through
// the same ServerApi as POST /api, without the backend calling it.
//
// One thread per consumer owns its libnats connection and pull subscription on a durable
// consumer that it creates (or updates: its deliver policy stays as created). It fetches at
// most max_ack_pending messages at a time, and hands each to one loop (the same loop for all
// of a consumer's commands, so that they run in stream order); the loop parses the command
// (`{"method": "publish", "payload": {...}}`, or the bare request with the method in the
// method header) and calls the API. The outcome comes back to the consumer's thread, which
// settles the message: ack once the command's work is done (a publication committed by its
// history engine: the API answers after), NAK with a growing delay for a temporary failure
// (error 100 or 111, an engine that is away), term for a permanent one (not JSON, an unknown
// method, a request the API refuses), with a log line (at most one a second) and a metric.
// A command that ran but whose ack did not reach the server (a crash in between) is
// delivered again: publish with an idempotency_key to make that harmless. Nothing is acked
// before its work is done, so nothing is skipped across a restart.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/server_api.h"
#include "config/config.h"
#include "metrics/prometheus_text.h"
#include "net/event_loop.h"

namespace hermod::app {

class JetStreamConsumer {
 public:
  // How a command ended: its message is acked, NAKed (delivered again later) or termed.
  enum class Outcome { kDone, kRetry, kPermanent };
  struct Counters {
    std::atomic<uint64_t> processed{0};   // executed and acked
    std::atomic<uint64_t> retried{0};     // NAKed: a temporary failure
    std::atomic<uint64_t> terminated{0};  // termed: a permanent failure
    std::atomic<uint64_t> in_flight{0};
    std::atomic<bool> connected{false};
  };
  // State shared with the loop tasks, which may outlive a stopped consumer thread.
  struct Shared;

  JetStreamConsumer(config::Consumer config, const api::ServerApi& api, net::Loop& loop,
                    uint64_t dial_timeout_ms, uint64_t reconnect_wait_ms);
  ~JetStreamConsumer();
  // Starts the thread; NATS being away is not an error (it connects when it can).
  void Start();
  // Joins the thread: messages still executing are not acked and come again later.
  void Stop();

  const std::string& name() const { return config_.name; }
  const Counters& counters() const;

  // The outcome of an API answer (exposed for tests).
  static Outcome Classify(int status, std::string_view answer);

 private:
  void Run();
  bool Setup(std::string* error);
  void TearDown();
  // Acks, NAKs or terms what the loops finished; returns how many.
  size_t Settle();

  config::Consumer config_;
  const api::ServerApi& api_;
  net::Loop& loop_;
  uint64_t dial_timeout_ms_;
  uint64_t reconnect_wait_ms_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* sub_ = nullptr;
};

// The enabled nats_jetstream consumers of config, each on loops[i % loops.size()].
std::vector<std::unique_ptr<JetStreamConsumer>> MakeConsumers(const config::Config& config,
                                                              const api::ServerApi& api,
                                                              const std::vector<net::Loop*>& loops);
// hermod_consumers_messages_processed_total, hermod_consumers_errors_total,
// hermod_consumers_in_flight (by consumer_name).
void RenderConsumers(const std::vector<std::unique_ptr<JetStreamConsumer>>& consumers,
                     metrics::PrometheusText& text);

}  // namespace hermod::app
