// A client of the Centrifugo protocol: the session behind one connection, whatever carries
// it (proto/transport.h; today a WebSocket, websocket_transport.h). Its messages are
// commands. Commands of one message are handled in order and their replies leave as one
// message (newline-joined); pushes from the hub arrive as shared frames queued behind them.
// The first command must be `connect` (else disconnect 3501). Everything here runs on the
// transport's loop.
//
// Authentication: a connection JWT (user, info, expiry, server-side `channels` and `subs`
// with per-channel info, data and option overrides), or none
// when allow_anonymous_connect_without_token; a subscription JWT opens channels that the
// namespace does not open to every client (and `$` channels). An expiring token is
// refreshed with `refresh` / `sub_refresh`; a connection whose token ran out is
// disconnected with 3005, a subscription's with 3006. A subscription token's `info` (or a
// `subs` entry's) becomes the subscription's own ClientInfo (`chan_info`): what presence,
// join/leave and this client's publications to that channel carry.
//
// Keepalive is the protocol's, not RFC 6455's: every ping_interval the server sends `{}`
// (on a 100 ms grid, so that clients' pings leave together: SetNextPing);
// the connect result says `"pong": true`, so the client answers `{}`, and a client silent for
// pong_timeout after a ping is disconnected with 3012. One timer covers the stale deadline
// (no connect), pings, the pong deadline, token expiry and dropping a repaid rate limiter
// (keepalive.cc). The transport keeps it (Transport::SetSessionTimer): a WebSocket's is its
// connection's own timer, so it costs no node and no allocation. The command parser and the reply
// buffer are per thread (per loop), not per connection: an idle client holds its id, its user and
// its subscriptions, nothing more. Both are released after a message that grew them past
// kScratchKeepBytes, and what one message's replies may hold is bounded by the connection's write
// budget (ReplyRoom), so a message of 50 large history commands cannot pin a gigabyte.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/token_verifier.h"
#include "config/config.h"
#include "core/admission.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "core/inbox.h"
#include "core/rate_limit.h"
#include "net/event_loop.h"
#include "net/timer_wheel.h"
#include "proto/client_options.h"
#include "proto/client_registry.h"
#include "proto/codes.h"
#include "proto/command.h"
#include "proto/command_guard.h"
#include "proto/encode.h"
#include "proto/transport.h"
#include "proxy/proxies.h"

namespace hermod::proto {

// What every client session shares: read-only options, rules and keys, and the hub.
struct ClientContext {
  core::Hub& hub;
  const core::ChannelRules& rules;
  const auth::TokenVerifier& tokens;
  ClientOptions options;
  ClientRegistry* registry = nullptr;    // null: not counted nor found by user
  core::Admission* admission = nullptr;  // null: no admission limits
  proxy::Proxies* proxies = nullptr;     // null: no backend proxies configured
  core::Inbox* inbox = nullptr;          // null: no inbox namespaces
  // user_subscribe_to_personal: each connection of a user is subscribed server-side to
  // `<namespace>:#<user>` (`#<user>` with an empty namespace); nullopt: off.
  std::optional<std::string> personal_namespace;
};

class ClientSession final {
 public:
  // Called by the transport's constructor (on its loop): the stale deadline starts.
  ClientSession(Transport& transport, ClientContext& context);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // From the transport: one client message (newline-separated JSON commands).
  void OnMessage(std::string_view payload);
  // From the transport: it is gone (closed by either side); called once.
  void OnTransportClosed();
  Transport& transport() const { return transport_; }
  net::Loop& loop() const { return transport_.loop(); }

