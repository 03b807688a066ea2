#include "store/engines.h"

#include <memory>
#include <utility>

#include "store/memory_history.h"
#include "store/memory_idempotency.h"
#include "store/memory_presence.h"
#include "store/memory_schedule.h"
#include "store/nats_presence.h"

namespace hermod::store {

core::Stores MemoryStores() {
  core::Stores stores;
  stores.history = std::make_unique<MemoryHistoryStore>();
  stores.presence = std::make_unique<MemoryPresenceStore>();
  stores.idempotency = std::make_unique<MemoryIdempotencyStore>();
  return stores;
}

std::unique_ptr<NatsPresenceStore> MakeNatsPresence(const config::Config& c) {
  NatsPresenceStore::Options o;
  o.url = c.nats.url;
  o.tls = c.nats.tls;
  o.bucket = c.nats.presence.bucket;
  o.replicas = static_cast<int>(c.nats.presence.replicas);
  o.memory_storage = c.nats.presence.storage == "memory";
  o.readers = static_cast<int>(c.nats.presence.readers);
  o.ttl_ms = c.presence_ttl.ms;
  o.dial_timeout_ms = c.nats.dial_timeout.ms;
  o.reconnect_wait_ms = c.nats.reconnect_wait.ms;
  return std::make_unique<NatsPresenceStore>(std::move(o));
}

core::Stores MakeStores(std::string_view history_engine, std::string_view presence_engine,
                        std::string* error) {
  core::Stores stores;
  if (history_engine.empty() || history_engine == "memory") {
    stores.history = std::make_unique<MemoryHistoryStore>();
    // Keys live beside the stream: an engine that stores history durably deduplicates too.
    stores.idempotency = std::make_unique<MemoryIdempotencyStore>();
  } else if (error != nullptr) {
    *error = "unknown history_engine \"" + std::string(history_engine) + "\"";
  }
  if (presence_engine.empty() || presence_engine == "memory") {
    stores.presence = std::make_unique<MemoryPresenceStore>();
  } else if (presence_engine == "nats") {
    // Needs its options and a start (nats_presence.h): the app builds it, MakeNatsPresence.
  } else if (error != nullptr) {
    *error = "unknown presence_engine \"" + std::string(presence_engine) + "\"";
  }
  return stores;
}

}  // namespace hermod::store

namespace hermod::store {

bool MakeEngines(const EngineConfig& config, Engines* out, std::string* error) {
  const bool sqlite = config.engine == "sqlite" || config.history_engine == "sqlite";
  if (!sqlite) {
    out->stores = MakeStores(config.history_engine, config.presence_engine, error);
    out->schedules = std::make_unique<MemoryScheduleStore>();
    return out->stores.history && out->stores.presence;
  }
  std::shared_ptr<SqliteEngine> engine = SqliteEngine::Open(config.sqlite, error);
  if (!engine) return false;
  out->stores.history = engine->History();
  out->stores.idempotency = engine->Idempotency();
  out->stores.history_inline = false;
  out->schedules = engine->Schedules();
  // Presence is about live connections: in memory on one node.
  out->stores.presence = std::make_unique<MemoryPresenceStore>();
  out->status = [engine] { return engine->Status(); };
  out->sqlite = engine;
  return true;
}

}  // namespace hermod::store
