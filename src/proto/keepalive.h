// The clocks of a client session's keepalive: JWT expiry is wall-clock time (exp, in
// seconds); deadlines are on the loop's clock (ClientSession::ScheduleKeepalive).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace hermod::proto {

inline int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A token's remaining life in seconds (at least 1); 0 for a token that never expires.
inline int64_t TtlSeconds(int64_t expires_at) {
  return expires_at == 0 ? 0 : std::max<int64_t>(1, expires_at - WallSeconds());
}

}  // namespace hermod::proto
