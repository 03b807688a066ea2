// What every client session reads from the config: limits, keepalive timings, rate limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "core/rate_limit.h"

namespace hermod::proto {

struct ClientOptions {
  bool allow_anonymous = false;
  size_t channel_limit = 128;
  size_t max_recovery = 300;
  int64_t max_history = 300;          // publications per history reply; 0: no cap by count
  uint64_t ping_interval_ms = 25000;  // 0: no pings
  uint64_t pong_timeout_ms = 8000;
  uint64_t stale_close_ms = 10000;  // a connection without connect is closed (3502); 0: off
  // After the token's exp, the client has this long to refresh before 3005 (Centrifugo's
  // client_expired_close_delay): the SDK refreshes at exp, and the round trip takes time.
  uint64_t expired_close_ms = 25000;
  std::string version;
  core::CommandRateLimits rate_limits;  // per connection

  static ClientOptions FromConfig(const config::Config& config);
};

}  // namespace hermod::proto
