#include "run_config.h"

#include <charconv>

namespace hermod::bench {

Scenario Effective(const RunConfig& config) {
  return config.scenario == Scenario::kSoak ? config.load : config.scenario;
}

bool IsOverloadTest(const RunConfig& config) {
  const Scenario s = Effective(config);
  return config.rate == 0 && (s == Scenario::kFanout || s == Scenario::kChannels);
}

uint32_t TotalConnections(const RunConfig& config) {
  switch (Effective(config)) {
    case Scenario::kEcho:
    case Scenario::kConnect:
    case Scenario::kSoak:
      return config.connections;
    case Scenario::kFanout:
      return config.connections + config.publishers;
    case Scenario::kChannels:
      return config.channels * config.subscribers + config.channels;
  }
  return 0;
}

uint32_t PublisherCount(const RunConfig& config) {
  switch (Effective(config)) {
    case Scenario::kEcho:
      return config.connections;
    case Scenario::kFanout:
      return config.publishers;
    case Scenario::kChannels:
      return config.channels;
    default:
      return 0;
  }
}

uint64_t ReceiversPerPublication(const RunConfig& config) {
  switch (Effective(config)) {
    case Scenario::kEcho:
      return 1;
    case Scenario::kFanout:
      return config.connections;
    case Scenario::kChannels:
      return config.subscribers;
    default:
      return 0;
  }
}

ConnectionPlan PlanFor(const RunConfig& config, uint32_t index) {
  ConnectionPlan plan;
  switch (Effective(config)) {
    case Scenario::kEcho:
      // Each connection is its own channel's only subscriber and publisher: a round trip.
      plan.subscribe = plan.publish = static_cast<int32_t>(index);
      plan.publisher_id = index;
      break;
    case Scenario::kFanout:
      if (index < config.connections) {
        plan.subscribe = 0;
      } else {
        plan.publish = 0;
        plan.publisher_id = index - config.connections;
      }
      break;
    case Scenario::kChannels: {
      // Subscribers first, channel by index modulo M so every range of indices (a thread, a
      // worker) holds subscribers of every channel; then one publisher per channel.
      uint32_t subs = config.channels * config.subscribers;
      if (index < subs) {
        plan.subscribe = static_cast<int32_t>(index % config.channels);
      } else {
        plan.publish = static_cast<int32_t>(index - subs);
        plan.publisher_id = index - subs;
      }
      break;
    }
    default:
      break;
  }
  return plan;
}

std::string ChannelName(Protocol protocol, int32_t channel) {
  // A name every protocol accepts: NATS subject, MQTT topic, Centrifugo channel.
  (void)protocol;
  return "hb" + std::to_string(channel);
}

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kEcho:
      return "echo";
    case Protocol::kRaw:
      return "raw";
    case Protocol::kNats:
      return "nats";
    case Protocol::kMqtt:
      return "mqtt";
    case Protocol::kHermod:
      return "hermod";
    case Protocol::kHermodProtobuf:
      return "hermod-protobuf";
  }
  return "?";
}

const char* ScenarioName(Scenario s) {
  switch (s) {
    case Scenario::kEcho:
      return "echo";
    case Scenario::kFanout:
      return "fanout";
    case Scenario::kChannels:
      return "channels";
    case Scenario::kConnect:
      return "connect";
    case Scenario::kSoak:
      return "soak";
  }
  return "?";
}

bool ParseProtocol(const std::string& name, Protocol& out) {
  for (Protocol p : {Protocol::kEcho, Protocol::kRaw, Protocol::kNats, Protocol::kMqtt,
                     Protocol::kHermod, Protocol::kHermodProtobuf}) {
    if (name == ProtocolName(p)) {
      out = p;
      return true;
    }
  }
  return false;
}

bool ParseScenario(const std::string& name, Scenario& out) {
  for (Scenario s : {Scenario::kEcho, Scenario::kFanout, Scenario::kChannels, Scenario::kConnect,
                     Scenario::kSoak}) {
    if (name == ScenarioName(s)) {
      out = s;
      return true;
    }
  }
  return false;
}

bool ParseUrl(const std::string& url, RunConfig& config, std::string* error) {
  std::string_view rest = url;
  if (rest.starts_with("ws://")) {
    rest.remove_prefix(5);
  } else if (rest.starts_with("wss://")) {
    *error = "wss:// is not supported (TLS); bench plain ws://";
    return false;
  } else {
    *error = "URL must start with ws://";
    return false;
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  config.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  size_t colon = hostport.rfind(':');
  std::string_view host = hostport.substr(0, colon);
  uint32_t port = 80;
  if (colon != std::string_view::npos) {
    std::string_view p = hostport.substr(colon + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || end != p.data() + p.size() || port == 0 || port > 65535) {
      *error = "bad port in URL: " + url;
      return false;
    }
  }
  if (host.empty()) {
    *error = "no host in URL: " + url;
    return false;
  }
  config.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  config.port = static_cast<uint16_t>(port);
  config.url = url;
  return true;
}

}  // namespace hermod::bench
