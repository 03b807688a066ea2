// The `memory` idempotency engine: each channel's keys (key -> first position, expiry) in a
// map held by the hub in the channel's state, used under its shard lock. Expired keys go
// when the map reaches kPruneAt on a Put, and when the hub asks (reclaim, sweep).
#pragma once

#include "core/idempotency_store.h"

namespace hermod::store {

class MemoryIdempotencyStore final : public core::IdempotencyStore {
 public:
  static constexpr size_t kPruneAt = 1024;  // keys per channel before a Put prunes
  const char* name() const override { return "memory"; }
  std::unique_ptr<Keys> Open(std::string_view channel) override;
};

}  // namespace hermod::store
