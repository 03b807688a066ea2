#include "config/config.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <span>
#include <sstream>
#include <string_view>
#include <variant>

#include "config/centrifugo.h"
#include "json/syntax.h"

namespace hermod::config {

namespace {

using Target = std::variant<uint64_t*, bool*, std::string*, std::vector<std::string>*, Duration*,
                            Priority*, Delivery*>;

constexpr uint64_t kUnbounded = UINT64_MAX;

// An enum key's names, indexed by the enum's value.
constexpr std::string_view kPriorityNames[] = {"critical", "high", "normal", "low"};
constexpr std::string_view kDeliveryNames[] = {"all", "latest"};
std::span<const std::string_view> Names(Priority*) { return kPriorityNames; }
std::span<const std::string_view> Names(Delivery*) { return kDeliveryNames; }

// A string key's shape, beyond a list of values: the rule it breaks, or nullptr.
using Check = const char* (*)(std::string_view);

// A key, where its value goes, and the bounds serve can run with: a number's range, a
// string's values (one_of) or shape (check). checkconfig and serve both enforce them
// (Validate), so a value checkconfig accepts never aborts serve. A duration's range is in
// milliseconds. Every numeric key has a range (config_test checks it); an enum key is parsed
// to its enum when read, so its names are its bounds.
struct Field {
  const char* key;  // dotted JSON path
  Target target;
  uint64_t min = 0;
  uint64_t max = kUnbounded;
  std::span<const std::string_view> one_of = {};
  Check check = nullptr;
};

Field OneOf(const char* key, std::string* target, std::span<const std::string_view> values) {
  return {key, target, 0, kUnbounded, values};
}
Field Shaped(const char* key, std::string* target, Check check) {
  return {key, target, 0, kUnbounded, {}, check};
}

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
constexpr std::string_view kLogFormats[] = {"text", "json"};
constexpr std::string_view kBrokers[] = {"memory", "nats"};
constexpr std::string_view kStoreEngines[] = {"memory", "sqlite", "nats"};
constexpr std::string_view kFaultPoints[] = {"", "scheduled_published"};
constexpr std::string_view kHistoryEngines[] = {"memory", "sqlite", "nats"};
constexpr std::string_view kPresenceEngines[] = {"memory", "nats"};
constexpr std::string_view kSqliteSync[] = {"full", "normal"};
constexpr std::string_view kStorageTypes[] = {"file", "memory"};
// A JetStream stream name: no spaces, dots, wildcards or path separators.
const char* CheckStreamName(std::string_view name) {
  if (name.empty() || name.size() > 255) return "a JetStream stream name (1 to 255 characters)";
  for (char c : name) {
    if (c <= ' ' || c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' || c == 127) {
      return "a JetStream stream name: no spaces, '.', '*', '>', '/' or '\\'";
    }
  }
  return nullptr;
}
// A KV bucket's name (a JetStream stream's: KV_<bucket>).
const char* CheckBucket(std::string_view name) {
  const bool ok = !name.empty() && name.find_first_not_of(
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_-") == std::string_view::npos;
  return ok ? nullptr : "letters, digits, '_' and '-'";
}

const char* CheckNatsUrl(std::string_view url) {
  return url.starts_with("nats://") || url.starts_with("tls://")
             ? nullptr
             : "nats://host:port (several: comma-separated)";
}
// The prefix is the subject's first tokens: NATS subjects have no spaces or wildcards.
const char* CheckNatsPrefix(std::string_view prefix) {
  const bool ok = !prefix.empty() && prefix.front() != '.' && prefix.back() != '.' &&
                  prefix.find_first_of(" \t\r\n*>") == std::string_view::npos &&
                  prefix.find("..") == std::string_view::npos;
  return ok ? nullptr : "subject tokens without spaces, '*' or '>'";
}
// A proxy endpoint: empty (off), or an http(s) URL.
const char* CheckEndpoint(std::string_view url) {
  return url.empty() || url.starts_with("http://") || url.starts_with("https://")
             ? nullptr
             : "an http:// or https:// URL, or empty (off)";
}
const char* CheckNamespaceName(std::string_view name) {
  return name.empty() || name.find(':') != std::string_view::npos ? "must be non-empty, without ':'"
                                                                  : nullptr;
}

// Ranges shared by many keys. Timers add a delay to a uint64 millisecond clock and some
// count it in 32 bits (core/rate_limit.h): 2^31 ms (24 days) keeps every sum and cast exact.
constexpr uint64_t kMaxMs = uint64_t{1} << 31;
constexpr uint64_t kYearMs = 365ull * 24 * 3600 * 1000;
// Buffers are indexed with 32 bits; 1 GiB is far beyond any sane message anyway.
constexpr uint64_t kMaxBuffer = uint64_t{1} << 30;
// Budgets compared with sums of buffer sizes (never allocated at once).
constexpr uint64_t kMaxBudget = uint64_t{1} << 40;
// Token buckets count milli-tokens in 32 bits (core/rate_limit.h).
constexpr uint64_t kMaxRate = 1000000;
constexpr uint64_t kMaxCount = uint64_t{1} << 32;
// Health thresholds are compared as doubles; a huge one means "never" (tests use 10^9).
constexpr uint64_t kMaxPercent = 1000000000;

constexpr std::string_view kInboxOverflow[] = {"reject", "dead_letter_oldest"};

// The channel option keys, shared by the top level and each namespace.
void AddChannelFields(std::vector<Field>& fields, ChannelOptions& o) {
  fields.insert(fields.end(),
                {
                    {"presence", &o.presence},
                    {"join_leave", &o.join_leave},
                    {"force_push_join_leave", &o.force_push_join_leave},
                    {"history_size", &o.history_size, 0, 10000000},
                    {"history_ttl", &o.history_ttl, 0, kYearMs},
                    {"force_recovery", &o.force_recovery},
                    {"allow_publish_for_client", &o.allow_publish_for_client},
                    {"allow_publish_for_subscriber", &o.allow_publish_for_subscriber},
                    {"allow_subscribe_for_client", &o.allow_subscribe_for_client},
                    {"allow_subscribe_for_anonymous", &o.allow_subscribe_for_anonymous},
                    {"allow_history_for_client", &o.allow_history_for_client},
                    {"allow_history_for_subscriber", &o.allow_history_for_subscriber},
                    {"allow_presence_for_client", &o.allow_presence_for_client},
                    {"allow_presence_for_subscriber", &o.allow_presence_for_subscriber},
                    {"allow_user_limited_channels", &o.allow_user_limited_channels},
                    {"allowed_delta_types", &o.allowed_delta_types},
                    {"push_coalesce_max_bytes", &o.push_coalesce_max_bytes, 0, kMaxBuffer},
                    {"push_coalesce_delay", &o.push_coalesce_delay, 0, 1000},
                    {"default_priority", &o.default_priority},
                    {"delivery", &o.delivery},
                    {"droppable", &o.droppable},
                    {"join_leave_batch_delay", &o.join_leave_batch_delay, 0, 10000},
                    {"join_leave_batch_max", &o.join_leave_batch_max, 1, 10000},
                    {"publish_rate_limit", &o.publish_rate_limit, 0, kMaxRate},
                    {"publish_rate_burst", &o.publish_rate_burst, 1, kMaxRate},
                    {"proxy_subscribe", &o.proxy_subscribe},
                    {"proxy_publish", &o.proxy_publish},
                    {"proxy_sub_refresh", &o.proxy_sub_refresh},
                    {"subscribe_proxy_name", &o.subscribe_proxy_name},
                    {"publish_proxy_name", &o.publish_proxy_name},
                    {"sub_refresh_proxy_name", &o.sub_refresh_proxy_name},
                    {"inbox", &o.inbox},
                    {"inbox_size", &o.inbox_size, 1, 1000000},
                    {"inbox_ttl", &o.inbox_ttl, 1000, kYearMs},
                    {"ack_timeout", &o.ack_timeout, 10, 24ull * 3600 * 1000},
                    {"max_deliveries", &o.max_deliveries, 1, 1000},
                    OneOf("inbox_overflow", &o.inbox_overflow, kInboxOverflow),
                    {"receipts_channel", &o.receipts_channel},
                });
}

}  // namespace

bool ParseDuration(std::string_view text, uint64_t* ms) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  uint64_t value;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (digits == 0 || ec != std::errc()) return false;
  std::string_view unit = text.substr(digits);
  uint64_t scale;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 3600 * 1000;
  } else {
    return false;
  }
  // Saturates: the key's range then refuses it with its bounds, instead of a wrapped value
  // slipping through ("18446744073709551615ms" is not 0, "5124095576031h" not 2^64 - 8).
  *ms = value > UINT64_MAX / scale ? UINT64_MAX : value * scale;
  return true;
}

