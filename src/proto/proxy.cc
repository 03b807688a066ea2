// The session's side of the backend proxies (proxy/proxies.h): what a client's connect
// without a token, rpc, subscribe and publish on a proxied namespace, and the expiry of a
// proxied connection ask the application, and how its answer becomes the reply.
//
// A proxied command is answered later, as a command a store engine answers later: the
// request leaves on the proxy client's thread, the answer comes back to this loop through
// the mailbox (Later: only while the session lives), and the reply is built then into a
// buffer of its own (AnswerLater) and sent alone. Centrifugo's rules for the answers:
// a backend's error (code 400..1999) is the client's reply error, its disconnect (4000..4999)
// the client's disconnect; a backend that fails (down, 5xx, timeout, invalid answer) gives
// the client error 100 (temporary: the SDK retries with backoff); a refresh that fails is
// tried again later and never drops the connection.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "log/fields.h"
#include "proto/client_session.h"
#include "proto/encode.h"
#include "proto/keepalive.h"
#include "stats/loop_metrics.h"

namespace hermod::proto {

namespace {

// A refresh whose call failed is tried again after this long.
constexpr uint64_t kRefreshRetryMs = 5000;

// What the client of a refused connect (before it has a client id) or command is told
// when the backend failed: one throttled line per loop and second.
core::LogThrottle& FailureLog() {
  thread_local core::LogThrottle throttle;
  return throttle;
}

}  // namespace

bool ClientSession::CallProxy(proxy::Kind kind, proxy::Endpoint* endpoint, std::string body,
                              std::function<void(ClientSession&, proxy::Reply)> answer) {
  if (proxy_in_flight_ >= context_.proxies->max_in_flight_per_connection()) {
    // Counted on the endpoint's metrics; the caller answers 111 (temporary).
    if (endpoint != nullptr) endpoint->CountRefused(proxy::Outcome::kConnectionLimit);
    return false;
  }
  ++proxy_in_flight_;
  context_.proxies->Call(
      endpoint, kind, std::move(body), rare().proxy_headers,
      Later<proxy::Reply>([answer = std::move(answer)](ClientSession& session, proxy::Reply r) {
        --session.proxy_in_flight_;
        answer(session, std::move(r));
      }));
  return true;
}

void ClientSession::AnswerLater(const std::function<void()>& fn) {
  assert(!replying_ && "a later answer runs from the mailbox, not inside a message");
  if (disconnected_ || closing()) return;
  std::string reply;
  std::string* const outer_reply = BeginReply(reply);
  fn();
  EndReply(outer_reply);
  if (reply.empty() || disconnected_) return;
  transport_.SendReply(reply);
  stats::RecordSent(stats::SentType::kReply, reply.size());
}

bool ClientSession::ProxyRefused(uint32_t id, const proxy::Reply& reply) {
  using proxy::Outcome;
  switch (reply.outcome) {
    case Outcome::kOk:
      return false;
    case Outcome::kError:
      AppendBackendError(this->reply(), id, reply.error_code, reply.error_message,
                         reply.error_temporary);
      return true;
    case Outcome::kDisconnect:
      Disconnect({reply.disconnect_code, reply.disconnect_reason});
      return true;
    case Outcome::kOverloaded:
      ReplyError(id, ErrorCode::kTooManyRequests);
      return true;
    default:
      break;
  }
  uint64_t suppressed = 0;
  if (reply.outcome != Outcome::kStopped && spdlog::should_log(spdlog::level::warn) &&
      FailureLog().Allow(loop().now_ms(), &suppressed)) {
    log::Write(spdlog::level::warn,
               {{"client", client_id()},
                {"user", user_},
                {"outcome", proxy::kOutcomeNames[static_cast<size_t>(reply.outcome)]}},
               "client {} (user \"{}\"): proxy call failed ({}): error 100 ({} more on this "
               "loop since)",
               client_id(), user_, proxy::kOutcomeNames[static_cast<size_t>(reply.outcome)],
               suppressed);
  }
  ReplyError(id, ErrorCode::kInternal);
  return true;
}

void ClientSession::ProxyConnect(const Command& c) {
  // What the answer needs of the command outlives it: its id and connect.subs.
  struct Saved {
    uint32_t id;
    std::vector<std::string> channels, epochs;
    std::vector<ConnectSub> subs;
  };
  auto saved = std::make_shared<Saved>();
  saved->id = c.id;
  for (const ConnectSub& s : c.subs) {
    saved->channels.emplace_back(s.channel);
    saved->epochs.emplace_back(s.epoch);
    saved->subs.push_back({{}, s.recover, s.offset, {}});
  }
  std::string body = proxy::ConnectRequest(ProxyFields(), {}, {}, c.data);
  connecting_ = CallProxy(proxy::Kind::kConnect, Proxy(proxy::Kind::kConnect), std::move(body),
                          [saved](ClientSession& session, proxy::Reply reply) {
                            session.connecting_ = false;
                            session.AnswerLater([&] {
                              Command command;
                              command.id = saved->id;
                              command.method = Method::kConnect;
                              command.subs = saved->subs;
                              for (size_t i = 0; i < command.subs.size(); ++i) {
                                command.subs[i].channel = saved->channels[i];
                                command.subs[i].epoch = saved->epochs[i];
                              }
                              if (session.ProxyRefused(command.id, reply)) {
                                if (!session.connected_) session.client_id_.clear();
                                return;
                              }
                              session.refresh_by_proxy_ = true;
                              session.CompleteConnect(command, std::move(reply.claims), reply.data);
                            });
                          });
  if (!connecting_) ReplyError(c.id, ErrorCode::kTooManyRequests);  // cannot happen: one call
}

void ClientSession::HandleRpc(const Command& c) {
  if (HandleInboxRpc(c)) return;
  proxy::Endpoint* endpoint =
      context_.proxies ? context_.proxies->RpcEndpoint(c.rpc_method) : nullptr;
  if (!endpoint) return ReplyError(c.id, ErrorCode::kNotAvailable);
  if (c.rpc_method.empty() && c.data.empty()) return ReplyError(c.id, ErrorCode::kBadRequest);
  std::string body = proxy::RpcRequest(ProxyFields(), c.rpc_method, c.data);
  const bool sent = CallProxy(proxy::Kind::kRpc, endpoint, std::move(body),
                              [id = c.id](ClientSession& session, proxy::Reply reply) {
                                session.AnswerLater([&] {
                                  if (session.ProxyRefused(id, reply)) return;
                                  AppendRpcReply(session.reply(), id, reply.data);
                                });
                              });
  if (!sent) ReplyError(c.id, ErrorCode::kTooManyRequests);
}

void ClientSession::ProxySubscribe(const Command& c, const config::ChannelOptions& options) {
  struct Saved {
    uint32_t id;
    std::string channel;
    bool recoverable, recover, join_leave;
    uint64_t offset;
    std::string epoch;
    std::string delta;  // asked for; granted by the namespace's allowed_delta_types
  };
  auto saved = std::make_shared<Saved>(Saved{c.id, std::string(c.channel), c.recoverable, c.recover,
                                             c.join_leave, c.offset, std::string(c.epoch),
                                             std::string(c.delta)});
  std::string body = proxy::SubscribeRequest(ProxyFields(), c.channel, c.data);
  const bool sent = CallProxy(
      proxy::Kind::kSubscribe, Proxy(proxy::Kind::kSubscribe, options.subscribe_proxy_name),
      std::move(body), [saved, options = &options](ClientSession& session, proxy::Reply reply) {
        std::vector<std::string>& waiting = session.rare().pending_subscribes;
        auto pending = std::find(waiting.begin(), waiting.end(), saved->channel);
        if (pending == waiting.end()) return;  // unsubscribed meanwhile
        waiting.erase(pending);
        session.AnswerLater([&] {
          if (session.ProxyRefused(saved->id, reply)) return;
          if (session.FindSubscription(saved->channel)) {  // the API subscribed it meanwhile
            return session.ReplyError(saved->id, ErrorCode::kAlreadySubscribed);
          }
          const auth::TokenSubscription& o = reply.overrides;
          std::unique_ptr<config::ChannelOptions> overridden;
          if (o.presence.set || o.join_leave.set || o.force_push_join_leave.set ||
              o.force_recovery.set) {
            overridden = std::make_unique<config::ChannelOptions>(*options);
            if (o.presence.set) overridden->presence = o.presence.value;
            if (o.join_leave.set) overridden->join_leave = o.join_leave.value;
            if (o.force_push_join_leave.set) {
              overridden->force_push_join_leave = o.force_push_join_leave.value;
            }
            if (o.force_recovery.set) overridden->force_recovery = o.force_recovery.value;
          }
          // A namespace with proxy_sub_refresh leaves an expiring subscription's refresh to
          // the server (Centrifugo: no client-side refresh).
          const bool by_proxy =
              options->proxy_sub_refresh && reply.claims.expires_at != 0 &&
              session.Proxy(proxy::Kind::kSubRefresh, options->sub_refresh_proxy_name) != nullptr;
          session.SubscribeAllowed(
              {saved->id, saved->channel, saved->recoverable, saved->recover, saved->offset,
               saved->epoch, saved->join_leave, by_proxy, saved->delta},
              *options, reply.claims.expires_at, reply.claims.info, std::move(overridden),
              reply.data);
        });
      });
  if (!sent) return ReplyError(c.id, ErrorCode::kTooManyRequests);
  rare().pending_subscribes.emplace_back(c.channel);
}

void ClientSession::ProxyPublish(const Command& c, const config::ChannelOptions& options) {
  std::string body = proxy::PublishRequest(ProxyFields(), c.channel, c.data);
  const bool sent = CallProxy(
      proxy::Kind::kPublish, Proxy(proxy::Kind::kPublish, options.publish_proxy_name),
      std::move(body),
      [id = c.id, channel = std::string(c.channel), data = std::string(c.data), options = &options](
          ClientSession& session, proxy::Reply reply) {
        session.AnswerLater([&] {
          if (session.ProxyRefused(id, reply)) return;
          // The backend may rewrite what is published.
          session.PublishAllowed(id, channel, *options, reply.data.empty() ? data : reply.data);
        });
      });
  if (!sent) ReplyError(c.id, ErrorCode::kTooManyRequests);
}

void ClientSession::ProxyRefresh() {
  if (refreshing_) return;
  std::string body = proxy::RefreshRequest(ProxyFields());
  const bool sent = CallProxy(proxy::Kind::kRefresh, Proxy(proxy::Kind::kRefresh), std::move(body),
                              [](ClientSession& session, proxy::Reply reply) {
                                session.refreshing_ = false;
                                if (!session.connected()) return;
                                if (reply.outcome != proxy::Outcome::kOk) {
                                  // Error and disconnect answers do not apply to refresh; a failure
                                  // is tried again.
                                  session.SetExpireMs(session.loop().now_ms() + kRefreshRetryMs,
                                                      session.loop().now_ms());
                                } else if (reply.expired) {
                                  return session.Disconnect(kDisconnectExpired);
                                } else {
                                  session.SetExpiry(reply.claims.expires_at);
                                }
                                session.ScheduleKeepalive();
                              });
  // Meanwhile the old deadline is off; past the per-connection bound, try again later.
  if (sent) {
    expiring_ = false;
  } else {
    SetExpireMs(loop().now_ms() + kRefreshRetryMs, loop().now_ms());
  }
  refreshing_ = sent;
}

void ClientSession::ProxySubRefresh(ClientSubscription& s) {
  if (s.sub_refresh_call() != 0) return;  // one call out per subscription
  const uint64_t call = ++rare().sub_refresh_calls;
  std::string body = proxy::SubRefreshRequest(ProxyFields(), s.channel());
  const bool sent = CallProxy(
      proxy::Kind::kSubRefresh,
      Proxy(proxy::Kind::kSubRefresh, OptionsOf(s).sub_refresh_proxy_name), std::move(body),
      [channel = std::string(s.channel()), call](ClientSession& session, proxy::Reply reply) {
        ClientSubscription* sub = session.FindSubscription(channel);
        if (!sub || sub->sub_refresh_call() != call || !session.connected()) return;
        sub->rare->sub_refresh_call = 0;
        // Error and disconnect answers do not apply to sub_refresh; a failure is tried
        // again at the next check (the subscription stays meanwhile, as in Centrifugo).
        if (reply.outcome != proxy::Outcome::kOk) return;
        const int64_t expires_at = reply.claims.expires_at;
        if (reply.expired || (expires_at != 0 && expires_at <= WallSeconds())) {
          return session.EndSubscription(channel, kUnsubscribeExpired.code,
                                         kUnsubscribeExpired.reason);
        }
        sub->SetExpiresAt(expires_at);
      });
  if (sent) s.rare_state().sub_refresh_call = call;
}

}  // namespace hermod::proto
