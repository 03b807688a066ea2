#include "api/server_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <optional>
#include <random>

#include "api/channel_pattern.h"
#include "api/inbox_api.h"
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
  kFull,        // nothing done, error 111 answered: the inbox is full (HTTP 429)
};

}  // namespace

// An answer with pieces an engine gives later (a publication's position, a history page,
// presence): each a hole at an offset of the answer's text, filled on the requester's loop
// (completions run there, so nothing here is shared between threads). Once the last is
// filled, the pieces are spliced in and `done` gets the whole answer.
struct LaterPieces {
  std::string out;  // the text around the holes, once the handler has returned
  std::vector<std::pair<size_t, std::string>> pieces;  // (offset in out, text), in order
  size_t outstanding = 0;
  std::function<void(std::string)> done;  // set before the loop runs a completion

  void Fill(size_t index, std::string text) {
    pieces[index].second = std::move(text);
    if (--outstanding > 0) return;
    std::string whole;
    size_t at = 0;
    for (auto& [offset, piece] : pieces) {
      whole.append(out, at, offset - at);
      whole += piece;
      at = offset;
    }
    whole.append(out, at);
    if (done) std::exchange(done, nullptr)(std::move(whole));
  }
};

void LaterAnswer::Then(std::function<void(int status, std::string answer)> fn) {
  pieces_->done = [status = status_, fn = std::move(fn)](std::string answer) {
    fn(status, std::move(answer));
  };
}

namespace {

// A handler's answer: out, and the bytes it may add (a method that acts checks before it
// acts that its answer fits; see RunCommands).
struct Answer {
  std::string& out;
  size_t room = SIZE_MAX;
  // The requester's loop when it can wait for an engine that answers later; null: it cannot.
  net::Loop* loop = nullptr;
  std::shared_ptr<LaterPieces> later;  // made by the first piece that may come later
  // Not empty: a scheduled publication firing (ServerApi::Fire), keyed by this when it has
  // no idempotency_key of its own; its delay and deliver_at are done with.
  std::string_view fire_key = {};

  bool waits() const { return later && later->outstanding > 0; }
};

// Where the answer of an engine that may answer later goes: a hole at the end of the answer
// (opened only once the engine said it answers later: nothing else is written meanwhile).
class Hole {
 public:
  explicit Hole(Answer& a) {
    if (!a.later) a.later = std::make_shared<LaterPieces>();
    later_ = a.later;
    index_ = later_->pieces.size();
  }
  void Open(Answer& a) const {
    later_->pieces.emplace_back(a.out.size(), std::string());
    ++later_->outstanding;
  }
  void Fill(std::string text) const { later_->Fill(index_, std::move(text)); }