  const std::string& user() const { return user_; }
  std::string_view client_id() const { return client_id_; }
  bool connected() const { return connected_ && !disconnected_; }
  // A server-side decision (the API's disconnect): code and reason as the client gets them.
  void Disconnect(proto::Disconnect reason);
  // The API's subscribe: a server-side subscription, announced with a `subscribe` push.
  void SubscribeFromServer(std::string_view channel);
  // The API's unsubscribe: ends the subscription with an `unsubscribe` push (code 2000).
  void UnsubscribeFromServer(std::string_view channel);
  // Admission (core/admission.h): this connection was counted for `ip` by Admission::Admit; it is
  // released when the connection goes. must_recover: admitted in the soft band, so its
  // connect must carry a recovery position.
  void SetAdmitted(std::string ip, bool must_recover);
  // The API's refresh: expired disconnects now (3005); else expire_at (wall clock s, 0:
  // never) becomes the connection's expiry.
  void RefreshFromServer(bool expired, int64_t expire_at);
  // The client's HTTP request headers that proxy_http_headers forwards to the backend
  // proxies ("Name: value" lines), kept for the connection's proxy calls.
  void SetProxyHeaders(std::vector<std::string> headers) {
    if (!headers.empty()) rare().proxy_headers = std::move(headers);
  }
  // A unidirectional transport (uni_websocket, uni_sse, uni_http_stream, fragments): the
  // client sends nothing after its connect, so the connect result says no pong and none is
  // awaited.
  void SetUnidirectional() { unidirectional_ = true; }
  // The bytes one subscription holds in its own allocation (the per-connection memory
  // bound's test, websocket_transport_test).
  static constexpr size_t SubscriptionBytes();
  // From the transport: the session timer (Transport::SetSessionTimer) is due.
  void OnKeepalive();
  // A subscription (a ClientSubscription, with tell_missed) missed a publication under
  // backpressure (core::PushCodec::missed, set by JsonPushCodec):
  // a client-side one gets an unsubscribe push with 2500 at once (recoverable: "insufficient
  // state", as Centrifugo: the SDK resubscribes and recovers the gap from history; otherwise
  // "slow: publications lost"); a server-side one ends the connection (recoverable: 3010,
  // the SDK reconnects and recovers; otherwise 3008 "slow").
  static void OnMissed(core::Subscription& s);

 private:
  // Its session is transport->client_session() (no pointer of its own: 8 bytes).
  // Its channel's name: core::Subscription::channel() (the hub's loop entry holds it).
  // Its namespace's options: OptionsOf (the token's overrides, in Rare, or the rules').
  // 72 bytes, a malloc block of 80 (docs/benchmarks.md).
  struct ClientSubscription : TransportSubscription {
    // Non-zero while its subscribe reply waits for the history engine's recovery: which
    // one (a subscription made again for the channel meanwhile has another). 29 bits beside
    // the flags (NextRecovery counts them in Rare::recoveries).
    static constexpr uint32_t kRecoveryMask = (1u << 29) - 1;
    uint32_t recovery : 29 = 0;
    bool server_side : 1 = false;  // from the connection token's channels or subs
    bool recoverable : 1 = false;  // the client tracks offsets: it can recover a gap
    // Expiry is the sub_refresh proxy's to decide (a subscribe proxy's `expire_at` on a
    // namespace with proxy_sub_refresh), not the client's (the call out: Rare).
    bool refresh_by_proxy : 1 = false;
    // The subscription token's expiry (wall clock s, 32 bits: until 2106, later ones kept
    // as the last second it holds); 0: never.
    uint32_t expires_at = 0;
    void SetExpiresAt(int64_t s) {
      expires_at = s == 0 ? 0 : static_cast<uint32_t>(std::clamp<int64_t>(s, 1, UINT32_MAX));
    }
    // What only some subscriptions have, in an allocation made on first use: a plain
    // subscription is 40 bytes smaller without it (docs/benchmarks.md).
    struct Rare {
      // The namespace's options with the token's `override`s applied, when it had any.
      std::unique_ptr<config::ChannelOptions> overridden;
      std::string chan_info;  // the token's chan_info (raw JSON), when it had one
      // An inbox namespace's: its watch (inbox_rpc.cc), ended with the subscription.
      std::shared_ptr<core::Inbox::Watcher> inbox_watch;
      uint64_t sub_refresh_call = 0;  // the sub_refresh proxy's call out (0: none)
    };
    std::unique_ptr<Rare> rare;
    Rare& rare_state() {
      if (!rare) rare = std::make_unique<Rare>();
      return *rare;
    }
    uint64_t sub_refresh_call() const { return rare ? rare->sub_refresh_call : 0; }
  };

  // A subscription's namespace options: its token's overrides, or its channel's namespace
  // (the rules are fixed for the process's life, so found again rather than kept).
  const config::ChannelOptions& OptionsOf(const ClientSubscription& s) const;
  // The next ClientSubscription::recovery (never 0).
  uint32_t NextRecovery();

