#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace hermod::config {
namespace {

TEST(Config, DefaultsAreValid) {
  Config c;
  std::string error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.port, 8000u);
}

TEST(Config, EngineNatsPutsFanOutHistoryAndPresenceOnNats) {
  Config c;
  std::string error;
  ASSERT_TRUE(
      ApplyJson(R"({"engine": "nats", "nats": {"url": "nats://127.0.0.1:4222"}})", c, &error))
      << error;
  ResolveEngine(c);
  EXPECT_EQ(c.broker, "nats");
  EXPECT_EQ(c.history_engine, "nats");
  EXPECT_EQ(c.presence_engine, "nats");
  EXPECT_TRUE(Validate(c, &error)) << error;

  // A key set to another engine stays; memory and sqlite leave the other keys alone.
  Config d;
  ASSERT_TRUE(ApplyJson(R"({"engine": "nats", "presence_engine": "memory",
      "history_engine": "sqlite"})",
                        d, &error))
      << error;
  ResolveEngine(d);
  EXPECT_EQ(d.broker, "nats");
  EXPECT_EQ(d.history_engine, "sqlite");
  EXPECT_EQ(d.presence_engine, "nats");  // "memory" is the default: not told apart
  Config e;
  ASSERT_TRUE(ApplyJson(R"({"engine": "sqlite"})", e, &error)) << error;
  ResolveEngine(e);
  EXPECT_EQ(e.broker, "memory");
  EXPECT_EQ(e.history_engine, "memory");
  EXPECT_EQ(e.presence_engine, "memory");
}

TEST(Config, JsonOverridesNestedKeys) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"port": 9000, "websocket": {"max_message_bytes": 42,
      "allowed_origins": ["https://a.example"], "compression": {"enabled": false}}})",
                        c, &error))
      << error;
  EXPECT_EQ(c.port, 9000u);
  EXPECT_EQ(c.websocket.max_message_bytes, 42u);
  EXPECT_EQ(c.websocket.allowed_origins, std::vector<std::string>{"https://a.example"});
  EXPECT_FALSE(c.websocket.compression.enabled);
}

TEST(Config, UnknownKeyIsNamedInTheError) {
  Config c;
  std::string error;
  EXPECT_FALSE(ApplyJson(R"({"websocket": {"max_mesage_bytes": 1}})", c, &error));
  EXPECT_NE(error.find("websocket.max_mesage_bytes"), std::string::npos) << error;
}

TEST(Config, WrongTypeIsNamedInTheError) {
  Config c;
  std::string error;
  EXPECT_FALSE(ApplyJson(R"({"port": "eighty"})", c, &error));
  EXPECT_NE(error.find("port"), std::string::npos) << error;
}

TEST(Config, EnvironmentOverridesFile) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"port": 9000})", c, &error));
  std::string port = "HERMOD_PORT=9100";
  std::string origins = "HERMOD_WEBSOCKET__ALLOWED_ORIGINS=https://a,https://b";
  std::string other = "PATH=/bin";
  char* env[] = {port.data(), origins.data(), other.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(env, c, &error)) << error;
  EXPECT_EQ(c.port, 9100u);
  EXPECT_EQ(c.websocket.allowed_origins.size(), 2u);
}

TEST(Config, UnknownEnvironmentVariableIsAnError) {
  Config c;
  std::string error;
  std::string bad = "HERMOD_PROT=1";
  char* env[] = {bad.data(), nullptr};
  EXPECT_FALSE(ApplyEnvironment(env, c, &error));
  EXPECT_NE(error.find("HERMOD_PROT"), std::string::npos);
}

