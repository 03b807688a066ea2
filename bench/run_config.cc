#include "run_config.h"

#include <algorithm>
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
    case Scenario::kStand:
      return config.connections + config.publishers + StandChurners(config);
  }
  return 0;
}

uint32_t StandGroups(const RunConfig& config) {
  const uint32_t size = std::max<uint32_t>(config.group_size, 1);
  return (config.connections + size - 1) / size;
}

uint32_t StandChurners(const RunConfig& config) {
  if (config.churners > 0) return config.churners;
  if (config.connect_rate <= 0) return 0;
  // A reconnect (TCP, upgrade, connect, two subscribes, close) takes milliseconds on an idle
  // server and seconds on a saturated one (each step waits behind the node's backlog). A slot
  // reconnects only once its last cycle is over, so the slots cap the rate at slots / cycle:
  // slots for 10 s of reconnecting keep the rate the server's load, not its latency.
  return std::max<uint32_t>(1, static_cast<uint32_t>(config.connect_rate * 10));
}

uint32_t StandGroupMembers(const RunConfig& config, uint32_t group) {
  const uint32_t size = std::max<uint32_t>(config.group_size, 1);
  const uint64_t first = uint64_t{group} * size;
  if (first >= config.connections) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(size, config.connections - first));
}

uint32_t SetupConnections(const RunConfig& config, uint32_t begin, uint32_t end) {
  if (Effective(config) == Scenario::kConnect) return 0;
  if (Effective(config) != Scenario::kStand) return end - begin;
  const uint32_t held = config.connections + config.publishers;
  return begin >= held ? 0 : std::min(end, held) - begin;
}

uint32_t PublisherCount(const RunConfig& config) {
  switch (Effective(config)) {
    case Scenario::kEcho:
      return config.connections;
    case Scenario::kFanout:
      return config.publishers;
    case Scenario::kChannels:
      return config.channels;
    case Scenario::kStand:
      return config.publishers;
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
    case Scenario::kStand: {
      const uint32_t n = config.connections;
      const uint32_t size = std::max<uint32_t>(config.group_size, 1);
      if (index < n) {
        plan.subscribe = static_cast<int32_t>(index);
        plan.group = static_cast<int32_t>(n + index / size);
      } else if (index < n + config.publishers) {
        plan.stand_publisher = true;
        plan.publisher_id = index - n;
      } else {
        // Churners join the held clients' groups round robin, with personal channels of their
        // own that nobody publishes to.
        const uint32_t k = index - n - config.publishers;
        const uint32_t groups = StandGroups(config);
        plan.churner = true;
        plan.subscribe = static_cast<int32_t>(n + groups + k);
        if (groups > 0) plan.group = static_cast<int32_t>(n + k % groups);
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

bool StreamsSubscribers(Protocol p) {
  return p == Protocol::kHermodSse || p == Protocol::kHermodHttpStream;
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
    case Protocol::kHermodSse:
      return "sse";
    case Protocol::kHermodHttpStream:
      return "http_stream";
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
    case Scenario::kStand:
      return "stand";
  }
  return "?";
}

bool ParseProtocol(const std::string& name, Protocol& out) {
  for (Protocol p :
       {Protocol::kEcho, Protocol::kRaw, Protocol::kNats, Protocol::kMqtt, Protocol::kHermod,
        Protocol::kHermodProtobuf, Protocol::kHermodSse, Protocol::kHermodHttpStream}) {
    if (name == ProtocolName(p)) {
      out = p;
      return true;
    }
  }
  return false;
}

bool ParseScenario(const std::string& name, Scenario& out) {
  for (Scenario s : {Scenario::kEcho, Scenario::kFanout, Scenario::kChannels, Scenario::kConnect,
                     Scenario::kSoak, Scenario::kStand}) {
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
  if (config.targets.empty()) {
    config.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  }
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
  Target target;
  target.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  target.port = static_cast<uint16_t>(port);
  target.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (config.targets.empty()) {
    config.host = target.host;
    config.port = target.port;
    config.url = url;
  } else {
    config.url += " " + url;
  }
  config.targets.push_back(std::move(target));
  return true;
}

}  // namespace hermod::bench
