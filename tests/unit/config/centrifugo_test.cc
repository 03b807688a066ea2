// A Centrifugo v5 or v6 config starts hermod: mapped keys land in hermod's, unsupported ones
// are reported one line each, and hermod's own typos are still errors. The fixtures in
// tests/fixtures/centrifugo are what `centrifugo genconfig` prints (v5.4 and v6) and every
// v5 key at Centrifugo's default.
#include "config/centrifugo.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace hermod::config {
namespace {

const std::string kFixtures = std::string(HERMOD_SOURCE_DIR) + "/tests/fixtures/centrifugo/";

struct Loaded {
  bool ok;
  Config config;
  std::string error;
  std::vector<std::string> warnings;
};

Loaded LoadFile(const std::string& name) {
  Loaded l;
  l.ok = ApplyFile(kFixtures + name, l.config, &l.error, &l.warnings);
  return l;
}

Loaded LoadJson(const std::string& json) {
  Loaded l;
  l.ok = ApplyJson(json, l.config, &l.error, &l.warnings);
  return l;
}

// The key each warning names (the text before ':' or " = ").
std::set<std::string> WarnedKeys(const std::vector<std::string>& warnings) {
  std::set<std::string> keys;
  for (const std::string& w : warnings) keys.insert(w.substr(0, w.find_first_of(": =")));
  return keys;
}

TEST(Centrifugo, V5GenconfigOutputLoadsWithOneWarningForAdminSecret) {
  Loaded l = LoadFile("v5_genconfig.json");
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_EQ(l.config.token_hmac_secret_key, "0d1c5e3f-2d6a-4b3e-9a0f-7c1b2e3d4f50");
  EXPECT_EQ(l.config.admin_password, "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f");
  EXPECT_EQ(l.config.api_key, "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a");
  EXPECT_TRUE(l.config.websocket.allowed_origins.empty());
  ASSERT_EQ(l.warnings.size(), 1u);
  EXPECT_EQ(l.warnings[0], "admin_secret: Centrifugo key not supported by hermod yet");
  std::string error;
  EXPECT_TRUE(Validate(l.config, &error)) << error;
}

// Every v5 key, each at Centrifugo's default: hermod runs with it, and reports only the
// defaults it cannot honour (Centrifugo's /metrics and /health are off by default;
// hermod's are always on).
TEST(Centrifugo, V5FixtureHoldsEveryV5KeyAndLoadsWithItsDefaults) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.load(kFixtures + "v5_all_keys.json");
  std::set<std::string> in_fixture;
  for (auto [key, value] : simdjson::dom::object(root)) {
    in_fixture.insert(std::string(key));
    simdjson::dom::object inner;
    if (value.get_object().get(inner) == simdjson::SUCCESS) {
      for (auto [k, v] : inner) in_fixture.insert(std::string(key) + "." + std::string(k));
    }
  }
  for (const centrifugo::Default& d : centrifugo::V5Keys()) {
    EXPECT_TRUE(in_fixture.count(std::string(d.key))) << d.key;
  }
  Loaded l = LoadFile("v5_all_keys.json");
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_EQ(WarnedKeys(l.warnings), (std::set<std::string>{"health", "prometheus"}));
  EXPECT_EQ(l.config.bind, "0.0.0.0");   // address ""
  EXPECT_EQ(l.config.port, 8000u);       // "8000"
  EXPECT_EQ(l.config.broker, "memory");  // broker ""
  EXPECT_EQ(l.config.shutdown_timeout_ms, 30000u);
  EXPECT_EQ(l.config.websocket.max_message_bytes, 65536u);
  EXPECT_EQ(l.config.websocket.max_write_buffer_bytes, 1048576u);  // client_queue_max_size
  EXPECT_FALSE(l.config.websocket.compression.enabled);
  EXPECT_EQ(l.config.history_meta_ttl.ms, 720ull * 3600 * 1000);  // global_history_meta_ttl
  EXPECT_EQ(l.config.nats.prefix, "centrifugo");
  std::string error;
  EXPECT_TRUE(Validate(l.config, &error)) << error;
}