TEST(Config, KubernetesServiceLinksAreRecognisedByNameAndValue) {
  // What the kubelet sets for Services named hermod (port 8000 named http) and hermod-nats.
  for (auto [name, value] : {std::pair{"HERMOD_SERVICE_HOST", "10.96.12.34"},
                             {"HERMOD_SERVICE_PORT", "8000"},
                             {"HERMOD_SERVICE_PORT_HTTP", "8000"},
                             {"HERMOD_PORT", "tcp://10.96.12.34:8000"},
                             {"HERMOD_PORT_8000_TCP", "tcp://10.96.12.34:8000"},
                             {"HERMOD_PORT_8000_TCP_PROTO", "tcp"},
                             {"HERMOD_PORT_8000_TCP_PORT", "8000"},
                             {"HERMOD_PORT_8000_TCP_ADDR", "10.96.12.34"},
                             {"HERMOD_NATS_SERVICE_PORT", "4222"},
                             {"HERMOD_NATS_PORT_4222_TCP_ADDR", "10.96.40.2"},
                             {"HERMOD_PORT", "udp://[fd00::1]:53"}}) {
    EXPECT_TRUE(IsKubernetesServiceLink(name, value)) << name << "=" << value;
  }
  for (auto [name, value] : {std::pair{"HERMOD_PORT", "8000"},
                             {"HERMOD_SERVICE_HOST", "hermod.default"},
                             {"HERMOD_SERVICE_PORT", "http"},
                             {"HERMOD_PORT_8000_TCP", "tcp://10.96.12.34:9000"},
                             {"HERMOD_PORT_8000_TCP_PORT", "9000"},
                             {"HERMOD_PORT_8000_TCP_PROTO", "udp"},
                             {"HERMOD_LOG_LEVEL", "debug"},
                             {"HERMODX_SERVICE_HOST", "10.0.0.1"}}) {
    EXPECT_FALSE(IsKubernetesServiceLink(name, value)) << name << "=" << value;
  }
  Config c;
  std::string error;
  std::string link = "HERMOD_PORT=tcp://10.96.12.34:9999", port = "HERMOD_WORKERS=3";
  char* env[] = {link.data(), port.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(env, c, &error)) << error;
  EXPECT_EQ(c.port, 8000u);
  EXPECT_EQ(c.workers, 3u);
}

TEST(Config, LogFormatIsTextOrJsonFromFileOrEnvironment) {
  Config c;
  std::string error;
  EXPECT_EQ(c.log_format, "text");
  ASSERT_TRUE(ApplyJson(R"({"log_format": "json"})", c, &error)) << error;
  EXPECT_EQ(c.log_format, "json");
  EXPECT_TRUE(Validate(c, &error)) << error;
  std::string format = "HERMOD_LOG_FORMAT=xml";
  char* env[] = {format.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(env, c, &error)) << error;
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_EQ(error, "config key log_format: text or json");
}

TEST(Config, AnEmptyAllowedValueIsNamedQuoted) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"fault_kill_at": "anywhere"})", c, &error)) << error;
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_EQ(error, "config key fault_kill_at: \"\" or scheduled_published");
}

TEST(Config, ValidationNamesTheKey) {
  Config c;
  c.websocket.compression.server_max_window_bits = 16;
  std::string error;
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_NE(error.find("server_max_window_bits"), std::string::npos);
}

TEST(Config, ProxyStaticHeadersAreAnObjectOfHeaderNamesAndCleanValues) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"proxy_static_http_headers": {"X-App": "hermod", "X-Env": "t 1"},
      "proxy_include_connection_meta": true, "proxy_sub_refresh_endpoint": "http://b/sr",
      "namespaces": [{"name": "n", "proxy_sub_refresh": true}]})",
                        c, &error))
      << error;
  EXPECT_EQ(c.proxy_static_http_headers, (std::vector<std::string>{"X-App: hermod", "X-Env: t 1"}));
  EXPECT_TRUE(c.proxy_include_connection_meta);
  EXPECT_TRUE(Validate(c, &error)) << error;
  Config back;
  ASSERT_TRUE(ApplyJson(ToJson(c), back, &error)) << error;
  EXPECT_EQ(back.proxy_static_http_headers, c.proxy_static_http_headers);
  Config bad;
  EXPECT_FALSE(ApplyJson(R"({"proxy_static_http_headers": {"X-A": "a\r\nB: c"}})", bad, &error));
  EXPECT_NE(error.find("proxy_static_http_headers.X-A"), std::string::npos) << error;
  EXPECT_FALSE(ApplyJson(R"({"proxy_static_http_headers": {"Bad Name": "a"}})", bad, &error));
  EXPECT_FALSE(ApplyJson(R"({"proxy_static_http_headers": {"X-N": 1}})", bad, &error));
  Config no_endpoint;
  ASSERT_TRUE(ApplyJson(R"({"namespaces": [{"name": "n", "proxy_sub_refresh": true}]})",
                        no_endpoint, &error));
  EXPECT_FALSE(Validate(no_endpoint, &error));
  EXPECT_NE(error.find("proxy_sub_refresh_endpoint"), std::string::npos) << error;
}