namespace {

std::string FormatDuration(uint64_t ms) {
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

std::vector<Field> Fields(Config& c) {
  auto& ws = c.websocket;
  auto& z = c.websocket.compression;
  return {
      {"bind", &c.bind},
      {"port", &c.port, 0, 65535},
      {"workers", &c.workers, 0, 1024},
      {"echo", &c.echo},
      OneOf("log_level", &c.log_level, kLogLevels),
      OneOf("log_format", &c.log_format, kLogFormats),
      {"log_buffer_bytes", &c.log_buffer_bytes, 4096, kMaxBuffer},
      {"log_flush_timeout_ms", &c.log_flush_timeout_ms, 0, kMaxMs},
      OneOf("fault_kill_at", &c.fault_kill_at, kFaultPoints),
      {"backlog", &c.backlog, 0, 65535},
      {"read_buffer_bytes", &c.read_buffer_bytes, 4096, uint64_t{64} << 20},
      {"io_uring", &c.io_uring},
      {"shutdown_timeout_ms", &c.shutdown_timeout_ms, 0, kMaxMs},
      {"http.max_header_bytes", &c.http.max_header_bytes, 256, kMaxBuffer},
      {"http.max_headers", &c.http.max_headers, 1, 10000},
      {"http.max_body_bytes", &c.http.max_body_bytes, 0, kMaxBuffer},
      {"http.keepalive_timeout_ms", &c.http.keepalive_timeout_ms, 0, kMaxMs},
      {"http.max_response_bytes", &c.http.max_response_bytes, 4096, uint64_t{4} << 30},
      {"websocket.max_message_bytes", &ws.max_message_bytes, 1, kMaxBuffer},
      {"websocket.handshake_timeout_ms", &ws.handshake_timeout_ms, 0, kMaxMs},
      {"websocket.ping_interval_ms", &ws.ping_interval_ms, 0, kMaxMs},
      {"websocket.pong_timeout_ms", &ws.pong_timeout_ms, 0, kMaxMs},
      {"websocket.idle_timeout_ms", &ws.idle_timeout_ms, 0, kMaxMs},
      {"websocket.max_write_buffer_bytes", &ws.max_write_buffer_bytes, 1024, kMaxBuffer},
      {"websocket.close_timeout_ms", &ws.close_timeout_ms, 0, kMaxMs},
      {"websocket.fragment_bytes", &ws.fragment_bytes, 0, kMaxBuffer},
      {"websocket.join_max_bytes", &ws.join_max_bytes, 0, kMaxBuffer},
      {"websocket.allowed_origins", &ws.allowed_origins},
      {"websocket.subprotocols", &ws.subprotocols},
      {"websocket.compression.enabled", &z.enabled},
      {"websocket.compression.server_no_context_takeover", &z.server_no_context_takeover},
      {"websocket.compression.client_no_context_takeover", &z.client_no_context_takeover},
      {"websocket.compression.server_max_window_bits", &z.server_max_window_bits, 8, 15},
      {"websocket.compression.client_max_window_bits", &z.client_max_window_bits, 8, 15},
      {"websocket.compression.level", &z.level, 0, 9},
      {"websocket.compression.min_size", &z.min_size, 0, kMaxBuffer},
      {"send_queue.drop_low_bytes", &c.send_queue.drop_low_bytes, 0, kMaxBudget},
      {"send_queue.drop_normal_bytes", &c.send_queue.drop_normal_bytes, 0, kMaxBudget},
      {"send_queue.urgent_deadline_ms", &c.send_queue.urgent_deadline_ms, 1, kMaxMs},
      {"send_queue.normal_deadline_ms", &c.send_queue.normal_deadline_ms, 1, kMaxMs},
      {"send_queue.loop_budget_bytes", &c.send_queue.loop_budget_bytes, 1024, kMaxBudget},
      {"send_queue.inbox_budget_bytes", &c.send_queue.inbox_budget_bytes, 1024, kMaxBudget},
      {"send_queue.coalesce_when_busy_us", &c.send_queue.coalesce_when_busy_us, 0, 1000000},
      {"idempotency_window", &c.idempotency_window, 1, kMaxMs},
      {"schedule_max_delay", &c.schedule_max_delay, 1000, 10 * kYearMs},
      {"memory_trim_interval", &c.memory_trim_interval, 0, kMaxMs},
      {"health.check_interval_ms", &c.health.check_interval_ms, 1, kMaxMs},
      {"health.loop_deadline_ms", &c.health.loop_deadline_ms, 1, kMaxMs},
      {"health.memory_budget_bytes", &c.health.memory_budget_bytes, 0, uint64_t{1} << 50},
      {"health.max_connections", &c.health.max_connections, 0, kMaxCount},
      {"health.degraded_percent", &c.health.degraded_percent, 1, kMaxPercent},
      {"health.unhealthy_percent", &c.health.unhealthy_percent, 1, kMaxPercent},
      {"health.critical_percent", &c.health.critical_percent, 1, kMaxPercent},
      {"health.history_size", &c.health.history_size, 1, 1024},
      {"health.error_window_ms", &c.health.error_window_ms, 1000, 3600000},
      {"health.max_protocol_error_closes_per_second",
       &c.health.max_protocol_error_closes_per_second, 0, kMaxCount},
      {"health.max_slow_consumer_closes_per_second", &c.health.max_slow_consumer_closes_per_second,
       0, kMaxCount},
      {"tls.cert_file", &c.tls.cert_file},
      {"tls.key_file", &c.tls.key_file},
  };
}

std::vector<Field> AllFields(Config& c) {
  std::vector<Field> fields = Fields(c);
  fields.insert(
      fields.end(),
      {
          {"allow_anonymous_connect_without_token", &c.allow_anonymous_connect_without_token},
          {"uni_websocket", &c.uni_websocket},
          {"uni_websocket_message_size_limit", &c.uni_websocket_message_size_limit, 1, kMaxBuffer},
          {"uni_sse", &c.uni_sse},
          {"uni_sse_max_request_body_size", &c.uni_sse_max_request_body_size, 1, kMaxBuffer},
          {"uni_http_stream", &c.uni_http_stream},
          {"uni_http_stream_max_request_body_size", &c.uni_http_stream_max_request_body_size, 1,
           kMaxBuffer},
          {"http_stream", &c.http_stream},
          {"http_stream_max_request_body_size", &c.http_stream_max_request_body_size, 1,
           kMaxBuffer},
          {"sse", &c.sse},
          {"sse_max_request_body_size", &c.sse_max_request_body_size, 1, kMaxBuffer},
          {"emulation_max_request_body_size", &c.emulation_max_request_body_size, 1, kMaxBuffer},
          {"fragments", &c.fragments},
          {"fragments_websocket", &c.fragments_websocket},
          {"user_subscribe_to_personal", &c.user_subscribe_to_personal},
          {"user_personal_channel_namespace", &c.user_personal_channel_namespace},
          {"client_channel_limit", &c.client_channel_limit, 0, 1000000},
          {"channel_max_length", &c.channel_max_length, 1, 65535},
          {"channel_private_prefix", &c.channel_private_prefix},
          {"client_recovery_max_publication_limit", &c.client_recovery_max_publication_limit, 0,
           10000000},
          {"client_history_max_publication_limit", &c.client_history_max_publication_limit, 0,
           10000000},
          {"channel_name_ascii_only", &c.channel_name_ascii_only},
          {"history_meta_ttl", &c.history_meta_ttl, 0, 10 * kYearMs},
          {"history_meta_max_channels", &c.history_meta_max_channels, 0, kMaxCount},
          OneOf("engine", &c.engine, kStoreEngines),
          OneOf("history_engine", &c.history_engine, kHistoryEngines),
          OneOf("presence_engine", &c.presence_engine, kPresenceEngines),
          {"sqlite.path", &c.sqlite.path},
          {"sqlite.max_batch", &c.sqlite.max_batch, 1, 100000},
          {"sqlite.max_queue", &c.sqlite.max_queue, 1, 10000000},
          {"sqlite.max_trim", &c.sqlite.max_trim, 1, 1000000},
          {"sqlite.pause_reads_at", &c.sqlite.pause_reads_at, 0, 10000000},
          {"sqlite.resume_reads_at", &c.sqlite.resume_reads_at, 0, 10000000},
          OneOf("sqlite.synchronous", &c.sqlite.synchronous, kSqliteSync),
          {"sqlite.secure_delete", &c.sqlite.secure_delete},
          {"presence_ttl", &c.presence_ttl, 1000, kMaxMs},
          {"ping_interval", &c.ping_interval, 0, kMaxMs},
          {"pong_timeout", &c.pong_timeout, 0, kMaxMs},
          {"client_stale_close_delay", &c.client_stale_close_delay, 0, kMaxMs},
          {"client_expired_close_delay", &c.client_expired_close_delay, 0, kMaxMs},
          {"api_key", &c.api_key},
          {"admin", &c.admin},
          {"admin_password", &c.admin_password},
          {"token_hmac_secret_key", &c.token_hmac_secret_key},
          {"token_rsa_public_key", &c.token_rsa_public_key},
          {"token_ecdsa_public_key", &c.token_ecdsa_public_key},
          {"token_audience", &c.token_audience},
          {"token_issuer", &c.token_issuer},
      });
  // Admission and rate limits.
  auto& a = c.admission;
  auto& r = c.client_command_rate_limit;
  fields.insert(
      fields.end(),
      {
          {"client_connection_limit", &c.client_connection_limit, 0, kMaxCount},
          {"client_user_connection_limit", &c.client_user_connection_limit, 0, kMaxCount},
          {"client_connection_rate_limit", &c.client_connection_rate_limit, 0, kMaxRate},
          {"admission.soft_connection_limit", &a.soft_connection_limit, 0, kMaxCount},
          {"admission.ip_connection_limit", &a.ip_connection_limit, 0, kMaxCount},
          {"admission.ip_connection_rate", &a.ip_connection_rate, 0, kMaxRate},
          {"admission.ip_connection_burst", &a.ip_connection_burst, 1, kMaxRate},
          {"admission.ip_table_size", &a.ip_table_size, 1, 100000000},
          {"admission.retry_after", &a.retry_after, 1000, kMaxMs},
          {"admission.accept_rate_per_loop", &a.accept_rate_per_loop, 0, kMaxRate},
          {"client_command_rate_limit.total.rate", &r.total.rate, 0, kMaxRate},
          {"client_command_rate_limit.total.burst", &r.total.burst, 1, kMaxRate},
          {"client_command_rate_limit.publish.rate", &r.publish.rate, 0, kMaxRate},
          {"client_command_rate_limit.publish.burst", &r.publish.burst, 1, kMaxRate},
          {"client_command_rate_limit.subscribe.rate", &r.subscribe.rate, 0, kMaxRate},
          {"client_command_rate_limit.subscribe.burst", &r.subscribe.burst, 1, kMaxRate},
          {"client_command_rate_limit.history.rate", &r.history.rate, 0, kMaxRate},
          {"client_command_rate_limit.history.burst", &r.history.burst, 1, kMaxRate},
          {"client_command_rate_limit.presence.rate", &r.presence.rate, 0, kMaxRate},
          {"client_command_rate_limit.presence.burst", &r.presence.burst, 1, kMaxRate},
          {"client_command_rate_limit.rpc.rate", &r.rpc.rate, 0, kMaxRate},
          {"client_command_rate_limit.rpc.burst", &r.rpc.burst, 1, kMaxRate},
          {"client_command_rate_limit.disconnect_after", &r.disconnect_after, 0, kMaxRate},
          {"client_command_rate_limit.disconnect_window", &r.disconnect_window, 0, kMaxMs},
      });
  // Cluster mode (src/broker/).
  fields.insert(
      fields.end(),
      {
          OneOf("broker", &c.broker, kBrokers),
          Shaped("nats.url", &c.nats.url, CheckNatsUrl),
          Shaped("nats.prefix", &c.nats.prefix, CheckNatsPrefix),
          {"nats.dial_timeout", &c.nats.dial_timeout, 1, 60000},
          {"nats.reconnect_wait", &c.nats.reconnect_wait, 1, 60000},
          {"nats.ping_interval", &c.nats.ping_interval, 1000, 3600000},
          {"nats.max_pings_out", &c.nats.max_pings_out, 1, 100},
          {"nats.reconnect_buffer_bytes", &c.nats.reconnect_buffer_bytes, 1024, kMaxBuffer},
          {"nats.send_queue_bytes", &c.nats.send_queue_bytes, 1024, kMaxBuffer},
          {"nats.receive_queue_bytes", &c.nats.receive_queue_bytes, 1024, kMaxBuffer},
          {"nats.release_batch", &c.nats.release_batch, 1, 4096},
          {"nats.release_bytes", &c.nats.release_bytes, 0, kMaxBuffer},
          {"nats.unhealthy_after", &c.nats.unhealthy_after, 0, kMaxMs},
          {"nats.tls.enabled", &c.nats.tls.enabled},
          {"nats.tls.ca_file", &c.nats.tls.ca_file},
          {"nats.tls.cert_file", &c.nats.tls.cert_file},
          {"nats.tls.key_file", &c.nats.tls.key_file},
          {"nats.tls.server_name", &c.nats.tls.server_name},
          {"nats.tls.insecure_skip_verify", &c.nats.tls.insecure_skip_verify},
          {"nats.lost_channels_max", &c.nats.lost_channels_max, 1, 1 << 20},
          Shaped("nats.jetstream.stream", &c.nats.jetstream.stream, CheckStreamName),
          {"nats.jetstream.replicas", &c.nats.jetstream.replicas, 1, 5},
          OneOf("nats.jetstream.storage", &c.nats.jetstream.storage, kStorageTypes),
          {"nats.jetstream.workers", &c.nats.jetstream.workers, 1, 64},
          Shaped("nats.presence.bucket", &c.nats.presence.bucket, CheckBucket),
          {"nats.presence.replicas", &c.nats.presence.replicas, 1, 5},
          OneOf("nats.presence.storage", &c.nats.presence.storage, kStorageTypes),
          {"nats.presence.readers", &c.nats.presence.readers, 1, 64},
          {"nats.schedule_claim_lease", &c.nats.schedule_claim_lease, 100, 3600000},
          {"nats.schedule_fire_keys", &c.nats.schedule_fire_keys, 0, 10000000},
          {"nats.inbox_status_read_through", &c.nats.inbox_status_read_through, 0, 10000},
          {"nats.history_read_cache_bytes", &c.nats.history_read_cache_bytes, 0, kMaxBuffer * 64},
          {"broker_breaker.failure_threshold", &c.broker_breaker.failure_threshold, 1, kMaxRate},
          {"broker_breaker.window", &c.broker_breaker.window, 1, kMaxMs},
          {"broker_breaker.open_timeout", &c.broker_breaker.open_timeout, 1, kMaxMs},
          {"broker_breaker.half_open_trials", &c.broker_breaker.half_open_trials, 1, kMaxRate},
      });
  // Backend proxies (src/proxy/).
  constexpr uint64_t kMaxProxyMs = 600000;
  fields.insert(
      fields.end(),
      {
          Shaped("proxy_connect_endpoint", &c.proxy_connect_endpoint, CheckEndpoint),
          {"proxy_connect_timeout", &c.proxy_connect_timeout, 1, kMaxProxyMs},
          Shaped("proxy_refresh_endpoint", &c.proxy_refresh_endpoint, CheckEndpoint),
          {"proxy_refresh_timeout", &c.proxy_refresh_timeout, 1, kMaxProxyMs},
          Shaped("proxy_subscribe_endpoint", &c.proxy_subscribe_endpoint, CheckEndpoint),
          {"proxy_subscribe_timeout", &c.proxy_subscribe_timeout, 1, kMaxProxyMs},
          Shaped("proxy_publish_endpoint", &c.proxy_publish_endpoint, CheckEndpoint),
          {"proxy_publish_timeout", &c.proxy_publish_timeout, 1, kMaxProxyMs},
          Shaped("proxy_rpc_endpoint", &c.proxy_rpc_endpoint, CheckEndpoint),
          {"proxy_rpc_timeout", &c.proxy_rpc_timeout, 1, kMaxProxyMs},
          Shaped("proxy_sub_refresh_endpoint", &c.proxy_sub_refresh_endpoint, CheckEndpoint),
          {"proxy_sub_refresh_timeout", &c.proxy_sub_refresh_timeout, 1, kMaxProxyMs},
          {"proxy_http_headers", &c.proxy_http_headers},
          {"proxy_include_connection_meta", &c.proxy_include_connection_meta},
          {"granular_proxy_mode", &c.granular_proxy_mode},
          {"connect_proxy_name", &c.connect_proxy_name},
          {"refresh_proxy_name", &c.refresh_proxy_name},
          {"rpc_proxy_name", &c.rpc_proxy_name},
          {"proxy_client.max_in_flight", &c.proxy_client.max_in_flight, 1, kMaxCount},
          {"proxy_client.max_in_flight_per_connection",
           &c.proxy_client.max_in_flight_per_connection, 1, 100000},
          {"proxy_client.max_connections_per_endpoint",
           &c.proxy_client.max_connections_per_endpoint, 1, 100000},
          {"proxy_client.max_response_bytes", &c.proxy_client.max_response_bytes, 1024, kMaxBuffer},
          {"proxy_client.ca_file", &c.proxy_client.ca_file},
          {"proxy_breaker.failure_threshold", &c.proxy_breaker.failure_threshold, 1, kMaxRate},
          {"proxy_breaker.window", &c.proxy_breaker.window, 1, kMaxMs},
          {"proxy_breaker.open_timeout", &c.proxy_breaker.open_timeout, 1, kMaxMs},
          {"proxy_breaker.half_open_trials", &c.proxy_breaker.half_open_trials, 1, kMaxRate},
      });
  AddChannelFields(fields, c.channel);
  return fields;
}

constexpr std::string_view kConsumerTypes[] = {"nats_jetstream", "postgresql", "kafka"};
constexpr std::string_view kDeliverPolicies[] = {"new", "all"};
// A consumer's stream or durable name: a JetStream name once the consumer is enabled.
const char* CheckOptionalStream(std::string_view name) {
  return name.empty() ? nullptr : CheckStreamName(name);
}
const char* CheckHeaderName(std::string_view name) {
  const bool ok =
      name.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~") ==
      name.npos;
  return ok ? nullptr : "an HTTP-style header name, or empty (the body's method)";
}

// One `consumers` entry's keys; nats_jetstream's nested under "nats_jetstream.".
std::vector<Field> ConsumerFields(Consumer& c) {
  auto& j = c.nats_jetstream;
  return {
      Shaped("name", &c.name, CheckBucket),
      {"enabled", &c.enabled},
      OneOf("type", &c.type, kConsumerTypes),
      Shaped("nats_jetstream.url", &j.url, CheckNatsUrl),
      Shaped("nats_jetstream.stream_name", &j.stream_name, CheckOptionalStream),
      {"nats_jetstream.subjects", &j.subjects},
      Shaped("nats_jetstream.durable_consumer_name", &j.durable_consumer_name, CheckOptionalStream),
      OneOf("nats_jetstream.deliver_policy", &j.deliver_policy, kDeliverPolicies),
      {"nats_jetstream.max_ack_pending", &j.max_ack_pending, 1, 65536},
      {"nats_jetstream.ack_wait", &j.ack_wait, 1000, 3600000},
      Shaped("nats_jetstream.method_header", &j.method_header, CheckHeaderName)};
}

Field* FindField(std::vector<Field>& fields, std::string_view key) {
  for (Field& f : fields) {
    if (key == f.key) return &f;
  }
  return nullptr;
}

bool IsSection(std::vector<Field>& fields, std::string_view prefix) {
  for (Field& f : fields) {
    std::string_view key = f.key;
    if (key.size() > prefix.size() && key.starts_with(prefix) && key[prefix.size()] == '.') {
      return true;
    }
  }
  return false;
}

template <class E>
bool SetEnum(E* target, std::string_view text) {
  const auto names = Names(target);
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == text) {
      *target = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

// "text or json", "one of trace, debug, info, warn, error, off".
// An empty name is shown quoted, so it reads as a value ("\"\" or scheduled_published").
std::string Alternatives(std::span<const std::string_view> names) {
  auto shown = [](std::string_view n) { return n.empty() ? std::string("\"\"") : std::string(n); };
  if (names.size() == 2) return shown(names[0]) + " or " + shown(names[1]);
  std::string out = "one of ";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + shown(names[i]);
  return out;
}

// Sets an enum target from its name; false (and *expected: the names) for any other text.
bool SetEnumTarget(Field& field, std::string_view text, std::string* expected) {
  if (auto* p = std::get_if<Priority*>(&field.target)) {
    if (SetEnum(*p, text)) return true;
    *expected = Alternatives(Names(*p));
  } else if (auto* d = std::get_if<Delivery*>(&field.target)) {
    if (SetEnum(*d, text)) return true;
    *expected = Alternatives(Names(*d));
  }
  return false;
}

bool SetFromJson(Field& field, simdjson::dom::element value, std::string* error) {
  auto wrong = [&](const std::string& expected) {
    *error = std::string("config key ") + field.key + ": expected " + expected;
    return false;
  };
  if (auto* u = std::get_if<uint64_t*>(&field.target)) {
    uint64_t v;
    if (value.get_uint64().get(v) != simdjson::SUCCESS) return wrong("a non-negative integer");
    **u = v;
  } else if (auto* b = std::get_if<bool*>(&field.target)) {
    bool v;
    if (value.get_bool().get(v) != simdjson::SUCCESS) return wrong("true or false");
    **b = v;
  } else if (auto* s = std::get_if<std::string*>(&field.target)) {
    std::string_view v;
    if (value.get_string().get(v) != simdjson::SUCCESS) return wrong("a string");
    **s = std::string(centrifugo::TranslateValue(field.key, v));
  } else if (auto* d = std::get_if<Duration*>(&field.target)) {
    uint64_t seconds;
    std::string_view text;
    if (value.get_uint64().get(seconds) == simdjson::SUCCESS) {
      (*d)->ms = seconds > UINT64_MAX / 1000 ? UINT64_MAX : seconds * 1000;  // as ParseDuration
    } else if (value.get_string().get(text) != simdjson::SUCCESS ||
               !ParseDuration(text, &(*d)->ms)) {
      return wrong("a duration such as \"300s\", \"500ms\", \"2m\"");
    }
  } else if (auto* list = std::get_if<std::vector<std::string>*>(&field.target)) {
    simdjson::dom::array array;
    if (value.get_array().get(array) != simdjson::SUCCESS) return wrong("an array of strings");
    (*list)->clear();
    for (simdjson::dom::element item : array) {
      std::string_view v;
      if (item.get_string().get(v) != simdjson::SUCCESS) return wrong("an array of strings");
      (*list)->emplace_back(v);
    }
  } else {
    std::string_view v;
    std::string expected = "a string";
    if (value.get_string().get(v) != simdjson::SUCCESS || !SetEnumTarget(field, v, &expected)) {
      return wrong(expected);
    }
  }
  return true;
}

// Whether a JSON value has the type of the field (its value may still be refused): a key
// whose value has another type may be Centrifugo's spelling of it ("port": "8000").
bool HasFieldType(const Field& field, simdjson::dom::element value) {
  using T = simdjson::dom::element_type;
  const T type = value.type();
  const bool number = type == T::INT64 || type == T::UINT64 || type == T::DOUBLE;
  if (std::holds_alternative<uint64_t*>(field.target)) return number;
  if (std::holds_alternative<bool*>(field.target)) return type == T::BOOL;
  if (std::holds_alternative<std::vector<std::string>*>(field.target)) return type == T::ARRAY;
  if (std::holds_alternative<Duration*>(field.target)) return number || type == T::STRING;
  return type == T::STRING;  // strings and enums
}

bool SetFromString(Field& field, std::string_view text, const std::string& source,
                   std::string* error) {
  if (auto* u = std::get_if<uint64_t*>(&field.target)) {
    uint64_t v;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) {
      *error = source + ": expected a non-negative integer, got '" + std::string(text) + "'";
      return false;
    }
    **u = v;
  } else if (auto* b = std::get_if<bool*>(&field.target)) {
    if (text == "true" || text == "1") {
      **b = true;
    } else if (text == "false" || text == "0") {
      **b = false;
    } else {
      *error = source + ": expected true or false, got '" + std::string(text) + "'";
      return false;
    }
  } else if (auto* s = std::get_if<std::string*>(&field.target)) {
    **s = std::string(text);
  } else if (auto* d = std::get_if<Duration*>(&field.target)) {
    if (!ParseDuration(text, &(*d)->ms)) {
      *error = source + ": expected a duration such as 300s, got '" + std::string(text) + "'";
      return false;
    }
  } else if (auto* list = std::get_if<std::vector<std::string>*>(&field.target)) {
    (*list)->clear();
    while (!text.empty()) {
      size_t comma = text.find(',');
      std::string_view item = text.substr(0, comma);
      if (!item.empty()) (*list)->emplace_back(item);
      if (comma == std::string_view::npos) break;
      text.remove_prefix(comma + 1);
    }
  } else {
    std::string expected;
    if (!SetEnumTarget(field, text, &expected)) {
      *error = source + ": expected " + expected + ", got '" + std::string(text) + "'";
      return false;
    }
  }
  return true;
}

// One config file being read: hermod's field table, and where Centrifugo keys hermod does
// not support are reported.
struct Reader {
  std::vector<Field> fields;
  std::vector<std::string>* warnings;
  std::string* error;
  // A Centrifugo v5 file (it has global_history_meta_ttl): its top-level history_meta_ttl is
  // a channel option (0: the global one), not hermod's history_meta_ttl.
  bool v5_history_meta = false;

  void Unsupported(const std::string& path, simdjson::dom::element value,
                   std::string_view hermod_value = {}) {
    if (warnings == nullptr) return;
    std::string line = path + ": Centrifugo key not supported by hermod yet";
    if (!hermod_value.empty()) {
      line = path + " = " + simdjson::minify(value) +
             ": not supported by hermod, which behaves as " + std::string(hermod_value);
    }
    warnings->push_back(std::move(line));
  }
};

// false, "", 0, [], {} and null ask for no feature: Centrifugo's "off" for every key that
// turns something on.
bool AsksForNothing(simdjson::dom::element value) {
  using T = simdjson::dom::element_type;
  switch (value.type()) {
    case T::ARRAY:
      return simdjson::dom::array(value).size() == 0;
    case T::OBJECT:
      return simdjson::dom::object(value).size() == 0;
    case T::STRING:
      return std::string_view(value).empty();
    case T::BOOL:
      return !bool(value);
    case T::INT64:
      return int64_t(value) == 0;
    case T::UINT64:
      return uint64_t(value) == 0;
    case T::DOUBLE:
      return double(value) == 0;
    case T::NULL_VALUE:
      return true;
  }
  return false;
}

// A Centrifugo key (centrifugo.h): mapped onto hermod's, accepted, or reported.
bool ApplyCentrifugo(Reader& r, const centrifugo::Key& key, const std::string& path,
                     simdjson::dom::element value) {
  using centrifugo::Kind;
  switch (key.kind) {
    case Kind::kSame:
      if (!key.target.empty() && simdjson::minify(value) != key.target) {
        r.Unsupported(path, value, key.target);
      }
      return true;
    case Kind::kUnsupported:
      if (!AsksForNothing(value) && simdjson::minify(value) != key.centrifugo_default) {
        r.Unsupported(path, value);
      }
      return true;
    case Kind::kMapped:
    case Kind::kMappedMs:
      break;
  }
  Field* field = FindField(r.fields, key.target);
  if (field == nullptr) {  // the tables name hermod keys only (config_test checks it)
    *r.error = "config key " + path + ": no hermod key " + std::string(key.target);
    return false;
  }
  const std::string where = "config key " + path + " (hermod's " + field->key + ")";
  std::string_view text;
  if (key.kind == Kind::kMappedMs) {
    Duration d;
    Field as_duration{field->key, &d};
    if (!SetFromJson(as_duration, value, r.error)) {
      *r.error = where + ": expected a duration such as \"30s\"";
      return false;
    }
    **std::get_if<uint64_t*>(&field->target) = d.ms;
    return true;
  }
  if (auto* d = std::get_if<Duration*>(&field->target);
      d != nullptr && (simdjson::minify(value) == "-1" || simdjson::minify(value) == "\"-1\"")) {
    (*d)->ms = 0;  // Centrifugo v6's -1: off (hermod's 0)
    return true;
  }
  if (HasFieldType(*field, value)) {
    if (SetFromJson(*field, value, r.error)) return true;
  } else if (value.get_string().get(text) == simdjson::SUCCESS) {
    // Centrifugo v5 reads values loosely: "port": "8000", "client_channel_limit": "128".
    if (SetFromString(*field, centrifugo::TranslateValue(field->key, text), where, r.error)) {
      return true;
    }
    return false;
  } else {
    SetFromJson(*field, value, r.error);
  }
  *r.error = where + r.error->substr(r.error->find(':'));
  return false;
}

bool ParseNamespaces(Reader& r, simdjson::dom::element value, const std::string& where,
                     Config& config);

// The channel options of a namespace or, in a v6 config, of channel.without_namespace:
// hermod's keys, then Centrifugo's namespace options (reported when they ask for something).
// Centrifugo v6's names of the namespace options hermod has under v5's.
std::string_view NamespaceAlias(std::string_view key) {
  if (key == "subscribe_proxy_enabled") return "proxy_subscribe";
  if (key == "publish_proxy_enabled") return "proxy_publish";
  if (key == "sub_refresh_proxy_enabled") return "proxy_sub_refresh";
  return key;
}

bool WalkChannelOptions(Reader& r, std::vector<Field>& fields, simdjson::dom::object object,
                        const std::string& where) {
  for (auto [key, value] : object) {
    Field* field = FindField(fields, NamespaceAlias(key));
    if (field != nullptr) {
      if (!SetFromJson(*field, value, r.error)) {
        *r.error = "config key " + where + r.error->substr(std::strlen("config key "));
        return false;
      }
    } else if (centrifugo::IsNamespaceKey(key)) {
      if (!AsksForNothing(value)) r.Unsupported(where + std::string(key), value);
    } else {
      *r.error = "unknown config key: " + where + std::string(key);
      return false;
    }
  }
  return true;
}

// proxy_static_http_headers: {"Name": "value"}; a name is an HTTP token, a value has no
// control characters (nothing that could end the header early).
bool ParseStaticHeaders(Reader& r, simdjson::dom::object object, const std::string& path,
                        std::vector<std::string>& out) {
  out.clear();
  for (auto [name, value] : object) {
    std::string_view text;
    const bool name_ok = !name.empty() && name.find_first_not_of(
                                              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
                                              "XYZ0123456789!#$%&'*+-.^_`|~") == name.npos;
    if (!name_ok || value.get_string().get(text) != simdjson::SUCCESS ||
        std::any_of(text.begin(), text.end(),
                    [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 127; })) {
      *r.error = "config key " + path + "." + std::string(name) +
                 ": must be a header name with a string value (no control characters)";
      return false;
    }
    out.push_back(std::string(name) + ": " + std::string(text));
  }
  return true;
}

// `consumers`: a list of objects (Centrifugo v6.2's shape, also inside a v5-style config).
// Keys hermod does not know inside an entry (another type's block, TLS, credentials) are
// reported as not supported when they ask for something.
bool ParseConsumers(Reader& r, simdjson::dom::element value, Config& config) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    *r.error = "config key consumers: expected an array of objects";
    return false;
  }
  config.consumers.clear();
  for (simdjson::dom::element item : array) {
    const std::string at = "consumers[" + std::to_string(config.consumers.size()) + "].";
    simdjson::dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) {
      *r.error = "config key consumers: expected an array of objects";
      return false;
    }
    Consumer consumer;
    std::vector<Field> fields = ConsumerFields(consumer);
    std::function<bool(simdjson::dom::object, const std::string&)> walk =
        [&](simdjson::dom::object o, const std::string& prefix) {
          for (auto [key, v] : o) {
            const std::string path = prefix + std::string(key);
            simdjson::dom::object inner;
            if (path == "nats_jetstream" && v.get_object().get(inner) == simdjson::SUCCESS) {
              if (!walk(inner, path + ".")) return false;
              continue;
            }
            Field* field = FindField(fields, path);
            if (field == nullptr) {
              if (!AsksForNothing(v)) r.Unsupported(at + path, v);
              continue;
            }
            if (!SetFromJson(*field, v, r.error)) {
              *r.error = "config key " + at + r.error->substr(std::strlen("config key "));
              return false;
            }
          }
          return true;
        };
    if (!walk(object, "")) return false;
    if (consumer.enabled && consumer.type != "nats_jetstream") {
      simdjson::dom::element type;
      if (object["type"].get(type) == simdjson::SUCCESS) r.Unsupported(at + "type", type);
    }
    config.consumers.push_back(std::move(consumer));
  }
  return true;
}

