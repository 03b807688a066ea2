#include "store/memory_history.h"

#include <random>

#include "core/loop_channels.h"
#include "stats/loop_metrics.h"
#include "store/epoch.h"

namespace hermod::store {

namespace {

class MemoryStream final : public core::HistoryStore::Stream {
 public:
  explicit MemoryStream(core::HistoryStream stream) : stream_(std::move(stream)) {}

  core::StreamPosition Position() const override { return {stream_.top(), stream_.epoch()}; }

  std::optional<core::HistoryAppended> Append(const core::HistoryAppend& append,
                                              const core::PublicationEncoder& encode,
                                              core::Completion<core::HistoryAppended>) override {
    core::HistoryAppended out;
    out.position = {stream_.next_offset(), stream_.epoch()};
    // Stored once; the hub encodes its push from the stored bytes (no copy).
    out.stored = stream_.Append(encode(append.data, append.info, out.position.offset, append.tags),
                                append.now_ms, append.size, append.ttl_ms);
    return out;
  }

  std::optional<core::HistoryPage> Read(const core::HistoryQuery& query,
                                        core::Completion<core::HistoryPage>) override {
    core::HistoryPage page;
    page.position = Position();
    const core::StreamPosition* since = query.since ? &*query.since : nullptr;
    if (since && !since->epoch.empty() && since->epoch != stream_.epoch()) {
      page.unrecoverable = true;
      return page;
    }
    page.publications =
        stream_.Read(since, query.limit, query.reverse, query.now_ms, query.max_bytes, &page.cut);
    return page;
  }

  std::optional<core::HistoryStream::Recovery> Recover(
      const core::RecoveryQuery& query, core::Completion<core::HistoryStream::Recovery>) override {
    return stream_.Recover(query.since, query.max_publications, query.now_ms, query.max_bytes);
  }

  void Remove() override { stream_.Clear(); }
  void Expire(uint64_t now_ms) override { stream_.Expire(now_ms); }
  size_t entries() const override { return stream_.size(); }
  size_t bytes() const override { return stream_.bytes(); }
  uint64_t expires_ms() const override { return stream_.expires_ms(); }

 private:
  core::HistoryStream stream_;
};

}  // namespace

MemoryHistoryStore::Stripe& MemoryHistoryStore::StripeOf(std::string_view channel) {
  return stripes_[core::LoopChannels::Hash{}(channel) % kStripes];
}

void MemoryHistoryStore::SetMetaLimits(uint64_t ttl_ms, size_t max_channels) {
  // The cap is per stripe: channels spread over the stripes by hash.
  const size_t per_stripe = (max_channels + kStripes - 1) / kStripes;
  for (Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    stripe.meta.set_limits(ttl_ms, per_stripe);
  }
}

std::unique_ptr<core::HistoryStore::Stream> MemoryHistoryStore::Open(std::string_view channel,
                                                                     uint64_t now_ms) {
  std::optional<core::StreamPosition> kept;
  {
    Stripe& stripe = StripeOf(channel);
    std::lock_guard lock(stripe.mutex);
    kept = stripe.meta.Take(channel, now_ms);
  }
  // The stream this channel had before it was freed continues, if its position is kept.
  if (kept) {
    return std::make_unique<MemoryStream>(
        core::HistoryStream(std::move(kept->epoch), kept->offset));
  }
  return std::make_unique<MemoryStream>(core::HistoryStream(NewEpoch()));
}

void MemoryHistoryStore::Close(std::string_view channel, std::unique_ptr<Stream> stream,
                               uint64_t now_ms) {
  if (!stream) return;
  Stripe& stripe = StripeOf(channel);
  size_t forgotten = 0;
  {
    std::lock_guard lock(stripe.mutex);
    forgotten = stripe.meta.Put(channel, stream->Position(), now_ms);
  }
  if (forgotten > 0) stats::RecordHistoryMetaEvicted(forgotten);
}

std::optional<core::StreamPosition> MemoryHistoryStore::Kept(std::string_view channel,
                                                             uint64_t now_ms) {
  Stripe& stripe = StripeOf(channel);
  std::lock_guard lock(stripe.mutex);
  if (const core::StreamPosition* kept = stripe.meta.Find(channel, now_ms)) return *kept;
  return std::nullopt;
}

void MemoryHistoryStore::ExpireKept(uint64_t now_ms) {
  for (Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    stripe.meta.Expire(now_ms);
  }
}

size_t MemoryHistoryStore::kept() const {
  size_t n = 0;
  for (const Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    n += stripe.meta.size();
  }
  return n;
}

}  // namespace hermod::store
