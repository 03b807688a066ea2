#include "proto/client_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <random>

#include "log/fields.h"
#include "proto/delta.h"
#include "proto/encode.h"
#include "proto/keepalive.h"
#include "proto/protobuf.h"
#include "stats/loop_metrics.h"

namespace hermod::proto {

namespace {

// Scratch buffers grown past this by one large message are freed after it (as the WebSocket
// reader's inflate buffer): a loop keeps what ordinary messages need and no peak.
constexpr size_t kScratchKeepBytes = 256 * 1024;
// A reply's bytes beyond its publications or presence entries: id, method, epoch, offset.
constexpr size_t kReplyEnvelopeBytes = 256;

struct LoopScratch {
  CommandParser parser;
  ProtobufCommandParser protobuf_parser;
  std::string reply;
  core::LogThrottle auth_log;
  core::LogThrottle missed_log;
};

LoopScratch& Scratch() {
  thread_local LoopScratch scratch;
  return scratch;
}

// A random (version 4) UUID, as Centrifugo's client ids.
std::string NewClientId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = random();
  uint64_t lo = random();
  hi = (hi & ~0xF000ull) | 0x4000ull;                  // version 4
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // variant 10
  std::string id;
  id.reserve(36);
  for (int i = 0; i < 32; ++i) {
    uint64_t word = i < 16 ? hi : lo;
    int shift = 60 - 4 * (i % 16);
    id += kHex[(word >> shift) & 15];
    if (i == 7 || i == 11 || i == 15 || i == 19) id += '-';
  }
  return id;
}

}  // namespace

ClientSession::ClientSession(Transport& transport, ClientContext& context)
    : transport_(transport), context_(context) {
  assert(loop().InThisThread());
  if (context_.options.stale_close_ms > 0) {
    stale_ = true;
    stale_or_pong_ = static_cast<uint32_t>(loop().now_ms() + context_.options.stale_close_ms);
  }
  ScheduleKeepalive();
}

ClientSession::~ClientSession() {
  assert(loop().InThisThread());
  UnsubscribeAll();
  ReleaseAdmission();
}

void ClientSession::OnTransportClosed() {
  assert(loop().InThisThread());
  transport_.SetSessionTimer(Transport::kNoSessionTimer);
  UnsubscribeAll();
  ReleaseAdmission();
}

const config::ChannelOptions& ClientSession::OptionsOf(const ClientSubscription& s) const {
  if (s.rare && s.rare->overridden) return *s.rare->overridden;
  const config::ChannelOptions* options = context_.rules.Find(s.channel());
  assert(options != nullptr && "subscribed, so its channel's namespace exists");
  return *options;
}

uint32_t ClientSession::NextRecovery() {
  uint32_t& last = rare().recoveries;
  last = (last + 1) & ClientSubscription::kRecoveryMask;
  if (last == 0) last = 1;
  return last;
}

void ClientSession::OnMissed(core::Subscription& missed) {
  auto& s = static_cast<ClientSubscription&>(missed);
  ClientSession& client = s.transport->client_session();
  assert(client.loop().InThisThread());
  client.LogMissed(s);
  if (s.server_side) {
    // No unsubscribe push can end a server-side subscription for the SDK to resubscribe:
    // the connection ends, and the SDK reconnects (and recovers where it can).
    if (s.recoverable) return client.Disconnect(kDisconnectInsufficientState);
    return client.transport_.connection().CutSlow();  // 3008 "slow"
  }
  const bool recoverable = s.recoverable;
  const std::string channel(s.channel());  // s is freed below
  auto it = std::find_if(client.subscriptions_.begin(), client.subscriptions_.end(),
                         [&](const auto& p) { return p.get() == &s; });
  assert(it != client.subscriptions_.end() && "a missed push for a subscription not held");
  if (it == client.subscriptions_.end()) return;
  client.context_.hub.Unsubscribe(client.loop(), s.channel(), client.OptionsOf(s),
                                  client.client_id(), client.Info(&s), &s);
  client.subscriptions_.erase(it);
  // 2500..2999: the SDK resubscribes; a recoverable subscription recovers the gap from
  // history ("insufficient state", as Centrifugo), any other learns it lost publications.
  std::string push;
  AppendUnsubscribePush(push, channel, 2500,
                        recoverable ? "insufficient state" : "slow: publications lost");
  // In the normal lane, behind the publications already queued for it: the client reads
  // everything it was sent, then learns where its stream stops (and, recovering, resumes
  // from its last offset without duplicates). Past max_write_buffer_bytes this cuts (3008).
  client.transport_.SendReply(push, net::Lane::kNormal);
}

void ClientSession::LogMissed(const ClientSubscription& s) {
  uint64_t suppressed = 0;
  if (!spdlog::should_log(spdlog::level::info) ||
      !Scratch().missed_log.Allow(loop().now_ms(), &suppressed)) {
    return;
  }
  // What the client is told: a server-side subscription cannot be resubscribed alone.
  const proto::Disconnect told = !s.server_side  ? proto::Disconnect{2500, "unsubscribe"}
                                 : s.recoverable ? kDisconnectInsufficientState
                                                 : kDisconnectSlow;
  log::Write(spdlog::level::info,
             {{"client", client_id()},
              {"user", user_},
              {"channel", s.channel()},
              {"code", told.code},
              {"reason", "publication missed"}},
             "client {} (user \"{}\") missed a publication of channel \"{}\": {} {} ({} more "
             "on this loop since)",
             client_id(), user_, s.channel(), told.code, told.reason, suppressed);
}