// Walks an array of objects, each through the fields fields_of gives its new element;
// other keys are reported when they ask for something.
template <class T>
bool ParseObjects(Reader& r, simdjson::dom::element value, const std::string& key,
                  std::vector<T>& out, std::vector<Field> (*fields_of)(T&),
                  // 0: not its key; 1: read; -1: refused (*r.error says why).
                  int (*special)(Reader&, T&, std::string_view, simdjson::dom::element,
                                 const std::string&) = nullptr) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    *r.error = "config key " + key + ": expected an array of objects";
    return false;
  }
  out.clear();
  for (simdjson::dom::element item : array) {
    const std::string at = key + "[" + std::to_string(out.size()) + "].";
    simdjson::dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) {
      *r.error = "config key " + key + ": expected an array of objects";
      return false;
    }
    T element{};
    std::vector<Field> fields = fields_of(element);
    for (auto [name, v] : object) {
      if (const int read = special ? special(r, element, name, v, at) : 0; read != 0) {
        if (read < 0) return false;
        continue;
      }
      Field* field = FindField(fields, name);
      if (field == nullptr) {
        if (!AsksForNothing(v)) r.Unsupported(at + std::string(name), v);
        continue;
      }
      if (!SetFromJson(*field, v, r.error)) {
        *r.error = "config key " + at + r.error->substr(std::strlen("config key "));
        return false;
      }
    }
    out.push_back(std::move(element));
  }
  return true;
}

