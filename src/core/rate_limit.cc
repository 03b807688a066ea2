#include "core/rate_limit.h"

#include <algorithm>

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

stats::Refusal LimitedRefusal(CommandKind kind) {
  switch (kind) {
    case CommandKind::kPublish:
      return stats::Refusal::kLimitedPublish;
    case CommandKind::kSubscribe:
      return stats::Refusal::kLimitedSubscribe;
    case CommandKind::kHistory:
      return stats::Refusal::kLimitedHistory;
    case CommandKind::kPresence:
      return stats::Refusal::kLimitedPresence;
    case CommandKind::kRpc:
      return stats::Refusal::kLimitedRpc;
    case CommandKind::kOther:
      break;
  }
  return stats::Refusal::kLimitedTotal;
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

uint64_t CommandLimiter::FreshInMs(const CommandRateLimits& limits, uint64_t now_ms) {
  uint64_t ms = total_.FullInMs(limits.total, now_ms);
  for (size_t i = 0; i < kCommandKinds; ++i) {
    ms = std::max(ms, kinds_[i].FullInMs(limits.kinds[i], now_ms));
  }
  if (rejections_ != 0) {
    const uint32_t elapsed = static_cast<uint32_t>(now_ms) - window_start_ms_;
    if (elapsed < limits.disconnect_window_ms) {
      ms = std::max<uint64_t>(ms, limits.disconnect_window_ms - elapsed);
    }
  }
  return ms;
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