// A JSON value other than Centrifugo's default, of the same type.
std::string Changed(std::string_view key, std::string_view json) {
  if (json == "false") return "true";
  if (json == "true") return "false";
  if (key == "namespaces") return R"([{"name": "x"}])";
  // Arrays of objects hermod reads.
  if (key == "proxies") return R"([{"name": "x", "endpoint": "http://x"}])";
  if (key == "rpc_namespaces") return R"([{"name": "x", "rpc_proxy_name": "x"}])";
  if (key == "consumers") return R"([{"name": "x", "type": "kafka"}])";
  if (json == "[]") return R"(["x"])";
  if (key == "proxy_static_http_headers") return R"({"X-App": "x"})";
  if (json == "{}") return R"({"enabled": true})";
  if (json.front() == '"') {
    const std::string text(json.substr(1, json.size() - 2));
    // A number ("10") or a duration ("10s"): digits, then nothing or a unit.
    const size_t digits = text.find_first_not_of("0123456789");
    if (!text.empty() && digits == std::string::npos) return "\"" + text + "1\"";
    if (digits > 0 && digits != std::string::npos &&
        std::set<std::string>{"ms", "s", "m", "h"}.count(text.substr(digits)) != 0) {
      return R"("7s")";
    }
    if (key == "log_level") return R"("debug")";
    return "\"x" + text + "\"";
  }
  return std::to_string(std::stoull(std::string(json)) + 1);
}

// {"a": v} or, for "a.b", {"a": {"b": v}}.
std::string Nested(std::string_view key, const std::string& value) {
  const size_t dot = key.find('.');
  if (dot == std::string_view::npos) return "{\"" + std::string(key) + "\": " + value + "}";
  return "{\"" + std::string(key.substr(0, dot)) + "\": " + Nested(key.substr(dot + 1), value) +
         "}";
}

// Each v5 key, set to something other than its default, is either applied (hermod's config
// changes: its own key, or mapped onto one) or reported, once, by name. None stops hermod.
TEST(Centrifugo, EveryV5KeyIsAppliedOrReportedOnce) {
  std::set<std::string_view> same;  // hermod behaves as one of their values: nothing to change
  for (const centrifugo::Key& k : centrifugo::V5Table()) {
    if (k.kind == centrifugo::Kind::kSame) same.insert(k.path);
  }
  for (const centrifugo::Default& d : centrifugo::V5Keys()) {
    SCOPED_TRACE(std::string(d.key));
    Loaded at_default = LoadJson(Nested(d.key, std::string(d.json)));
    ASSERT_TRUE(at_default.ok) << at_default.error;
    Loaded changed = LoadJson(Nested(d.key, Changed(d.key, d.json)));
    ASSERT_TRUE(changed.ok) << changed.error;
    if (changed.warnings.empty()) {
      if (!same.count(d.key)) {
        EXPECT_TRUE(ToJson(changed.config) != ToJson(at_default.config)) << "ignored silently";
      }
    } else {
      EXPECT_EQ(changed.warnings.size(), 1u);
      // proxy_grpc_tls is an object too: its leaf is named.
      EXPECT_TRUE(changed.warnings[0].starts_with(std::string(d.key) + ":") ||
                  changed.warnings[0].starts_with(std::string(d.key) + " =") ||
                  changed.warnings[0].starts_with(std::string(d.key) + "."))
          << changed.warnings[0];
    }
  }
}

TEST(Centrifugo, V5ValuesAreReadAsCentrifugoReadsThem) {
  Loaded l = LoadJson(R"({"port": "8123", "address": "127.0.0.1", "log_level": "none",
      "allowed_origins": ["https://a.example"], "engine": "memory", "prometheus": true,
      "health": true, "admin_insecure": false, "shutdown_timeout": "2s", "tls": false,
      "websocket_compression": true, "websocket_message_size_limit": 1000})");
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_TRUE(l.warnings.empty()) << l.warnings[0];
  EXPECT_EQ(l.config.port, 8123u);
  EXPECT_EQ(l.config.bind, "127.0.0.1");
  EXPECT_EQ(l.config.log_level, "off");
  EXPECT_EQ(l.config.websocket.allowed_origins, std::vector<std::string>{"https://a.example"});
  EXPECT_EQ(l.config.shutdown_timeout_ms, 2000u);
  EXPECT_TRUE(l.config.websocket.compression.enabled);
  EXPECT_EQ(l.config.websocket.max_message_bytes, 1000u);

  Loaded redis = LoadJson(R"({"engine": "redis", "proxy_subscribe_stream_endpoint": "http://x",
      "admin_insecure": true})");
  ASSERT_TRUE(redis.ok) << redis.error;
  EXPECT_EQ(WarnedKeys(redis.warnings),
            (std::set<std::string>{"engine", "proxy_subscribe_stream_endpoint", "admin_insecure"}));
  EXPECT_EQ(redis.warnings[0],
            R"(engine = "redis": not supported by hermod, which behaves as "memory")");
}

