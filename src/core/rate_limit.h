// Token buckets for everything hermod rate-limits: a client's commands (per kind and in
// total), connections per IP and per loop, and a channel's publications (the bucket lives
// in the hub's channel state, under the shard lock Hub::Publish holds anyway: node-wide).
//
// A bucket is eight bytes and does integer math on the loop's cached clock (Loop::now_ms):
// no allocation, no syscall, no floating point. It stores its debt rather than its tokens,
// in milli-tokens, so that a zero-initialised bucket is a full one and needs no set-up: a
// take adds 1000, time repays `rate` milli-tokens per millisecond (rate tokens per second),
// and a take that would push the debt past burst * 1000 is refused. The clock is kept in 32
// bits: differences wrap correctly, and a bucket idle for 49 days reads as full anyway.
//
// The limits themselves (RateLimit) live apart from the buckets: one read-only copy per
// server, shared by every connection, so a connection pays only for its buckets.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "stats/reasons.h"

namespace hermod::core {

struct RateLimit {
  uint32_t rate = 0;   // tokens per second; 0: unlimited
  uint32_t burst = 1;  // tokens a full bucket holds
  bool enabled() const { return rate != 0; }
  // This limit split into `parts` equal shares (one per loop), none below 1/s and 1 token.
  RateLimit Share(size_t parts) const;
};

class TokenBucket {
 public:
  // Takes one token; false when the bucket is empty (nothing is taken then).
  bool TryTake(const RateLimit& limit, uint64_t now_ms) {
    if (!limit.enabled()) return true;
    Repay(limit, now_ms);
    const uint64_t cap = uint64_t{limit.burst} * 1000;
    if (uint64_t{debt_} + 1000 > cap) return false;
    debt_ += 1000;
    return true;
  }
  // Milliseconds until a take would succeed (0: now).
  uint64_t WaitMs(const RateLimit& limit, uint64_t now_ms);
  // True when time has repaid the whole debt (the bucket is as good as new).
  bool Full(const RateLimit& limit, uint64_t now_ms) {
    Repay(limit, now_ms);
    return debt_ == 0;
  }
  // Milliseconds until Full (0: it is).
  uint64_t FullInMs(const RateLimit& limit, uint64_t now_ms) {
    if (!limit.enabled()) return 0;
    Repay(limit, now_ms);
    return (uint64_t{debt_} + limit.rate - 1) / limit.rate;
  }

 private:
  void Repay(const RateLimit& limit, uint64_t now_ms) {
    const uint32_t now = static_cast<uint32_t>(now_ms);
    const uint64_t repaid = uint64_t{now - last_ms_} * limit.rate;
    last_ms_ = now;
    debt_ = repaid >= debt_ ? 0 : debt_ - static_cast<uint32_t>(repaid);
  }

  uint32_t debt_ = 0;  // milli-tokens
  uint32_t last_ms_ = 0;
};

// The client commands that have their own bucket (the protocol's methods, grouped).
enum class CommandKind : uint8_t {
  kPublish,
  kSubscribe,  // subscribe and sub_refresh
  kHistory,
  kPresence,  // presence and presence_stats
  kRpc,       // rpc and send
  kOther,     // everything else: only the total bucket applies
};
inline constexpr size_t kCommandKinds = 5;  // kinds with their own bucket
std::string_view CommandKindName(CommandKind kind);
// The refusal a command refused by kind's bucket counts as (kOther: the total bucket's).
stats::Refusal LimitedRefusal(CommandKind kind);

// The server's command limits (config: client_command_rate_limit.*), read-only.
struct CommandRateLimits {
  RateLimit total;
  std::array<RateLimit, kCommandKinds> kinds;
  // A connection refused this many commands within disconnect_window_ms is cut (3013).
  uint32_t disconnect_after = 0;  // 0: never
  uint32_t disconnect_window_ms = 10000;

  const RateLimit& For(CommandKind kind) const { return kinds[static_cast<size_t>(kind)]; }
  // Any bucket on (else a command never needs a limiter).
  bool enabled() const {
    bool on = total.enabled();
    for (const RateLimit& k : kinds) on = on || k.enabled();
    return on;
  }
};

// One per client connection that owes tokens, on its loop: 56 bytes, held only while it
// differs from a new one (proto::CommandGuard drops it once FreshInMs says 0).
class CommandLimiter {
 public:
  enum class Verdict : uint8_t {
    kAllow,
    kReject,  // answer this command with error 111
    kAbuse,   // too many rejections in the window: disconnect with 3013
  };
  // *by_total (optional) tells, on a refusal, whether the total bucket refused rather
  // than the kind's own.
  Verdict Check(const CommandRateLimits& limits, CommandKind kind, uint64_t now_ms,
                bool* by_total = nullptr);
  // Milliseconds until this limiter is as good as a new one: every bucket repaid and no
  // refusal counted in an open window (0: it is now).
  uint64_t FreshInMs(const CommandRateLimits& limits, uint64_t now_ms);

 private:
  TokenBucket total_;
  std::array<TokenBucket, kCommandKinds> kinds_;
  uint32_t window_start_ms_ = 0;
  uint32_t rejections_ = 0;
};

// At most one log line per interval for one kind of rejection, so that a flood of rejected
// connections or commands cannot flood the log too: the line that gets through says how
// many were suppressed since the last one. One per call site and thread (thread_local).
class LogThrottle {
 public:
  explicit LogThrottle(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  // True when this event may be logged; *suppressed is the count held back before it.
  bool Allow(uint64_t now_ms, uint64_t* suppressed);

 private:
  uint64_t interval_ms_;
  uint64_t next_ms_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace hermod::core
