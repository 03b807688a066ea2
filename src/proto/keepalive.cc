// The session's keepalive (one timer): the stale deadline before connect, the `{}` pings and
// the pong deadline, token expiry, and dropping the command rate limiter once it is repaid.
#include "proto/keepalive.h"

#include <cassert>

#include "proto/client_session.h"
#include "stats/loop_metrics.h"

namespace hermod::proto {

void ClientSession::ScheduleKeepalive() {
  if (disconnected_ || closing()) return;
  const uint64_t now = loop().now_ms();
  uint64_t due = UINT64_MAX;
  if (!connected_) {
    if (stale_) due = Unwrap(stale_or_pong_, now);
  } else {
    if (awaiting_pong_) {
      due = Unwrap(stale_or_pong_, now);
    } else if (pinging_) {
      due = Unwrap(next_ping_, now);
    }
    if (expiring_) due = std::min(due, ExpireMs(now));
    // The command rate limiter is dropped once repaid (CommandGuard::DropFreshLimiter).
    const uint64_t fresh_in = guard_.LimiterFreshInMs(context_.options.rate_limits, now);
    if (fresh_in != UINT64_MAX) due = std::min(due, now + fresh_in);
  }
  transport_.SetSessionTimer(due);  // UINT64_MAX: kNoSessionTimer
}

void ClientSession::OnKeepalive() {
  assert(loop().InThisThread());
  if (disconnected_ || closing()) return;
  const uint64_t now = loop().now_ms();
  if (!connected_) {
    if (stale_ && now >= Unwrap(stale_or_pong_, now)) return Disconnect(kDisconnectStale);
  } else {
    if (expiring_ && now >= ExpireMs(now)) {
      // A connection the connect proxy made asks the refresh proxy whether it lives on.
      if (refresh_by_proxy_ && Proxy(proxy::Kind::kRefresh)) {
        ProxyRefresh();
      } else {
        return Disconnect(kDisconnectExpired);
      }
    }
    if (awaiting_pong_ && now >= Unwrap(stale_or_pong_, now)) return Disconnect(kDisconnectNoPong);
    guard_.DropFreshLimiter(context_.options.rate_limits, now);
    if (!awaiting_pong_ && pinging_ && now >= Unwrap(next_ping_, now)) {
      // Subscription tokens are checked at ping time: expiry is seen within one interval.
      const int64_t wall = WallSeconds();
      for (auto& s : subscriptions_) {
        if (s->expires_at == 0 || s->expires_at > wall) continue;
        if (!s->refresh_by_proxy) return Disconnect(kDisconnectSubExpired);
        ProxySubRefresh(*s);
      }
      transport_.SendReply("{}");
      stats::RecordSent(stats::SentType::kPing, 2);
      // A unidirectional client cannot answer: its pings only keep the stream warm.
      awaiting_pong_ = !unidirectional_;
      stale_or_pong_ = static_cast<uint32_t>(now + context_.options.pong_timeout_ms);
      SetNextPing(now + context_.options.ping_interval_ms);
    }
  }
  ScheduleKeepalive();
}

void ClientSession::SetExpiry(int64_t expires_at_s) {
  if (expires_at_s == 0) {
    expiring_ = false;
    return;
  }
  const uint64_t now = loop().now_ms();
  SetExpireMs(now + static_cast<uint64_t>(TtlSeconds(expires_at_s)) * 1000 +
                  context_.options.expired_close_ms,
              now);
}

}  // namespace hermod::proto