TEST(Centrifugo, V5NamespaceOptionsHermodLacksAreReported) {
  Loaded l = LoadJson(R"({"global_history_meta_ttl": "24h", "history_meta_ttl": "1h",
      "global_presence_ttl": "30s",
      "namespaces": [{"name": "chat", "presence": true, "proxy_subscribe_stream": true,
                      "allow_positioning": false, "channel_regex": ""}]})");
  ASSERT_TRUE(l.ok) << l.error;
  ASSERT_EQ(l.config.namespaces.size(), 1u);
  EXPECT_TRUE(l.config.namespaces[0].options.presence);
  // v5's top-level history_meta_ttl is a channel option beside global_history_meta_ttl.
  EXPECT_EQ(l.config.history_meta_ttl.ms, 24ull * 3600 * 1000);
  EXPECT_EQ(l.config.presence_ttl.ms, 30000u);  // presence_engine nats's TTL
  EXPECT_EQ(WarnedKeys(l.warnings),
            (std::set<std::string>{"history_meta_ttl", "namespaces[0].proxy_subscribe_stream"}));
  Loaded typo = LoadJson(R"({"namespaces": [{"name": "chat", "presense": true}]})");
  EXPECT_FALSE(typo.ok);
  EXPECT_EQ(typo.error, "unknown config key: namespaces[0].presense");
}

TEST(Centrifugo, V6ProxiesMapOntoTheFlatProxyKeys) {
  Loaded l = LoadJson(R"({
      "client": {"proxy": {
          "connect": {"enabled": true, "endpoint": "http://b/connect", "timeout": "2s",
                      "http_headers": ["Cookie"], "include_connection_meta": true},
          "refresh": {"enabled": true, "endpoint": "http://b/refresh"}}},
      "channel": {"proxy": {"subscribe": {"endpoint": "http://b/sub"},
                            "publish": {"endpoint": "http://b/pub"},
                            "sub_refresh": {"endpoint": "http://b/subrefresh", "timeout": "3s"}},
                  "namespaces": [{"name": "chat", "subscribe_proxy_enabled": true,
                                  "publish_proxy_enabled": true,
                                  "sub_refresh_proxy_enabled": true}]},
      "rpc": {"proxy": {"endpoint": "http://b/rpc"},
              "without_namespace": {"proxy_enabled": true}}})");
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_TRUE(l.warnings.empty()) << l.warnings[0];
  const Config& c = l.config;
  EXPECT_EQ(c.proxy_connect_endpoint, "http://b/connect");
  EXPECT_EQ(c.proxy_connect_timeout.ms, 2000u);
  EXPECT_EQ(c.proxy_http_headers, std::vector<std::string>{"Cookie"});
  EXPECT_TRUE(c.proxy_include_connection_meta);
  EXPECT_EQ(c.proxy_refresh_endpoint, "http://b/refresh");
  EXPECT_EQ(c.proxy_subscribe_endpoint, "http://b/sub");
  EXPECT_EQ(c.proxy_publish_endpoint, "http://b/pub");
  EXPECT_EQ(c.proxy_sub_refresh_endpoint, "http://b/subrefresh");
  EXPECT_EQ(c.proxy_sub_refresh_timeout.ms, 3000u);
  EXPECT_EQ(c.proxy_rpc_endpoint, "http://b/rpc");
  ASSERT_EQ(c.namespaces.size(), 1u);
  EXPECT_TRUE(c.namespaces[0].options.proxy_subscribe);
  EXPECT_TRUE(c.namespaces[0].options.proxy_publish);
  EXPECT_TRUE(c.namespaces[0].options.proxy_sub_refresh);
  std::string error;
  EXPECT_TRUE(Validate(c, &error)) << error;
}

