// The store engines by name: what `hermod serve` builds from config (`engine`, and the
// older history_engine / presence_engine): "memory" (default) or "sqlite" (history and
// idempotency keys in a file; presence stays in memory); presence also "nats" (NATS KV,
// MakeNatsPresence), history also "nats" (JetStream, built by app/). A new engine adds its
// files here and its name to MakeEngines; config/ accepts the name.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/hub.h"
#include "core/schedule_store.h"
#include "store/nats_presence.h"
#include "store/sqlite_store.h"

namespace hermod::store {

// The engines named (empty: memory); nullopt-like empty members and *error when a name is
// unknown. presence_engine "nats" leaves presence empty: the caller sets it from
// MakeNatsPresence, started, and presence_inline false.
core::Stores MakeStores(std::string_view history_engine, std::string_view presence_engine,
                        std::string* error = nullptr);
// presence_engine "nats" from config (nats.url, nats.presence.*, presence_ttl); not started.
std::unique_ptr<NatsPresenceStore> MakeNatsPresence(const config::Config& config);
// The default: every concern in this process's memory.
core::Stores MemoryStores();

struct EngineConfig {
  std::string engine = "memory";  // history and idempotency
  std::string history_engine = "memory";
  std::string presence_engine = "memory";
  SqliteOptions sqlite;
};
struct Engines {
  core::Stores stores;
  // Scheduled publications (core/scheduler.h): in the sqlite engine's file, else in memory.
  std::unique_ptr<core::ScheduleStore> schedules;
  // The engine's operations and health, for /metrics and /health; empty for memory.
  std::function<StoreStatus()> status;
  // The sqlite engine, when it is the one (its file and writer also keep the inboxes).
  std::shared_ptr<SqliteEngine> sqlite;
};
// false, with *error naming the file and the fix, when an engine cannot start.
bool MakeEngines(const EngineConfig& config, Engines* out, std::string* error);

}  // namespace hermod::store