  size_t queued_bytes() const { return transport_.queued_bytes(); }
  bool closing() const { return transport_.closing(); }
  std::string PeerIp() const { return transport_.PeerIp(); }
  // The ClientInfo JSON that presence, join/leave and publications carry, with s's
  // chan_info when it has one. Built when needed (subscribe, unsubscribe, publish), not
  // kept: every connection would hold ~80 bytes more for it.
  std::string Info(const ClientSubscription* s = nullptr) const;
  // One throttled log line per loop and second for a missed push, with its channel.
  void LogMissed(const ClientSubscription& s);
  void ScheduleKeepalive();

  // Each appends its reply to reply(); Handle returns false once the client is disconnected.
  bool Handle(const Command& c);
  void HandleConnect(const Command& c);
  void HandleRefresh(const Command& c);
  void HandleSubscribe(const Command& c);
  void HandleSubRefresh(const Command& c);
  void HandleUnsubscribe(const Command& c);
  void HandlePublish(const Command& c);
  void HandlePresence(const Command& c, bool stats);
  void HandleHistory(const Command& c);
  void ReplyError(uint32_t id, ErrorCode code);
  // The rest of a connect once its credentials are known (a token's claims, or the connect
  // proxy's result): admission, server-side subscriptions, the reply (with `data`).
  void CompleteConnect(const Command& c, auth::TokenClaims claims, std::string_view data = {});