std::vector<Field> NamedProxyFields(NamedProxy& p) {
  return {{"name", &p.name},
          Shaped("endpoint", &p.endpoint, CheckEndpoint),
          {"timeout", &p.timeout, 1, kMaxMs},
          {"http_headers", &p.http_headers},
          {"include_connection_meta", &p.include_connection_meta}};
}
std::vector<Field> RpcNamespaceFields(RpcNamespace& n) {
  return {{"name", &n.name}, {"rpc_proxy_name", &n.rpc_proxy_name}};
}

// A named proxy's static_http_headers ({"Name": "value"}; Centrifugo v6: http.static_headers).
int NamedProxySpecial(Reader& r, NamedProxy& p, std::string_view key, simdjson::dom::element value,
                      const std::string& at) {
  simdjson::dom::element headers = value;
  std::string path = at + std::string(key);
  if (key == "http") {
    simdjson::dom::object http;
    if (value.get_object().get(http) != simdjson::SUCCESS) return 0;
    for (auto [name, v] : http) {
      if (name == "static_headers") {
        headers = v;
        path += ".static_headers";
      } else if (!AsksForNothing(v)) {
        r.Unsupported(path + "." + std::string(name), v);
      }
    }
    if (path == at + "http") return 1;
  } else if (key != "static_http_headers") {
    return 0;
  }
  simdjson::dom::object object;
  if (headers.get_object().get(object) != simdjson::SUCCESS) {
    *r.error = "config key " + path + ": expected an object";
    return -1;
  }
  return ParseStaticHeaders(r, object, path, p.static_http_headers) ? 1 : -1;
}