TEST(Config, GranularProxyModeNamesProxiesAndRoundTrips) {
  Config c;
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(ApplyJson(R"({"granular_proxy_mode": true,
      "proxies": [{"name": "a", "endpoint": "http://b/a", "timeout": "2s",
                   "http_headers": ["Cookie"], "static_http_headers": {"X-P": "a"},
                   "binary_encoding": true},
                  {"name": "b", "endpoint": "http://b/b"}],
      "connect_proxy_name": "a", "rpc_proxy_name": "b",
      "rpc_namespaces": [{"name": "r", "rpc_proxy_name": "a"}],
      "namespaces": [{"name": "n", "subscribe_proxy_name": "b", "publish_proxy_name": "a"}]})",
                        c, &error, &warnings))
      << error;
  ASSERT_EQ(c.proxies.size(), 2u);
  EXPECT_EQ(c.proxies[0].timeout.ms, 2000u);
  EXPECT_EQ(c.proxies[0].static_http_headers, (std::vector<std::string>{"X-P: a"}));
  EXPECT_EQ(warnings.size(), 1u);  // binary_encoding: not supported
  ResolveProxies(c);
  EXPECT_TRUE(c.namespaces[0].options.proxy_subscribe);
  EXPECT_TRUE(c.namespaces[0].options.proxy_publish);
  EXPECT_FALSE(c.namespaces[0].options.proxy_sub_refresh);
  EXPECT_TRUE(Validate(c, &error)) << error;
  Config back;
  ASSERT_TRUE(ApplyJson(ToJson(c), back, &error)) << error;
  EXPECT_EQ(back.proxies[0].static_http_headers, c.proxies[0].static_http_headers);
  EXPECT_EQ(back.rpc_namespaces[0].rpc_proxy_name, "a");
  EXPECT_EQ(back.connect_proxy_name, "a");

  Config unknown = c;
  unknown.namespaces[0].options.subscribe_proxy_name = "nope";
  EXPECT_FALSE(Validate(unknown, &error));
  EXPECT_NE(error.find("namespaces[0].subscribe_proxy_name"), std::string::npos) << error;
  // Centrifugo v6: a namespace's *_proxy_enabled with a name, no granular mode; "default"
  // is the flat keys' proxy.
  Config v6;
  ASSERT_TRUE(ApplyJson(R"({"proxies": [{"name": "a", "endpoint": "http://b/a"}],
      "proxy_publish_endpoint": "http://b/p",
      "channel": {"namespaces": [{"name": "n", "subscribe_proxy_enabled": true,
          "subscribe_proxy_name": "a", "publish_proxy_enabled": true,
          "publish_proxy_name": "default"}]}})",
                        v6, &error))
      << error;
  ResolveProxies(v6);
  EXPECT_TRUE(v6.namespaces[0].options.proxy_subscribe);
  EXPECT_TRUE(Validate(v6, &error)) << error;
  v6.namespaces[0].options.subscribe_proxy_name = "nope";
  EXPECT_FALSE(Validate(v6, &error));
}

TEST(Config, ConsumersTakeCentrifugosNatsJetStreamShape) {
  Config c;
  std::string error;
  std::vector<std::string> warnings;
  ASSERT_TRUE(ApplyJson(R"({"consumers": [{"enabled": true, "name": "outbox",
      "type": "nats_jetstream", "nats_jetstream": {"url": "nats://n:4222",
      "stream_name": "CMDS", "subjects": ["cmds.>"], "durable_consumer_name": "hermod",
      "deliver_policy": "all", "max_ack_pending": 10, "ack_wait": "5s"}},
      {"enabled": false, "name": "pg", "type": "postgresql", "postgresql": {"dsn": "x"}}]})",
                        c, &error, &warnings))
      << error;
  ASSERT_EQ(c.consumers.size(), 2u);
  const auto& js = c.consumers[0].nats_jetstream;
  EXPECT_EQ(js.stream_name, "CMDS");
  EXPECT_EQ(js.subjects, (std::vector<std::string>{"cmds.>"}));
  EXPECT_EQ(js.max_ack_pending, 10u);
  EXPECT_EQ(js.ack_wait.ms, 5000u);
  EXPECT_EQ(js.method_header, "centrifugo-method");
  EXPECT_EQ(warnings.size(), 1u);  // the postgresql block
  EXPECT_TRUE(Validate(c, &error)) << error;
  Config back;
  ASSERT_TRUE(ApplyJson(ToJson(c), back, &error)) << error;
  EXPECT_EQ(back.consumers[0].nats_jetstream.durable_consumer_name, "hermod");
  EXPECT_EQ(back.consumers[0].nats_jetstream.deliver_policy, "all");

  Config two = c;
  two.consumers[0].nats_jetstream.subjects.push_back("more.>");
  EXPECT_FALSE(Validate(two, &error));
  EXPECT_NE(error.find("consumers[0].nats_jetstream.subjects"), std::string::npos) << error;
  Config unnamed = c;
  unnamed.consumers[0].nats_jetstream.stream_name.clear();
  EXPECT_FALSE(Validate(unnamed, &error));
  Config window = c;
  window.consumers[0].nats_jetstream.max_ack_pending = 0;
  EXPECT_FALSE(Validate(window, &error));
  EXPECT_NE(error.find("max_ack_pending"), std::string::npos) << error;
}

