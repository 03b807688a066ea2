#include "store/memory_idempotency.h"

#include <string>
#include <unordered_map>
#include <utility>

namespace hermod::store {

namespace {

class MemoryKeys final : public core::IdempotencyStore::Keys {
 public:
  std::optional<core::StreamPosition> Find(std::string_view key, uint64_t now_ms) override {
    auto it = keys_.find(std::string(key));
    if (it == keys_.end() || it->second.second <= now_ms) return std::nullopt;
    return it->second.first;
  }
  void Put(std::string_view key, const core::StreamPosition& position, uint64_t now_ms,
           uint64_t expires_ms) override {
    // Pruned in bulk, and only when the map is large: not a walk per keyed publish.
    if (keys_.size() >= MemoryIdempotencyStore::kPruneAt) Expire(now_ms);
    keys_[std::string(key)] = {position, expires_ms};
  }
  void Expire(uint64_t now_ms) override {
    std::erase_if(keys_, [now_ms](const auto& e) { return e.second.second <= now_ms; });
  }
  size_t size() const override { return keys_.size(); }

 private:
  std::unordered_map<std::string, std::pair<core::StreamPosition, uint64_t>> keys_;
};

}  // namespace

std::unique_ptr<core::IdempotencyStore::Keys> MemoryIdempotencyStore::Open(std::string_view) {
  return std::make_unique<MemoryKeys>();
}

}  // namespace hermod::store