  // Backend proxies (proxy/proxies.h, proxy.cc). Each call leaves on the proxy client's
  // thread and its answer comes back through this loop (Later); the reply leaves then.
  // name: granular proxy mode's proxy of the namespace (empty: the kind's default).
  proxy::Endpoint* Proxy(proxy::Kind kind, std::string_view name = {}) const {
    return context_.proxies ? context_.proxies->endpoint(kind, name) : nullptr;
  }
  proxy::ClientFields ProxyFields() const {
    proxy::ClientFields fields{client_id_, user_};
    if (context_.proxies->include_connection_meta() && rare_) fields.meta = rare_->meta;
    return fields;
  }
  // Sends a call; false (and nothing sent) past proxy_client.max_in_flight_per_connection.
  bool CallProxy(proxy::Kind kind, proxy::Endpoint* endpoint, std::string body,
                 std::function<void(ClientSession&, proxy::Reply)> answer);
  // A reply of a call answered later: builds it into a buffer of its own (fn appends to
  // reply() as a handler does) and sends it, unless the client is gone meanwhile.
  void AnswerLater(const std::function<void()>& fn);
  // The backend's error or disconnect, or a failed call (error 100, temporary; 111 when the
  // endpoint had too many calls out): replies or disconnects and returns true; false for a
  // result, which the caller carries out.
  bool ProxyRefused(uint32_t id, const proxy::Reply& reply);
  void ProxyConnect(const Command& c);
  void HandleRpc(const Command& c);
  // Inboxes (inbox_rpc.cc): hermod.ack and hermod.reject (false: another RPC method), the
  // watch of a subscription to an inbox, and its deliveries.
  class InboxWatch;
  bool HandleInboxRpc(const Command& c);
  void WatchInbox(ClientSubscription& s);
  void SendInbox(std::string_view channel, const std::vector<core::InboxEntry>& entries);
  void ProxySubscribe(const Command& c, const config::ChannelOptions& options);
  void ProxyPublish(const Command& c, const config::ChannelOptions& options);
  void ProxyRefresh();
  // Asks the sub_refresh proxy whether an expired subscription lives on: extended, or ended
  // with unsubscribe 2501; a failed call is tried again at the next check.
  void ProxySubRefresh(ClientSubscription& s);
  // Ends a subscription with an unsubscribe push (the API's unsubscribe, an expiry).
  void EndSubscription(std::string_view channel, uint32_t code, std::string_view reason);
  // A subscribe the namespace's rules or the subscribe proxy allowed: subscribes and
  // replies (now, or when an engine recovers later).
  struct SubscribeAsk {
    uint32_t id = 0;
    std::string_view channel;
    bool recoverable = false;  // the client's
    bool recover = false;
    uint64_t offset = 0;
    std::string_view epoch;
    bool join_leave = false;
    bool refresh_by_proxy = false;  // ClientSubscription::refresh_by_proxy: no ttl in the reply
    std::string_view delta;         // the delta compression asked for ("fossil")
  };
  void SubscribeAllowed(const SubscribeAsk& ask, const config::ChannelOptions& options,
                        int64_t expires_at, std::string_view chan_info,
                        std::unique_ptr<config::ChannelOptions> overridden = nullptr,
                        std::string_view data = {});
  // The publish a namespace's rules or the publish proxy allowed.
  void PublishAllowed(uint32_t id, std::string_view channel, const config::ChannelOptions& options,
                      std::string_view data);
  // The bytes one more reply may take: the connection's write budget (websocket.
  // max_write_buffer_bytes, which bounds pushes too) less what is queued and what this
  // message's replies already hold. A history or presence reply that would pass it is cut
  // short or refused with 106 before it is built; past the budget the connection would be
  // cut (3008), and a message of many such commands would pin their sum in memory.
  size_t ReplyRoom() const { return RoomBeside(replying_ ? ReplyBuffer()->size() : 0); }
  // The same room beside `pending` reply bytes not yet queued (0: a reply sent on its own,
  // as one a store engine answers later).
  size_t RoomBeside(size_t pending) const;
  // One throttled log line for a connect refused for its credentials (101, 109).
  void LogAuthFailure(ErrorCode code, std::string_view reason);
  // Checks the channel name and its namespace; replies with the error when it fails.
  const config::ChannelOptions* ChannelOptionsOrReply(const Command& c);
  ClientSubscription* FindSubscription(std::string_view channel);
  // Subscribes through the hub and keeps the subscription. chan_info: raw JSON or empty;
  // overridden: the options to use instead of the namespace's (may be null).
  core::Hub::SubscribeResult AddSubscription(
      std::string_view channel, const config::ChannelOptions& options, bool recoverable,
      bool recover, const core::StreamPosition& since, bool join_leave, int64_t expires_at,
      std::string_view chan_info = {}, std::unique_ptr<config::ChannelOptions> overridden = nullptr,
      size_t max_recovery_bytes = SIZE_MAX, core::Hub::SubscribeDone done = {});
  // A subscription granted delta compression: its recovered publications as the client
  // decodes them (the first in full, each next a delta against the one before), and the
  // publication its next delta applies to.
  void DeltaRecovered(ClientSubscription& s, core::Hub::SubscribeResult& result);
  // The subscribe reply whose recovery an engine completed later (Hub::Subscribe's done):
  // sent (with the subscribe proxy's `data`, if any), then the pushes held meanwhile;
  // nothing when the subscription is gone.
  void SendRecovered(uint32_t id, std::string_view channel, uint64_t recovery, int64_t expires_at,
                     bool was_recovering, core::Hub::SubscribeResult result,
                     std::string_view data = {});
  // A server-side subscription from the connection token, recovered from connect.subs.
  void AddServerSubscription(const Command& c, std::string_view channel,
                             const auth::TokenSubscription* token_sub,
                             std::vector<core::Hub::SubscribeResult>& results,
                             std::vector<ServerSubscription>& subs);
  // A connect whose server-side subscriptions a history engine recovers later: the reply
  // waits for every recovery, and every server-side subscription holds its pushes until
  // the reply is out (then Hub::Resume), as a client's subscribe does.
  struct PendingConnect {
    struct Sub {
      std::string channel;
      std::string data;
      bool was_recovering = false;
      uint64_t recovery = 0;  // ClientSubscription::recovery; 0: answered at connect
      bool waiting = false;   // its recovery has not answered yet
      core::Hub::SubscribeResult result;
    };
    uint32_t id = 0;
    uint32_t ping_s = 0;
    bool pong = false;
    int64_t ttl_s = 0;
    std::vector<Sub> subs;
    size_t waiting = 0;
  };
  // A server-side subscription's recovery answered (on this loop); the last one sends the
  // connect reply, then the held pushes.
  void ConnectRecovered(uint64_t recovery, core::Hub::SubscribeResult recovered);
  // The token's expiry as a deadline on the loop's clock.
  void SetExpiry(int64_t expires_at_s);
  // Unsubscribes everything and leaves the counts: the connection is gone.
  void UnsubscribeAll();
  // Carries out a guard's refusal (command_guard.h): the error reply (none for `send`,
  // which has no reply) or the disconnect.
  void Refuse(const Command& c, const CommandGuard::Verdict& verdict);
  void ReleaseAdmission() { guard_.Release(context_.admission, user_); }
  // A store engine that completes later (core/completion.h): the reply leaves on its own,
  // on this loop, and only while this session lives (its liveness handle, made on first
  // use: the memory engine never needs it).
  template <class T>
  core::Completion<T> Later(std::function<void(ClientSession&, T)> fn);
  void SendLaterReply(const std::string& reply);