TEST(Config, JoinMaxBytesComesFromJsonAndEnvironmentAndIsBounded) {
  Config c;
  std::string error;
  EXPECT_EQ(c.websocket.join_max_bytes, 16u * 1024);
  ASSERT_TRUE(ApplyJson(R"({"websocket": {"join_max_bytes": 0}})", c, &error)) << error;
  EXPECT_EQ(c.websocket.join_max_bytes, 0u);
  std::string join = "HERMOD_WEBSOCKET__JOIN_MAX_BYTES=65536";
  char* env[] = {join.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(env, c, &error)) << error;
  EXPECT_EQ(c.websocket.join_max_bytes, 65536u);
  EXPECT_TRUE(Validate(c, &error)) << error;
  c.websocket.join_max_bytes = (uint64_t{1} << 30) + 1;
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_NE(error.find("websocket.join_max_bytes"), std::string::npos) << error;
}

TEST(Config, HealthKeysComeFromJsonAndEnvironment) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"health": {"memory_budget_bytes": 1048576, "max_connections": 10}})", c,
                        &error))
      << error;
  std::string deadline = "HERMOD_HEALTH__LOOP_DEADLINE_MS=250";
  char* env[] = {deadline.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(env, c, &error)) << error;
  EXPECT_EQ(c.health.memory_budget_bytes, 1048576u);
  EXPECT_EQ(c.health.max_connections, 10u);
  EXPECT_EQ(c.health.loop_deadline_ms, 250u);
  EXPECT_TRUE(Validate(c, &error)) << error;
}

TEST(Config, HealthThresholdsOutOfOrderNameTheKeys) {
  Config c;
  c.health.degraded_percent = 90;
  c.health.unhealthy_percent = 50;
  std::string error;
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_NE(error.find("health.degraded_percent"), std::string::npos);
}

TEST(Config, AdmissionAndRateLimitKeysComeFromJsonAndEnvironment) {
  Config c;
  std::string error;
  EXPECT_EQ(c.client_command_rate_limit.publish.rate, 100u);  // config.h's defaults
  EXPECT_EQ(c.client_command_rate_limit.publish.burst, 10u);
  ASSERT_TRUE(ApplyJson(R"({"client_connection_limit": 10, "client_user_connection_limit": 2,
      "admission": {"soft_connection_limit": 8, "retry_after": "3s"},
      "client_command_rate_limit": {"history": {"rate": 5, "burst": 1}},
      "namespaces": [{"name": "n", "publish_rate_limit": 7}]})",
                        c, &error))
      << error;
  std::string env[] = {"HERMOD_CLIENT_COMMAND_RATE_LIMIT__PUBLISH__RATE=3",
                       "HERMOD_ADMISSION__IP_CONNECTION_LIMIT=4"};
  char* environment[] = {env[0].data(), env[1].data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(environment, c, &error)) << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.client_connection_limit, 10u);
  EXPECT_EQ(c.admission.soft_connection_limit, 8u);
  EXPECT_EQ(c.admission.retry_after.ms, 3000u);
  EXPECT_EQ(c.admission.ip_connection_limit, 4u);
  EXPECT_EQ(c.client_command_rate_limit.history.rate, 5u);
  EXPECT_EQ(c.client_command_rate_limit.publish.rate, 3u);
  EXPECT_EQ(c.namespaces[0].options.publish_rate_limit, 7u);
}

TEST(Config, AdmissionAndRateLimitValidationNamesTheKey) {
  std::string error;
  Config soft;
  soft.client_connection_limit = 5;
  soft.admission.soft_connection_limit = 5;
  EXPECT_FALSE(Validate(soft, &error));
  EXPECT_NE(error.find("admission.soft_connection_limit"), std::string::npos) << error;
  Config burst;
  burst.client_command_rate_limit.subscribe.burst = 0;
  EXPECT_FALSE(Validate(burst, &error));
  EXPECT_NE(error.find("client_command_rate_limit.subscribe"), std::string::npos) << error;
  Config channel;
  channel.channel.publish_rate_limit = 2000000;
  EXPECT_FALSE(Validate(channel, &error));
  EXPECT_NE(error.find("publish_rate_limit"), std::string::npos) << error;
}