TEST(Centrifugo, V6GenconfigOutputLoadsWithOneWarningForAdminSecret) {
  Loaded l = LoadFile("v6_genconfig.json");
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_EQ(l.config.token_hmac_secret_key, "3b9c1d2e-5f60-4a71-8b92-c3d4e5f60718");
  EXPECT_EQ(l.config.api_key, "c0ffee00-1234-4abc-9def-0123456789ab");
  EXPECT_FALSE(l.config.admin);
  EXPECT_EQ(l.config.admin_password, "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d");
  ASSERT_EQ(l.warnings.size(), 1u);
  EXPECT_EQ(l.warnings[0], "admin.secret: Centrifugo key not supported by hermod yet");
}

TEST(Centrifugo, V6NestedKeysAreMapped) {
  Loaded l = LoadFile("v6.json");
  ASSERT_TRUE(l.ok) << l.error;
  const Config& c = l.config;
  EXPECT_EQ(c.bind, "0.0.0.0");
  EXPECT_EQ(c.port, 8000u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.token_hmac_secret_key, "v6-secret");
  EXPECT_EQ(c.websocket.allowed_origins, std::vector<std::string>{"http://localhost:3000"});
  EXPECT_EQ(c.client_channel_limit, 64u);
  EXPECT_EQ(c.websocket.max_write_buffer_bytes, 2097152u);
  EXPECT_EQ(c.ping_interval.ms, 25000u);
  EXPECT_EQ(c.pong_timeout.ms, 8000u);
  EXPECT_TRUE(c.channel.presence);
  EXPECT_TRUE(c.channel.allow_subscribe_for_client);
  EXPECT_TRUE(c.channel.allow_publish_for_client);
  ASSERT_EQ(c.namespaces.size(), 1u);
  EXPECT_EQ(c.namespaces[0].name, "chat");
  EXPECT_EQ(c.namespaces[0].options.history_size, 100u);
  EXPECT_EQ(c.namespaces[0].options.history_ttl.ms, 300000u);
  EXPECT_TRUE(c.namespaces[0].options.force_recovery);
  EXPECT_EQ(c.api_key, "v6-api-key");
  EXPECT_TRUE(c.admin);
  EXPECT_EQ(c.admin_password, "v6-admin-password");
  EXPECT_EQ(c.websocket.max_message_bytes, 65536u);
  EXPECT_TRUE(c.websocket.compression.enabled);
  EXPECT_EQ(c.shutdown_timeout_ms, 30000u);
  EXPECT_EQ(
      WarnedKeys(l.warnings),
      (std::set<std::string>{"client.concurrency", "channel.without_namespace.allow_positioning",
                             "rpc.namespaces", "admin.secret", "node.name"}));
  // The proxies are mapped (V6ProxiesMapOntoTheFlatProxyKeys).
  EXPECT_EQ(c.proxy_connect_endpoint, "http://localhost:3000/centrifugo/connect");
  EXPECT_TRUE(c.namespaces[0].options.proxy_subscribe);
  std::string error;
  EXPECT_TRUE(Validate(c, &error)) << error;
}