  Transport& transport_;
  ClientContext& context_;
  // The client id (a UUID), kept in the session: a std::string would allocate 48 bytes more.
  class ClientId {
   public:
    operator std::string_view() const { return {data_, size_}; }
    bool empty() const { return size_ == 0; }
    void clear() { size_ = 0; }
    ClientId& operator=(std::string_view id) {
      assert(id.size() <= sizeof(data_));
      size_ = static_cast<uint8_t>(std::min(id.size(), sizeof(data_)));
      std::memcpy(data_, id.data(), size_);
      return *this;
    }

   private:
    char data_[36];
    uint8_t size_ = 0;
  };
  ClientId client_id_;
  // The flags (one bit each) and the 32-bit times follow the client id's 37 bytes, in what
  // would be its padding: every 16 bytes of the transport object is a malloc size class
  // (docs/benchmarks.md).
  bool connected_ : 1 = false;
  bool disconnected_ : 1 = false;
  bool awaiting_pong_ : 1 = false;
  bool unidirectional_ : 1 = false;
  bool counted_ : 1 = false;  // in context_.registry
  bool stale_ : 1 = false;    // before connect: stale_or_pong_ is the stale deadline
  bool pinging_ : 1 = false;  // next_ping_ is set
  // Backend proxies: a connect waiting for the connect proxy, whether the refresh proxy
  // decides this connection's expiry (it was connected by the proxy).
  bool connecting_ : 1 = false;
  bool refresh_by_proxy_ : 1 = false;
  bool refreshing_ : 1 = false;
  bool expiring_ : 1 = false;      // expire_ is set
  bool expire_exact_ : 1 = false;  // expire_ is a time in ms mod 2^32, not seconds
  bool replying_ : 1 = false;      // a message (or a later answer) is handled: reply() is its reply
  uint32_t proxy_in_flight_ = 0;   // backend proxy calls out now
  // Times on the loop's clock mod 2^32, each less than 2^31 ms ahead (config bounds):
  // before connect the stale deadline (stale_), after it the pong deadline (while
  // awaiting_pong_), never both in use; the next ping (pinging_).
  uint32_t stale_or_pong_ = 0;
  uint32_t next_ping_ = 0;
  static uint64_t Unwrap(uint32_t t, uint64_t now) {
    const auto ahead = static_cast<int32_t>(t - static_cast<uint32_t>(now));
    return now + static_cast<uint64_t>(static_cast<int64_t>(ahead));
  }
  // Pings are due on a grid of kPingGridMs (the nearest point to a ping_interval from now), so
  // that the pings of clients that connected within the same tenth of a second go out in one
  // loop iteration and their pongs come back together: a loop of many idle clients wakes
  // once per grid point instead of once per ping and pong. The interval stays within
  // kPingGridMs / 2 of ping_interval_ms (a second at least, config.cc).
  static constexpr uint64_t kPingGridMs = 100;
  void SetNextPing(uint64_t ms) {
    pinging_ = true;
    next_ping_ = static_cast<uint32_t>((ms + kPingGridMs / 2) / kPingGridMs * kPingGridMs);
  }
  // Connection token expiry (while expiring_), 32 bits in the times' padding instead of 64:
  // a time on the loop's clock mod 2^32 as the others when less than 2^31 ms ahead (exact,
  // expire_exact_), else the loop clock's second, rounded up (a close at most a second late
  // for an expiry more than 24 days away).
  uint32_t expire_ = 0;
  uint64_t ExpireMs(uint64_t now) const {
    return expire_exact_ ? Unwrap(expire_, now) : uint64_t{expire_} * 1000;
  }
  void SetExpireMs(uint64_t ms, uint64_t now) {
    expiring_ = true;
    expire_exact_ = ms < now + (uint64_t{1} << 31);
    expire_ = static_cast<uint32_t>(expire_exact_ ? ms : (ms + 999) / 1000);
  }
  std::string user_;
  // The reply being built while this session handles a message (OnMessage) or a later
  // answer (AnswerLater): the loop's buffer, found through a thread-local pointer (one
  // session replies at a time on a thread) instead of 8 bytes in every session.
  static std::string*& ReplyBuffer();
  std::string& reply() {
    assert(replying_);
    return *ReplyBuffer();
  }
  // Begins a reply into buffer; returns the buffer it replaces, for EndReply.
  std::string* BeginReply(std::string& buffer) {
    replying_ = true;
    return std::exchange(ReplyBuffer(), &buffer);
  }
  void EndReply(std::string* previous) {
    replying_ = false;
    ReplyBuffer() = previous;
  }
  // The subscriptions, with room for one inside: most connections hold one or none, and a
  // std::vector's block for one pointer is 32 bytes of heap more (docs/benchmarks.md).
  class Subscriptions {
   public:
    using Ptr = std::unique_ptr<ClientSubscription>;
    Subscriptions() { new (&one_) Ptr(); }
    Subscriptions(const Subscriptions&) = delete;
    Subscriptions& operator=(const Subscriptions&) = delete;
    ~Subscriptions() {
      clear();
      Free();
    }
    Ptr* begin() { return capacity_ > 1 ? heap_ : &one_; }
    Ptr* end() { return begin() + size_; }
    size_t size() const { return size_; }
    Ptr& back() { return begin()[size_ - 1]; }
    void push_back(Ptr p) {
      if (size_ == capacity_) Grow();
      begin()[size_++] = std::move(p);
    }
    void erase(Ptr* it) {
      std::move(it + 1, end(), it);
      begin()[--size_].reset();
    }
    void clear() {
      for (Ptr& p : *this) p.reset();
      size_ = 0;
    }

