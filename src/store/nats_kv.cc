#include "store/nats_kv.h"

#include "store/nats_tls.h"

namespace hermod::store {

std::string NatsKvError(const char* who, const char* what, const std::string& url, natsStatus s) {
  return std::string(who) + ": " + what + " at " + url + ": " + natsStatus_GetText(s) +
         ": start nats-server with -js (JetStream) there, or set nats.url";
}

std::string NatsReplicasRefused(const char* key, int64_t replicas, const std::string& url) {
  const std::string n = std::to_string(replicas);
  return std::string(key) + " is " + n + ", but the nats-server at " + url +
         " is not a JetStream cluster of " + n +
         " servers (a single server keeps 1 replica); fix: set " + key +
         " to 1, or run nats-server as a JetStream cluster of at least " + n + " servers";
}

bool ConnectNatsKv(const NatsKvOptions& options, const char* who, natsConnection** nc, jsCtx** js,
                   std::string* error) {
  natsOptions* o = nullptr;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetURL(o, options.url.c_str());
  if (s == NATS_OK) {
    natsOptions_SetName(o, options.name);
    natsOptions_SetTimeout(o, static_cast<int64_t>(options.dial_timeout_ms));
    natsOptions_SetAllowReconnect(o, true);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, static_cast<int64_t>(options.reconnect_wait_ms));
    if (!ApplyNatsTls(o, options.url, options.tls, error)) {
      natsOptions_Destroy(o);
      *error = std::string(who) + ": " + *error;
      return false;
    }
    s = natsConnection_Connect(nc, o);
  }
  natsOptions_Destroy(o);
  if (s != NATS_OK) {
    *error = NatsKvError(who, "connect", options.url, s);
    return false;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = static_cast<int64_t>(options.request_timeout_ms);
  if ((s = natsConnection_JetStream(js, *nc, &jo)) != NATS_OK) {
    *error = NatsKvError(who, "JetStream", options.url, s);
    return false;
  }
  return true;
}

natsStatus OpenNatsBucket(jsCtx* js, const std::string& name, int64_t ttl_ms, kvStore** out) {
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = name.c_str();
  config.History = 1;
  config.TTL = ttl_ms * 1000000;  // nanoseconds
  const natsStatus s = js_CreateKeyValue(out, js, &config);
  if (s == NATS_OK) return s;
  return js_KeyValue(out, js, name.c_str());  // made by another node, or an earlier run
}

}  // namespace hermod::store