void ClientSession::Disconnect(proto::Disconnect reason) {
  assert(loop().InThisThread());
  if (disconnected_) return;
  disconnected_ = true;
  // One line per disconnect; the mass 3001 of a graceful shutdown only at debug.
  const auto level =
      reason.code == kDisconnectShutdown.code ? spdlog::level::debug : spdlog::level::info;
  if (spdlog::should_log(level)) {
    const std::string remote = PeerIp();
    log::Write(level,
               {{"client", client_id()},
                {"user", user_},
                {"code", reason.code},
                {"reason", reason.reason},
                {"remote", remote}},
               "client {} (user \"{}\"): disconnect {} {}", client_id(), user_, reason.code,
               reason.reason);
  }
  transport_.SetSessionTimer(Transport::kNoSessionTimer);
  UnsubscribeAll();
  transport_.Close(reason);
}

std::string ClientSession::Info(const ClientSubscription* s) const {
  return ClientInfoJson(user_, client_id(), rare_ ? std::string_view(rare_->conn_info) : "",
                        s != nullptr && s->rare ? std::string_view(s->rare->chan_info) : "");
}

void ClientSession::UnsubscribeAll() {
  if (counted_) {
    counted_ = false;
    context_.registry->Remove(*this);
  }
  for (auto& s : subscriptions_) {
    context_.hub.Unsubscribe(loop(), s->channel(), OptionsOf(*s), client_id(), Info(s.get()),
                             s.get());
  }
  subscriptions_.clear();
}

std::string*& ClientSession::ReplyBuffer() {
  thread_local std::string* buffer = nullptr;
  return buffer;
}

void ClientSession::OnMessage(std::string_view payload) {
  assert(loop().InThisThread());
  if (disconnected_) return;
  // Metrics: the steady clock (vDSO, no syscall) read twice per message, not per command:
  // the commands of one message leave in one reply, so each has the message's latency. The
  // loop's cached now_ms would cost nothing but is too coarse for sub-millisecond commands.
  static_assert(kMethodNames.size() <= stats::kMaxMethods);
  const uint64_t started_us = net::Loop::MonotonicUs();
  std::array<uint32_t, kMethodNames.size()> methods{};
  LoopScratch& scratch = Scratch();
  scratch.reply.clear();
  std::string* const outer_reply = BeginReply(scratch.reply);
  const Format format = transport_.format();
  // One state machine for both encodings: each parser fills the same Command.
  auto handle_all = [&](auto& parser) {
    parser.Reset(payload);
    Command command;
    bool ok = true;
    while (ok) {
      ParseStatus status = parser.Next(&command);
      if (status == ParseStatus::kEnd) break;
      if (status != ParseStatus::kOk) {
        stats::RecordMalformedMessage(static_cast<size_t>(format));
        const std::string remote = PeerIp();
        log::Write(spdlog::level::info,
                   {{"client", client_id()},
                    {"format", kFormatNames[static_cast<size_t>(format)]},
                    {"remote", remote}},
                   "client {}: malformed {} command", client_id(),
                   kFormatNames[static_cast<size_t>(format)]);
        Disconnect(kDisconnectBadRequest);
        ok = false;
        break;
      }
      ++methods[static_cast<size_t>(command.method)];
      ok = Handle(command);
    }
    return ok;
  };
  const bool ok = format == Format::kProtobuf ? handle_all(scratch.protobuf_parser)
                                              : handle_all(scratch.parser);
  EndReply(outer_reply);
  if (ok && !scratch.reply.empty()) {
    transport_.SendReply(scratch.reply);
    stats::RecordSent(stats::SentType::kReply, scratch.reply.size());
  }
  const size_t reply_peak = scratch.reply.capacity();
  if (reply_peak > kScratchKeepBytes) std::string().swap(scratch.reply);
  stats::RecordScratch(stats::ScratchBuffer::kReply, reply_peak, scratch.reply.capacity());
  scratch.protobuf_parser.Release(kScratchKeepBytes);
  const size_t command_peak = scratch.parser.Release(kScratchKeepBytes);
  stats::RecordScratch(stats::ScratchBuffer::kCommand, command_peak, scratch.parser.held_bytes());
  stats::RecordCommandMessage(methods, payload.size(), net::Loop::MonotonicUs() - started_us);
}

bool ClientSession::Handle(const Command& c) {
  if (c.method == Method::kPong) {
    if (awaiting_pong_) {
      awaiting_pong_ = false;
      ScheduleKeepalive();
    }
    return true;
  }
  if (!connected_ && c.method != Method::kConnect) {
    Disconnect(kDisconnectBadRequest);
    return false;
  }
  if (!reply().empty()) reply() += '\n';
  const size_t before = reply().size();
  if (connected_) {
    const bool had_limiter = guard_.holds_limiter();
    const CommandGuard::Verdict verdict =
        guard_.CheckCommand(c, loop(), context_.options.rate_limits, client_id(), user_);
    // A new limiter is dropped by the keepalive timer once repaid.
    if (!had_limiter && guard_.holds_limiter()) ScheduleKeepalive();
    if (verdict.kind != CommandGuard::Verdict::kPass) {
      Refuse(c, verdict);
      if (reply().size() == before && before > 0) reply().pop_back();
      return !disconnected_;
    }
  }
  switch (c.method) {
    case Method::kConnect:
      if (connected_ || connecting_) {
        Disconnect(kDisconnectBadRequest);
        return false;
      }
      HandleConnect(c);
      break;
    case Method::kRefresh:
      HandleRefresh(c);
      break;
    case Method::kSubscribe:
      HandleSubscribe(c);
      break;
    case Method::kSubRefresh:
      HandleSubRefresh(c);
      break;
    case Method::kUnsubscribe:
      HandleUnsubscribe(c);
      break;
    case Method::kPublish:
      HandlePublish(c);
      break;
    case Method::kPresence:
      HandlePresence(c, false);
      break;
    case Method::kPresenceStats:
      HandlePresence(c, true);
      break;
    case Method::kHistory:
      HandleHistory(c);
      break;
    case Method::kSend:
      break;  // no reply; nothing handles async messages yet
    case Method::kRpc:
      HandleRpc(c);
      break;
    case Method::kUnknown:
      ReplyError(c.id, ErrorCode::kMethodNotFound);
      break;
    case Method::kPong:
      assert(false && "a pong is answered before the switch");
      break;
  }
  if (reply().size() == before && before > 0) reply().pop_back();  // no reply: drop the '\n'
  return !disconnected_;
}

