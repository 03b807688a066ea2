// The store engines by name: what `hermod serve` builds from config (history_engine,
// presence_engine: "memory", and "nats" for presence). A new engine adds its files here and its
// name to Make; config/ accepts the name.
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"
#include "core/hub.h"
#include "store/nats_presence.h"

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

}  // namespace hermod::store