TEST(Config, StoreEnginesDefaultToMemoryAndOnlyKnownNamesPass) {
  Config c;
  std::string error;
  EXPECT_EQ(c.history_engine, "memory");
  EXPECT_EQ(c.presence_engine, "memory");
  ASSERT_TRUE(ApplyJson(R"({"history_engine": "memory", "presence_engine": "memory"})", c, &error));
  EXPECT_TRUE(Validate(c, &error)) << error;
  Config sqlite;
  ASSERT_TRUE(ApplyJson(
      R"({"engine": "sqlite", "sqlite": {"path": "/tmp/x.db", "synchronous": "normal",
          "max_batch": 64, "max_queue": 100, "max_trim": 10, "secure_delete": true}})",
      sqlite, &error))
      << error;
  EXPECT_TRUE(Validate(sqlite, &error)) << error;
  EXPECT_EQ(sqlite.engine, "sqlite");
  EXPECT_EQ(sqlite.sqlite.path, "/tmp/x.db");
  EXPECT_EQ(sqlite.sqlite.synchronous, "normal");
  EXPECT_EQ(sqlite.sqlite.max_batch, 64u);
  EXPECT_EQ(sqlite.sqlite.max_queue, 100u);
  EXPECT_EQ(sqlite.sqlite.max_trim, 10u);
  EXPECT_EQ(Config().sqlite.max_trim, 1024u);
  EXPECT_TRUE(sqlite.sqlite.secure_delete);
  EXPECT_FALSE(Config().sqlite.secure_delete);
  for (auto [json, key] :
       {std::pair{R"({"history_engine": "redis"})", "history_engine"},
        std::pair{R"({"presence_engine": "sqlite"})", "presence_engine"},
        std::pair{R"({"sqlite": {"max_batch": 0}})", "sqlite.max_batch"},
        std::pair{R"({"sqlite": {"max_trim": 0}})", "sqlite.max_trim"},
        std::pair{R"({"sqlite": {"synchronous": "off"}})", "sqlite.synchronous"}}) {
    Config bad;
    ASSERT_TRUE(ApplyJson(json, bad, &error)) << error;
    EXPECT_FALSE(Validate(bad, &error)) << json;
    EXPECT_NE(error.find(key), std::string::npos) << error;
  }
}

TEST(Config, PresenceOnNatsKeysComeFromJsonAndAreValidated) {
  Config c;
  std::string error;
  EXPECT_EQ(c.presence_ttl.ms, 60000u);
  EXPECT_EQ(c.nats.presence.bucket, "hermod_presence");
  ASSERT_TRUE(ApplyJson(R"({"presence_engine": "nats", "presence_ttl": "5s",
      "nats": {"presence": {"bucket": "eu-presence_1", "replicas": 3, "storage": "memory"}}})",
                        c, &error))
      << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.presence_engine, "nats");
  EXPECT_EQ(c.presence_ttl.ms, 5000u);
  EXPECT_EQ(c.nats.presence.bucket, "eu-presence_1");
  EXPECT_EQ(c.nats.presence.replicas, 3u);
  EXPECT_EQ(c.nats.presence.storage, "memory");
  EXPECT_EQ(c.nats.schedule_claim_lease.ms, 5000u);
  ASSERT_TRUE(ApplyJson(R"({"nats": {"schedule_claim_lease": "2s"}})", c, &error)) << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.nats.schedule_claim_lease.ms, 2000u);
  for (auto [json, key] :
       {std::pair{R"({"presence_ttl": "500ms"})", "presence_ttl"},
        std::pair{R"({"nats": {"presence": {"bucket": "a.b"}}})", "nats.presence.bucket"},
        std::pair{R"({"nats": {"presence": {"bucket": ""}}})", "nats.presence.bucket"},
        std::pair{R"({"nats": {"presence": {"replicas": 0}}})", "nats.presence.replicas"},
        std::pair{R"({"nats": {"presence": {"storage": "disk"}}})", "nats.presence.storage"},
        std::pair{R"({"nats": {"schedule_claim_lease": "50ms"}})", "nats.schedule_claim_lease"}}) {
    Config bad;
    ASSERT_TRUE(ApplyJson(json, bad, &error)) << error;
    EXPECT_FALSE(Validate(bad, &error)) << json;
    EXPECT_NE(error.find(key), std::string::npos) << json << ": " << error;
  }
}