void ClientSession::ReplyError(uint32_t id, ErrorCode code) { AppendError(reply(), id, code); }

void ClientSession::Refuse(const Command& c, const CommandGuard::Verdict& verdict) {
  if (verdict.kind == CommandGuard::Verdict::kDisconnect) return Disconnect(verdict.disconnect);
  if (c.method != Method::kSend) ReplyError(c.id, verdict.error);
}

void ClientSession::SetAdmitted(std::string ip, bool must_recover) {
  assert(loop().InThisThread());
  guard_.SetAdmitted(std::move(ip), must_recover);
}

size_t ClientSession::RoomBeside(size_t pending) const {
  // A sixteenth of the budget stays free: the queue also counts a record per queued frame
  // against it, and pushes of this loop iteration may follow the reply.
  const size_t budget = loop().max_write_buffer_bytes();
  const size_t used = queued_bytes() + pending + kReplyEnvelopeBytes + budget / 16;
  return used >= budget ? 0 : budget - used;
}

void ClientSession::LogAuthFailure(ErrorCode code, std::string_view reason) {
  uint64_t suppressed = 0;
  if (!spdlog::should_log(spdlog::level::info) ||
      !Scratch().auth_log.Allow(loop().now_ms(), &suppressed)) {
    return;
  }
  const std::string remote = PeerIp();
  log::Write(spdlog::level::info,
             {{"code", static_cast<int>(code)}, {"reason", reason}, {"remote", remote}},
             "connect from {} refused with {}: {} ({} more auth refusals on this loop since)",
             remote, static_cast<int>(code), reason, suppressed);
}

void ClientSession::HandleConnect(const Command& c) {
  auth::TokenClaims claims;
  if (!c.token.empty()) {
    auth::TokenStatus status = context_.tokens.enabled()
                                   ? context_.tokens.Verify(c.token, WallSeconds(), &claims)
                                   : auth::TokenStatus::kInvalid;
    if (status == auth::TokenStatus::kExpired) {
      LogAuthFailure(ErrorCode::kTokenExpired, "connection token expired");
      return ReplyError(c.id, ErrorCode::kTokenExpired);
    }
    // Logged by Disconnect, with its code and reason.
    if (status != auth::TokenStatus::kOk) return Disconnect(kDisconnectInvalidToken);
  } else if (Proxy(proxy::Kind::kConnect)) {
    // The backend says who this is, for a client id it is told now (the connection keeps it).
    client_id_ = NewClientId();
    return ProxyConnect(c);
  } else if (!context_.options.allow_anonymous) {
    LogAuthFailure(ErrorCode::kUnauthorized, "no connection token, anonymous not allowed");
    return ReplyError(c.id, ErrorCode::kUnauthorized);
  }
  CompleteConnect(c, std::move(claims));
}

void ClientSession::CompleteConnect(const Command& c, auth::TokenClaims claims,
                                    std::string_view data) {
  const CommandGuard::Verdict admitted =
      guard_.AdmitConnect(c, loop(), context_.admission, claims.user);
  if (admitted.kind != CommandGuard::Verdict::kPass) return Refuse(c, admitted);
  connected_ = true;
  if (client_id_.empty()) client_id_ = NewClientId();  // a proxied connect named it already
  user_ = std::move(claims.user);
  if (!claims.info.empty()) rare().conn_info = std::move(claims.info);
  if (!claims.meta.empty()) rare().meta = std::move(claims.meta);
  if (context_.registry) {
    context_.registry->Add(*this);
    counted_ = true;
  }
  SetExpiry(claims.expires_at);

  // Server-side subscriptions from the token's `channels` and `subs`, recovered from
  // connect.subs. results is reserved so the pointers in subs stay valid.
  std::vector<core::Hub::SubscribeResult> results;
  std::vector<ServerSubscription> subs;
  std::string personal;  // outlives subs, which views it
  results.reserve(claims.channels.size() + claims.subs.size() + 1);
  for (const std::string& channel : claims.channels) {
    AddServerSubscription(c, channel, nullptr, results, subs);
  }
  for (const auth::TokenSubscription& sub : claims.subs) {
    AddServerSubscription(c, sub.channel, &sub, results, subs);
  }
  if (context_.personal_namespace && !user_.empty()) {
    const std::string& ns = *context_.personal_namespace;
    personal = ns.empty() ? "#" + user_ : ns + ":#" + user_;
    AddServerSubscription(c, personal, nullptr, results, subs);
  }

  const uint64_t ping = context_.options.ping_interval_ms;
  if (ping > 0) SetNextPing(loop().now_ms() + ping);
  ScheduleKeepalive();
  const bool later = std::any_of(results.begin(), results.end(),
                                 [](const core::Hub::SubscribeResult& r) { return r.pending; });
  if (later) {
    // The reply leaves when the engine has answered every recovery (ConnectRecovered);
    // meanwhile every server-side subscription holds its pushes, so that none reaches the
    // client before the reply that tells it is subscribed.
    auto pending = std::make_unique<PendingConnect>();
    pending->id = c.id;
    pending->ping_s = static_cast<uint32_t>(ping / 1000);
    pending->pong = ping > 0 && !unidirectional_;
    pending->ttl_s = TtlSeconds(claims.expires_at);
    for (size_t i = 0; i < subs.size(); ++i) {
      ClientSubscription* s = FindSubscription(subs[i].channel);
      PendingConnect::Sub sub{std::string(subs[i].channel), std::string(subs[i].data),
                              subs[i].was_recovering};
      if (results[i].pending) {
        sub.recovery = s->recovery;
        sub.waiting = true;
        ++pending->waiting;
      } else {
        s->held = std::make_unique<core::HeldPushes>();
      }
      sub.result = std::move(results[i]);
      pending->subs.push_back(std::move(sub));
    }
    rare().pending_connect = std::move(pending);
    return;
  }
  ConnectResult result{client_id(),
                       context_.options.version,
                       static_cast<uint32_t>(ping / 1000),
                       ping > 0 && !unidirectional_,
                       TtlSeconds(claims.expires_at),
                       std::move(subs)};
  result.data = data;
  // The refresh proxy extends a proxied connection on the server's side: the client is not
  // told its ttl, or the SDK would try to refresh it with a token it does not have.
  if (refresh_by_proxy_ && Proxy(proxy::Kind::kRefresh)) result.ttl_s = 0;
  AppendConnectReply(reply(), c.id, result);
}

