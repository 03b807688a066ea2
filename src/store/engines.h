// The store engines by name: what `hermod serve` builds from config (history_engine,
// presence_engine; only "memory" exists so far). A new engine adds its files here and its
// name to Make; config/ accepts the name.
#pragma once

#include <string>
#include <string_view>

#include "core/hub.h"

namespace hermod::store {

// The engines named (empty: memory); nullopt-like empty members and *error when a name is
// unknown.
core::Stores MakeStores(std::string_view history_engine, std::string_view presence_engine,
                        std::string* error = nullptr);
// The default: every concern in this process's memory.
core::Stores MemoryStores();

}  // namespace hermod::store
