#include "proto/client_options.h"

namespace hermod::proto {

ClientOptions ClientOptions::FromConfig(const config::Config& config) {
  ClientOptions o;
  o.allow_anonymous = config.allow_anonymous_connect_without_token;
  o.channel_limit = config.client_channel_limit;
  o.max_recovery = config.client_recovery_max_publication_limit;
  o.max_history = static_cast<int64_t>(config.client_history_max_publication_limit);
  o.ping_interval_ms = config.ping_interval.ms;
  o.pong_timeout_ms = config.pong_timeout.ms;
  o.stale_close_ms = config.client_stale_close_delay.ms;
  o.expired_close_ms = config.client_expired_close_delay.ms;
  o.version = "hermod";
  const auto& r = config.client_command_rate_limit;
  auto bucket = [](const config::Config::CommandRateLimit::Bucket& b) {
    return core::RateLimit{static_cast<uint32_t>(b.rate), static_cast<uint32_t>(b.burst)};
  };
  o.rate_limits.total = bucket(r.total);
  o.rate_limits.kinds = {bucket(r.publish), bucket(r.subscribe), bucket(r.history),
                         bucket(r.presence), bucket(r.rpc)};
  o.rate_limits.disconnect_after = static_cast<uint32_t>(r.disconnect_after);
  o.rate_limits.disconnect_window_ms = static_cast<uint32_t>(r.disconnect_window.ms);
  return o;
}

}  // namespace hermod::proto