void ClientSession::ConnectRecovered(uint64_t recovery, core::Hub::SubscribeResult recovered) {
  if (!rare_ || !rare_->pending_connect) return;
  PendingConnect& pending = *rare_->pending_connect;
  auto it = std::find_if(pending.subs.begin(), pending.subs.end(),
                         [&](const PendingConnect::Sub& s) { return s.recovery == recovery; });
  if (it == pending.subs.end() || !it->waiting) return;
  it->waiting = false;
  it->result = std::move(recovered);
  if (--pending.waiting > 0) return;
  std::unique_ptr<PendingConnect> done = std::move(rare_->pending_connect);
  // Together the recovered publications get the reply's room, as at connect: what does not
  // fit is not recovered (the client learns the gap, and the held pushes follow).
  const size_t room = RoomBeside(0);
  size_t taken = 0;
  std::vector<ServerSubscription> subs;
  subs.reserve(done->subs.size());
  for (PendingConnect::Sub& sub : done->subs) {
    size_t bytes = 0;
    for (const std::string& p : sub.result.publications) bytes += p.size() + 1;
    if (sub.recovery != 0 && taken + bytes > room) {
      sub.result.recovered = false;
      sub.result.publications.clear();
      sub.result.delivered_offset = sub.result.position.offset;
      bytes = 0;
    }
    taken += bytes;
    subs.push_back({sub.channel, &sub.result, sub.was_recovering, sub.data});
  }
  const ConnectResult result{client_id(), context_.options.version, done->ping_s, done->pong,
                             done->ttl_s, std::move(subs)};
  std::string reply;
  AppendConnectReply(reply, done->id, result);
  SendLaterReply(reply);
  for (const PendingConnect::Sub& sub : done->subs) {
    if (!connected()) return;  // a hold that overflowed ended the connection (3010, 3008)
    ClientSubscription* s = FindSubscription(sub.channel);
    if (!s || s->recovery != sub.recovery) continue;  // unsubscribed meanwhile
    s->recovery = 0;
    context_.hub.Resume(s, sub.result);
  }
}

void ClientSession::AddServerSubscription(const Command& c, std::string_view channel,
                                          const auth::TokenSubscription* token_sub,
                                          std::vector<core::Hub::SubscribeResult>& results,
                                          std::vector<ServerSubscription>& subs) {
  const config::ChannelOptions* options = context_.rules.Find(channel);
  if (!options || !context_.rules.NameAllowed(channel) || FindSubscription(channel) ||
      subscriptions_.size() >= context_.options.channel_limit) {
    return;
  }
  std::unique_ptr<config::ChannelOptions> overridden;
  if (token_sub && (token_sub->presence.set || token_sub->join_leave.set ||
                    token_sub->force_push_join_leave.set || token_sub->force_recovery.set)) {
    overridden = std::make_unique<config::ChannelOptions>(*options);
    if (token_sub->presence.set) overridden->presence = token_sub->presence.value;
    if (token_sub->join_leave.set) overridden->join_leave = token_sub->join_leave.value;
    if (token_sub->force_push_join_leave.set) {
      overridden->force_push_join_leave = token_sub->force_push_join_leave.value;
    }
    if (token_sub->force_recovery.set) {
      overridden->force_recovery = token_sub->force_recovery.value;
    }
  }
  const config::ChannelOptions& effective = overridden ? *overridden : *options;
  auto known = std::find_if(c.subs.begin(), c.subs.end(),
                            [&](const ConnectSub& s) { return s.channel == channel; });
  const bool recover = known != c.subs.end() && known->recover;
  core::StreamPosition since;
  if (recover) since = {known->offset, std::string(known->epoch)};
  const bool recoverable = effective.history_size > 0 && effective.force_recovery;
  // The connect reply carries every subscription's recovered publications: together they
  // get the reply's room.
  size_t taken = 0;
  for (const core::Hub::SubscribeResult& r : results) {
    for (const std::string& p : r.publications) taken += p.size() + 1;
  }
  const size_t room = ReplyRoom();
  // An engine that recovers later answers through the loop (ConnectRecovered).
  core::Hub::SubscribeDone later;
  uint32_t recovery = 0;
  if (recoverable && recover && !context_.hub.history_inline()) {
    recovery = NextRecovery();
    later = Later<core::Hub::SubscribeResult>(
        [recovery](ClientSession& session, core::Hub::SubscribeResult result) {
          session.ConnectRecovered(recovery, std::move(result));
        });
  }
  results.push_back(AddSubscription(
      channel, *options, recoverable, recover, since, effective.force_push_join_leave, 0,
      token_sub ? std::string_view(token_sub->info) : "", std::move(overridden),
      room > taken ? room - taken : 0, std::move(later)));
  subscriptions_.back()->server_side = true;
  if (results.back().pending) subscriptions_.back()->recovery = recovery;
  ServerSubscription sub{channel, &results.back(), recoverable && recover};
  if (token_sub) sub.data = token_sub->data;
  subs.push_back(sub);
}

