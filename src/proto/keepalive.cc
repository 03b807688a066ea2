// The session's keepalive (one timer): the stale deadline before connect, the `{}` pings and
// the pong deadline, and token expiry.
#include "proto/keepalive.h"

#include <cassert>

#include "proto/client_session.h"
#include "stats/loop_metrics.h"

namespace hermod::proto {

void ClientSession::ScheduleKeepalive() {
  if (disconnected_ || closing()) return;
  uint64_t due = UINT64_MAX;
  if (!connected_) {
    if (stale_deadline_ms_ != 0) due = stale_deadline_ms_;
  } else {
    if (awaiting_pong_) {
      due = pong_deadline_ms_;
    } else if (next_ping_ms_ != 0) {
      due = next_ping_ms_;
    }
    if (expire_ms_ != 0) due = std::min(due, expire_ms_);
  }
  if (due == UINT64_MAX) {
    loop().timers().Cancel(keepalive());
    return;
  }
  const uint64_t now = loop().now_ms();
  loop().timers().Schedule(keepalive(), due > now ? due - now : 0);
}

void ClientSession::OnKeepalive() {
  assert(loop().InThisThread());
  if (disconnected_ || closing()) return;
  const uint64_t now = loop().now_ms();
  if (!connected_) {
    if (stale_deadline_ms_ != 0 && now >= stale_deadline_ms_) return Disconnect(kDisconnectStale);
  } else {
    if (expire_ms_ != 0 && now >= expire_ms_) {
      // A connection the connect proxy made asks the refresh proxy whether it lives on.
      if (refresh_by_proxy_ && Proxy(proxy::Kind::kRefresh)) {
        ProxyRefresh();
      } else {
        return Disconnect(kDisconnectExpired);
      }
    }
    if (awaiting_pong_ && now >= pong_deadline_ms_) return Disconnect(kDisconnectNoPong);
    if (!awaiting_pong_ && next_ping_ms_ != 0 && now >= next_ping_ms_) {
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
      pong_deadline_ms_ = now + context_.options.pong_timeout_ms;
      next_ping_ms_ = now + context_.options.ping_interval_ms;
    }
  }
  ScheduleKeepalive();
}

void ClientSession::SetExpiry(int64_t expires_at_s) {
  expire_ms_ = expires_at_s == 0
                   ? 0
                   : loop().now_ms() + static_cast<uint64_t>(TtlSeconds(expires_at_s)) * 1000 +
                         context_.options.expired_close_ms;
}

}  // namespace hermod::proto