   private:
    void Free() {
      if (capacity_ > 1) {
        delete[] heap_;
      } else {
        one_.~Ptr();
      }
    }
    void Grow() {
      const uint32_t capacity = capacity_ * 2;
      Ptr* heap = new Ptr[capacity];
      std::move(begin(), end(), heap);
      Free();
      heap_ = heap;
      capacity_ = capacity;
    }
    // capacity_ 1: the one inside (one_); more: heap_. 16 bytes in all.
    union {
      Ptr one_;
      Ptr* heap_;
    };
    uint32_t size_ = 0;
    uint32_t capacity_ = 1;
  };
  Subscriptions subscriptions_;
  CommandGuard guard_;
  // What only some connections need (backend proxies, store engines that answer later, a
  // token's conn_info), in
  // an allocation of its own made on first use: a plain connection is smaller without it
  // (docs/benchmarks.md, "Memory per connection with one subscription").
  struct Rare {
    std::shared_ptr<const void> alive;                // see Later
    uint32_t recoveries = 0;                          // ClientSubscription::recovery's last value
    std::vector<std::string> proxy_headers;           // forwarded to the backend proxies
    std::vector<std::string> pending_subscribes;      // waiting for the subscribe proxy
    std::unique_ptr<PendingConnect> pending_connect;  // while a connect waits for recoveries
    std::string conn_info;           // the token's conn_info (raw JSON), when it had one
    std::string meta;                // the connection's `meta` (JSON object), when it had one
    uint64_t sub_refresh_calls = 0;  // ClientSubscription::sub_refresh_call's last value
  };
  Rare& rare() {
    if (!rare_) rare_ = std::make_unique<Rare>();
    return *rare_;
  }
  size_t pending_subscribe_count() const { return rare_ ? rare_->pending_subscribes.size() : 0; }
  std::unique_ptr<Rare> rare_;
};

constexpr size_t ClientSession::SubscriptionBytes() { return sizeof(ClientSubscription); }

// The session timer of a transport that has no timer to share (Transport::SetSessionTimer):
// a node of its own. Declared before the session it serves (the session sets it when it is
// made).
class SessionTimer final : private net::TimerNode {
 public:
  SessionTimer(net::Loop& loop, ClientSession& session) : loop_(loop), session_(session) {}
  ~SessionTimer() override { loop_.timers().Cancel(this); }
  SessionTimer(const SessionTimer&) = delete;
  SessionTimer& operator=(const SessionTimer&) = delete;
  void Set(uint64_t due_ms) {
    if (due_ms == Transport::kNoSessionTimer) return loop_.timers().Cancel(this);
    const uint64_t now = loop_.now_ms();
    loop_.timers().Schedule(this, due_ms > now ? due_ms - now : 0);
  }

 private:
  void OnTimer() override { session_.OnKeepalive(); }
  net::Loop& loop_;
  ClientSession& session_;
};

}  // namespace hermod::proto