 private:
  std::shared_ptr<LaterPieces> later_;
  size_t index_ = 0;
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
  if (core::IsFireKey(p.idempotency_key)) {
    // The scheduler's own keys, kept until their schedule is forgotten (core::FireKey).
    BadRequest(a, "idempotency_key: the hermod-schedule: prefix is reserved");
    return false;
  }
  return true;
}

// A publication's position, or why it was refused.
Status AppendPublished(std::string& out, const core::Hub::PublishResult& published) {
  if (published.refusal == core::Hub::Refusal::kTooLarge) {
    // Larger than the cluster's broker carries: published nowhere (106, not temporary).
    AppendError(out, proto::ErrorCode::kLimitExceeded);
    return Status::kTooLarge;
  }
  if (!published.ok()) {
    // A loop the channel reaches is over its inbox budget, or the channel is over its
    // namespace's publish_rate_limit, or the engine could not store it: nothing was
    // published.
    AppendError(out, published.refusal == core::Hub::Refusal::kStoreFailed
                         ? proto::ErrorCode::kInternal
                         : proto::ErrorCode::kTooManyRequests);
    return Status::kAnswered;
  }
  out += "{\"result\":";
  AppendPosition(out, published.position);
  out += '}';
  return Status::kAnswered;
}

// Publishes to an inbox (core/inbox.h) and answers its offset and epoch once stored (in a
// hole when the requester can wait), or the refusal of a full inbox at once.
Status InboxPublishTo(const ApiContext& api, std::string_view channel, std::string_view data,
                      Answer& a) {
  // A firing's key goes with the entry (a durable engine then publishes it once however it
  // is repeated); a caller's idempotency_key has no effect on an inbox.
  if (!core::ChannelRules::IsUserLimited(channel)) {
    return BadRequest(a, "an inbox channel names its user: <namespace>:#<user>");
  }
  std::optional<Hole> hole;
  core::Completion<core::Inbox::Published> done;
  if (a.loop != nullptr) {
    hole.emplace(a);
    done = core::Completion<core::Inbox::Published>(*a.loop,
                                                    [h = *hole](core::Inbox::Published published) {
                                                      std::string text;
                                                      AppendInboxPublished(text, published);
                                                      h.Fill(std::move(text));
                                                    });
  }
  const core::InboxAppended::Status status =
      api.inbox->Publish(channel, data, std::move(done), a.fire_key);
  if (status != core::InboxAppended::Status::kOk) {
    core::Inbox::Published refused;
    refused.status = status;
    AppendInboxPublished(a.out, refused);
    return status == core::InboxAppended::Status::kFull ? Status::kFull : Status::kAnswered;
  }
  if (hole) {
    hole->Open(a);
  } else {
    a.out += "{\"result\":{}}";  // stored later, and nobody waits for its position
  }
  return Status::kAnswered;
}

// Publishes to one channel through the hub and answers its position or the refusal (later,
// in a hole, when the engine stores it later and the requester can wait).
Status PublishTo(const ApiContext& api, std::string_view channel,
                 const config::ChannelOptions& options, const Publication& p, std::string_view data,
                 std::optional<net::Priority> priority, Answer& a) {
  if (options.inbox && api.inbox != nullptr) return InboxPublishTo(api, channel, data, a);
  config::ChannelOptions effective = options;
  if (p.skip_history) effective.history_size = 0;
  core::Hub::PublishRequest request{channel,           &effective, data,     {},
                                    p.idempotency_key, p.tags,     priority, {}};
  request.delta = p.delta;
  std::optional<Hole> hole;
  if (a.loop != nullptr && !api.hub.history_inline()) {
    // Answered once the engine has stored it (the memory engine answers at once, no hole).
    hole.emplace(a);
    request.done = core::Completion<core::Hub::PublishResult>(
        *a.loop, [h = *hole](core::Hub::PublishResult published) {
          std::string text;
          AppendPublished(text, published);
          h.Fill(std::move(text));
        });
  }
  const core::Hub::PublishResult published = api.hub.Publish(std::move(request));
  if (published.refusal == core::Hub::Refusal::kPending) {
    if (hole) {
      hole->Open(a);
    } else {
      a.out += "{\"result\":{}}";  // stored later, and nobody waits for its position
    }
    return Status::kAnswered;
  }
  return AppendPublished(a.out, published);
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

// The answer to a scheduled publish or broadcast, once the store has it.
void AppendScheduled(std::string& out, bool stored, const std::string& id, int64_t at) {
  if (!stored) {
    AppendError(out, proto::ErrorCode::kInternal);
    return;
  }
  out += "{\"result\":{\"schedule_id\":";
  proto::AppendJsonString(out, id);
  out += ",\"deliver_at\":" + std::to_string(at) + "}}";
}

// publish or broadcast with `delay` or `deliver_at`: checked (107 naming the field),
// stored by the scheduler, answered with its schedule_id once stored (on disk for a
// durable engine).
Status Schedule(const ApiContext& api, std::string method, std::vector<std::string> channels,
                std::string_view params, const Publication& p, Answer& a) {
  if (api.scheduler == nullptr) {
    AppendError(a.out, proto::ErrorCode::kNotAvailable, "scheduled delivery");
    return Status::kAnswered;
  }
  if (!p.bad_field.empty()) return BadRequest(a, p.bad_field);
  if (p.has_delay && p.has_deliver_at) return BadRequest(a, "delay and deliver_at: give one");
  const int64_t now = core::Scheduler::WallMs();
  const uint64_t max = api.scheduler->max_delay_ms();
  int64_t at = p.deliver_at_ms;
  if (p.has_delay) {
    if (p.delay_ms > max) return BadRequest(a, "delay: more than schedule_max_delay");
    at = now + static_cast<int64_t>(p.delay_ms);
  } else if (at < 0) {
    return BadRequest(a, "deliver_at");
  } else if (at > now && static_cast<uint64_t>(at - now) > max) {
    return BadRequest(a, "deliver_at: more than schedule_max_delay ahead");
  }
  if (a.room < kPublishAnswerBound) return NoRoom(a);
  core::ScheduledPublication s{{}, std::move(method), std::move(channels), std::string(params), at,
                               0};
  if (a.loop == nullptr) {
    // Nobody can wait on a loop: this thread waits for the store.
    std::promise<std::pair<bool, std::string>> stored;
    api.scheduler->Add(std::move(s), [&stored](bool ok, std::string id) {
      stored.set_value({ok, std::move(id)});
    });
    const auto [ok, id] = stored.get_future().get();
    AppendScheduled(a.out, ok, id, at);
    return Status::kAnswered;
  }
  const Hole hole(a);
  hole.Open(a);
  api.scheduler->Add(std::move(s), [done = core::Completion<std::pair<bool, std::string>>(
                                        *a.loop, [hole, at](std::pair<bool, std::string> r) {
                                          std::string text;
                                          AppendScheduled(text, r.first, r.second, at);
                                          hole.Fill(std::move(text));
                                        })](bool ok, std::string id) mutable {
    done({ok, std::move(id)});
  });
  return Status::kAnswered;
}

// --- The handlers, one per row of the table ---

Status Publish(const ApiContext& api, std::string& body, Answer& a) {
  const size_t size = body.size();  // Parse pads body: the call as it came is its start
  PublishRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string_view data;
  std::optional<net::Priority> priority;
  if (!Checked(r.publication, &data, &priority, a)) return Status::kAnswered;
  const config::ChannelOptions* options = OptionsOrError(api, r.channel, a);
  if (!options) return Status::kAnswered;
  if (a.fire_key.empty() && r.publication.scheduled()) {
    return Schedule(api, "publish", {std::string(r.channel)}, std::string_view(body.data(), size),
                    r.publication, a);
  }
  if (r.publication.idempotency_key.empty()) r.publication.idempotency_key = a.fire_key;
  return PublishTo(api, r.channel, *options, r.publication, data, priority, a);
}

Status Broadcast(const ApiContext& api, std::string& body, Answer& a) {
  const size_t size = body.size();
  BroadcastRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  std::string_view data;
  std::optional<net::Priority> priority;
  if (!Checked(r.publication, &data, &priority, a)) return Status::kAnswered;
  if (r.channels.empty()) return BadRequest(a);
  if (a.fire_key.empty() && r.publication.scheduled()) {
    // Every channel is checked now: a scheduled broadcast is refused whole, not at its time.
    std::vector<std::string> channels;
    for (std::string_view channel : r.channels) {
      if (!OptionsOrError(api, channel, a)) return Status::kAnswered;
      channels.emplace_back(channel);
    }
    return Schedule(api, "broadcast", std::move(channels), std::string_view(body.data(), size),
                    r.publication, a);
  }
  if (r.publication.idempotency_key.empty()) r.publication.idempotency_key = a.fire_key;
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
void AppendPresence(std::string& out, const core::PresenceList& presence) {
  if (presence.failed) {  // the engine's server unreachable: an error, not an empty list
    AppendError(out, proto::ErrorCode::kInternal);
    return;
  }
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
  if (h.failed || h.pending) {  // pending: an engine that answers later, and nobody waits
    AppendError(out, proto::ErrorCode::kInternal);
    return;
  }
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
  if (a.loop == nullptr || api.hub.presence_inline()) {
    AppendPresence(a.out, api.hub.Presence(r.channel));
    return Status::kAnswered;
  }
  const Hole hole(a);
  hole.Open(a);  // with a completion, the answer always comes through it
  api.hub.Presence(
      r.channel, core::Completion<core::PresenceList>(*a.loop, [hole](core::PresenceList presence) {
        std::string text;
        AppendPresence(text, presence);
        hole.Fill(std::move(text));
      }));
  return Status::kAnswered;
}

void AppendPresenceStats(std::string& out, size_t clients, size_t users) {
  out += "{\"result\":{\"num_clients\":" + std::to_string(clients) +
         ",\"num_users\":" + std::to_string(users) + "}}";
}

Status PresenceStats(const ApiContext& api, std::string& body, Answer& a) {
  ChannelRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (!PresenceOptions(api, r.channel, a)) return Status::kAnswered;
  if (a.loop == nullptr || api.hub.presence_inline()) {
    const auto [clients, users] = api.hub.PresenceStats(r.channel);
    AppendPresenceStats(a.out, clients, users);
    return Status::kAnswered;
  }
  const Hole hole(a);
  hole.Open(a);
  api.hub.PresenceStats(r.channel, core::Completion<core::PresenceCounts>(
                                       *a.loop, [hole](core::PresenceCounts counts) {
                                         std::string text;
                                         if (counts.failed) {
                                           AppendError(text, proto::ErrorCode::kInternal);
                                         } else {
                                           AppendPresenceStats(text, counts.clients, counts.users);
                                         }
                                         hole.Fill(std::move(text));
                                       }));
  return Status::kAnswered;
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
  const core::StreamPosition* since = r.has_since ? &r.since : nullptr;
  if (a.loop == nullptr || api.hub.history_inline()) {
    AppendHistory(a.out, api.hub.History(r.channel, *options, since, r.limit, r.reverse));
    return Status::kAnswered;
  }
  const Hole hole(a);
  const core::Hub::HistoryResult now =
      api.hub.History(r.channel, *options, since, r.limit, r.reverse, SIZE_MAX,
                      core::Completion<core::HistoryPage>(*a.loop, [hole](core::HistoryPage page) {
                        std::string text;
                        AppendHistory(text, page);
                        hole.Fill(std::move(text));
                      }));
  if (now.pending) {
    hole.Open(a);
  } else {
    AppendHistory(a.out, now);  // a channel the engine holds nothing of yet
  }
  return Status::kAnswered;
}

Status HistoryRemove(const ApiContext& api, std::string& body, Answer& a) {
  ChannelRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  const config::ChannelOptions* options = OptionsOrError(api, r.channel, a);
  if (!options) return Status::kAnswered;
  if (a.loop == nullptr || api.hub.history_inline()) {
    api.hub.RemoveHistory(r.channel, *options);
    return Result(a);
  }
  // A durable engine: answered once the removal is stored, or with an error (never 200 for
  // a removal the engine then failed to make).
  const Hole hole(a);
  const std::optional<bool> now = api.hub.RemoveHistory(
      r.channel, *options, core::Completion<bool>(*a.loop, [hole](bool removed) {
        std::string text;
        if (removed) {
          text = "{\"result\":{}}";
        } else {
          AppendError(text, proto::ErrorCode::kInternal);
        }
        hole.Fill(std::move(text));
      }));
  if (!now) {
    hole.Open(a);
  } else if (*now) {
    Result(a);
  } else {
    AppendError(a.out, proto::ErrorCode::kInternal);
  }
  return Status::kAnswered;
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

void AppendScheduledItem(std::string& out, const core::ScheduledPublication& p) {
  out += "{\"schedule_id\":";
  proto::AppendJsonString(out, p.id);
  out += ",\"method\":";
  proto::AppendJsonString(out, p.method);
  out += ",\"channels\":[";
  for (size_t i = 0; i < p.channels.size(); ++i) {
    if (i > 0) out += ',';
    proto::AppendJsonString(out, p.channels[i]);
  }
  out += "],\"deliver_at\":" + std::to_string(p.deliver_at_ms);
  out += ",\"created_at\":" + std::to_string(p.created_ms) + "}";
}

// Pending scheduled publications, oldest deliver_at first, a page at a time (`cursor`
// from the previous page; absent in the answer on the last).
Status Scheduled(const ApiContext& api, std::string& body, Answer& a) {
  ScheduledRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (api.scheduler == nullptr) return Result(a, R"({"scheduled":[]})");  // nothing pending
  if (r.limit < 0 || r.limit > 1000) return BadRequest(a, "limit must be 0..1000");
  const core::Scheduler::Page page =
      api.scheduler->List(r.channel, r.cursor, r.limit == 0 ? 100 : static_cast<size_t>(r.limit));
  a.out += "{\"result\":{\"scheduled\":[";
  for (size_t i = 0; i < page.items.size(); ++i) {
    if (i > 0) a.out += ',';
    AppendScheduledItem(a.out, page.items[i]);
  }
  a.out += ']';
  if (!page.cursor.empty()) {
    a.out += ",\"cursor\":";
    proto::AppendJsonString(a.out, page.cursor);
  }
  a.out += "}}";
  return Status::kAnswered;
}

void AppendCancelled(std::string& out, bool cancelled) {
  if (cancelled) {
    out += "{\"result\":{}}";
  } else {
    AppendError(out, proto::ErrorCode::kBadRequest, "schedule_id: not pending");
  }
}

// Cancels a pending scheduled publication: answered once the store forgot it.
Status ScheduledCancel(const ApiContext& api, std::string& body, Answer& a) {
  ScheduleCancelRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  if (api.scheduler == nullptr) {
    AppendError(a.out, proto::ErrorCode::kNotAvailable, "scheduled delivery");
    return Status::kAnswered;
  }
  if (r.schedule_id.empty()) return BadRequest(a, "schedule_id");
  if (a.loop == nullptr) {
    std::promise<bool> cancelled;
    api.scheduler->Cancel(std::string(r.schedule_id),
                          [&cancelled](bool ok) { cancelled.set_value(ok); });
    AppendCancelled(a.out, cancelled.get_future().get());
    return Status::kAnswered;
  }
  const Hole hole(a);
  hole.Open(a);
  api.scheduler->Cancel(std::string(r.schedule_id),
                        [done = core::Completion<bool>(*a.loop, [hole](bool ok) {
                           std::string text;
                           AppendCancelled(text, ok);
                           hole.Fill(std::move(text));
                         })](bool ok) mutable { done(ok); });
  return Status::kAnswered;
}

Status Batch(const ApiContext& api, std::string& body, Answer& a);

// The inboxes' methods (api/inbox_api.h).
template <bool (*call)(core::Inbox*, std::string&, std::string&)>
Status InboxCall(const ApiContext& api, std::string& body, Answer& a) {
  return call(api.inbox, body, a.out) ? Status::kAnswered : Status::kNotRequest;
}

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
    {"publish", Publish, Effect::kActs},
    {"broadcast", Broadcast, Effect::kActs},
    {"subscribe", Subscribe, Effect::kActs},
    {"unsubscribe", Unsubscribe, Effect::kActs},
    {"disconnect", Disconnect, Effect::kActs},
    {"refresh", Refresh, Effect::kActs},
    {"presence", Presence, Effect::kReads},
    {"presence_stats", PresenceStats, Effect::kReads},
    {"history", History, Effect::kReads},
    {"history_remove", HistoryRemove, Effect::kActs},
    {"channels", Channels, Effect::kReads},
    {"info", Info, Effect::kReads},
    {"batch", Batch, Effect::kActs},
    {"inbox_status", InboxCall<InboxStatusCall>, Effect::kReads},
    {"dead_letters", InboxCall<DeadLettersCall>, Effect::kReads},
    {"dead_letters_redrive", InboxCall<DeadLettersRedriveCall>, Effect::kActs},
    {"dead_letters_remove", InboxCall<DeadLettersRemoveCall>, Effect::kActs},
    {"scheduled", Scheduled, Effect::kReads},
    {"scheduled_cancel", ScheduledCancel, Effect::kActs},
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
// so that what was done is a prefix of what was asked. A command an engine answers later
// holds the ones after it: they run once its answer is in (on the requester's loop). With
// parallel (a batch's flag), a publish answered later does not hold the ones after it:
// they run at once (each engine still keeps the order in which they were called, so a
// batch of inbox publications is stored in order, in one group commit), its answer keeps
// its place, and it is counted at its bound (kPublishAnswerBound) meanwhile.
class CommandRun : public std::enable_shared_from_this<CommandRun> {
 public:
  CommandRun(const ApiContext& api, Envelope envelope, std::vector<Command> commands, size_t room,
             net::Loop* loop, bool parallel = false)
      : api_(api),
        envelope_(envelope),
        commands_(std::move(commands)),
        loop_(loop),
        parallel_(parallel),
        limit_(room),
        reserve_(commands_.size() + 1, close().size()) {
    AppendError(undone_, proto::ErrorCode::kLimitExceeded);
    // reserve_[i]: what the answers of commands i.. take at least, with their separators.
    std::string enveloped;
    for (size_t i = commands_.size(); i-- > 0;) {
      enveloped.clear();
      AppendEnveloped(enveloped, envelope_, commands_[i], undone_);
      reserve_[i] = reserve_[i + 1] + enveloped.size() + 1;
    }
  }

  // Whether even the refusals fit in room: if not, nothing runs.
  bool Fits() const { return limit_ >= open().size() + reserve_[0]; }
  size_t size() const { return commands_.size(); }
  std::string_view what() const { return batch() ? "batch" : "/api"; }

  // Runs the commands; true: all are answered (out()), false: a command waits for an
  // engine, and done gets the answer once all are in.
  bool Start() {
    out_ += open();
    return Step();
  }
  std::string& out() { return out_; }
  void set_done(std::function<void(std::string)> done) { done_ = std::move(done); }

 private:
  bool batch() const { return envelope_ == Envelope::kBatch; }
  std::string_view open() const { return batch() ? "{\"replies\":[" : ""; }
  std::string_view close() const { return batch() ? "]}" : ""; }

  // Runs commands from next_ until one waits for an engine (false) or all are answered.
  bool Step() {
    for (; next_ < commands_.size(); ++next_) {
      if (next_ > 0) out_ += batch() ? ',' : '\n';
      start_ = out_.size();
      if (full_) {
        Undone();
        continue;
      }
      // The room left for this answer once the rest are reserved: at least the refusal's
      // size, unless an acting command before took more than its bound.
      const size_t used = start_ + reserve_[next_ + 1] + deferred_bytes_;
      left_ = limit_ > used ? limit_ - used : 0;
      answer_.clear();
      Answer one{answer_, left_ > kEnvelopeSlack ? left_ - kEnvelopeSlack : 0, loop_};
      started_us_ = batch() ? 0 : net::Loop::MonotonicUs();
      method_ = RunOne(api_, envelope_, commands_[next_], one, &status_);
      if (one.waits() && parallel_ && method_ != nullptr && method_->name == "publish") {
        Defer(one);
        continue;
      }
      if (one.waits()) {
        one.later->out = std::move(answer_);
        one.later->done = [self = shared_from_this()](std::string answer) {
          self->answer_ = std::move(answer);
          self->Answered();
          ++self->next_;
          if (self->Step() && self->done_)
            std::exchange(self->done_, nullptr)(std::move(self->out_));
        };
        return false;
      }
      Answered();
    }
    if (!closed_) {
      closed_ = true;
      out_ += close();
      if (not_run_ > 0) LogNotRun(what(), not_run_, commands_.size());
    }
    if (outstanding_ > 0) return false;  // the last deferred answer finishes the run
    Splice();
    return true;
  }

  // The command next_ waits for an engine and the ones after it run meanwhile: its answer
  // goes at this place of out_ once in.
  void Defer(Answer& one) {
    const size_t index = next_;
    deferred_.push_back({out_.size(), index, std::string()});
    deferred_bytes_ += kPublishAnswerBound + kEnvelopeSlack;
    ++outstanding_;
    one.later->out = std::move(answer_);
    one.later->done = [self = shared_from_this(), slot = deferred_.size() - 1](std::string answer) {
      self->deferred_[slot].answer = std::move(answer);
      // Until Step has run every command, it finishes the run itself.
      if (--self->outstanding_ == 0 && self->closed_) {
        self->Splice();
        if (self->done_) std::exchange(self->done_, nullptr)(std::move(self->out_));
      }
    };
  }

  // Puts the deferred answers in their places.
  void Splice() {
    if (deferred_.empty()) return;
    std::string out;
    size_t from = 0;
    for (const Deferred& d : deferred_) {
      out.append(out_, from, d.at - from);
      AppendEnveloped(out, envelope_, commands_[d.index], d.answer);
      from = d.at;
    }
    out.append(out_, from, std::string::npos);
    out_ = std::move(out);
    deferred_.clear();
  }

  // The command next_ answered answer_: in, or replaced by 106 when a read does not fit.
  void Answered() {
    const Command& command = commands_[next_];
    if (!batch()) {
      // The legacy route counts each command as its method's call.
      stats::RecordApiCall(MethodLabelIndex(method_ ? method_->name : kUnknownMethod),
                           net::Loop::MonotonicUs() - started_us_);
    }
    AppendEnveloped(out_, envelope_, command, answer_);
    if (out_.size() - start_ <= left_) {
      full_ = status_ == Status::kNoRoom;
      not_run_ += full_;
      return;
    }
    // An acting command is done, and answered even though longer than its bound said: the
    // work is reported.
    if (method_ && method_->effect == Effect::kActs) return;
    out_.resize(start_);  // a read too long to fit: nothing done, nothing lost
    full_ = true;
    Undone();
  }
  void Undone() {
    AppendEnveloped(out_, envelope_, commands_[next_], undone_);
    ++not_run_;
  }

  const ApiContext& api_;
  const Envelope envelope_;
  std::vector<Command> commands_;
  net::Loop* const loop_;
  const bool parallel_;
  const size_t limit_;
  std::vector<size_t> reserve_;
  std::string undone_;
  std::string out_;
  std::function<void(std::string)> done_;
  size_t next_ = 0;
  bool full_ = false;
  size_t not_run_ = 0;
  bool closed_ = false;
  // parallel: commands answered later that did not hold the ones after them.
  struct Deferred {
    size_t at;     // in out_
    size_t index;  // in commands_
    std::string answer;
  };
  std::vector<Deferred> deferred_;
  size_t deferred_bytes_ = 0;
  size_t outstanding_ = 0;
  // The command in progress.
  std::string answer_;
  size_t start_ = 0;
  size_t left_ = 0;
  const Method* method_ = nullptr;
  Status status_ = Status::kAnswered;
  uint64_t started_us_ = 0;
};

Status RunCommands(const ApiContext& api, Envelope envelope, std::vector<Command>& commands,
                   Answer& a, bool parallel = false) {
  auto run =
      std::make_shared<CommandRun>(api, envelope, std::move(commands), a.room, a.loop, parallel);
  if (!run->Fits()) {  // not even the refusals fit: nothing runs
    LogNotRun(run->what(), run->size(), run->size());
    return NoRoom(a);
  }
  if (run->Start()) {
    a.out += run->out();
    return Status::kAnswered;
  }
  const Hole hole(a);
  hole.Open(a);
  run->set_done([hole](std::string answer) { hole.Fill(std::move(answer)); });
  return Status::kAnswered;
}

Status Batch(const ApiContext& api, std::string& body, Answer& a) {
  BatchRequest r;
  if (!Parse(body, &r)) return Status::kNotRequest;
  return RunCommands(api, Envelope::kBatch, r.commands, a, r.parallel);
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
    case Status::kFull:
      return 429;
  }
  return 500;
}

// What an API answer may take of http.max_response_bytes: the rest is the status line and
// headers (BuildResponse writes about 130 bytes) and the final newline.
constexpr size_t kResponseHeadBound = 256;

// The HTTP response for a call's status and answer.
std::string Response(int status, std::string& out, std::string_view method, bool keep_alive) {
  if (status == 400) {
    log::Write(spdlog::level::debug, {{"method", method}, {"code", 400}, {"reason", "bad request"}},
               "api {}: bad request body", method);
    return http::BuildResponse(400, "text/plain", "bad request\n", keep_alive);
  }
  if (status == 404) return http::BuildResponse(404, "text/plain", "not found\n", keep_alive);
  out += '\n';
  // 413: nothing was done (a publication larger than the cluster's broker carries, or an
  // answer that would not fit); the body is the error (106), and the status tells HTTP
  // clients that check only statuses: never a 200.
  return http::BuildResponse(status, "application/json", out, keep_alive);
}

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
  const uint64_t started_us = net::Loop::MonotonicUs();
  LaterAnswer later;
  // The legacy route counts each command as its method's call.
  const int status = legacy ? CallLegacy(request.body, out, room, &connection.loop(), &later)
                            : Call(method, request.body, out, room, &connection.loop(), &later);
  if (status != kLater) {
    if (!legacy) {
      stats::RecordApiCall(MethodLabelIndex(method), net::Loop::MonotonicUs() - started_us);
    }
    connection.Respond(Response(status, out, method, keep_alive), keep_alive);
    return;
  }
  // An engine answers later: so does this connection (a closed one is answered by nobody).
  later.Then([answer = connection.Defer(), legacy, keep_alive, started_us,
              method = std::string(method)](int status, std::string out) {
    if (!legacy) {
      stats::RecordApiCall(MethodLabelIndex(method), net::Loop::MonotonicUs() - started_us);
    }
    answer.Respond(Response(status, out, method, keep_alive), keep_alive);
  });
  // While the history engine's writer is behind, this connection's next requests wait in
  // its socket, as a client's publications do (the loop's read gate resumes it).
  if (context_.hub.history_backlogged()) connection.PauseReading();
}

int ServerApi::Call(std::string_view method, std::string& body, std::string& out,
                    size_t reply_limit, net::Loop* loop, LaterAnswer* later) const {
  const Method* row = Find(method);
  if (!row) return 404;
  Answer a{out, reply_limit, later != nullptr ? loop : nullptr, {}};
  const int status = HttpStatus(row->handle(context_, body, a));
  return Settle(status, a.waits() ? std::move(a.later) : nullptr, out, later);
}

int ServerApi::CallLegacy(std::string& body, std::string& out, size_t reply_limit, net::Loop* loop,
                          LaterAnswer* later) const {
  std::vector<Command> commands;
  if (!ParseLegacy(body, &commands) || commands.empty()) return 400;
  Answer a{out, reply_limit, later != nullptr ? loop : nullptr, {}};
  const int status = HttpStatus(RunCommands(context_, Envelope::kLegacy, commands, a));
  return Settle(status, a.waits() ? std::move(a.later) : nullptr, out, later);
}

void ServerApi::Fire(const core::ScheduledPublication& s, net::Loop& loop,
                     std::function<void(bool retry)> done) const {
  const Method* row = Find(s.method);
  if (row == nullptr || (s.method != "publish" && s.method != "broadcast")) {
    done(false);
    return;
  }
  // Refused for now (100: the engine failed; 111: a rate or inbox budget): again later.
  auto finish = [done = std::move(done)](std::string answer) {
    done(answer.find("\"code\":100") != std::string::npos ||
         answer.find("\"code\":111") != std::string::npos);
  };
  std::string body = s.params;
  std::string out;
  const std::string key = core::FireKey(s.id);
  Answer a{out, SIZE_MAX, &loop, {}, key};
  row->handle(context_, body, a);
  if (!a.waits()) {
    finish(std::move(out));
    return;
  }
  a.later->out = std::move(out);
  a.later->done = std::move(finish);
}

int ServerApi::Settle(int status, std::shared_ptr<LaterPieces> pieces, std::string& out,
                      LaterAnswer* later) {
  if (!pieces) return status;
  pieces->out = std::move(out);
  out.clear();
  later->pieces_ = std::move(pieces);
  later->status_ = status;
  return kLater;
}

}  // namespace hermod::api
