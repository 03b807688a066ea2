// What the KV engines on NATS (store/nats_schedule.*, store/nats_inbox.*) share: a libnats
// connection that reconnects forever with its JetStream context, and a bucket created or,
// when another node (or an earlier run) made it, bound.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <string>

#include "config/config.h"

namespace hermod::store {

struct NatsKvOptions {
  std::string url;
  const char* name = "hermod";  // the connection's name, as nats-server lists it
  uint64_t dial_timeout_ms = 1000;
  uint64_t reconnect_wait_ms = 1000;
  uint64_t request_timeout_ms = 2000;  // JetStream's calls
  config::NatsTls tls;
};

// Connects; false with *error "<who>: <what> at <url>: <status>: <the fix>".
bool ConnectNatsKv(const NatsKvOptions& options, const char* who, natsConnection** nc, jsCtx** js,
                   std::string* error);

// The bucket (one value a key; entries expire after ttl_ms, 0: never).
natsStatus OpenNatsBucket(jsCtx* js, const std::string& name, int64_t ttl_ms, kvStore** out);

// "<who>: <what> at <url>: <status>: start nats-server with -js ..., or set nats.url".
std::string NatsKvError(const char* who, const char* what, const std::string& url, natsStatus s);

// The fix when nats-server refuses `replicas` copies of a stream or bucket (config key `key`):
// a single server keeps one, a JetStream cluster as many as it has servers.
std::string NatsReplicasRefused(const char* key, int64_t replicas, const std::string& url);

}  // namespace hermod::store
