// The `memory` history engine: each channel's HistoryStream (core/history_stream.h) in this
// process, held by the hub in the channel's state and used under its shard lock, so a
// publication's append is a deque push with no lock of its own and completes inline. A
// freed channel's position (epoch, top offset) is kept in a HistoryMeta, striped like the
// hub's shards, each stripe under its own mutex (taken only when a channel is opened or
// closed, never per publication; LOCKS.md).
#pragma once

#include <array>
#include <memory>
#include <mutex>

#include "core/history_meta.h"
#include "core/history_store.h"

namespace hermod::store {

class MemoryHistoryStore final : public core::HistoryStore {
 public:
  MemoryHistoryStore() = default;
  const char* name() const override { return "memory"; }
  void SetMetaLimits(uint64_t ttl_ms, size_t max_channels) override;
  std::unique_ptr<Stream> Open(std::string_view channel, uint64_t now_ms) override;
  void Close(std::string_view channel, std::unique_ptr<Stream> stream, uint64_t now_ms) override;
  std::optional<core::StreamPosition> Kept(std::string_view channel, uint64_t now_ms) override;
  void ExpireKept(uint64_t now_ms) override;
  // Kept positions in all (tests).
  size_t kept() const;

 private:
  static constexpr size_t kStripes = 64;
  struct Stripe {
    mutable std::mutex mutex;  // guards meta (LOCKS.md)
    core::HistoryMeta meta;
  };
  Stripe& StripeOf(std::string_view channel);
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace hermod::store