// nats_tls (v5) and broker.nats.tls (v6): the client side maps onto nats.tls.
TEST(Centrifugo, NatsTlsMapsOntoHermodsNatsTls) {
  Loaded v5 = LoadJson(R"({"broker": "nats", "nats_url": "tls://10.0.0.1:4222",
      "nats_tls": {"enabled": true, "server_ca_pem_file": "/etc/ca.pem",
      "cert_pem_file": "/etc/c.pem", "key_pem_file": "/etc/c.key", "server_name": "nats.internal",
      "insecure_skip_verify": false}})");
  ASSERT_TRUE(v5.ok) << v5.error;
  EXPECT_TRUE(v5.warnings.empty()) << v5.warnings[0];
  const NatsTls& t = v5.config.nats.tls;
  EXPECT_TRUE(t.enabled);
  EXPECT_EQ(t.ca_file, "/etc/ca.pem");
  EXPECT_EQ(t.cert_file, "/etc/c.pem");
  EXPECT_EQ(t.key_file, "/etc/c.key");
  EXPECT_EQ(t.server_name, "nats.internal");
  EXPECT_FALSE(t.insecure_skip_verify);
  Loaded v6 = LoadJson(R"({"broker": {"enabled": true, "type": "nats", "nats": {
      "url": "nats://10.0.0.1:4222", "tls": {"enabled": true, "insecure_skip_verify": true,
      "server_ca_pem_file": "/etc/ca.pem"}}}})");
  ASSERT_TRUE(v6.ok) << v6.error;
  EXPECT_TRUE(v6.warnings.empty()) << v6.warnings[0];
  EXPECT_TRUE(v6.config.nats.tls.enabled);
  EXPECT_TRUE(v6.config.nats.tls.insecure_skip_verify);
  EXPECT_EQ(v6.config.nats.tls.ca_file, "/etc/ca.pem");
  // An inline PEM is not read: reported, not silently dropped.
  Loaded inline_pem = LoadJson(R"({"nats_tls": {"server_ca_pem": "-----BEGIN..."}})");
  ASSERT_TRUE(inline_pem.ok) << inline_pem.error;
  EXPECT_EQ(WarnedKeys(inline_pem.warnings), (std::set<std::string>{"nats_tls.server_ca_pem"}));
}

TEST(Centrifugo, V6BrokerAndEngineMapOntoHermodsBroker) {
  Loaded l = LoadJson(R"({"engine": {"type": "memory"}, "broker": {"enabled": true,
      "type": "nats", "nats": {"url": "nats://10.0.0.1:4222", "prefix": "app"}},
      "prometheus": {"enabled": true}, "health": {"enabled": true}})");
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_TRUE(l.warnings.empty()) << l.warnings[0];
  EXPECT_EQ(l.config.broker, "nats");
  EXPECT_EQ(l.config.nats.url, "nats://10.0.0.1:4222");
  EXPECT_EQ(l.config.nats.prefix, "app");
  Loaded pings = LoadJson(R"({"client": {"ping_interval": "-1", "pong_timeout": -1}})");
  ASSERT_TRUE(pings.ok) << pings.error;
  EXPECT_EQ(pings.config.ping_interval.ms, 0u);  // v6's -1: off
  EXPECT_EQ(pings.config.pong_timeout.ms, 0u);
  Loaded off = LoadJson(R"({"prometheus": {"enabled": false}, "engine": {"type": "redis"}})");
  ASSERT_TRUE(off.ok) << off.error;
  EXPECT_EQ(WarnedKeys(off.warnings), (std::set<std::string>{"prometheus.enabled", "engine.type"}));
}

// hermod's own sections stay strict: a key under them that is neither hermod's nor one of
// Centrifugo v6's is a typo.
TEST(Centrifugo, TyposAreStillErrors) {
  for (const char* json :
       {R"({"websocket": {"max_mesage_bytes": 1}})", R"({"health": {"enabeld": true}})",
        R"({"prot": 8000})", R"({"admin_secrett": "x"})"}) {
    Loaded l = LoadJson(json);
    EXPECT_FALSE(l.ok) << json;
    EXPECT_TRUE(l.error.starts_with("unknown config key: ")) << l.error;
  }
  Loaded port = LoadJson(R"({"port": "eighty"})");
  EXPECT_FALSE(port.ok);
  EXPECT_EQ(port.error,
            "config key port (hermod's port): expected a non-negative integer, got 'eighty'");
}

// The tables name only hermod keys and Centrifugo keys.
TEST(Centrifugo, EveryMappedKeyNamesAHermodKey) {
  for (auto table : {centrifugo::V5Table(), centrifugo::V6Table()}) {
    for (const centrifugo::Key& k : table) {
      if (k.kind != centrifugo::Kind::kMapped && k.kind != centrifugo::Kind::kMappedMs) continue;
      Loaded l = LoadJson(Nested(k.path, "\"1s\""));
      EXPECT_EQ(l.error.find("no hermod key"), std::string::npos) << k.path << ": " << l.error;
    }
  }
  for (const centrifugo::Key& k : centrifugo::V5Table()) {
    EXPECT_TRUE(centrifugo::FindV5(k.path).has_value()) << k.path;
    bool listed = false;
    for (const centrifugo::Default& d : centrifugo::V5Keys()) listed = listed || d.key == k.path;
    EXPECT_TRUE(listed) << k.path << " is not a Centrifugo v5 key";
  }
}