bool WalkObject(Reader& r, Config& config, simdjson::dom::object object,
                const std::string& prefix) {
  for (auto [key, value] : object) {
    if (prefix.empty() && key == "namespaces") continue;  // ParseNamespaces, after the rest
    if (prefix.empty() && key == "consumers") {
      if (!ParseConsumers(r, value, config)) return false;
      continue;
    }
    if (prefix.empty() && key == "proxies") {
      if (!ParseObjects(r, value, "proxies", config.proxies, NamedProxyFields, NamedProxySpecial)) {
        return false;
      }
      continue;
    }
    if (prefix.empty() && key == "rpc_namespaces") {
      if (!ParseObjects(r, value, "rpc_namespaces", config.rpc_namespaces, RpcNamespaceFields)) {
        return false;
      }
      continue;
    }
    const std::string path = prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
    simdjson::dom::object inner;
    const bool is_object = value.get_object().get(inner) == simdjson::SUCCESS;
    // Centrifugo v6's channel section: the top level's and the namespaces' options.
    if (path == "channel.namespaces") {
      if (!ParseNamespaces(r, value, path, config)) return false;
      continue;
    }
    if (path == "proxy_static_http_headers" && is_object) {
      if (!ParseStaticHeaders(r, inner, path, config.proxy_static_http_headers)) return false;
      continue;
    }
    if (path == "channel.without_namespace" && is_object) {
      std::vector<Field> fields;
      AddChannelFields(fields, config.channel);
      if (!WalkChannelOptions(r, fields, inner, path + ".")) return false;
      continue;
    }
    if (path == "history_meta_ttl" && r.v5_history_meta) {
      if (!AsksForNothing(value)) r.Unsupported(path, value);
      continue;
    }
    Field* field = FindField(r.fields, path);
    // Centrifugo's `engine: "redis"` is reported as Centrifugo's key below, not refused.
    const bool centrifugos =
        field != nullptr && path == "engine" && value.is_string() &&
        std::find(field->one_of.begin(), field->one_of.end(),
                  std::string_view(value.get_string().value_unsafe())) == field->one_of.end();
    if (field != nullptr && HasFieldType(*field, value) && !centrifugos) {
      if (!SetFromJson(*field, value, r.error)) return false;
      continue;
    }
    const std::string_view top = std::string_view(path).substr(0, path.find('.'));
    if (is_object && (IsSection(r.fields, path) || centrifugo::IsV6Section(top) ||
                      centrifugo::IsV5Section(path))) {
      if (!WalkObject(r, config, inner, path)) return false;
      continue;
    }
    std::optional<centrifugo::Key> c = centrifugo::FindV5(path);
    if (!c) c = centrifugo::FindV6(path);
    if (c) {
      if (!ApplyCentrifugo(r, *c, path, value)) return false;
      continue;
    }
    if (field != nullptr) return SetFromJson(*field, value, r.error);  // its type's error
    *r.error = "unknown config key: " + path;
    return false;
  }
  return true;
}

