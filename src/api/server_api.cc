#include "api/server_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <random>

#include "api/channel_pattern.h"
#include "api/methods.h"
#include "api/requests.h"
#include "core/rate_limit.h"
#include "http/response.h"
#include "json/syntax.h"
#include "log/fields.h"
#include "proto/codes.h"
#include "proto/encode.h"
#include "stats/loop_metrics.h"

namespace hermod::api {

namespace {

// What a handler did.
enum class Status : uint8_t {
  kAnswered,    // a result or an error object is in the answer (HTTP 200)
  kNotRequest,  // the body is not the method's request; nothing answered (HTTP 400)
  kTooLarge,    // nothing done, error 106 answered: a publication larger than the broker
                // carries (HTTP 413)
  kNoRoom,      // nothing done, error 106 answered: the answer would not fit (HTTP 413)
};

// A handler's answer: out, and the bytes it may add (a method that acts checks before it
// acts that its answer fits; see RunCommands).
struct Answer {
  std::string& out;
  size_t room = SIZE_MAX;
};

// detail, when given, follows the code's message ("bad request: <detail>"): which field.
void AppendError(std::string& out, proto::ErrorCode code, std::string_view detail = {}) {
  out += "{\"error\":{\"code\":";
  out += std::to_string(static_cast<uint32_t>(code));
  out += ",\"message\":";
  std::string message(proto::ErrorMessage(code));
  if (!detail.empty()) {
    message += ": ";
    message += detail;
  }
  proto::AppendJsonString(out, message);
  out += "}}";
}

Status BadRequest(Answer& a, std::string_view detail = {}) {
  AppendError(a.out, proto::ErrorCode::kBadRequest, detail);
  return Status::kAnswered;
}

// Not run: its answer would not fit. As short as an error gets, since every command not
// run costs one; the log says why.
Status NoRoom(Answer& a) {
  AppendError(a.out, proto::ErrorCode::kLimitExceeded);
  return Status::kNoRoom;
}

void LogNotRun(std::string_view what, size_t not_run, size_t total) {
  log::Write(spdlog::level::info,
             {{"method", what}, {"code", 106}, {"reason", "answer over http.max_response_bytes"}},
             "api {}: {} of {} not run (106), the answer would pass http.max_response_bytes", what,
             not_run, total);
}

// The most one publication's answer takes: a position of a 20-digit offset and an epoch of
// up to 64 bytes, or an error.
constexpr size_t kPublishAnswerBound = 128;
// The most the answer of any other acting method takes ({} or an error with its detail).
constexpr size_t kActAnswerBound = 128;

// A disconnect code the API may send: Centrifugo's custom ranges, 4000-4999 (the
// application's) and 3000-3999 (its own). Anything else is refused: RFC 6455 §7.4 forbids
// 1005, 1006 and 1015 on the wire, 0-999 are unused, and the close frame holds 16 bits.
bool SendableDisconnectCode(uint64_t code) { return code >= 3000 && code <= 4999; }

void AppendPosition(std::string& out, const core::StreamPosition& p) {
  out += '{';
  if (p.offset != 0) {
    out += "\"offset\":";
    out += std::to_string(p.offset);
    out += ",\"epoch\":";
    proto::AppendJsonString(out, p.epoch);
  }
  out += '}';
}

// The channel's options, or false with the error answered: 107 for a name the rules refuse,
// 102 for a namespace that does not exist.
const config::ChannelOptions* OptionsOrError(const ApiContext& api, std::string_view channel,
                                             Answer& a) {
  if (!api.rules.NameAllowed(channel)) {
    BadRequest(a);
    return nullptr;
  }
  const config::ChannelOptions* options = api.rules.Find(channel);
  if (!options) AppendError(a.out, proto::ErrorCode::kUnknownChannel);
  return options;
}

// What publish and broadcast publish: data (or b64data decoded: the JSON protocol publishes
// JSON only, see the header) and the priority (absent: the namespace's default_priority).
// False with 107 answered when either is unusable.
bool Checked(const Publication& p, std::string_view* data, std::optional<net::Priority>* priority,
             Answer& a) {
  if (!p.priority.empty()) *priority = core::ParsePriority(p.priority);
  *data = p.data;
  if (data->empty() && p.has_b64data && json::IsJson(p.decoded_data)) *data = p.decoded_data;
  if ((!p.priority.empty() && !*priority) || data->empty()) {
    BadRequest(a);
    return false;
  }
  return true;
}

// Publishes to one channel through the hub and answers its position or the refusal.
Status PublishTo(const ApiContext& api, std::string_view channel,
                 const config::ChannelOptions& options, const Publication& p, std::string_view data,
                 std::optional<net::Priority> priority, Answer& a) {
  config::ChannelOptions effective = options;
  if (p.skip_history) effective.history_size = 0;
  const core::Hub::PublishResult published =
      api.hub.Publish({channel, &effective, data, {}, p.idempotency_key, p.tags, priority, {}});
  if (published.refusal == core::Hub::Refusal::kTooLarge) {
    // Larger than the cluster's broker carries: published nowhere (106, not temporary).
    AppendError(a.out, proto::ErrorCode::kLimitExceeded);
    return Status::kTooLarge;
  }
  if (!published.ok()) {
    // A loop the channel reaches is over its inbox budget, or the channel is over its
    // namespace's publish_rate_limit: nothing was published. (kPending needs a deferred
    // answer: no engine that completes later is offered yet.)
    AppendError(a.out, published.refusal == core::Hub::Refusal::kStoreFailed
                           ? proto::ErrorCode::kInternal
                           : proto::ErrorCode::kTooManyRequests);
    return Status::kAnswered;
  }
  a.out += "{\"result\":";
  AppendPosition(a.out, published.position);
  a.out += '}';
  return Status::kAnswered;
}

// The per-client methods select connections by user, then client (or session: hermod's
// sessions are its client ids). False with 107 answered when nothing selects.
bool Selected(const ClientSelector& s, std::string* user, std::string* client, Answer& a) {
  if (s.user.empty() && s.client.empty() && s.session.empty()) {
    BadRequest(a);
    return false;
  }
  *user = std::string(s.user);
  *client = std::string(s.client.empty() ? s.session : s.client);
  return true;
}

Status Result(Answer& a, std::string_view result = "{}") {
  a.out += "{\"result\":";
  a.out += result;
  a.out += '}';
  return Status::kAnswered;
}

// --- The handlers, one per row of the table ---

Status Publish(const ApiContext& api, std::string& body, Answer& a) {
  PublishRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string_view data;
  std::optional<net::Priority> priority;
  if (!Checked(r.publication, &data, &priority, a)) return Status::kAnswered;
  const config::ChannelOptions* options = OptionsOrError(api, r.channel, a);
  if (!options) return Status::kAnswered;
  return PublishTo(api, r.channel, *options, r.publication, data, priority, a);
}

Status Broadcast(const ApiContext& api, std::string& body, Answer& a) {
  BroadcastRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string_view data;
  std::optional<net::Priority> priority;
  if (!Checked(r.publication, &data, &priority, a)) return Status::kAnswered;
  if (r.channels.empty()) return BadRequest(a);
  if (a.room < 64 + r.channels.size() * (kPublishAnswerBound + 1)) {
    LogNotRun("broadcast", r.channels.size(), r.channels.size());
    return NoRoom(a);
  }
  a.out += "{\"result\":{\"responses\":[";
  for (size_t i = 0; i < r.channels.size(); ++i) {
    if (i > 0) a.out += ',';
    // A publication too large for the broker is too large on every channel: each says so
    // (106), and the broadcast as a whole is answered (HTTP 200).
    const config::ChannelOptions* options = OptionsOrError(api, r.channels[i], a);
    if (options) PublishTo(api, r.channels[i], *options, r.publication, data, priority, a);
  }
  a.out += "]}}";
  return Status::kAnswered;
}

Status SubscribeOrUnsubscribe(const ApiContext& api, std::string& body, Answer& a, bool subscribe) {
  ChannelForClientsRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string user;
  std::string client;
  if (!Selected(r.clients, &user, &client, a)) return Status::kAnswered;
  if (!OptionsOrError(api, r.channel, a)) return Status::kAnswered;
  std::string channel(r.channel);
  if (subscribe) {
    api.for_each_client(std::move(user), std::move(client),
                        [channel](proto::ClientSession& c) { c.SubscribeFromServer(channel); });
  } else {
    api.for_each_client(std::move(user), std::move(client),
                        [channel](proto::ClientSession& c) { c.UnsubscribeFromServer(channel); });
  }
  return Result(a);
}

Status Subscribe(const ApiContext& api, std::string& body, Answer& a) {
  return SubscribeOrUnsubscribe(api, body, a, true);
}

Status Unsubscribe(const ApiContext& api, std::string& body, Answer& a) {
  return SubscribeOrUnsubscribe(api, body, a, false);
}

Status Disconnect(const ApiContext& api, std::string& body, Answer& a) {
  DisconnectRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string user;
  std::string client;
  if (!Selected(r.clients, &user, &client, a)) return Status::kAnswered;
  if (r.code != 0 && !SendableDisconnectCode(r.code)) {
    return BadRequest(a, "disconnect.code must be 3000..4999");
  }
  const uint16_t code = r.code != 0 ? static_cast<uint16_t>(r.code) : 3503;
  std::string reason = r.code != 0 ? std::string(r.reason) : "force disconnect";
  api.for_each_client(std::move(user), std::move(client),
                      [code, reason = std::move(reason)](proto::ClientSession& c) {
                        c.Disconnect({code, reason});
                      });
  return Result(a);
}

Status Refresh(const ApiContext& api, std::string& body, Answer& a) {
  RefreshRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string user;
  std::string client;
  if (!Selected(r.clients, &user, &client, a)) return Status::kAnswered;
  if (r.expire_at < 0) return BadRequest(a);
  api.for_each_client(std::move(user), std::move(client),
                      [expired = r.expired, expire_at = r.expire_at](proto::ClientSession& c) {
                        c.RefreshFromServer(expired, expire_at);
                      });
  return Result(a);
}

// presence's answer.
void AppendPresence(std::string& out,
                    const std::vector<std::pair<std::string, core::PresenceEntry>>& presence) {
  out += "{\"result\":{\"presence\":{";
  for (size_t i = 0; i < presence.size(); ++i) {
    if (i > 0) out += ',';
    proto::AppendJsonString(out, presence[i].first);
    out += ':';
    out += presence[i].second.info;
  }
  out += "}}}";
}

// history's answer, or 112 for a `since` of another epoch.
void AppendHistory(std::string& out, const core::Hub::HistoryResult& h) {
  if (h.unrecoverable) {
    AppendError(out, proto::ErrorCode::kUnrecoverablePosition);
    return;
  }
  out += "{\"result\":{\"publications\":[";
  for (size_t i = 0; i < h.publications.size(); ++i) {
    if (i > 0) out += ',';
    out += h.publications[i];
  }
  out += "],\"epoch\":";
  proto::AppendJsonString(out, h.position.epoch);
  out += ",\"offset\":" + std::to_string(h.position.offset) + "}}";
}

// The channel's options when it keeps presence; else false with the error answered.
const config::ChannelOptions* PresenceOptions(const ApiContext& api, std::string_view channel,
                                              Answer& a) {
  const config::ChannelOptions* options = OptionsOrError(api, channel, a);
  if (options && !options->presence) {
    AppendError(a.out, proto::ErrorCode::kNotAvailable);
    return nullptr;
  }
  return options;
}

Status Presence(const ApiContext& api, std::string& body, Answer& a) {
  ChannelRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (!PresenceOptions(api, r.channel, a)) return Status::kAnswered;
  AppendPresence(a.out, api.hub.Presence(r.channel));
  return Status::kAnswered;
}

Status PresenceStats(const ApiContext& api, std::string& body, Answer& a) {
  ChannelRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (!PresenceOptions(api, r.channel, a)) return Status::kAnswered;
  const auto [clients, users] = api.hub.PresenceStats(r.channel);
  return Result(a, "{\"num_clients\":" + std::to_string(clients) +
                       ",\"num_users\":" + std::to_string(users) + "}");
}

Status History(const ApiContext& api, std::string& body, Answer& a) {
  HistoryRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  const config::ChannelOptions* options = OptionsOrError(api, r.channel, a);
  if (!options) return Status::kAnswered;
  if (options->history_size == 0) {
    AppendError(a.out, proto::ErrorCode::kNotAvailable);
    return Status::kAnswered;
  }
  AppendHistory(a.out, api.hub.History(r.channel, *options, r.has_since ? &r.since : nullptr,
                                       r.limit, r.reverse));
  return Status::kAnswered;
}

Status HistoryRemove(const ApiContext& api, std::string& body, Answer& a) {
  ChannelRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (!OptionsOrError(api, r.channel, a)) return Status::kAnswered;
  api.hub.RemoveHistory(r.channel);
  return Result(a);
}

Status Channels(const ApiContext& api, std::string& body, Answer& a) {
  ChannelsRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (!ChannelPattern::Valid(r.pattern)) return BadRequest(a);
  a.out += "{\"result\":{\"channels\":{";
  bool first = true;
  for (const auto& [name, count] : api.hub.Channels()) {
    if (!r.pattern.empty() && !ChannelPattern::Matches(r.pattern, name)) continue;
    if (!first) a.out += ',';
    first = false;
    proto::AppendJsonString(a.out, name);
    a.out += ":{\"num_clients\":" + std::to_string(count) + "}";
  }
  a.out += "}}}";
  return Status::kAnswered;
}

// Centrifugo's Node object, for this one node.
Status Info(const ApiContext& api, std::string& body, Answer& a) {
  if (!ParseEmpty(body)) return Status::kNotRequest;
  size_t channels = 0;
  size_t subscriptions = 0;
  for (const auto& [name, count] : api.hub.Channels()) {
    ++channels;
    subscriptions += count;
  }
  auto [clients, users] = api.node.clients ? api.node.clients() : std::pair<size_t, size_t>{0, 0};
  a.out += "{\"result\":{\"nodes\":[{\"uid\":";
  proto::AppendJsonString(a.out, api.uid);
  a.out += ",\"name\":\"hermod\",\"version\":";
  proto::AppendJsonString(a.out, api.node.version);
  a.out += ",\"num_clients\":" + std::to_string(clients);
  a.out += ",\"num_users\":" + std::to_string(users);
  a.out += ",\"num_channels\":" + std::to_string(channels);
  a.out += ",\"uptime\":" + std::to_string((net::Loop::MonotonicMs() - api.started_ms) / 1000);
  a.out += ",\"num_subs\":" + std::to_string(subscriptions);
  a.out += "}]}}";
  return Status::kAnswered;
}

Status Batch(const ApiContext& api, std::string& body, Answer& a);

// --- The table ---

using Handler = Status (*)(const ApiContext& api, std::string& body, Answer& a);
enum class Effect : uint8_t {
  kReads,  // answers what is; an answer too long for a batch is replaced, nothing lost
  kActs,   // publishes, reaches clients or removes: it runs only when its answer fits
};
struct Method {
  std::string_view name;  // the route /api/<name> and the metric label
  Handler handle;
  Effect effect;
};

constexpr Method kTable[] = {
    {"publish", Publish, Effect::kActs},       {"broadcast", Broadcast, Effect::kActs},
    {"subscribe", Subscribe, Effect::kActs},   {"unsubscribe", Unsubscribe, Effect::kActs},
    {"disconnect", Disconnect, Effect::kActs}, {"refresh", Refresh, Effect::kActs},
    {"presence", Presence, Effect::kReads},    {"presence_stats", PresenceStats, Effect::kReads},
    {"history", History, Effect::kReads},      {"history_remove", HistoryRemove, Effect::kActs},
    {"channels", Channels, Effect::kReads},    {"info", Info, Effect::kReads},
    {"batch", Batch, Effect::kActs},
};

constexpr bool TableMatchesMethodNames() {
  if (std::size(kTable) != kMethodNames.size()) return false;
  for (size_t i = 0; i < kMethodNames.size(); ++i) {
    if (kTable[i].name != kMethodNames[i]) return false;
  }
  return true;
}
static_assert(TableMatchesMethodNames(), "api/methods.h names the table's rows, in order");
static_assert(kMethodLabels.size() <= stats::kMaxMethods,
              "the per-loop counters have a slot per label");

const Method* Find(std::string_view name) {
  for (const Method& m : kTable) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

// --- Several commands in one answer: batch and the legacy /api body ---

enum class Envelope : uint8_t {
  kBatch,   // {"replies":[{"<method>":result} or {"error":...}, ...]}
  kLegacy,  // one {"id":N,"result":...} or {"id":N,"error":...} per line
};

constexpr std::string_view kResultKey = "{\"result\":";
// What an envelope may add to a lone call's answer: a method name longer than "result",
// or `"id":4294967295,`.
constexpr size_t kEnvelopeSlack = 24;

// Appends a lone call's answer ({"result":X} or {"error":E}) as command's envelope has it.
void AppendEnveloped(std::string& out, Envelope envelope, const Command& command,
                     std::string_view answer) {
  if (envelope == Envelope::kBatch) {
    if (!answer.starts_with(kResultKey)) {
      out += answer;
      return;
    }
    out += '{';
    proto::AppendJsonString(out, command.method);
    out += ':';
    out += answer.substr(kResultKey.size());
    return;
  }
  if (command.id == 0) {
    out += answer;
    return;
  }
  out += "{\"id\":";
  out += std::to_string(command.id);
  out += ',';
  out += answer.substr(1);
}

// Runs one command into answer; the table row it ran (null: none).
const Method* RunOne(const ApiContext& api, Envelope envelope, Command& command, Answer& a,
                     Status* status) {
  *status = Status::kAnswered;
  const Method* method = command.method == "batch" ? nullptr : Find(command.method);
  if (!method) {
    // A batch command that is not one method, or a nested batch, is a bad command; a name
    // the table does not have is 104. The legacy route has no batch: 104 too.
    if (envelope == Envelope::kBatch && (command.method.empty() || command.method == "batch")) {
      BadRequest(a);
    } else {
      AppendError(a.out, proto::ErrorCode::kMethodNotFound);
    }
    return nullptr;
  }
  if (method->effect == Effect::kActs && a.room < kActAnswerBound) {
    *status = NoRoom(a);
    return method;
  }
  *status = method->handle(api, command.params, a);
  if (*status == Status::kNotRequest) BadRequest(a);
  return method;
}

// Runs commands in order into one answer that takes at most room bytes: every command gets
// an answer, and a command runs only while its answer fits beside the least the answers
// after it take (106, undone). From the first that does not fit, the rest are undone too,
// so that what was done is a prefix of what was asked.
Status RunCommands(const ApiContext& api, Envelope envelope, std::vector<Command>& commands,
                   Answer& a) {
  const bool batch = envelope == Envelope::kBatch;
  const std::string_view open = batch ? "{\"replies\":[" : "";
  const std::string_view close = batch ? "]}" : "";
  std::string undone;
  AppendError(undone, proto::ErrorCode::kLimitExceeded);
  // reserve[i]: what the answers of commands i.. take at least, with their separators.
  std::vector<size_t> reserve(commands.size() + 1, close.size());
  std::string enveloped;
  for (size_t i = commands.size(); i-- > 0;) {
    enveloped.clear();
    AppendEnveloped(enveloped, envelope, commands[i], undone);
    reserve[i] = reserve[i + 1] + enveloped.size() + 1;
  }
  const std::string_view what = batch ? "batch" : "/api";
  if (a.room < open.size() + reserve[0]) {  // not even the refusals fit: nothing runs
    LogNotRun(what, commands.size(), commands.size());
    return NoRoom(a);
  }
  const size_t limit = a.out.size() + a.room;
  a.out += open;
  std::string answer;
  bool full = false;
  size_t not_run = 0;
  for (size_t i = 0; i < commands.size(); ++i) {
    if (i > 0) a.out += batch ? ',' : '\n';
    Command& command = commands[i];
    const size_t start = a.out.size();
    if (!full) {
      // The room left for this answer once the rest are reserved: at least the refusal's
      // size, unless an acting command before took more than its bound.
      const size_t used = start + reserve[i + 1];
      const size_t left = limit > used ? limit - used : 0;
      answer.clear();
      Answer one{answer, left > kEnvelopeSlack ? left - kEnvelopeSlack : 0};
      Status status;
      const uint64_t started_us = batch ? 0 : net::Loop::MonotonicUs();
      const Method* method = RunOne(api, envelope, command, one, &status);
      if (!batch) {
        // The legacy route counts each command as its method's call.
        stats::RecordApiCall(MethodLabelIndex(method ? method->name : kUnknownMethod),
                             net::Loop::MonotonicUs() - started_us);
      }
      AppendEnveloped(a.out, envelope, command, answer);
      if (a.out.size() - start <= left) {
        full = status == Status::kNoRoom;
        not_run += full;
        continue;
      }
      if (method && method->effect == Effect::kActs) {
        // Done, and answered even though longer than its bound said: the work is reported.
        continue;
      }
      a.out.resize(start);  // a read too long to fit: nothing done, nothing lost
      full = true;
    }
    AppendEnveloped(a.out, envelope, command, undone);
    ++not_run;
  }
  a.out += close;
  if (not_run > 0) LogNotRun(what, not_run, commands.size());
  return Status::kAnswered;
}

Status Batch(const ApiContext& api, std::string& body, Answer& a) {
  BatchRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  return RunCommands(api, Envelope::kBatch, r.commands, a);
}

int HttpStatus(Status status) {
  switch (status) {
    case Status::kAnswered:
      return 200;
    case Status::kNotRequest:
      return 400;
    case Status::kTooLarge:
    case Status::kNoRoom:
      return 413;
  }
  return 500;
}

// What an API answer may take of http.max_response_bytes: the rest is the status line and
// headers (BuildResponse writes about 130 bytes) and the final newline.
constexpr size_t kResponseHeadBound = 256;

size_t AnswerRoom(uint64_t max_response_bytes) {
  return max_response_bytes > kResponseHeadBound ? max_response_bytes - kResponseHeadBound : 0;
}

}  // namespace

ServerApi::ServerApi(core::Hub& hub, const core::ChannelRules& rules, std::string api_key,
                     ForEachClientFn for_each_client, NodeInfo node)
    : api_key_(std::move(api_key)), context_{hub,
                                             rules,
                                             std::move(for_each_client),
                                             std::move(node),
                                             {},
                                             net::Loop::MonotonicMs()} {
  std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) context_.uid += '-';
    context_.uid += kHex[random() & 15];
  }
}

