// The `memory` presence engine: each channel's clients in a map held by the hub in the
// channel's state, used under its shard lock (no lock of its own). List and Stats complete
// inline. It sees this node's clients only; a cluster-wide presence is another engine's.
#pragma once

#include "core/presence_store.h"

namespace hermod::store {

class MemoryPresenceStore final : public core::PresenceStore {
 public:
  const char* name() const override { return "memory"; }
  std::unique_ptr<Set> Open(std::string_view channel) override;
};

}  // namespace hermod::store
