// What is left of a channel's history stream once the channel itself is gone: its epoch and
// top offset (Centrifugo's "history meta"). The hub frees a channel's state when nobody uses
// it; without this, the channel's next publication would start a new stream with a new
// epoch, and a client that left with a valid position (offset 7 of epoch e) could not
// recover although nothing was lost. Kept history_meta_ttl (Centrifugo: 30 days) and
// restored when the channel's stream is made again.
//
// Bounded by count as well as by time, since channel names come from clients: past
// max_entries the oldest position is forgotten (the caller counts it). Every entry has the
// same TTL, so the oldest entry is also the first to expire: one list in insertion order
// serves both, with an index by name. The hub keeps one per shard, under the shard's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/history_stream.h"

namespace hermod::core {

class HistoryMeta {
 public:
  // ttl_ms 0 or max_entries 0: nothing is kept.
  HistoryMeta(uint64_t ttl_ms = 0, size_t max_entries = 0)
      : ttl_ms_(ttl_ms), max_entries_(max_entries) {}
  HistoryMeta(const HistoryMeta&) = delete;
  HistoryMeta& operator=(const HistoryMeta&) = delete;

  void set_limits(uint64_t ttl_ms, size_t max_entries) {
    ttl_ms_ = ttl_ms;
    max_entries_ = max_entries;
  }
  // Keeps the position of a channel whose stream is going away; returns how many older
  // positions were forgotten to stay within max_entries.
  size_t Put(std::string_view channel, StreamPosition position, uint64_t now_ms);
  // The kept position of channel, if any and not expired; it is no longer kept after this.
  std::optional<StreamPosition> Take(std::string_view channel, uint64_t now_ms);
  // The kept position of channel, left in place; null when none (or expired).
  const StreamPosition* Find(std::string_view channel, uint64_t now_ms) const;
  // Forgets the positions whose TTL has passed.
  void Expire(uint64_t now_ms);
  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    std::string channel;
    StreamPosition position;
    uint64_t expires_ms;
  };
  void Erase(std::list<Entry>::iterator it);

  uint64_t ttl_ms_;
  size_t max_entries_;
  std::list<Entry> order_;  // oldest first
  // Keys view the channel names held by order_'s entries.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
};

}  // namespace hermod::core
