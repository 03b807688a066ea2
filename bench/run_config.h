// What to run: the target, the protocol spoken to it, the scenario and its sizes; and how
// each scenario turns into a plan for every connection (what it subscribes to and what it
// publishes). A plan depends only on the configuration and the connection's global index, so
// worker processes that each own a range of indices agree on it without talking.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hermod::bench {

// kHermodSse, kHermodHttpStream: hermod's JSON protocol, with subscribers on a streamed HTTP
// response instead of a WebSocket (publishers stay on the WebSocket): sse is
// /connection/uni_sse with --token (whose `channels` claim names the channels), else
// /connection/fragments?channel=...; http_stream is /connection/uni_http_stream (--token).
enum class Protocol {
  kEcho,
  kRaw,
  kNats,
  kMqtt,
  kHermod,
  kHermodProtobuf,
  kHermodSse,
  kHermodHttpStream
};
// Whether a connection of this plan subscribes over a streamed response.
bool StreamsSubscribers(Protocol p);
enum class Scenario { kEcho, kFanout, kChannels, kConnect, kSoak, kStand };

// One server to connect to (-u may be given several times: connection i goes to target
// i modulo their number, so that a cluster's nodes share the connections evenly).
struct Target {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string path = "/";
};

struct RunConfig {
  // Target.
  std::string url;  // as given, for the report
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string path = "/";
  std::vector<Target> targets;  // every -u, in order (the first is host/port/path)
  Protocol protocol = Protocol::kEcho;
  // Scenario and sizes.
  Scenario scenario = Scenario::kEcho;
  Scenario load = Scenario::kFanout;  // what soak runs steadily: echo, fanout or channels
  uint32_t connections = 100;  // echo: connections; fanout: subscribers; connect: concurrency
  uint32_t channels = 10;      // channels: number of channels
  uint32_t subscribers = 10;   // channels: subscribers per channel
  uint32_t publishers = 1;     // fanout: publishers on the one channel
  uint32_t size = 64;          // payload bytes
  bool deflate = false;        // offer permessage-deflate (RFC 7692); compress what is sent
  double rate = 0;             // messages/s per publisher; 0: as fast as possible
  uint32_t inflight = 1;       // echo at full speed: messages in flight per connection
  double duration_s = 10;      // measured phase
  uint64_t messages = 0;       // per publisher; 0: until the duration ends
  double ramp = 0;             // new connections/s during setup; 0: as fast as possible
  double connect_rate = 500;   // connect scenario: new connections/s; stand: churn
  // stand: `connections` held clients, each subscribed to its personal channel and to a group
  // channel of `group_size` members; `publishers` publish personal_rate + group_rate
  // publications/s in all, spread over those channels; `churners` connection slots reconnect
  // at connect_rate (0: connect_rate x 10, slots for 10 s of reconnecting).
  uint32_t group_size = 10;
  double personal_rate = 5000;
  double group_rate = 4500;
  uint32_t churners = 0;
  // Machinery.
  uint32_t threads = 1;
  std::string source;            // local address to bind, e.g. 127.0.0.2; empty: any
  uint32_t per_process = 18000;  // connections per process before forking workers
  double setup_timeout_s = 60;
  double drain_s = 2;  // after the last publication, wait at most this for deliveries
  int server_pid = 0;  // sample /proc/<pid> once a second when set
  bool progress = true;
  bool phases = false;  // a line on stderr when the measured phase starts (for scripts)
  std::string token;    // sse, http_stream: the connect request's token
};

// One connection's part in the scenario.
struct ConnectionPlan {
  int32_t subscribe = -1;  // channel number, or -1
  int32_t publish = -1;    // channel number, or -1
  uint32_t publisher_id = 0;
  // stand: the group channel, subscribed after the personal one (subscribe); a churner
  // reconnects over and over and is not counted; a stand publisher publishes to its share
  // of every held client's personal and group channels (publisher_id of PublisherCount()).
  int32_t group = -1;
  bool churner = false;
  bool stand_publisher = false;
};

// The stand's layout (run_config.cc): held clients [0, connections), then the publishers,
// then the churners. Channel numbers: personal i = i, group g = connections + g, a churner's
// personal channel after those; each channel is one stream of stamps (Stamp::publisher).
uint32_t StandGroups(const RunConfig& config);
uint32_t StandChurners(const RunConfig& config);
// Held members of group g: group_size, fewer for a last partial group.
uint32_t StandGroupMembers(const RunConfig& config, uint32_t group);
// Connections that set up before measuring (all but the stand's churners) in [begin, end).
uint32_t SetupConnections(const RunConfig& config, uint32_t begin, uint32_t end);

// The scenario the connections actually run (soak runs its `load`).
Scenario Effective(const RunConfig& config);
// -r 0 on fanout or channels: publishers send as fast as they can, an overload on purpose
// (echo at -r 0 is a closed loop instead: each reply sends the next message).
bool IsOverloadTest(const RunConfig& config);
uint32_t TotalConnections(const RunConfig& config);
uint32_t PublisherCount(const RunConfig& config);
// How many subscribers receive each publication (for the undelivered count).
uint64_t ReceiversPerPublication(const RunConfig& config);
ConnectionPlan PlanFor(const RunConfig& config, uint32_t index);

std::string ChannelName(Protocol protocol, int32_t channel);

const char* ProtocolName(Protocol p);
const char* ScenarioName(Scenario s);
bool ParseProtocol(const std::string& name, Protocol& out);
bool ParseScenario(const std::string& name, Scenario& out);
// ws://host:port/path (host an IPv4 address or "localhost"); false with a reason otherwise.
// Sets host/port/path when it is the first and appends a Target.
bool ParseUrl(const std::string& url, RunConfig& config, std::string* error);

}  // namespace hermod::bench
