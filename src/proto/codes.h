// The client protocol's numbers, in one table each: reply error codes and disconnect codes
// (Centrifugo's "codes" page; docs/protocol.md). A disconnect is sent as the WebSocket close code
// and reason: 3000-3499 and 4000-4499 tell the SDK to reconnect, 3500-3999 and 4500-4999 not.
#pragma once

#include <cstdint>
#include <string_view>

#include "stats/reasons.h"

namespace hermod::proto {

enum class ErrorCode : uint32_t {
  kInternal = 100,
  kUnauthorized = 101,
  kUnknownChannel = 102,
  kPermissionDenied = 103,
  kMethodNotFound = 104,
  kAlreadySubscribed = 105,
  kLimitExceeded = 106,
  kBadRequest = 107,
  kNotAvailable = 108,
  kTokenExpired = 109,
  kExpired = 110,
  kTooManyRequests = 111,
  kUnrecoverablePosition = 112,
};

std::string_view ErrorMessage(ErrorCode code);
// 111 is temporary too: the SDK then retries a refused connect or subscribe with backoff.
inline bool IsTemporary(ErrorCode code) {
  return code == ErrorCode::kInternal || code == ErrorCode::kTooManyRequests;
}

struct Disconnect {
  uint16_t code;
  std::string_view reason;
};

inline constexpr Disconnect kDisconnectShutdown{3001, "shutdown"};
inline constexpr Disconnect kDisconnectServerError{3004, "internal server error"};
inline constexpr Disconnect kDisconnectExpired{3005, "expired"};
inline constexpr Disconnect kDisconnectSubExpired{3006, "subscription expired"};
inline constexpr Disconnect kDisconnectSlow{3008, "slow"};
inline constexpr Disconnect kDisconnectInsufficientState{3010, "insufficient state"};
inline constexpr Disconnect kDisconnectNoPong{3012, "no pong"};
inline constexpr Disconnect kDisconnectTooManyRequests{3013, "too many requests"};
inline constexpr Disconnect kDisconnectInvalidToken{3500, "invalid token"};
inline constexpr Disconnect kDisconnectBadRequest{3501, "bad request"};
inline constexpr Disconnect kDisconnectStale{3502, "stale"};
// An unsubscribe push's code and reason: a subscription the sub_refresh proxy expired ends
// alone, the connection stays (Centrifugo v5).
inline constexpr Disconnect kUnsubscribeExpired{2501, "subscription expired"};
inline constexpr Disconnect kDisconnectConnectionLimit{3504, "connection limit"};
inline constexpr Disconnect kDisconnectChannelLimit{3505, "channel limit"};

// The refusals counted in stats/reasons.h answer with these codes.
static_assert(stats::Row(stats::Refusal::kUserLimit).code == kDisconnectConnectionLimit.code);
static_assert(stats::Row(stats::Refusal::kRateLimitDisconnect).code ==
              kDisconnectTooManyRequests.code);
static_assert(stats::Row(stats::Refusal::kLimitedTotal).code ==
              static_cast<uint16_t>(ErrorCode::kTooManyRequests));

}  // namespace hermod::proto
