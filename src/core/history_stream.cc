#include "core/history_stream.h"

#include <algorithm>

namespace hermod::core {

const std::string& HistoryStream::Append(std::string publication, uint64_t now_ms, uint64_t size,
                                         uint64_t ttl_ms) {
  // Expired entries go first, so the new one is never trimmed by its own append (size >= 1)
  // and the caller may read it until the next call.
  Expire(now_ms);
  ++top_;
  bytes_ += publication.size();
  entries_.push_back(Entry{top_, now_ms + ttl_ms, std::move(publication)});
  while (entries_.size() > std::max<uint64_t>(size, 1)) PopFront();
  return entries_.back().publication;
}

void HistoryStream::Expire(uint64_t now_ms) {
  while (!entries_.empty() && entries_.front().expires_ms <= now_ms) PopFront();
}

size_t HistoryStream::IndexAfter(uint64_t after) const {
  if (entries_.empty() || after < entries_.front().offset) return 0;
  return std::min<size_t>(entries_.size(), after - entries_.front().offset + 1);
}

std::vector<std::string> HistoryStream::Read(const StreamPosition* since, int64_t limit,
                                             bool reverse, uint64_t now_ms, size_t max_bytes,
                                             bool* cut) {
  Expire(now_ms);
  std::vector<std::string> out;
  if (cut != nullptr) *cut = false;
  if (limit == 0 || entries_.empty()) return out;
  const size_t max = limit < 0 ? entries_.size() : static_cast<size_t>(limit);
  size_t bytes = 0;
  // Sizes are checked before anything is copied: a reply that cannot fit costs nothing.
  auto fits = [&](const Entry& e) {
    const size_t size = e.publication.size() + 1;  // and its separator in the reply
    if (size > max_bytes - bytes) {
      if (cut != nullptr) *cut = true;
      return false;
    }
    bytes += size;
    return true;
  };
  if (!reverse) {
    size_t begin = since ? IndexAfter(since->offset) : 0;
    for (size_t i = begin; i < entries_.size() && out.size() < max && fits(entries_[i]); ++i) {
      out.push_back(entries_[i].publication);
    }
  } else {
    // Newest first; with since, only publications before since.offset.
    size_t end = entries_.size();
    if (since && since->offset != 0) end = std::min(end, IndexAfter(since->offset - 1));
    for (size_t i = end; i > 0 && out.size() < max && fits(entries_[i - 1]); --i) {
      out.push_back(entries_[i - 1].publication);
    }
  }
  return out;
}

HistoryStream::Recovery HistoryStream::Recover(const StreamPosition& from, size_t max_publications,
                                               uint64_t now_ms, size_t max_bytes) {
  Expire(now_ms);
  Recovery r;
  if (!from.epoch.empty() && from.epoch != epoch_) return r;
  if (from.offset > top_) return r;
  const uint64_t missed = top_ - from.offset;
  if (missed > max_publications) return r;
  if (missed > 0 && (entries_.empty() || entries_.front().offset > from.offset + 1)) return r;
  size_t bytes = 0;
  for (size_t i = IndexAfter(from.offset); i < entries_.size(); ++i) {
    bytes += entries_[i].publication.size() + 1;
    if (bytes > max_bytes) return r;  // checked before anything is copied
  }
  for (size_t i = IndexAfter(from.offset); i < entries_.size(); ++i) {
    r.publications.push_back(entries_[i].publication);
  }
  r.recovered = true;
  return r;
}

}  // namespace hermod::core