std::string EnvName(std::string_view key) {
  std::string name = "HERMOD_";
  // Nesting is "__", since keys themselves contain "_": websocket.max_message_bytes is
  // HERMOD_WEBSOCKET__MAX_MESSAGE_BYTES.
  for (char ch : key) {
    if (ch == '.') {
      name += "__";
    } else {
      name += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
  }
  return name;
}

// `namespaces` (v6: channel.namespaces): a list of objects, each a `name` and channel options.
bool ParseNamespaces(Reader& r, simdjson::dom::element value, const std::string& where,
                     Config& config) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    *r.error = "config key " + where + ": expected an array of objects";
    return false;
  }
  config.namespaces.clear();
  for (simdjson::dom::element item : array) {
    simdjson::dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) {
      *r.error = "config key " + where + ": expected an array of objects";
      return false;
    }
    Namespace ns;
    std::vector<Field> fields{Shaped("name", &ns.name, CheckNamespaceName)};
    AddChannelFields(fields, ns.options);
    const std::string at = "namespaces[" + std::to_string(config.namespaces.size()) + "].";
    if (!WalkChannelOptions(r, fields, object, at)) return false;
    config.namespaces.push_back(std::move(ns));
  }
  return true;
}

}  // namespace

bool ApplyJson(const std::string& json, Config& config, std::string* error,
               std::vector<std::string>* warnings) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto ec = parser.parse(json).get(root); ec != simdjson::SUCCESS) {
    *error = "config is not valid JSON: ";
    // simdjson names the kind of error only; a person needs to know where it is.
    if (json::SyntaxError at = json::FindSyntaxError(json); at.found) {
      *error += "line " + std::to_string(at.line) + ", column " + std::to_string(at.column) +
                ": expected " + at.expected;
    } else {
      *error += simdjson::error_message(ec);
    }
    return false;
  }
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    *error = "config must be a JSON object";
    return false;
  }
  Reader reader{AllFields(config), warnings, error};
  simdjson::dom::element global_meta;
  reader.v5_history_meta = object["global_history_meta_ttl"].get(global_meta) == simdjson::SUCCESS;
  if (!WalkObject(reader, config, object, "")) return false;
  simdjson::dom::element namespaces;
  if (object["namespaces"].get(namespaces) == simdjson::SUCCESS) {
    return ParseNamespaces(reader, namespaces, "namespaces", config);
  }
  return true;
}