// docs/centrifugo.md lists every key the tables know.
TEST(Centrifugo, TheDocsListEveryKey) {
  std::ifstream in(std::string(HERMOD_SOURCE_DIR) + "/docs/centrifugo.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string docs = text.str();
  ASSERT_FALSE(docs.empty());
  auto listed = [&](std::string_view key) {
    return docs.find("`" + std::string(key) + "`") != std::string::npos;
  };
  for (const centrifugo::Default& d : centrifugo::V5Keys()) EXPECT_TRUE(listed(d.key)) << d.key;
  for (std::string_view key : centrifugo::NamespaceKeys()) EXPECT_TRUE(listed(key)) << key;
  for (auto table : {centrifugo::V5Table(), centrifugo::V6Table()}) {
    for (const centrifugo::Key& k : table) EXPECT_TRUE(listed(k.path)) << k.path;
  }
}

TEST(Config, DeliveryAndPriorityAreParsedToEnumsAtLoad) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"delivery": "latest", "default_priority": "high",
      "namespaces": [{"name": "n", "default_priority": "low"}]})",
                        c, &error))
      << error;
  EXPECT_EQ(c.channel.delivery, Delivery::kLatest);
  EXPECT_EQ(c.channel.default_priority, Priority::kHigh);
  EXPECT_EQ(c.namespaces[0].options.default_priority, Priority::kLow);
  EXPECT_EQ(c.namespaces[0].options.delivery, Delivery::kAll);
  Config round;
  ASSERT_TRUE(ApplyJson(ToJson(c), round, &error)) << error;
  EXPECT_EQ(round.channel.delivery, Delivery::kLatest);
  EXPECT_EQ(round.namespaces[0].options.default_priority, Priority::kLow);

  Config bad;
  EXPECT_FALSE(ApplyJson(R"({"delivery": "newest"})", bad, &error));
  EXPECT_EQ(error, "config key delivery: expected all or latest");
  EXPECT_FALSE(
      ApplyJson(R"({"namespaces": [{"name": "n", "default_priority": "urgent"}]})", bad, &error));
  EXPECT_EQ(error,
            "config key namespaces[0].default_priority: expected one of critical, high, normal, "
            "low");
  std::string variable = "HERMOD_DEFAULT_PRIORITY=critical";
  char* env[] = {variable.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(env, c, &error)) << error;
  EXPECT_EQ(c.channel.default_priority, Priority::kCritical);
  std::string wrong = "HERMOD_DELIVERY=some";
  char* env2[] = {wrong.data(), nullptr};
  EXPECT_FALSE(ApplyEnvironment(env2, c, &error));
  EXPECT_EQ(error, "HERMOD_DELIVERY: expected all or latest, got 'some'");
}

// String keys are bounded by the field table too: Validate refuses what a flag or variable
// set after the file, with the key and the rule.
TEST(Config, StringKeysAreCheckedFromTheFieldTable) {
  auto refused = [](auto change) {
    Config c;
    change(c);
    std::string error;
    EXPECT_FALSE(Validate(c, &error));
    return error;
  };
  EXPECT_EQ(refused([](Config& c) { c.log_level = "loud"; }),
            "config key log_level: one of trace, debug, info, warn, error, off");
  EXPECT_EQ(refused([](Config& c) { c.broker = "redis"; }), "config key broker: memory or nats");
  EXPECT_EQ(refused([](Config& c) { c.nats.url = "localhost:4222"; }),
            "config key nats.url: nats://host:port (several: comma-separated)");
  EXPECT_EQ(refused([](Config& c) { c.nats.prefix = "a.*"; }),
            "config key nats.prefix: subject tokens without spaces, '*' or '>'");
  EXPECT_EQ(refused([](Config& c) {
              c.namespaces.push_back({"a:b", {}});
            }),
            "config key namespaces[0].name: must be non-empty, without ':'");
}

}  // namespace
}  // namespace hermod::config
