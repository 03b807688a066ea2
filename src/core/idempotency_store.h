// Idempotent publishing behind an interface: a publication with an idempotency_key that was
// seen on its channel within the window is not published again, and its publisher gets the
// first one's position (Centrifugo keeps results for 5 minutes). Implemented in store/
// (`memory` today). An engine that deduplicates as it stores (JetStream's Nats-Msg-Id
// window) keeps no keys here: its Keys finds nothing, and its history Append answers a
// duplicate with the original position.
//
// The hub holds one Keys per channel that had a keyed publication, in the channel's state,
// and calls it under the shard lock: Find answers from memory, before the publication gets
// an offset. The hub keeps the channel while Keys is not empty, so keys expire exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "core/completion.h"
#include "core/history_stream.h"

namespace hermod::core {

class IdempotencyStore {
 public:
  class Keys {
   public:
    virtual ~Keys() = default;
    // The position of the publication first published with key, unless it expired.
    virtual std::optional<StreamPosition> Find(std::string_view key, uint64_t now_ms) = 0;
    virtual void Put(std::string_view key, const StreamPosition& position, uint64_t now_ms,
                     uint64_t expires_ms) = 0;
    // A durable engine (sqlite) writes the key of a publication *with* history in the
    // append's transaction, and that of one *without* history through PutDurable: the hub
    // answers the publisher (and fans out) only in done(stored), so an answered publish is
    // never repeated after a crash. done runs on the engine's thread, in the order of the
    // channel's history appends; the hub then Puts the key (memory only) under the shard
    // lock. false: refused at once, and done is not called. durable() false: Put suffices.
    virtual bool durable() const { return false; }
    virtual bool PutDurable(std::string_view /*key*/, const StreamPosition& /*position*/,
                            uint64_t /*expires_ms*/, Completion<bool> /*done*/) {
      return false;
    }
    // Forgets expired keys.
    virtual void Expire(uint64_t now_ms) = 0;
    virtual size_t size() const = 0;
    bool empty() const { return size() == 0; }
  };

  virtual ~IdempotencyStore() = default;
  virtual const char* name() const = 0;
  // Under the channel's shard lock.
  virtual std::unique_ptr<Keys> Open(std::string_view channel) = 0;
};

}  // namespace hermod::core