// Tuning that was a constant: the loop's busy threshold for adaptive coalescing and the
// NATS broker's release batch, with their defaults and bounds.
TEST(Config, CoalescingThresholdAndNatsReleaseBatchAreKeysWithBounds) {
  Config c;
  std::string error;
  EXPECT_EQ(c.send_queue.coalesce_when_busy_us, 1000u);
  EXPECT_EQ(c.nats.release_batch, 32u);
  EXPECT_EQ(c.nats.release_bytes, 65536u);
  ASSERT_TRUE(ApplyJson(R"({"send_queue": {"coalesce_when_busy_us": 0},
      "nats": {"release_batch": 1, "release_bytes": 0}})",
                        c, &error))
      << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.send_queue.coalesce_when_busy_us, 0u);
  EXPECT_EQ(c.nats.release_batch, 1u);
  EXPECT_EQ(c.nats.release_bytes, 0u);
  for (auto [json, key] :
       {std::pair{R"({"send_queue": {"coalesce_when_busy_us": 1000001}})",
                  "send_queue.coalesce_when_busy_us"},
        std::pair{R"({"nats": {"release_batch": 0}})", "nats.release_batch"},
        std::pair{R"({"nats": {"release_batch": 4097}})", "nats.release_batch"}}) {
    Config bad;
    ASSERT_TRUE(ApplyJson(json, bad, &error)) << error;
    EXPECT_FALSE(Validate(bad, &error)) << json;
    EXPECT_NE(error.find(key), std::string::npos) << json << ": " << error;
  }
}

TEST(Config, BrokerKeysComeFromJsonAndEnvironmentAndAreValidated) {
  Config c;
  std::string error;
  EXPECT_EQ(c.broker, "memory");
  ASSERT_TRUE(ApplyJson(R"({"broker": "nats", "nats": {"url": "nats://10.0.0.1:4222",
      "prefix": "eu.hermod", "dial_timeout": "250ms"},
      "broker_breaker": {"failure_threshold": 3, "open_timeout": "2s"}})",
                        c, &error))
      << error;
  std::string env[] = {"HERMOD_BROKER_BREAKER__HALF_OPEN_TRIALS=2",
                       "HERMOD_NATS__UNHEALTHY_AFTER=30s"};
  char* environment[] = {env[0].data(), env[1].data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(environment, c, &error)) << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.nats.url, "nats://10.0.0.1:4222");
  EXPECT_EQ(c.nats.prefix, "eu.hermod");
  EXPECT_EQ(c.nats.dial_timeout.ms, 250u);
  EXPECT_EQ(c.nats.unhealthy_after.ms, 30000u);
  EXPECT_EQ(c.broker_breaker.failure_threshold, 3u);
  EXPECT_EQ(c.broker_breaker.open_timeout.ms, 2000u);
  EXPECT_EQ(c.broker_breaker.half_open_trials, 2u);

  for (auto [json, key] :
       {std::pair{R"({"broker": "redis"})", "config key broker"},
        std::pair{R"({"nats": {"url": "http://x"}})", "nats.url"},
        std::pair{R"({"nats": {"prefix": "a.*"}})", "nats.prefix"},
        std::pair{R"({"nats": {"prefix": "a b"}})", "nats.prefix"},
        std::pair{R"({"nats": {"dial_timeout": "0s"}})", "nats.dial_timeout"},
        std::pair{R"({"nats": {"send_queue_bytes": 10}})", "nats.send_queue_bytes"},
        std::pair{R"({"broker_breaker": {"failure_threshold": 0}})", "failure_threshold"},
        std::pair{R"({"broker_breaker": {"half_open_trials": 0}})", "half_open_trials"},
        std::pair{R"({"broker_breaker": {"open_timeout": "0s"}})", "open_timeout"}}) {
    Config bad;
    ASSERT_TRUE(ApplyJson(json, bad, &error)) << error;
    EXPECT_FALSE(Validate(bad, &error)) << json;
    EXPECT_NE(error.find(key), std::string::npos) << json << ": " << error;
  }
}

