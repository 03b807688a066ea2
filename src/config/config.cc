#include "config/config.h"

#include <simdjson.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string_view>
#include <variant>

#include "json/syntax_error.h"

namespace hermod::config {

namespace {

using Target = std::variant<uint64_t*, bool*, std::string*, std::vector<std::string>*, Duration*>;

struct Field {
  const char* key;  // dotted JSON path
  Target target;
};

// The channel option keys, shared by the top level and each namespace.
void AddChannelFields(std::vector<Field>& fields, ChannelOptions& o) {
  fields.insert(fields.end(),
                {
                    {"presence", &o.presence},
                    {"join_leave", &o.join_leave},
                    {"force_push_join_leave", &o.force_push_join_leave},
                    {"history_size", &o.history_size},
                    {"history_ttl", &o.history_ttl},
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
                    {"push_coalesce_max_bytes", &o.push_coalesce_max_bytes},
                    {"push_coalesce_delay", &o.push_coalesce_delay},
                    {"default_priority", &o.default_priority},
                    {"delivery", &o.delivery},
                    {"join_leave_batch_delay", &o.join_leave_batch_delay},
                    {"join_leave_batch_max", &o.join_leave_batch_max},
                    {"publish_rate_limit", &o.publish_rate_limit},
                    {"publish_rate_burst", &o.publish_rate_burst},
                });
}

// "300s", "500ms", "2m", "1h"; false on anything else.
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
  *ms = value * scale;
  return true;
}

std::string FormatDuration(uint64_t ms) {
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

std::vector<Field> Fields(Config& c) {
  auto& ws = c.websocket;
  auto& z = c.websocket.compression;
  return {
      {"bind", &c.bind},
      {"port", &c.port},
      {"workers", &c.workers},
      {"echo", &c.echo},
      {"log_level", &c.log_level},
      {"log_format", &c.log_format},
      {"backlog", &c.backlog},
      {"read_buffer_bytes", &c.read_buffer_bytes},
      {"shutdown_timeout_ms", &c.shutdown_timeout_ms},
      {"http.max_header_bytes", &c.http.max_header_bytes},
      {"http.max_headers", &c.http.max_headers},
      {"http.max_body_bytes", &c.http.max_body_bytes},
      {"http.keepalive_timeout_ms", &c.http.keepalive_timeout_ms},
      {"websocket.max_message_bytes", &ws.max_message_bytes},
      {"websocket.handshake_timeout_ms", &ws.handshake_timeout_ms},
      {"websocket.ping_interval_ms", &ws.ping_interval_ms},
      {"websocket.pong_timeout_ms", &ws.pong_timeout_ms},
      {"websocket.idle_timeout_ms", &ws.idle_timeout_ms},
      {"websocket.max_write_buffer_bytes", &ws.max_write_buffer_bytes},
      {"websocket.close_timeout_ms", &ws.close_timeout_ms},
      {"websocket.fragment_bytes", &ws.fragment_bytes},
      {"websocket.join_max_bytes", &ws.join_max_bytes},
      {"websocket.allowed_origins", &ws.allowed_origins},
      {"websocket.subprotocols", &ws.subprotocols},
      {"websocket.compression.enabled", &z.enabled},
      {"websocket.compression.server_no_context_takeover", &z.server_no_context_takeover},
      {"websocket.compression.client_no_context_takeover", &z.client_no_context_takeover},
      {"websocket.compression.server_max_window_bits", &z.server_max_window_bits},
      {"websocket.compression.client_max_window_bits", &z.client_max_window_bits},
      {"websocket.compression.level", &z.level},
      {"websocket.compression.min_size", &z.min_size},
      {"send_queue.drop_low_bytes", &c.send_queue.drop_low_bytes},
      {"send_queue.drop_normal_bytes", &c.send_queue.drop_normal_bytes},
      {"send_queue.urgent_deadline_ms", &c.send_queue.urgent_deadline_ms},
      {"send_queue.loop_budget_bytes", &c.send_queue.loop_budget_bytes},
      {"send_queue.inbox_budget_bytes", &c.send_queue.inbox_budget_bytes},
      {"idempotency_window", &c.idempotency_window},
      {"health.check_interval_ms", &c.health.check_interval_ms},
      {"health.loop_deadline_ms", &c.health.loop_deadline_ms},
      {"health.memory_budget_bytes", &c.health.memory_budget_bytes},
      {"health.max_connections", &c.health.max_connections},
      {"health.degraded_percent", &c.health.degraded_percent},
      {"health.unhealthy_percent", &c.health.unhealthy_percent},
      {"health.critical_percent", &c.health.critical_percent},
      {"health.history_size", &c.health.history_size},
      {"health.error_window_ms", &c.health.error_window_ms},
      {"health.max_protocol_error_closes_per_second",
       &c.health.max_protocol_error_closes_per_second},
      {"health.max_slow_consumer_closes_per_second", &c.health.max_slow_consumer_closes_per_second},
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
          {"client_channel_limit", &c.client_channel_limit},
          {"channel_max_length", &c.channel_max_length},
          {"channel_private_prefix", &c.channel_private_prefix},
          {"client_recovery_max_publication_limit", &c.client_recovery_max_publication_limit},
          {"ping_interval", &c.ping_interval},
          {"pong_timeout", &c.pong_timeout},
          {"client_stale_close_delay", &c.client_stale_close_delay},
          {"client_expired_close_delay", &c.client_expired_close_delay},
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
  fields.insert(fields.end(),
                {
                    {"client_connection_limit", &c.client_connection_limit},
                    {"client_user_connection_limit", &c.client_user_connection_limit},
                    {"client_connection_rate_limit", &c.client_connection_rate_limit},
                    {"admission.soft_connection_limit", &a.soft_connection_limit},
                    {"admission.ip_connection_limit", &a.ip_connection_limit},
                    {"admission.ip_connection_rate", &a.ip_connection_rate},
                    {"admission.ip_connection_burst", &a.ip_connection_burst},
                    {"admission.ip_table_size", &a.ip_table_size},
                    {"admission.retry_after", &a.retry_after},
                    {"admission.accept_rate_per_loop", &a.accept_rate_per_loop},
                    {"client_command_rate_limit.total.rate", &r.total.rate},
                    {"client_command_rate_limit.total.burst", &r.total.burst},
                    {"client_command_rate_limit.publish.rate", &r.publish.rate},
                    {"client_command_rate_limit.publish.burst", &r.publish.burst},
                    {"client_command_rate_limit.subscribe.rate", &r.subscribe.rate},
                    {"client_command_rate_limit.subscribe.burst", &r.subscribe.burst},
                    {"client_command_rate_limit.history.rate", &r.history.rate},
                    {"client_command_rate_limit.history.burst", &r.history.burst},
                    {"client_command_rate_limit.presence.rate", &r.presence.rate},
                    {"client_command_rate_limit.presence.burst", &r.presence.burst},
                    {"client_command_rate_limit.rpc.rate", &r.rpc.rate},
                    {"client_command_rate_limit.rpc.burst", &r.rpc.burst},
                    {"client_command_rate_limit.disconnect_after", &r.disconnect_after},
                    {"client_command_rate_limit.disconnect_window", &r.disconnect_window},
                });
  // Cluster mode (src/broker/).
  fields.insert(fields.end(),
                {
                    {"broker", &c.broker},
                    {"nats.url", &c.nats.url},
                    {"nats.prefix", &c.nats.prefix},
                    {"nats.dial_timeout", &c.nats.dial_timeout},
                    {"nats.reconnect_wait", &c.nats.reconnect_wait},
                    {"nats.reconnect_buffer_bytes", &c.nats.reconnect_buffer_bytes},
                    {"nats.send_queue_bytes", &c.nats.send_queue_bytes},
                    {"nats.receive_queue_bytes", &c.nats.receive_queue_bytes},
                    {"nats.unhealthy_after", &c.nats.unhealthy_after},
                    {"broker_breaker.failure_threshold", &c.broker_breaker.failure_threshold},
                    {"broker_breaker.window", &c.broker_breaker.window},
                    {"broker_breaker.open_timeout", &c.broker_breaker.open_timeout},
                    {"broker_breaker.half_open_trials", &c.broker_breaker.half_open_trials},
                });
  AddChannelFields(fields, c.channel);
  return fields;
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

bool SetFromJson(Field& field, simdjson::dom::element value, std::string* error) {
  auto wrong = [&](const char* expected) {
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
    **s = std::string(v);
  } else if (auto* d = std::get_if<Duration*>(&field.target)) {
    uint64_t seconds;
    std::string_view text;
    if (value.get_uint64().get(seconds) == simdjson::SUCCESS) {
      (*d)->ms = seconds * 1000;
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
  }
  return true;
}

bool WalkObject(std::vector<Field>& fields, simdjson::dom::object object, const std::string& prefix,
                std::string* error) {
  for (auto [key, value] : object) {
    if (prefix.empty() && key == "namespaces") continue;  // ParseNamespaces
    std::string path = prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
    if (Field* field = FindField(fields, path)) {
      if (!SetFromJson(*field, value, error)) return false;
      continue;
    }
    simdjson::dom::object inner;
    if (IsSection(fields, path) && value.get_object().get(inner) == simdjson::SUCCESS) {
      if (!WalkObject(fields, inner, path, error)) return false;
      continue;
    }
    *error = "unknown config key: " + path;
    return false;
  }
  return true;
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

// `namespaces`: a list of objects, each a `name` and channel option keys.
bool ParseNamespaces(simdjson::dom::element value, Config& config, std::string* error) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    *error = "config key namespaces: expected an array of objects";
    return false;
  }
  config.namespaces.clear();
  for (simdjson::dom::element item : array) {
    simdjson::dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) {
      *error = "config key namespaces: expected an array of objects";
      return false;
    }
    Namespace ns;
    std::vector<Field> fields{{"name", &ns.name}};
    AddChannelFields(fields, ns.options);
    if (!WalkObject(fields, object, "", error)) {
      *error = "config key namespaces[" + std::to_string(config.namespaces.size()) + "]: " + *error;
      return false;
    }
    config.namespaces.push_back(std::move(ns));
  }
  return true;
}

}  // namespace

bool ApplyJson(const std::string& json, Config& config, std::string* error) {
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
  std::vector<Field> fields = AllFields(config);
  if (!WalkObject(fields, object, "", error)) return false;
  simdjson::dom::element namespaces;
  if (object["namespaces"].get(namespaces) == simdjson::SUCCESS) {
    return ParseNamespaces(namespaces, config, error);
  }
  return true;
}

bool ApplyFile(const std::string& path, Config& config, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read config file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  if (!ApplyJson(text.str(), config, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

bool ApplyEnvironment(char** environment, Config& config, std::string* error) {
  std::vector<Field> fields = AllFields(config);
  for (char** e = environment; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry = *e;
    if (!entry.starts_with("HERMOD_")) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
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

bool Validate(const Config& c, std::string* error) {
  auto fail = [&](const std::string& message) {
    *error = message;
    return false;
  };
  if (c.port > 65535) return fail("config key port: must be 0..65535");
  if (c.workers > 1024) return fail("config key workers: must be 0..1024");
  if (c.read_buffer_bytes < 4096) return fail("config key read_buffer_bytes: at least 4096");
  if (c.http.max_header_bytes < 256 || c.http.max_header_bytes > (1u << 30)) {
    return fail("config key http.max_header_bytes: must be 256..2^30");
  }
  if (c.http.max_headers == 0) return fail("config key http.max_headers: must be at least 1");
  // Buffers are indexed with 32 bits; 1 GiB is far beyond any sane message anyway.
  constexpr uint64_t kMaxBuffer = 1ull << 30;
  if (c.websocket.max_message_bytes == 0 || c.websocket.max_message_bytes > kMaxBuffer) {
    return fail("config key websocket.max_message_bytes: must be 1..2^30");
  }
  if (c.websocket.max_write_buffer_bytes < 1024 ||
      c.websocket.max_write_buffer_bytes > kMaxBuffer) {
    return fail("config key websocket.max_write_buffer_bytes: must be 1024..2^30");
  }
  if (c.websocket.join_max_bytes > kMaxBuffer) {
    return fail("config key websocket.join_max_bytes: at most 2^30");
  }
  if (c.http.max_body_bytes > kMaxBuffer) {
    return fail("config key http.max_body_bytes: at most 2^30");
  }
  if (c.websocket.ping_interval_ms != 0 && c.websocket.pong_timeout_ms == 0) {
    return fail("config key websocket.pong_timeout_ms: must be set when pings are on");
  }
  const auto& z = c.websocket.compression;
  for (auto [key, bits] : {std::pair{"server_max_window_bits", z.server_max_window_bits},
                           std::pair{"client_max_window_bits", z.client_max_window_bits}}) {
    if (bits < 8 || bits > 15) {
      return fail(std::string("config key websocket.compression.") + key + ": must be 8..15");
    }
  }
  if (z.level > 9) return fail("config key websocket.compression.level: must be 0..9");
  const auto& sq = c.send_queue;
  // Watermarks above websocket.max_write_buffer_bytes act as that bound (a profile that
  // lowers the bound need not restate them).
  if (sq.drop_low_bytes > sq.drop_normal_bytes) {
    return fail(
        "config keys send_queue.drop_low_bytes, send_queue.drop_normal_bytes: must be "
        "drop_low_bytes <= drop_normal_bytes");
  }
  if (sq.urgent_deadline_ms == 0) return fail("config key send_queue.urgent_deadline_ms: >= 1");
  if (sq.loop_budget_bytes < 1024 || sq.inbox_budget_bytes < 1024) {
    return fail("config keys send_queue.loop_budget_bytes, inbox_budget_bytes: at least 1024");
  }
  if (c.idempotency_window.ms == 0) return fail("config key idempotency_window: at least 1ms");
  const auto& hc = c.health;
  if (hc.check_interval_ms == 0) return fail("config key health.check_interval_ms: at least 1");
  if (hc.loop_deadline_ms == 0) return fail("config key health.loop_deadline_ms: at least 1");
  if (hc.degraded_percent == 0 || hc.degraded_percent > hc.unhealthy_percent ||
      hc.unhealthy_percent > hc.critical_percent) {
    return fail(
        "config keys health.degraded_percent, health.unhealthy_percent, "
        "health.critical_percent: must be 1 <= degraded <= unhealthy <= critical");
  }
  if (hc.history_size == 0 || hc.history_size > 1024) {
    return fail("config key health.history_size: must be 1..1024");
  }
  if (hc.error_window_ms < 1000 || hc.error_window_ms > 3600000) {
    return fail("config key health.error_window_ms: must be 1000..3600000");
  }

  if (c.admin && c.admin_password.empty()) {
    return fail("config key admin_password: must be set when admin is true");
  }
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    return fail("config keys tls.cert_file and tls.key_file: set both or neither");
  }
  // Token buckets count milli-tokens in 32 bits (core/rate_limit.h).
  constexpr uint64_t kMaxRate = 1000000;
  const auto& r = c.client_command_rate_limit;
  for (auto [name, bucket] : {std::pair{"total", r.total}, std::pair{"publish", r.publish},
                              std::pair{"subscribe", r.subscribe}, std::pair{"history", r.history},
                              std::pair{"presence", r.presence}, std::pair{"rpc", r.rpc}}) {
    if (bucket.rate > kMaxRate || bucket.burst == 0 || bucket.burst > kMaxRate) {
      return fail(std::string("config key client_command_rate_limit.") + name +
                  ": rate 0..10^6, burst 1..10^6");
    }
  }
  if (r.disconnect_after > 0 && r.disconnect_window.ms == 0) {
    return fail("config key client_command_rate_limit.disconnect_window: must be set");
  }
  if (r.disconnect_window.ms > (1ull << 31)) {
    return fail("config key client_command_rate_limit.disconnect_window: at most 24 days");
  }
  const auto& a = c.admission;
  if (c.client_connection_rate_limit > kMaxRate || a.ip_connection_rate > kMaxRate ||
      a.ip_connection_burst == 0 || a.ip_connection_burst > kMaxRate) {
    return fail(
        "config keys client_connection_rate_limit, admission.ip_connection_rate, "
        "admission.ip_connection_burst: rate 0..10^6, burst 1..10^6");
  }
  if (a.soft_connection_limit != 0 && c.client_connection_limit != 0 &&
      a.soft_connection_limit >= c.client_connection_limit) {
    return fail(
        "config key admission.soft_connection_limit: must be below client_connection_limit");
  }
  if (a.ip_table_size == 0) return fail("config key admission.ip_table_size: at least 1");
  if (a.retry_after.ms < 1000) return fail("config key admission.retry_after: at least 1s");
  auto check_channel = [&](const ChannelOptions& o, const std::string& where) {
    if (o.history_size > 0 && o.history_ttl.ms == 0) {
      return fail("config key " + where + "history_ttl: must be set when history_size is");
    }
    if (o.push_coalesce_delay.ms > 1000) {
      return fail("config key " + where + "push_coalesce_delay: at most 1s");
    }
    if (o.join_leave_batch_delay.ms > 10000) {
      return fail("config key " + where + "join_leave_batch_delay: at most 10s");
    }
    if (o.join_leave_batch_max == 0 || o.join_leave_batch_max > 10000) {
      return fail("config key " + where + "join_leave_batch_max: 1..10000");
    }
    if (o.default_priority != "low" && o.default_priority != "normal" &&
        o.default_priority != "high" && o.default_priority != "critical") {
      return fail("config key " + where + "default_priority: low, normal, high or critical");
    }
    if (o.delivery != "all" && o.delivery != "latest") {
      return fail("config key " + where + "delivery: all or latest");
    }
    if (o.publish_rate_limit > kMaxRate || o.publish_rate_burst == 0 ||
        o.publish_rate_burst > kMaxRate) {
      return fail("config keys " + where + "publish_rate_limit, " + where +
                  "publish_rate_burst: rate 0..10^6, burst 1..10^6");
    }
    return true;
  };
  if (!check_channel(c.channel, "")) return false;
  for (size_t i = 0; i < c.namespaces.size(); ++i) {
    const std::string& name = c.namespaces[i].name;
    std::string where = "namespaces[" + std::to_string(i) + "].";
    if (name.empty() || name.find(':') != std::string::npos) {
      return fail("config key " + where + "name: must be non-empty, without ':'");
    }
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
  if (c.log_level != "trace" && c.log_level != "debug" && c.log_level != "info" &&
      c.log_level != "warn" && c.log_level != "error" && c.log_level != "off") {
    return fail("config key log_level: one of trace, debug, info, warn, error, off");
  }
  if (c.log_format != "text" && c.log_format != "json") {
    return fail("config key log_format: text or json");
  }
  if (c.broker != "memory" && c.broker != "nats") return fail("config key broker: memory or nats");
  const auto& n = c.nats;
  if (!n.url.starts_with("nats://") && !n.url.starts_with("tls://")) {
    return fail("config key nats.url: nats://host:port (several: comma-separated)");
  }
  // The prefix is the subject's first tokens: NATS subjects have no spaces or wildcards.
  if (n.prefix.empty() || n.prefix.front() == '.' || n.prefix.back() == '.' ||
      n.prefix.find_first_of(" \t\r\n*>") != std::string::npos ||
      n.prefix.find("..") != std::string::npos) {
    return fail("config key nats.prefix: subject tokens without spaces, '*' or '>'");
  }
  if (n.dial_timeout.ms == 0 || n.dial_timeout.ms > 60000) {
    return fail("config key nats.dial_timeout: 1ms..60s");
  }
  if (n.reconnect_wait.ms == 0 || n.reconnect_wait.ms > 60000) {
    return fail("config key nats.reconnect_wait: 1ms..60s");
  }
  // libnats takes these as int.
  for (auto [key, bytes] : {std::pair{"reconnect_buffer_bytes", n.reconnect_buffer_bytes},
                            std::pair{"send_queue_bytes", n.send_queue_bytes},
                            std::pair{"receive_queue_bytes", n.receive_queue_bytes}}) {
    if (bytes < 1024 || bytes > kMaxBuffer) {
      return fail(std::string("config key nats.") + key + ": must be 1024..2^30");
    }
  }
  const auto& b = c.broker_breaker;
  if (b.failure_threshold == 0 || b.failure_threshold > 1000000) {
    return fail("config key broker_breaker.failure_threshold: must be 1..10^6");
  }
  if (b.half_open_trials == 0 || b.half_open_trials > 1000000) {
    return fail("config key broker_breaker.half_open_trials: must be 1..10^6");
  }
  if (b.window.ms == 0) return fail("config key broker_breaker.window: at least 1ms");
  if (b.open_timeout.ms == 0) return fail("config key broker_breaker.open_timeout: at least 1ms");
  return true;
}

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
    if (auto* u = std::get_if<uint64_t*>(&field.target)) {
      out += std::to_string(**u);
    } else if (auto* b = std::get_if<bool*>(&field.target)) {
      out += **b ? "true" : "false";
    } else if (auto* s = std::get_if<std::string*>(&field.target)) {
      AppendJsonString(out, **s);
    } else if (auto* d = std::get_if<Duration*>(&field.target)) {
      AppendJsonString(out, FormatDuration((*d)->ms));
    } else if (auto* list = std::get_if<std::vector<std::string>*>(&field.target)) {
      out += '[';
      for (size_t i = 0; i < (*list)->size(); ++i) {
        if (i > 0) out += ", ";
        AppendJsonString(out, (**list)[i]);
      }
      out += ']';
    }
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
      if (auto* u = std::get_if<uint64_t*>(&f.target)) {
        out += std::to_string(**u);
      } else if (auto* b = std::get_if<bool*>(&f.target)) {
        out += **b ? "true" : "false";
      } else if (auto* s = std::get_if<std::string*>(&f.target)) {
        AppendJsonString(out, **s);
      } else if (auto* d = std::get_if<Duration*>(&f.target)) {
        AppendJsonString(out, FormatDuration((*d)->ms));
      }
    }
    out += "}";
  }
  out += copy.namespaces.empty() ? "]" : "\n  ]";
  out += "\n}\n";
  return out;
}

}  // namespace hermod::config