void ClientSession::RefreshFromServer(bool expired, int64_t expire_at) {
  assert(loop().InThisThread());
  if (!connected()) return;
  if (expired) return Disconnect(kDisconnectExpired);
  SetExpiry(expire_at);
  ScheduleKeepalive();
}

void ClientSession::HandleRefresh(const Command& c) {
  auth::TokenClaims claims;
  auth::TokenStatus status = c.token.empty() || !context_.tokens.enabled()
                                 ? auth::TokenStatus::kInvalid
                                 : context_.tokens.Verify(c.token, WallSeconds(), &claims);
  if (status == auth::TokenStatus::kExpired) return ReplyError(c.id, ErrorCode::kTokenExpired);
  // The same user only: a refresh cannot turn one connection into another user's.
  if (status != auth::TokenStatus::kOk || claims.user != user_) {
    return Disconnect(kDisconnectInvalidToken);
  }
  SetExpiry(claims.expires_at);
  ScheduleKeepalive();
  ConnectResult result;
  result.client = client_id();
  result.version = context_.options.version;
  result.ttl_s = TtlSeconds(claims.expires_at);
  AppendRefreshReply(reply(), c.id, result);
}

const config::ChannelOptions* ClientSession::ChannelOptionsOrReply(const Command& c) {
  if (!context_.rules.NameAllowed(c.channel)) {
    ReplyError(c.id, ErrorCode::kBadRequest);
    return nullptr;
  }
  const config::ChannelOptions* options = context_.rules.Find(c.channel);
  if (!options) ReplyError(c.id, ErrorCode::kUnknownChannel);
  return options;
}

ClientSession::ClientSubscription* ClientSession::FindSubscription(std::string_view channel) {
  for (auto& s : subscriptions_) {
    if (s->channel() == channel) return s.get();
  }
  return nullptr;
}

core::Hub::SubscribeResult ClientSession::AddSubscription(
    std::string_view channel, const config::ChannelOptions& options, bool recoverable, bool recover,
    const core::StreamPosition& since, bool join_leave, int64_t expires_at,
    std::string_view chan_info, std::unique_ptr<config::ChannelOptions> overridden,
    size_t max_recovery_bytes, core::Hub::SubscribeDone done) {
  auto subscription = std::make_unique<ClientSubscription>();
  subscription->connection = &transport_.connection();
  subscription->transport = &transport_;
  const config::ChannelOptions* subscription_options = overridden ? overridden.get() : &options;
  if (overridden) subscription->rare_state().overridden = std::move(overridden);
  subscription->wants_join_leave = join_leave;
  subscription->SetExpiresAt(expires_at);
  if (!chan_info.empty()) subscription->rare_state().chan_info = std::string(chan_info);
  // Every subscription is told when a publication it may not miss is not queued: a
  // recoverable one recovers it from history, any other at least learns it.
  subscription->recoverable = recoverable;
  subscription->tell_missed = true;  // ClientSession::OnMissed (JsonPushCodec)
  core::Hub::SubscribeRequest request;
  request.channel = channel;
  request.options = subscription_options;
  request.client = client_id();
  request.user = user_;
  const std::string info = Info(subscription.get());
  request.info = info;
  request.recoverable = recoverable;
  request.recover = recover;
  request.since = since;
  request.max_recovery = context_.options.max_recovery;
  request.max_recovery_bytes = max_recovery_bytes;
  core::Hub::SubscribeResult result =
      context_.hub.Subscribe(loop(), request, subscription.get(), std::move(done));
  WatchInbox(*subscription);
  subscriptions_.push_back(std::move(subscription));
  return result;
}

void ClientSession::SendRecovered(uint32_t id, std::string_view channel, uint64_t recovery,
                                  int64_t expires_at, bool was_recovering,
                                  core::Hub::SubscribeResult result, std::string_view data) {
  ClientSubscription* s = FindSubscription(channel);
  if (!s || s->recovery != recovery || !connected()) return;  // unsubscribed meanwhile
  s->recovery = 0;
  if (s->delta) DeltaRecovered(*s, result);
  std::string reply;
  AppendSubscribeReply(reply, id, result, was_recovering, TtlSeconds(expires_at), data);
  SendLaterReply(reply);
  context_.hub.Resume(s, result);  // may end s (a hold that overflowed)
}