// nats.tls: read from JSON and the environment; files that would not load, a certificate
// without its key, a server name with a port, are refused by Validate (checkconfig too).
TEST(Config, NatsTlsKeysComeFromJsonAndEnvironmentAndAreValidated) {
  char tmpl[] = "/tmp/hermod-config-tls-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string ca = dir + "/ca.pem";
  const std::string cert = dir + "/client.pem";
  const std::string key = dir + "/client.key";
  const std::string empty = dir + "/empty.pem";
  for (const std::string& f : {ca, cert, key}) std::ofstream(f) << "-----BEGIN-----\n";
  std::ofstream(empty).flush();
  Config c;
  std::string error;
  EXPECT_FALSE(c.nats.tls.enabled);
  ASSERT_TRUE(ApplyJson(R"({"nats": {"url": "tls://10.0.0.1:4222", "tls": {"ca_file": ")" + ca +
                            R"(", "cert_file": ")" + cert + R"(", "key_file": ")" + key +
                            R"(", "server_name": "nats.internal"}}})",
                        c, &error))
      << error;
  std::string env[] = {"HERMOD_NATS__TLS__ENABLED=true",
                       "HERMOD_NATS__TLS__INSECURE_SKIP_VERIFY=false"};
  char* environment[] = {env[0].data(), env[1].data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(environment, c, &error)) << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_TRUE(c.nats.tls.enabled);
  EXPECT_EQ(c.nats.tls.ca_file, ca);
  EXPECT_EQ(c.nats.tls.server_name, "nats.internal");
  Config back;
  ASSERT_TRUE(ApplyJson(ToJson(c), back, &error)) << error;
  EXPECT_EQ(back.nats.tls.key_file, key);

  const std::string missing = dir + "/missing.pem";
  using Case = std::pair<std::string, std::string>;
  for (const auto& [json, expected] : std::vector<Case>{
           Case{R"({"nats": {"tls": {"cert_file": ")" + cert + R"("}}})",
                std::string("nats.tls.cert_file and nats.tls.key_file: set both")},
           Case{R"({"nats": {"tls": {"key_file": ")" + key + R"("}}})",
                std::string("nats.tls.cert_file and nats.tls.key_file: set both")},
           Case{R"({"nats": {"tls": {"ca_file": ")" + missing + R"("}}})",
                "config key nats.tls.ca_file: cannot read " + missing},
           Case{R"({"nats": {"tls": {"ca_file": ")" + empty + R"("}}})",
                "config key nats.tls.ca_file: cannot read " + empty + " (empty)"},
           Case{R"({"nats": {"tls": {"cert_file": ")" + missing + R"(", "key_file": ")" + key +
                    R"("}}})",
                "config key nats.tls.cert_file: cannot read " + missing},
           Case{R"({"nats": {"tls": {"server_name": "nats.internal:4222"}}})",
                std::string("config key nats.tls.server_name")},
           Case{R"({"nats": {"tls": {"enabled": "yes"}}})", std::string("nats.tls.enabled")}}) {
    Config bad;
    if (!ApplyJson(json, bad, &error)) {  // a wrong type is refused when read
      EXPECT_NE(error.find(expected), std::string::npos) << json << ": " << error;
      continue;
    }
    EXPECT_FALSE(Validate(bad, &error)) << json;
    EXPECT_NE(error.find(expected), std::string::npos) << json << ": " << error;
  }
  std::filesystem::remove_all(dir);
}

TEST(Config, NatsKeepaliveKeysAreBounded) {
  Config c;
  std::string error;
  EXPECT_EQ(c.nats.ping_interval.ms, 20000u);
  EXPECT_EQ(c.nats.max_pings_out, 2u);
  ASSERT_TRUE(ApplyJson(R"({"nats": {"ping_interval": "1s", "max_pings_out": 100}})", c, &error))
      << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.nats.ping_interval.ms, 1000u);
  EXPECT_EQ(c.nats.max_pings_out, 100u);
  for (auto [json, key] : {std::pair{R"({"nats": {"ping_interval": "999ms"}})", "ping_interval"},
                           std::pair{R"({"nats": {"ping_interval": "61m"}})", "ping_interval"},
                           std::pair{R"({"nats": {"max_pings_out": 0}})", "max_pings_out"},
                           std::pair{R"({"nats": {"max_pings_out": 101}})", "max_pings_out"}}) {
    Config bad;
    ASSERT_TRUE(ApplyJson(json, bad, &error)) << error;
    EXPECT_FALSE(Validate(bad, &error)) << json;
    EXPECT_NE(error.find(key), std::string::npos) << json << ": " << error;
  }
}

TEST(Config, JoinLeaveBatchKeysComeFromJsonAndEnvironmentAndAreBounded) {
  Config c;
  std::string error;
  EXPECT_EQ(c.channel.join_leave_batch_delay.ms, 0u);  // off: pushes leave at once
  EXPECT_EQ(c.channel.join_leave_batch_max, 100u);
  ASSERT_TRUE(ApplyJson(R"({"namespaces": [{"name": "n", "join_leave_batch_delay": "250ms",
      "join_leave_batch_max": 40}]})",
                        c, &error))
      << error;
  std::string env[] = {"HERMOD_JOIN_LEAVE_BATCH_DELAY=1s"};
  char* environment[] = {env[0].data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment(environment, c, &error)) << error;
  EXPECT_TRUE(Validate(c, &error)) << error;
  EXPECT_EQ(c.namespaces[0].options.join_leave_batch_delay.ms, 250u);
  EXPECT_EQ(c.namespaces[0].options.join_leave_batch_max, 40u);
  EXPECT_EQ(c.channel.join_leave_batch_delay.ms, 1000u);
  EXPECT_NE(ToJson(c).find("\"join_leave_batch_max\""), std::string::npos);
  Config zero;
  zero.channel.join_leave_batch_max = 0;
  EXPECT_FALSE(Validate(zero, &error));
  EXPECT_NE(error.find("join_leave_batch_max"), std::string::npos) << error;
  Config long_window;
  long_window.channel.join_leave_batch_delay.ms = 60000;
  EXPECT_FALSE(Validate(long_window, &error));
  EXPECT_NE(error.find("join_leave_batch_delay"), std::string::npos) << error;
}