std::vector<std::string> ServerApi::Routes() {
  std::vector<std::string> routes{"/api"};
  for (const Method& m : kTable) routes.push_back("/api/" + std::string(m.name));
  return routes;
}

bool ServerApi::Authorized(const http::Request& request) const {
  if (api_key_.empty()) return false;
  std::string_view authorization = request.Header("Authorization");
  constexpr std::string_view kScheme = "apikey ";
  if (authorization.size() > kScheme.size() &&
      http::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return authorization.substr(kScheme.size()) == api_key_;
  }
  return request.Header("X-API-Key") == api_key_;
}

void ServerApi::Handle(http::HttpConnection& connection, http::Request& request) const {
  const bool keep_alive = request.keep_alive;
  std::string_view path = request.Path();
  const bool legacy = path == "/api";
  std::string_view method = path.substr(path.rfind('/') + 1);
  if (!Authorized(request)) {
    // A wrong key is worth a line (a misconfigured backend, or someone guessing), but a
    // flood of them must not flood the log: at most one a second per loop.
    thread_local core::LogThrottle unauthorized_log;
    uint64_t suppressed = 0;
    if (spdlog::should_log(spdlog::level::info) &&
        unauthorized_log.Allow(connection.loop().now_ms(), &suppressed)) {
      const std::string remote = connection.PeerIp();
      log::Write(spdlog::level::info,
                 {{"method", method},
                  {"code", 401},
                  {"reason", "bad or missing API key"},
                  {"remote", remote}},
                 "api {} from {}: refused with 401, bad or missing API key ({} more since)", method,
                 remote, suppressed);
    }
    connection.Respond(http::BuildResponse(401, "text/plain", "unauthorized\n", keep_alive),
                       keep_alive);
    return;
  }
  std::string out;
  const size_t room = AnswerRoom(connection.max_response_bytes());
  int status;
  if (legacy) {
    status = CallLegacy(request.body, out, room);  // counts each command as its method
  } else {
    const uint64_t started_us = net::Loop::MonotonicUs();
    status = Call(method, request.body, out, room);
    stats::RecordApiCall(MethodLabelIndex(method), net::Loop::MonotonicUs() - started_us);
  }
  if (status == 400) {
    log::Write(spdlog::level::debug, {{"method", method}, {"code", 400}, {"reason", "bad request"}},
               "api {}: bad request body", method);
    connection.Respond(http::BuildResponse(400, "text/plain", "bad request\n", keep_alive),
                       keep_alive);
    return;
  }
  if (status == 404) {
    connection.Respond(http::BuildResponse(404, "text/plain", "not found\n", keep_alive),
                       keep_alive);
    return;
  }
  out += '\n';
  // 413: nothing was done (a publication larger than the cluster's broker carries, or an
  // answer that would not fit); the body is the error (106), and the status tells HTTP
  // clients that check only statuses: never a 200.
  connection.Respond(http::BuildResponse(status, "application/json", out, keep_alive), keep_alive);
}

int ServerApi::Call(std::string_view method, std::string& body, std::string& out,
                    size_t reply_limit) const {
  const Method* row = Find(method);
  if (!row) return 404;
  Answer a{out, reply_limit};
  return HttpStatus(row->handle(context_, body, a));
}

int ServerApi::CallLegacy(std::string& body, std::string& out, size_t reply_limit) const {
  std::vector<Command> commands;
  if (!ParseLegacy(body, &commands) || commands.empty()) return 400;
  Answer a{out, reply_limit};
  return HttpStatus(RunCommands(context_, Envelope::kLegacy, commands, a));
}

}  // namespace hermod::api