void ClientSession::HandleSubscribe(const Command& c) {
  const config::ChannelOptions* options = ChannelOptionsOrReply(c);
  if (!options) return;
  if (FindSubscription(c.channel) ||
      (rare_ && std::find(rare_->pending_subscribes.begin(), rare_->pending_subscribes.end(),
                          c.channel) != rare_->pending_subscribes.end())) {
    return ReplyError(c.id, ErrorCode::kAlreadySubscribed);
  }
  if (subscriptions_.size() + pending_subscribe_count() >= context_.options.channel_limit) {
    return ReplyError(c.id, ErrorCode::kLimitExceeded);
  }
  // Centrifugo: the subscribe proxy decides for subscriptions without a token, except on
  // user-limited channels (the channel name says who may).
  if (c.token.empty() && options->proxy_subscribe &&
      Proxy(proxy::Kind::kSubscribe, options->subscribe_proxy_name) &&
      !(options->allow_user_limited_channels && core::ChannelRules::IsUserLimited(c.channel))) {
    return ProxySubscribe(c, *options);
  }
  int64_t expires_at = 0;
  std::string chan_info;
  if (!c.token.empty()) {
    // A subscription token grants this channel to this user, whatever the namespace says.
    auth::TokenClaims claims;
    auth::TokenStatus status = context_.tokens.enabled()
                                   ? context_.tokens.Verify(c.token, WallSeconds(), &claims)
                                   : auth::TokenStatus::kInvalid;
    if (status == auth::TokenStatus::kExpired) return ReplyError(c.id, ErrorCode::kTokenExpired);
    if (status != auth::TokenStatus::kOk || claims.channel != c.channel || claims.user != user_) {
      return Disconnect(kDisconnectInvalidToken);
    }
    expires_at = claims.expires_at;
    chan_info = std::move(claims.info);
  } else {
    bool allowed;
    if (context_.rules.IsPrivate(c.channel)) {
      allowed = false;
    } else if (options->allow_user_limited_channels &&
               core::ChannelRules::IsUserLimited(c.channel)) {
      allowed = core::ChannelRules::UserListed(c.channel, user_);
    } else {
      allowed = options->allow_subscribe_for_client &&
                (!user_.empty() || options->allow_subscribe_for_anonymous);
    }
    if (!allowed) return ReplyError(c.id, ErrorCode::kPermissionDenied);
  }
  SubscribeAllowed(
      {c.id, c.channel, c.recoverable, c.recover, c.offset, c.epoch, c.join_leave, false, c.delta},
      *options, expires_at, chan_info);
}

void ClientSession::SubscribeAllowed(const SubscribeAsk& ask,
                                     const config::ChannelOptions& namespace_options,
                                     int64_t expires_at, std::string_view chan_info,
                                     std::unique_ptr<config::ChannelOptions> overridden,
                                     std::string_view data) {
  const config::ChannelOptions* options = overridden ? overridden.get() : &namespace_options;
  // Centrifugo: an unknown delta type is a bad request; a known one the namespace does not
  // allow is just not granted. "latest" delivery replaces queued pushes, which would break
  // a subscriber's chain of deltas: not granted there either.
  if (!ask.delta.empty() && ask.delta != "fossil") return Disconnect(kDisconnectBadRequest);
  const bool delta =
      !ask.delta.empty() &&
      std::find(options->allowed_delta_types.begin(), options->allowed_delta_types.end(),
                ask.delta) != options->allowed_delta_types.end() &&
      options->delivery == config::Delivery::kAll;
  const bool recoverable =
      options->history_size > 0 && (ask.recoverable || options->force_recovery);
  // An engine that recovers later answers through the loop (the memory engine never does),
  // and so does a cluster node whose subscription to the channel is on its way to NATS.
  core::Hub::SubscribeDone later;
  uint32_t recovery = 0;
  // A subscription the server refreshes tells the client no ttl: it has nothing to refresh.
  const int64_t reply_expires = ask.refresh_by_proxy ? 0 : expires_at;
  const bool was_recovering = recoverable && ask.recover;
  if ((was_recovering && !context_.hub.history_inline()) || context_.hub.clustered()) {
    recovery = NextRecovery();
    later = Later<core::Hub::SubscribeResult>(
        [id = ask.id, channel = std::string(ask.channel), recovery, reply_expires, was_recovering,
         data = std::string(data)](ClientSession& session, core::Hub::SubscribeResult result) {
          session.SendRecovered(id, channel, recovery, reply_expires, was_recovering,
                                std::move(result), data);
        });
  }
  const bool join_leave = ask.join_leave || options->force_push_join_leave;
  core::Hub::SubscribeResult result =
      AddSubscription(ask.channel, namespace_options, recoverable, ask.recover,
                      {ask.offset, std::string(ask.epoch)}, join_leave, expires_at, chan_info,
                      std::move(overridden), ReplyRoom(), std::move(later));
  subscriptions_.back()->refresh_by_proxy = ask.refresh_by_proxy;
  subscriptions_.back()->delta = delta;
  if (result.pending) {
    subscriptions_.back()->recovery = recovery;  // its completion runs on this loop, later
    return;
  }
  if (delta) DeltaRecovered(*subscriptions_.back(), result);
  AppendSubscribeReply(reply(), ask.id, result, recoverable && ask.recover,
                       TtlSeconds(reply_expires), data);
}

void ClientSession::DeltaRecovered(ClientSubscription& s, core::Hub::SubscribeResult& result) {
  result.delta = true;
  s.delta_base = 0;
  std::string base;
  std::string form;
  for (std::string& publication : result.publications) {
    bool is_delta = false;
    if (DeltaPublication(publication, base, transport_.format(), &form, &is_delta)) {
      base = std::move(publication);
      publication = std::move(form);
    } else {
      base.clear();  // not a publication object: no delta against it
    }
  }
  // Live publications are numbered by offset: the next delta applies to the last recovered.
  if (!result.publications.empty() && !base.empty()) s.delta_base = result.delivered_offset;
}

void ClientSession::HandleSubRefresh(const Command& c) {
  ClientSubscription* s = FindSubscription(c.channel);
  if (!s) return ReplyError(c.id, ErrorCode::kBadRequest);
  auth::TokenClaims claims;
  auth::TokenStatus status = c.token.empty() || !context_.tokens.enabled()
                                 ? auth::TokenStatus::kInvalid
                                 : context_.tokens.Verify(c.token, WallSeconds(), &claims);
  if (status == auth::TokenStatus::kExpired) return ReplyError(c.id, ErrorCode::kTokenExpired);
  if (status != auth::TokenStatus::kOk || claims.channel != c.channel || claims.user != user_) {
    return Disconnect(kDisconnectInvalidToken);
  }
  s->expires_at = claims.expires_at;
  AppendSubRefreshReply(reply(), c.id, TtlSeconds(claims.expires_at));
}

