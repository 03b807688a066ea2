// A session's guards, which decide and count but do not act: per-connection command rate
// limits (refuse with 111, or disconnect 3013 when the client keeps at it) and connect-time
// admission (the soft band admits only a connect that recovers: 111; the per-user
// connection limit: 3504). The session carries the verdict out. Each refusal is counted in
// the loop's GuardStats and logged, at most once a second per loop and kind of guard.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/admission.h"
#include "core/rate_limit.h"
#include "net/event_loop.h"
#include "proto/codes.h"
#include "proto/command.h"

namespace hermod::proto {

class CommandGuard {
 public:
  struct Verdict {
    enum Kind : uint8_t { kPass, kRefuse, kDisconnect };
    Kind kind = kPass;
    ErrorCode error = ErrorCode::kTooManyRequests;  // kRefuse: the reply's error
    Disconnect disconnect{};                        // kDisconnect
  };

  // A command of a connected client, against its rate limits.
  Verdict CheckCommand(const Command& c, net::Loop& loop, const core::CommandRateLimits& limits,
                       std::string_view client, std::string_view user);
  // Milliseconds until the rate limiter may be dropped (DropFreshLimiter); UINT64_MAX while
  // none is held.
  uint64_t LimiterFreshInMs(const core::CommandRateLimits& limits, uint64_t now_ms) const {
    return limiter_ ? limiter_->FreshInMs(limits, now_ms) : UINT64_MAX;
  }
  // Drops the rate limiter once it is as good as a new one: an idle connection holds none.
  void DropFreshLimiter(const core::CommandRateLimits& limits, uint64_t now_ms) {
    if (limiter_ && limiter_->FreshInMs(limits, now_ms) == 0) limiter_.reset();
  }
  bool holds_limiter() const { return limiter_ != nullptr; }
  // A connect of user (empty: anonymous), against the admission it was let in by (null:
  // none). kPass counts the user; Release gives it back.
  Verdict AdmitConnect(const Command& c, net::Loop& loop, core::Admission* admission,
                       const std::string& user);
  // This connection was counted for ip by Admission::Admit (before the WebSocket opened).
  void SetAdmitted(std::string ip, bool must_recover);
  // The connection is gone: what it holds of the admission is released (once).
  void Release(core::Admission* admission, const std::string& user);

 private:
  // Made by the first command that takes a token, dropped when repaid (DropFreshLimiter):
  // 56 bytes that an idle connection does not hold (docs/benchmarks.md).
  std::unique_ptr<core::CommandLimiter> limiter_;
  // What the admission counted for this connection, made only with admission limits on
  // (most servers run without: every connection would carry these 40 bytes).
  struct Admitted {
    std::string ip;             // counted for this IP (ip_counted)
    bool ip_counted = false;    // by Admission::Admit
    bool must_recover = false;  // admitted in the soft band
    bool user_counted = false;  // the user's connection count
  };
  Admitted& admitted() {
    if (!admitted_) admitted_ = std::make_unique<Admitted>();
    return *admitted_;
  }
  std::unique_ptr<Admitted> admitted_;
};

}  // namespace hermod::proto
