#include "core/rate_limit.h"

#include <algorithm>
#include <iterator>

namespace hermod::core {

RateLimit RateLimit::Share(size_t parts) const {
  if (!enabled() || parts <= 1) return *this;
  RateLimit share;
  share.rate = std::max<uint32_t>(1, static_cast<uint32_t>(rate / parts));
  share.burst = std::max<uint32_t>(1, static_cast<uint32_t>(burst / parts));
  return share;
}

uint64_t TokenBucket::WaitMs(const RateLimit& limit, uint64_t now_ms) {
  if (!limit.enabled()) return 0;
  Repay(limit, now_ms);
  const uint64_t cap = uint64_t{limit.burst} * 1000;
  const uint64_t need = uint64_t{debt_} + 1000;
  if (need <= cap) return 0;
  return (need - cap + limit.rate - 1) / limit.rate;
}

std::string_view CommandKindName(CommandKind kind) {
  switch (kind) {
    case CommandKind::kPublish:
      return "publish";
    case CommandKind::kSubscribe:
      return "subscribe";
    case CommandKind::kHistory:
      return "history";
    case CommandKind::kPresence:
      return "presence";
    case CommandKind::kRpc:
      return "rpc";
    case CommandKind::kOther:
      break;
  }
  return "total";
}

CommandLimiter::Verdict CommandLimiter::Check(const CommandRateLimits& limits, CommandKind kind,
                                              uint64_t now_ms, bool* by_total) {
  // The kind's bucket first: a command refused there takes nothing from the total.
  bool allowed = kind == CommandKind::kOther ||
                 kinds_[static_cast<size_t>(kind)].TryTake(limits.For(kind), now_ms);
  if (by_total != nullptr) *by_total = allowed;
  if (allowed) allowed = total_.TryTake(limits.total, now_ms);
  if (allowed) return Verdict::kAllow;
  if (limits.disconnect_after == 0) return Verdict::kReject;
  const uint32_t now = static_cast<uint32_t>(now_ms);
  if (rejections_ == 0 || now - window_start_ms_ >= limits.disconnect_window_ms) {
    window_start_ms_ = now;
    rejections_ = 0;
  }
  return ++rejections_ >= limits.disconnect_after ? Verdict::kAbuse : Verdict::kReject;
}

bool ChannelRateLimits::TryPublish(std::string_view channel, const RateLimit& per_loop,
                                   uint64_t now_ms) {
  if (!per_loop.enabled()) return true;
  auto it = buckets_.find(channel);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_channels_) Sweep(now_ms);
    it = buckets_.emplace(std::string(channel), Entry{}).first;
  }
  it->second.limit = per_loop;
  return it->second.bucket.TryTake(per_loop, now_ms);
}

void ChannelRateLimits::Sweep(uint64_t now_ms) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Entry& e = it->second;
    it = e.bucket.Full(e.limit, now_ms) ? buckets_.erase(it) : std::next(it);
  }
  // Every channel is still in debt: forgetting them all errs on the side of the publishers,
  // and the map stays bounded.
  if (buckets_.size() >= max_channels_) buckets_.clear();
}

bool LogThrottle::Allow(uint64_t now_ms, uint64_t* suppressed) {
  if (now_ms < next_ms_) {
    ++suppressed_;
    return false;
  }
  next_ms_ = now_ms + interval_ms_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace hermod::core