void ClientSession::SubscribeFromServer(std::string_view channel) {
  assert(loop().InThisThread());
  if (!connected() || FindSubscription(channel)) return;
  const config::ChannelOptions* options = context_.rules.Find(channel);
  if (!options) return;
  if (subscriptions_.size() >= context_.options.channel_limit) {
    return Disconnect(kDisconnectChannelLimit);
  }
  const bool recoverable = options->history_size > 0 && options->force_recovery;
  core::Hub::SubscribeResult result =
      AddSubscription(channel, *options, recoverable, false, {}, options->force_push_join_leave, 0);
  std::string push;
  AppendSubscribePush(push, channel, result);
  transport_.SendReply(push);
  stats::RecordSent(stats::SentType::kPush, push.size(), stats::PushType::kSubscribe);
}

void ClientSession::UnsubscribeFromServer(std::string_view channel) {
  EndSubscription(channel, 2000, "server unsubscribe");
}

void ClientSession::EndSubscription(std::string_view channel, uint32_t code,
                                    std::string_view reason) {
  assert(loop().InThisThread());
  auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                         [&](const auto& s) { return s->channel() == channel; });
  if (!connected() || it == subscriptions_.end()) return;
  const std::string name((*it)->channel());  // the loop's entry may go with it
  ClientSubscription& s = **it;
  context_.hub.Unsubscribe(loop(), name, OptionsOf(s), client_id(), Info(&s), &s);
  subscriptions_.erase(it);
  std::string push;
  AppendUnsubscribePush(push, name, code, reason);
  transport_.SendReply(push);
  stats::RecordSent(stats::SentType::kPush, push.size(), stats::PushType::kUnsubscribe);
}

void ClientSession::HandleUnsubscribe(const Command& c) {
  // A subscribe still waiting for the subscribe proxy ends here: its answer subscribes nothing.
  if (rare_) std::erase(rare_->pending_subscribes, c.channel);
  auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                         [&](const auto& s) { return s->channel() == c.channel; });
  if (it != subscriptions_.end()) {
    ClientSubscription& s = **it;
    context_.hub.Unsubscribe(loop(), s.channel(), OptionsOf(s), client_id(), Info(&s), &s);
    subscriptions_.erase(it);
  }
  AppendEmptyReply(reply(), c.id, "unsubscribe");
}

template <class T>
core::Completion<T> ClientSession::Later(std::function<void(ClientSession&, T)> fn) {
  std::shared_ptr<const void>& alive = rare().alive;
  if (!alive) alive = std::make_shared<char>();
  return core::Completion<T>(
      loop(), std::weak_ptr<const void>(alive),
      [this, fn = std::move(fn)](T result) { fn(*this, std::move(result)); });
}

void ClientSession::SendLaterReply(const std::string& reply) {
  if (!connected()) return;
  transport_.SendReply(reply);
  stats::RecordSent(stats::SentType::kReply, reply.size());
}

namespace {

ErrorCode PublishRefusalCode(core::Hub::Refusal refusal) {
  switch (refusal) {
    case core::Hub::Refusal::kTooLarge:  // retrying cannot help (106, not temporary)
      return ErrorCode::kLimitExceeded;
    case core::Hub::Refusal::kStoreFailed:
      return ErrorCode::kInternal;
    default:
      return ErrorCode::kTooManyRequests;
  }
}

}  // namespace

void ClientSession::HandlePublish(const Command& c) {
  const config::ChannelOptions* options = ChannelOptionsOrReply(c);
  if (!options) return;
  if (c.data.empty()) return ReplyError(c.id, ErrorCode::kBadRequest);
  // Inboxes take publications from the server API only (core/inbox.h).
  if (options->inbox) return ReplyError(c.id, ErrorCode::kPermissionDenied);
  // The publish proxy decides instead of the namespace's rules (and may rewrite data). Its
  // request carries data as JSON: a Protobuf client's binary data cannot go there.
  if (options->proxy_publish && Proxy(proxy::Kind::kPublish, options->publish_proxy_name)) {
    if (IsBinaryData(c.data)) return ReplyError(c.id, ErrorCode::kBadRequest);
    return ProxyPublish(c, *options);
  }
  const bool allowed = options->allow_publish_for_client ||
                       (options->allow_publish_for_subscriber && FindSubscription(c.channel));
  if (!allowed) return ReplyError(c.id, ErrorCode::kPermissionDenied);
  PublishAllowed(c.id, c.channel, *options, c.data);
}

void ClientSession::PublishAllowed(uint32_t id, std::string_view channel,
                                   const config::ChannelOptions& options_ref,
                                   std::string_view data) {
  const config::ChannelOptions* options = &options_ref;
  const ClientSubscription* subscription = FindSubscription(channel);
  // A subscriber publishes with its channel info (chan_info), as Centrifugo does. Refused
  // by the namespace's publish_rate_limit (the channel's bucket in the hub, node-wide), or
  // while a loop the channel reaches is over its inbox budget (publisher backpressure): 111
  // is temporary, the SDK's publish may be retried.
  const std::string info = Info(subscription);
  core::Hub::PublishRequest request{channel, options, data, info};
  if (!context_.hub.history_inline()) {
    request.done =
        Later<core::Hub::PublishResult>([id](ClientSession& session, core::Hub::PublishResult r) {
          std::string reply;
          r ? AppendEmptyReply(reply, id, "publish")
            : AppendError(reply, id, PublishRefusalCode(r.refusal));
          session.SendLaterReply(reply);
        });
  }
  const core::Hub::PublishResult published = context_.hub.Publish(std::move(request));
  if (published.refusal == core::Hub::Refusal::kPending) {
    // Answered when stored. While the engine's writer is behind, this publisher is not read
    // until it drains (the loop's read gate): its next publications wait in its socket.
    if (context_.hub.history_backlogged()) transport_.connection().PauseReading();
    return;
  }
  if (!published) {
    if (published.refusal == core::Hub::Refusal::kRateLimit) {
      loop().stats().guard.Count(stats::Refusal::kLimitedChannel);
    }
    return ReplyError(id, PublishRefusalCode(published.refusal));
  }
  AppendEmptyReply(reply(), id, "publish");
}

