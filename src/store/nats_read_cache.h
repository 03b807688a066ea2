// What a nats history worker keeps of the channels it read (store/nats_history.h): each
// one's history as last rebuilt from JetStream, with the stream sequence it was read up to,
// so that the next read or recovery folds in only the messages stored since instead of
// fetching every message the channel keeps. One cache per worker, used by its thread only:
// a channel is always on the same worker, so no lock. Bounded by bytes, the channel read
// least recently evicted first; counted in NatsReadCacheCounts (shared by a store's caches).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/history_stream.h"

namespace hermod::store {

// Any thread reads them (/metrics).
struct NatsReadCacheCounts {
  std::atomic<uint64_t> folded{0};   // reads answered by folding in the new messages only
  std::atomic<uint64_t> rebuilt{0};  // reads that fetched every message kept (none cached)
  std::atomic<uint64_t> evicted{0};  // channels dropped for the budget (or larger than it)
  std::atomic<uint64_t> bytes{0};    // held now, every worker's
};

class NatsReadCache {
 public:
  struct Entry {
    core::HistoryStream stream{""};
    uint64_t scanned_seq = 0;  // the last stream sequence folded in
    uint64_t size = 0;         // the Hermod-Size of the last message folded in (0: none)
    // A publication came after the last mark: the stream's first offset is known, and a
    // later publication past next_offset means JetStream trimmed messages in between.
    bool based = false;
    uint64_t now_ms = 0;  // the latest time it was expired at
    // (first offset, stream sequence) of each message whose publications it holds, oldest
    // first: a read checks the oldest is still stored.
    std::deque<std::pair<uint64_t, uint64_t>> starts;
  };

  // budget: bytes for this cache (0: nothing kept).
  NatsReadCache(size_t budget, NatsReadCacheCounts* counts) : budget_(budget), counts_(counts) {}
  ~NatsReadCache();
  NatsReadCache(const NatsReadCache&) = delete;
  NatsReadCache& operator=(const NatsReadCache&) = delete;

  // The channel's entry, out of the cache, or nullopt.
  std::optional<Entry> Take(const std::string& channel);
  // Back in as the most recent; the least recently read evicted until the cache is within
  // its budget. An entry larger than the budget alone is not kept.
  void Put(const std::string& channel, Entry entry);
  size_t bytes() const { return bytes_; }
  size_t channels() const { return slots_.size(); }
  // What an entry costs: its publications and the bookkeeping around each.
  static size_t Cost(const std::string& channel, const Entry& entry);

 private:
  struct Slot {
    std::string channel;
    Entry entry;
    size_t bytes = 0;
  };
  void Drop(std::list<Slot>::iterator slot);

  const size_t budget_;
  NatsReadCacheCounts* const counts_;
  std::list<Slot> slots_;  // most recently read first
  std::unordered_map<std::string_view, std::list<Slot>::iterator> index_;  // keys: slot names
  size_t bytes_ = 0;
};

}  // namespace hermod::store
