// One channel's history: a bounded stream of encoded publications with monotonically
// increasing offsets and an epoch that names this incarnation of the stream (Centrifugo's
// "stream position"). Bounded twice: at most `size` entries, none older than `ttl_ms`.
//
// Entries hold the publication's JSON object as the client protocol sends it (data passed
// through verbatim, info, offset), so a history reply or a recovery copies bytes and never
// re-encodes. The stream is a plain value: the hub guards it with its channel shard's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace hermod::core {

struct StreamPosition {
  uint64_t offset = 0;
  std::string epoch;
};

class HistoryStream {
 public:
  // top: the offset of the last publication, when the stream continues one that was kept
  // (history_meta.h); its publications are gone, its position is not.
  explicit HistoryStream(std::string epoch, uint64_t top = 0)
      : epoch_(std::move(epoch)), top_(top) {}

  // The offset the next Append gets (publications embed it before they are stored).
  uint64_t next_offset() const { return top_ + 1; }
  uint64_t top() const { return top_; }
  const std::string& epoch() const { return epoch_; }
  size_t size() const { return entries_.size(); }
  // The publications' bytes held (what /metrics reports as history bytes).
  size_t bytes() const { return bytes_; }
  // When the newest entry expires, so when the whole stream is empty (0: it is now).
  uint64_t expires_ms() const { return entries_.empty() ? 0 : entries_.back().expires_ms; }

  // Stores the publication encoded with next_offset(); trims to size and ttl. Returns the
  // stored copy, valid until the next call.
  const std::string& Append(std::string publication, uint64_t now_ms, uint64_t size,
                            uint64_t ttl_ms);
  // Drops entries whose ttl passed.
  void Expire(uint64_t now_ms);
  // Drops every entry; the position (top offset, epoch) stays (API history_remove).
  void Clear() {
    entries_.clear();
    bytes_ = 0;
  }

  // `history`: publications after since.offset (or from the oldest kept when since is
  // null), oldest first; with reverse, newest first and before since.offset. limit < 0: all.
  // At most max_bytes of publications: *cut (optional) tells that one more did not fit.
  std::vector<std::string> Read(const StreamPosition* since, int64_t limit, bool reverse,
                                uint64_t now_ms, size_t max_bytes = SIZE_MAX, bool* cut = nullptr);

  // Recovery: every publication after `from`, when the stream still holds all of them (same
  // epoch, none trimmed) and there are at most max_publications; otherwise recovered=false.
  struct Recovery {
    bool recovered = false;
    std::vector<std::string> publications;
  };
  // Also not recovered when the publications would take more than max_bytes.
  Recovery Recover(const StreamPosition& from, size_t max_publications, uint64_t now_ms,
                   size_t max_bytes = SIZE_MAX);

 private:
  struct Entry {
    uint64_t offset;
    uint64_t expires_ms;
    std::string publication;
  };
  // Index of the first entry with offset > after (entries are contiguous in offset).
  size_t IndexAfter(uint64_t after) const;
  void PopFront() {
    bytes_ -= entries_.front().publication.size();
    entries_.pop_front();
  }

  std::string epoch_;
  uint64_t top_ = 0;
  std::deque<Entry> entries_;
  size_t bytes_ = 0;  // sum of the entries' publication sizes
};

}  // namespace hermod::core