void ClientSession::HandlePresence(const Command& c, bool stats) {
  const config::ChannelOptions* options = ChannelOptionsOrReply(c);
  if (!options) return;
  if (!options->presence) return ReplyError(c.id, ErrorCode::kNotAvailable);
  const bool allowed = options->allow_presence_for_client ||
                       (options->allow_presence_for_subscriber && FindSubscription(c.channel));
  if (!allowed) return ReplyError(c.id, ErrorCode::kPermissionDenied);
  if (!context_.hub.presence_inline()) {
    // An engine that may list later (core/presence_store.h): the reply leaves when it has.
    if (stats) {
      context_.hub.PresenceStats(
          c.channel, Later<core::PresenceCounts>(
                         [id = c.id](ClientSession& session, core::PresenceCounts counts) {
                           std::string reply;
                           if (counts.failed) {
                             AppendError(reply, id, ErrorCode::kInternal);
                           } else {
                             AppendPresenceStatsReply(reply, id, counts.clients, counts.users);
                           }
                           session.SendLaterReply(reply);
                         }));
      return;
    }
    context_.hub.Presence(
        c.channel,
        Later<core::PresenceList>([id = c.id](ClientSession& session, core::PresenceList list) {
          size_t bytes = 0;
          for (const auto& [client, entry] : list) bytes += client.size() + entry.info.size() + 4;
          std::string reply;
          if (list.failed) {  // the engine's server unreachable: an error, not an empty list
            AppendError(reply, id, ErrorCode::kInternal);
          } else if (bytes > session.RoomBeside(0)) {
            stats::RecordReplyLimited(stats::ReplyLimit::kRefused);
            AppendError(reply, id, ErrorCode::kLimitExceeded);
          } else {
            AppendPresenceReply(reply, id, list);
          }
          session.SendLaterReply(reply);
        }));
    return;
  }
  if (stats) {
    auto [clients, users] = context_.hub.PresenceStats(c.channel);
    AppendPresenceStatsReply(reply(), c.id, clients, users);
    return;
  }
  const auto presence = context_.hub.Presence(c.channel);
  size_t bytes = 0;
  for (const auto& [client, entry] : presence) bytes += client.size() + entry.info.size() + 4;
  if (bytes > ReplyRoom()) {
    stats::RecordReplyLimited(stats::ReplyLimit::kRefused);
    return ReplyError(c.id, ErrorCode::kLimitExceeded);
  }
  AppendPresenceReply(reply(), c.id, presence);
}

void ClientSession::HandleHistory(const Command& c) {
  const config::ChannelOptions* options = ChannelOptionsOrReply(c);
  if (!options) return;
  if (options->history_size == 0) return ReplyError(c.id, ErrorCode::kNotAvailable);
  const bool allowed = options->allow_history_for_client ||
                       (options->allow_history_for_subscriber && FindSubscription(c.channel));
  if (!allowed) return ReplyError(c.id, ErrorCode::kPermissionDenied);
  core::StreamPosition since{c.since_offset, std::string(c.since_epoch)};
  // Cut short as Centrifugo's client_history_max_publication_limit does (limit -1, or more
  // than the cap, gets the cap), and to the reply's room: a client pages on with `since`
  // from the last offset it got; the reply's `offset` is the stream's top.
  int64_t limit = c.limit;
  const int64_t max = context_.options.max_history;
  if (max > 0 && (limit < 0 || limit > max)) limit = max;
  core::Completion<core::HistoryPage> later;
  if (!context_.hub.history_inline()) {
    later = Later<core::HistoryPage>([id = c.id](ClientSession& session, core::HistoryPage page) {
      std::string reply;
      if (page.failed) {
        AppendError(reply, id, ErrorCode::kInternal);
      } else if (page.unrecoverable) {
        AppendError(reply, id, ErrorCode::kUnrecoverablePosition);
      } else if (page.cut && page.publications.empty()) {
        AppendError(reply, id, ErrorCode::kLimitExceeded);
      } else {
        AppendHistoryReply(reply, id, page);
      }
      session.SendLaterReply(reply);
    });
  }
  core::Hub::HistoryResult result =
      context_.hub.History(c.channel, *options, c.has_since ? &since : nullptr, limit, c.reverse,
                           ReplyRoom(), std::move(later));
  if (result.pending) return;  // answered when read
  if (result.failed) return ReplyError(c.id, ErrorCode::kInternal);
  if (result.unrecoverable) return ReplyError(c.id, ErrorCode::kUnrecoverablePosition);
  if (result.cut) {
    // Not one publication fits: 106 says so; a smaller limit or a read queue helps.
    if (result.publications.empty()) {
      stats::RecordReplyLimited(stats::ReplyLimit::kRefused);
      return ReplyError(c.id, ErrorCode::kLimitExceeded);
    }
    stats::RecordReplyLimited(stats::ReplyLimit::kCut);
  }
  AppendHistoryReply(reply(), c.id, result);
}

// proxy.cc's calls answer through Later too.
template core::Completion<proxy::Reply> ClientSession::Later<proxy::Reply>(
    std::function<void(ClientSession&, proxy::Reply)> fn);

}  // namespace hermod::proto