bool ApplyFile(const std::string& path, Config& config, std::string* error,
               std::vector<std::string>* warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read config file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  if (!ApplyJson(text.str(), config, error, warnings)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

namespace {

// The kubelet's shapes, matched by hand: <regex> cost more compile time than all the rest of
// this file (tests/README.md, "CI time").
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kNameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
constexpr std::string_view kAddressChars = "0123456789ABCDEFabcdef.:";

// Non-empty and made of `chars` only.
bool AllOf(std::string_view s, std::string_view chars) {
  return !s.empty() && s.find_first_not_of(chars) == std::string_view::npos;
}

// HERMOD or HERMOD_<name>: a Service whose variables are in hermod's HERMOD_ namespace.
bool IsServiceName(std::string_view s) {
  return s == "HERMOD" || (s.starts_with("HERMOD_") && AllOf(s.substr(7), kNameChars));
}

// <tcp|udp|sctp>://<address>:<port>, the address in optional brackets: sets *protocol and
// *port when `value` has that shape.
bool ParseServiceUrl(std::string_view value, std::string_view* protocol, std::string_view* port) {
  const size_t scheme = value.find("://");
  if (scheme == std::string_view::npos) return false;
  *protocol = value.substr(0, scheme);
  if (*protocol != "tcp" && *protocol != "udp" && *protocol != "sctp") return false;
  std::string_view rest = value.substr(scheme + 3);
  if (rest.starts_with('[')) rest.remove_prefix(1);
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return false;
  *port = rest.substr(colon + 1);
  std::string_view address = rest.substr(0, colon);
  if (address.ends_with(']')) address.remove_suffix(1);
  return AllOf(*port, kDigits) && AllOf(address, kAddressChars);
}

// What follows the Service's name: SERVICE_HOST, SERVICE_PORT[_<port name>], PORT, or
// PORT_<number>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]; true when `value` is what the kubelet
// sets for it.
bool IsServiceLinkValue(std::string_view shape, std::string_view value) {
  if (shape == "SERVICE_HOST") return AllOf(value, kAddressChars);
  if (shape == "SERVICE_PORT" ||
      (shape.starts_with("SERVICE_PORT_") && AllOf(shape.substr(13), kNameChars))) {
    return AllOf(value, kDigits);
  }
  std::string_view url_protocol;
  std::string_view url_port;
  if (shape == "PORT") return ParseServiceUrl(value, &url_protocol, &url_port);
  if (!shape.starts_with("PORT_")) return false;
  shape.remove_prefix(5);
  const size_t number_end = shape.find('_');
  if (number_end == std::string_view::npos) return false;
  const std::string_view port = shape.substr(0, number_end);
  if (!AllOf(port, kDigits)) return false;
  shape.remove_prefix(number_end + 1);
  std::string_view protocol;
  for (auto [upper, lower] : {std::pair<std::string_view, std::string_view>{"TCP", "tcp"},
                              {"UDP", "udp"},
                              {"SCTP", "sctp"}}) {
    if (shape.starts_with(upper)) {
      protocol = lower;
      shape.remove_prefix(upper.size());
      break;
    }
  }
  if (protocol.empty()) return false;
  if (shape.empty()) {
    return ParseServiceUrl(value, &url_protocol, &url_port) && url_protocol == protocol &&
           url_port == port;
  }
  if (shape == "_PROTO") return value == protocol;
  if (shape == "_PORT") return value == port;
  if (shape == "_ADDR") return AllOf(value, kAddressChars);
  return false;
}

}  // namespace

bool IsKubernetesServiceLink(std::string_view name, std::string_view value) {
  // The Service's name may itself hold "_PORT" (hermod-port-x): try every split.
  for (size_t split = name.find('_'); split != std::string_view::npos;
       split = name.find('_', split + 1)) {
    if (IsServiceName(name.substr(0, split)) && IsServiceLinkValue(name.substr(split + 1), value)) {
      return true;
    }
  }
  return false;
}

bool ApplyEnvironment(char** environment, Config& config, std::string* error) {
  std::vector<Field> fields = AllFields(config);
  for (char** e = environment; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry = *e;
    if (!entry.starts_with("HERMOD_")) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    if (IsKubernetesServiceLink(name, entry.substr(eq + 1))) continue;
    bool known = false;
    for (Field& field : fields) {
      if (EnvName(field.key) != name) continue;
      known = true;
      if (!SetFromString(field, entry.substr(eq + 1), std::string(name), error)) return false;
    }
    if (!known) {
      *error = "unknown environment variable " + std::string(name);
      return false;
    }
  }
  return true;
}

namespace {

std::string FormatBound(const Field& field, uint64_t value) {
  if (std::holds_alternative<Duration*>(field.target)) {
    return value == UINT64_MAX ? "more than 2^64 ms" : FormatDuration(value);
  }
  return std::to_string(value);
}

// Every key within its bounds (the table above); where: the key's prefix.
bool CheckFields(const std::vector<Field>& fields, const std::string& where, std::string* error) {
  for (const Field& f : fields) {
    if (auto* s = std::get_if<std::string*>(&f.target)) {
      const std::string& value = **s;
      if (!f.one_of.empty() &&
          std::find(f.one_of.begin(), f.one_of.end(), value) == f.one_of.end()) {
        *error = "config key " + where + f.key + ": " + Alternatives(f.one_of);
        return false;
      }
      if (f.check != nullptr) {
        if (const char* rule = f.check(value)) {
          *error = "config key " + where + f.key + ": " + rule;
          return false;
        }
      }
      continue;
    }
    uint64_t value;
    if (auto* u = std::get_if<uint64_t*>(&f.target)) {
      value = **u;
    } else if (auto* d = std::get_if<Duration*>(&f.target)) {
      value = (*d)->ms;
    } else {
      continue;
    }
    if (value < f.min || value > f.max) {
      *error = "config key " + where + f.key + ": " + FormatBound(f, value) + " is out of range " +
               FormatBound(f, f.min) + ".." + FormatBound(f, f.max);
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<KeyRange> KeyRanges() {
  Config c;
  std::vector<KeyRange> out;
  for (const Field& f : AllFields(c)) {
    const bool duration = std::holds_alternative<Duration*>(f.target);
    if (duration || std::holds_alternative<uint64_t*>(f.target)) {
      out.push_back({f.key, f.min, f.max, duration});
    }
  }
  return out;
}

void ResolveEngine(Config& c) {
  if (c.engine != "nats") return;
  for (std::string* key : {&c.broker, &c.history_engine, &c.presence_engine}) {
    if (*key == "memory") *key = "nats";
  }
}

void ResolveProxies(Config& c) {
  if (!c.granular_proxy_mode) return;
  auto resolve = [](ChannelOptions& o) {
    o.proxy_subscribe = !o.subscribe_proxy_name.empty();
    o.proxy_publish = !o.publish_proxy_name.empty();
    o.proxy_sub_refresh = !o.sub_refresh_proxy_name.empty();
  };
  resolve(c.channel);
  for (Namespace& ns : c.namespaces) resolve(ns.options);
}

namespace {

// nats.tls: files that serve would fail to load are refused by checkconfig already.
bool CheckNatsTls(const NatsTls& t, std::string* error) {
  if (t.cert_file.empty() != t.key_file.empty()) {
    *error = "config keys nats.tls.cert_file and nats.tls.key_file: set both or neither";
    return false;
  }
  const std::pair<const char*, const std::string*> files[] = {{"nats.tls.ca_file", &t.ca_file},
                                                              {"nats.tls.cert_file", &t.cert_file},
                                                              {"nats.tls.key_file", &t.key_file}};
  for (const auto& [key, path] : files) {
    if (path->empty()) continue;
    if (std::ifstream in(*path); !in || in.peek() == std::ifstream::traits_type::eof()) {
      *error = std::string("config key ") + key + ": cannot read " + *path +
               (in ? " (empty)" : std::string(" (") + std::strerror(errno) + ")");
      return false;
    }
  }
  // An IPv6 address has colons; one colon is a port.
  if (t.server_name.find_first_of(" \t/@") != std::string::npos ||
      std::count(t.server_name.begin(), t.server_name.end(), ':') == 1) {
    *error = "config key nats.tls.server_name: a host name or address, without a port";
    return false;
  }
  return true;
}

}  // namespace

bool Validate(const Config& c, std::string* error) {
  auto fail = [&](const std::string& message) {
    *error = message;
    return false;
  };
  // Ranges first, from the field table; what follows relates keys to each other.
  Config copy = c;
  if (!CheckFields(AllFields(copy), "", error)) return false;
  for (size_t i = 0; i < copy.namespaces.size(); ++i) {
    std::vector<Field> fields{Shaped("name", &copy.namespaces[i].name, CheckNamespaceName)};
    AddChannelFields(fields, copy.namespaces[i].options);
    if (!CheckFields(fields, "namespaces[" + std::to_string(i) + "].", error)) return false;
  }
  for (size_t i = 0; i < copy.consumers.size(); ++i) {
    Consumer& consumer = copy.consumers[i];
    const std::string where = "consumers[" + std::to_string(i) + "].";
    if (!CheckFields(ConsumerFields(consumer), where, error)) return false;
    for (size_t j = 0; j < i; ++j) {
      if (copy.consumers[j].name == consumer.name) {
        return fail("config key " + where + "name: duplicate");
      }
    }
    if (!consumer.enabled || consumer.type != "nats_jetstream") continue;
    const auto& js = consumer.nats_jetstream;
    if (js.stream_name.empty() || js.durable_consumer_name.empty()) {
      return fail("config keys " + where +
                  "nats_jetstream.stream_name, durable_consumer_name: " + "must be set");
    }
    // jsConsumerConfig of the libnats hermod builds with has one FilterSubject.
    if (js.subjects.size() > 1) {
      return fail("config key " + where +
                  "nats_jetstream.subjects: at most one subject (none: the whole stream)");
    }
    for (const std::string& subject : js.subjects) {
      if (const char* rule = CheckNatsPrefix(subject); rule != nullptr && subject != ">" &&
                                                       !subject.ends_with(".>") &&
                                                       subject.find('*') == std::string::npos) {
        return fail("config key " + where + "nats_jetstream.subjects: " + rule);
      }
    }
  }
  // Granular proxy mode: names unique, each name used is a proxy's.
  for (size_t i = 0; i < c.proxies.size(); ++i) {
    const std::string where = "config key proxies[" + std::to_string(i) + "].";
    std::vector<Field> fields = NamedProxyFields(copy.proxies[i]);
    if (!CheckFields(fields, "proxies[" + std::to_string(i) + "].", error)) return false;
    if (c.proxies[i].name.empty() || c.proxies[i].endpoint.empty()) {
      return fail(where + "name, endpoint: must be set");
    }
    for (size_t j = 0; j < i; ++j) {
      if (c.proxies[j].name == c.proxies[i].name) return fail(where + "name: duplicate");
    }
  }
  // "default": Centrifugo v6's name of the flat keys' proxy.
  auto named = [&](const std::string& name, const std::string& key) {
    if (name.empty() || name == "default") return true;
    for (const NamedProxy& p : c.proxies) {
      if (p.name == name) return true;
    }
    return fail("config key " + key + ": no proxy named \"" + name + "\" in proxies");
  };
  if (!named(c.connect_proxy_name, "connect_proxy_name") ||
      !named(c.refresh_proxy_name, "refresh_proxy_name") ||
      !named(c.rpc_proxy_name, "rpc_proxy_name")) {
    return false;
  }
  for (size_t i = 0; i < c.rpc_namespaces.size(); ++i) {
    const std::string where = "rpc_namespaces[" + std::to_string(i) + "].";
    if (const char* rule = CheckNamespaceName(c.rpc_namespaces[i].name)) {
      return fail("config key " + where + "name: " + rule);
    }
    if (c.rpc_namespaces[i].rpc_proxy_name.empty()) {
      return fail("config key " + where + "rpc_proxy_name: must be set");
    }
    if (!named(c.rpc_namespaces[i].rpc_proxy_name, where + "rpc_proxy_name")) return false;
  }
  for (size_t i = 0; i <= c.namespaces.size(); ++i) {
    const ChannelOptions& o = i < c.namespaces.size() ? c.namespaces[i].options : c.channel;
    const std::string where =
        i < c.namespaces.size() ? "namespaces[" + std::to_string(i) + "]." : "";
    if (!named(o.subscribe_proxy_name, where + "subscribe_proxy_name") ||
        !named(o.publish_proxy_name, where + "publish_proxy_name") ||
        !named(o.sub_refresh_proxy_name, where + "sub_refresh_proxy_name")) {
      return false;
    }
  }
  if (c.websocket.ping_interval_ms != 0 && c.websocket.pong_timeout_ms == 0) {
    return fail("config key websocket.pong_timeout_ms: must be set when pings are on");
  }
  const auto& sq = c.send_queue;
  // Watermarks above websocket.max_write_buffer_bytes act as that bound (a profile that
  // lowers the bound need not restate them).
  if (sq.drop_low_bytes > sq.drop_normal_bytes) {
    return fail(
        "config keys send_queue.drop_low_bytes, send_queue.drop_normal_bytes: must be "
        "drop_low_bytes <= drop_normal_bytes");
  }
  const auto& hc = c.health;
  if (hc.degraded_percent > hc.unhealthy_percent || hc.unhealthy_percent > hc.critical_percent) {
    return fail(
        "config keys health.degraded_percent, health.unhealthy_percent, "
        "health.critical_percent: must be 1 <= degraded <= unhealthy <= critical");
  }

  if (c.admin && c.admin_password.empty()) {
    return fail("config key admin_password: must be set when admin is true");
  }
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    return fail("config keys tls.cert_file and tls.key_file: set both or neither");
  }
  if (!CheckNatsTls(c.nats.tls, error)) return false;
  const auto& r = c.client_command_rate_limit;
  if (r.disconnect_after > 0 && r.disconnect_window.ms == 0) {
    return fail("config key client_command_rate_limit.disconnect_window: must be set");
  }
  const auto& a = c.admission;
  if (a.soft_connection_limit != 0 && c.client_connection_limit != 0 &&
      a.soft_connection_limit >= c.client_connection_limit) {
    return fail(
        "config key admission.soft_connection_limit: must be below client_connection_limit");
  }
  auto check_channel = [&](const ChannelOptions& o, const std::string& where) {
    if (o.history_size > 0 && o.history_ttl.ms == 0) {
      return fail("config key " + where + "history_ttl: must be set when history_size is");
    }
    for (const std::string& type : o.allowed_delta_types) {
      if (type != "fossil") {
        return fail("config key " + where + "allowed_delta_types: only \"fossil\" is known");
      }
    }
    const std::pair<bool, const std::string*> proxies[] = {
        {o.proxy_subscribe, &c.proxy_subscribe_endpoint},
        {o.proxy_publish, &c.proxy_publish_endpoint},
        {o.proxy_sub_refresh, &c.proxy_sub_refresh_endpoint}};
    const char* names[] = {"proxy_subscribe", "proxy_publish", "proxy_sub_refresh"};
    const std::string* named[] = {&o.subscribe_proxy_name, &o.publish_proxy_name,
                                  &o.sub_refresh_proxy_name};
    for (size_t i = 0; i < 3 && !c.granular_proxy_mode; ++i) {
      if (proxies[i].first && proxies[i].second->empty() &&
          (named[i]->empty() || *named[i] == "default")) {
        return fail("config key " + where + names[i] + ": needs " + names[i] + "_endpoint");
      }
    }
    return true;
  };
  if (!check_channel(c.channel, "")) return false;
  for (size_t i = 0; i < c.namespaces.size(); ++i) {
    const std::string& name = c.namespaces[i].name;
    std::string where = "namespaces[" + std::to_string(i) + "].";
    for (size_t j = 0; j < i; ++j) {
      if (c.namespaces[j].name == name) return fail("config key " + where + "name: duplicate");
    }
    if (!check_channel(c.namespaces[i].options, where)) return false;
  }
  if (c.ping_interval.ms != 0 && (c.ping_interval.ms < 1000 || c.pong_timeout.ms == 0 ||
                                  c.pong_timeout.ms >= c.ping_interval.ms)) {
    return fail(
        "config keys ping_interval, pong_timeout: ping_interval at least 1s, "
        "pong_timeout above 0 and below ping_interval");
  }
  return true;
}

namespace {

void AppendValue(std::string& out, const Target& target) {
  if (auto* u = std::get_if<uint64_t*>(&target)) {
    out += std::to_string(**u);
  } else if (auto* b = std::get_if<bool*>(&target)) {
    out += **b ? "true" : "false";
  } else if (auto* s = std::get_if<std::string*>(&target)) {
    AppendJsonString(out, **s);
  } else if (auto* d = std::get_if<Duration*>(&target)) {
    AppendJsonString(out, FormatDuration((*d)->ms));
  } else if (auto* list = std::get_if<std::vector<std::string>*>(&target)) {
    out += '[';
    for (size_t i = 0; i < (*list)->size(); ++i) {
      if (i > 0) out += ", ";
      AppendJsonString(out, (**list)[i]);
    }
    out += ']';
  } else if (auto* p = std::get_if<Priority*>(&target)) {
    AppendJsonString(out, Names(*p)[static_cast<size_t>(**p)]);
  } else if (auto* v = std::get_if<Delivery*>(&target)) {
    AppendJsonString(out, Names(*v)[static_cast<size_t>(**v)]);
  }
}

}  // namespace

std::string ToJson(const Config& config) {
  Config copy = config;
  std::vector<Field> fields = AllFields(copy);
  // Emit nested objects by walking the sorted dotted keys and opening/closing sections.
  std::string out = "{";
  std::vector<std::string> open;  // current section path
  bool first = true;
  for (Field& field : fields) {
    std::vector<std::string> parts;
    std::string_view key = field.key;
    while (true) {
      size_t dot = key.find('.');
      parts.emplace_back(key.substr(0, dot));
      if (dot == std::string_view::npos) break;
      key.remove_prefix(dot + 1);
    }
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    while (open.size() > common) {
      out += "\n" + std::string(2 * open.size(), ' ') + "}";
      open.pop_back();
      first = false;
    }
    for (size_t i = common; i + 1 < parts.size(); ++i) {
      out += first ? "\n" : ",\n";
      out += std::string(2 * (open.size() + 1), ' ');
      AppendJsonString(out, parts[i]);
      out += ": {";
      open.push_back(parts[i]);
      first = true;
    }
    out += first ? "\n" : ",\n";
    first = false;
    out += std::string(2 * (open.size() + 1), ' ');
    AppendJsonString(out, parts.back());
    out += ": ";
    AppendValue(out, field.target);
  }
  while (!open.empty()) {
    out += "\n" + std::string(2 * open.size(), ' ') + "}";
    open.pop_back();
  }
  out += ",\n  \"namespaces\": [";
  for (size_t i = 0; i < copy.namespaces.size(); ++i) {
    Namespace& ns = copy.namespaces[i];
    std::vector<Field> ns_fields{{"name", &ns.name}};
    AddChannelFields(ns_fields, ns.options);
    out += i == 0 ? "\n    {" : ",\n    {";
    for (size_t j = 0; j < ns_fields.size(); ++j) {
      Field& f = ns_fields[j];
      out += j == 0 ? "" : ", ";
      AppendJsonString(out, f.key);
      out += ": ";
      AppendValue(out, f.target);
    }
    out += "}";
  }
  out += copy.namespaces.empty() ? "]" : "\n  ]";
  out += ",\n  \"proxies\": [";
  for (size_t i = 0; i < copy.proxies.size(); ++i) {
    std::vector<Field> p_fields = NamedProxyFields(copy.proxies[i]);
    out += i == 0 ? "\n    {" : ",\n    {";
    for (size_t j = 0; j < p_fields.size(); ++j) {
      out += j == 0 ? "" : ", ";
      AppendJsonString(out, p_fields[j].key);
      out += ": ";
      AppendValue(out, p_fields[j].target);
    }
    out += ", \"static_http_headers\": {";
    const auto& lines = copy.proxies[i].static_http_headers;
    for (size_t j = 0; j < lines.size(); ++j) {
      const size_t colon = lines[j].find(':');
      out += j == 0 ? "" : ", ";
      AppendJsonString(out, std::string_view(lines[j]).substr(0, colon));
      out += ": ";
      AppendJsonString(out,
                       std::string_view(lines[j]).substr(std::min(lines[j].size(), colon + 2)));
    }
    out += "}}";
  }
  out += copy.proxies.empty() ? "]" : "\n  ]";
  out += ",\n  \"rpc_namespaces\": [";
  for (size_t i = 0; i < copy.rpc_namespaces.size(); ++i) {
    out += i == 0 ? "\n    {\"name\": " : ",\n    {\"name\": ";
    AppendJsonString(out, copy.rpc_namespaces[i].name);
    out += ", \"rpc_proxy_name\": ";
    AppendJsonString(out, copy.rpc_namespaces[i].rpc_proxy_name);
    out += "}";
  }
  out += copy.rpc_namespaces.empty() ? "]" : "\n  ]";
  out += ",\n  \"consumers\": [";
  for (size_t i = 0; i < copy.consumers.size(); ++i) {
    std::vector<Field> c_fields = ConsumerFields(copy.consumers[i]);
    out += i == 0 ? "\n    {" : ",\n    {";
    bool nested = false;
    for (size_t j = 0; j < c_fields.size(); ++j) {
      std::string_view key = c_fields[j].key;
      if (key.starts_with("nats_jetstream.")) {
        out += nested ? ", " : ", \"nats_jetstream\": {";
        nested = true;
        key.remove_prefix(std::strlen("nats_jetstream."));
      } else {
        out += j == 0 ? "" : ", ";
      }
      AppendJsonString(out, key);
      out += ": ";
      AppendValue(out, c_fields[j].target);
    }
    out += nested ? "}}" : "}";
  }
  out += copy.consumers.empty() ? "]" : "\n  ]";
  out += ",\n  \"proxy_static_http_headers\": {";
  for (size_t i = 0; i < copy.proxy_static_http_headers.size(); ++i) {
    const std::string& line = copy.proxy_static_http_headers[i];
    const size_t colon = line.find(':');
    out += i == 0 ? "" : ", ";
    AppendJsonString(out, std::string_view(line).substr(0, colon));
    out += ": ";
    AppendJsonString(out, std::string_view(line).substr(std::min(line.size(), colon + 2)));
  }
  out += "}\n}\n";
  return out;
}

}  // namespace hermod::config