TEST(Config, ToJsonRoundTrips) {
  Config c;
  c.port = 1234;
  c.websocket.subprotocols = {"centrifuge-json"};
  c.tls.cert_file = "/x.pem";
  c.tls.key_file = "/y.pem";
  Config back;
  std::string error;
  ASSERT_TRUE(ApplyJson(ToJson(c), back, &error)) << error << "\n" << ToJson(c);
  EXPECT_EQ(back.port, 1234u);
  EXPECT_EQ(back.websocket.subprotocols, c.websocket.subprotocols);
  EXPECT_EQ(back.tls.key_file, "/y.pem");
}

// Every numeric key has a range that Validate enforces, with the key and the
// range in the message; the default is inside it; one past either end is refused.
TEST(Config, EveryNumericKeyHasARangeThatHoldsItsDefaultAndRefusesOnePast) {
  const std::vector<KeyRange> ranges = KeyRanges();
  ASSERT_GT(ranges.size(), 80u);
  for (const KeyRange& r : ranges) {
    SCOPED_TRACE(r.key);
    EXPECT_LT(r.max, UINT64_MAX) << "no upper bound";
    EXPECT_LE(r.min, r.max);
    // The key as nested JSON, with a value in milliseconds for durations.
    auto json = [&](uint64_t value) {
      std::string text = r.duration ? "\"" + std::to_string(value) + "ms\"" : std::to_string(value);
      std::string key = r.key;
      std::string open, close;
      for (size_t dot; (dot = key.find('.')) != std::string::npos; key = key.substr(dot + 1)) {
        open += "{\"" + key.substr(0, dot) + "\": ";
        close += "}";
      }
      return open + "{\"" + key + "\": " + text + "}" + close;
    };
    for (uint64_t bad : {r.max + 1, r.min - 1}) {
      if (bad == r.max + 1 || r.min > 0) {
        Config c;
        std::string error;
        ASSERT_TRUE(ApplyJson(json(bad), c, &error)) << error << " " << json(bad);
        EXPECT_FALSE(Validate(c, &error)) << json(bad);
        EXPECT_NE(error.find("config key " + r.key + ": "), std::string::npos) << error;
        EXPECT_NE(error.find("out of range"), std::string::npos) << error;
      }
    }
  }
  Config defaults;
  std::string error;
  EXPECT_TRUE(Validate(defaults, &error)) << error;
}

TEST(Config, DurationsThatWouldWrapAreRefusedNotWrapped) {
  for (const char* json : {R"({"idempotency_window": "18446744073709551615ms"})",
                           R"({"idempotency_window": "5124095576031h"})",
                           R"({"idempotency_window": 18446744073709551})",
                           R"({"admission": {"retry_after": "307445734561825861m"}})"}) {
    Config c;
    std::string error;
    ASSERT_TRUE(ApplyJson(json, c, &error)) << error;
    EXPECT_FALSE(Validate(c, &error)) << json;
    EXPECT_NE(error.find("out of range"), std::string::npos) << error;
  }
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(R"({"read_buffer_bytes": 1099511627776})", c, &error));
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_EQ(error, "config key read_buffer_bytes: 1099511627776 is out of range 4096..67108864");
}

TEST(Config, NamespaceKeysAreRangedWithTheirIndex) {
  Config c;
  std::string error;
  ASSERT_TRUE(ApplyJson(
      R"({"namespaces": [{"name": "a"}, {"name": "b", "history_ttl": "99999999h"}]})", c, &error));
  EXPECT_FALSE(Validate(c, &error));
  EXPECT_NE(error.find("config key namespaces[1].history_ttl: "), std::string::npos) << error;
}

TEST(Config, JsonSyntaxErrorNamesLineAndColumn) {
  Config c;
  std::string error;
  EXPECT_FALSE(ApplyJson("{\n  \"port\": 8000,\n  \"bind\" \"x\"\n}", c, &error));
  EXPECT_EQ(error, "config is not valid JSON: line 3, column 10: expected ':' after the key");
}

}  // namespace
}  // namespace hermod::config
