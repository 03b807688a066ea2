#include "store/nats_read_cache.h"

namespace hermod::store {

namespace {
// A deque entry of HistoryStream and of starts, and a slot with its index entry: estimates of
// the allocator's share, so that many small channels are bounded too.
constexpr size_t kPerPublication = 64;
constexpr size_t kPerStart = 16;
constexpr size_t kPerSlot = 256;
}  // namespace

NatsReadCache::~NatsReadCache() { counts_->bytes.fetch_sub(bytes_, std::memory_order_relaxed); }

size_t NatsReadCache::Cost(const std::string& channel, const Entry& entry) {
  return kPerSlot + channel.size() + entry.stream.epoch().size() + entry.stream.bytes() +
         entry.stream.size() * kPerPublication + entry.starts.size() * kPerStart;
}

std::optional<NatsReadCache::Entry> NatsReadCache::Take(const std::string& channel) {
  auto it = index_.find(channel);
  if (it == index_.end()) return std::nullopt;
  std::optional<Entry> out(std::move(it->second->entry));
  Drop(it->second);
  return out;
}

void NatsReadCache::Put(const std::string& channel, Entry entry) {
  if (auto it = index_.find(channel); it != index_.end()) Drop(it->second);
  const size_t cost = Cost(channel, entry);
  if (cost > budget_) {
    if (budget_ != 0) counts_->evicted.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  while (bytes_ + cost > budget_ && !slots_.empty()) {
    Drop(std::prev(slots_.end()));
    counts_->evicted.fetch_add(1, std::memory_order_relaxed);
  }
  slots_.push_front(Slot{channel, std::move(entry), cost});
  index_.emplace(slots_.front().channel, slots_.begin());
  bytes_ += cost;
  counts_->bytes.fetch_add(cost, std::memory_order_relaxed);
}

void NatsReadCache::Drop(std::list<Slot>::iterator slot) {
  bytes_ -= slot->bytes;
  counts_->bytes.fetch_sub(slot->bytes, std::memory_order_relaxed);
  index_.erase(slot->channel);
  slots_.erase(slot);
}

}  // namespace hermod::store
