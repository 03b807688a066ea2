#include "core/history_meta.h"

namespace hermod::core {

void HistoryMeta::Erase(std::list<Entry>::iterator it) {
  index_.erase(std::string_view(it->channel));
  order_.erase(it);
}

size_t HistoryMeta::Put(std::string_view channel, StreamPosition position, uint64_t now_ms) {
  if (ttl_ms_ == 0 || max_entries_ == 0) return 0;
  Expire(now_ms);
  if (auto it = index_.find(channel); it != index_.end()) Erase(it->second);
  order_.push_back(Entry{std::string(channel), std::move(position), now_ms + ttl_ms_});
  auto last = std::prev(order_.end());
  index_.emplace(std::string_view(last->channel), last);
  size_t forgotten = 0;
  while (index_.size() > max_entries_) {
    Erase(order_.begin());
    ++forgotten;
  }
  return forgotten;
}

std::optional<StreamPosition> HistoryMeta::Take(std::string_view channel, uint64_t now_ms) {
  auto it = index_.find(channel);
  if (it == index_.end()) return std::nullopt;
  std::optional<StreamPosition> kept;
  if (it->second->expires_ms > now_ms) kept = std::move(it->second->position);
  Erase(it->second);
  return kept;
}

const StreamPosition* HistoryMeta::Find(std::string_view channel, uint64_t now_ms) const {
  auto it = index_.find(channel);
  if (it == index_.end() || it->second->expires_ms <= now_ms) return nullptr;
  return &it->second->position;
}

void HistoryMeta::Expire(uint64_t now_ms) {
  while (!order_.empty() && order_.front().expires_ms <= now_ms) Erase(order_.begin());
}

}  // namespace hermod::core
