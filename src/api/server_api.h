// Centrifugo's server HTTP API: `POST /api/<method>` with a JSON body, authenticated by
// `Authorization: apikey KEY` or `X-API-Key: KEY`, answered with `{"result":{...}}` or
// `{"error":{"code":C,"message":"..."}}` (HTTP 200; 401 for a missing or wrong key, 400 for
// a body that is not the method's request, 404 for a method that does not exist). Also
// Centrifugo's older form, still served by Centrifugo v5: `POST /api` with one
// `{"method":"<name>","params":{...},"id":N}` per line, answered with one
// `{"id":N,"result":...}` or `{"id":N,"error":...}` per line.
//
// One table drives it (server_api.cc): each row is a method's name (its route
// `/api/<name>` and its metric label, from api/methods.h), its handler, and whether it acts
// (publishes, reaches clients, removes history) or only reads. A handler parses its
// request struct (api/requests.h), calls the hub or the clients, and answers Centrifugo's
// result shape. Runs on whichever loop received the request: publish goes through the hub
// like a client's, the per-client methods reach every loop through ForEachClientFn.
//
// `batch` answers `{"replies":[{"<method>":{result}} or {"error":{...}}, ...]}` in command
// order. The commands run one after another; with `parallel: true`, a `publish` that an
// engine answers later (a publication stored by sqlite or nats) does not hold the ones
// after it, so a batch of publications shares one group commit. An answer that reports
// work done is never refused after the work: a batch (or a legacy `/api` body) whose
// answers would pass http.max_response_bytes answers error 106 for every command from the
// first that no longer fits, and does not run those; a broadcast whose answer would not fit
// publishes nothing and answers 106 (HTTP 413 when alone).
//
// Engines that complete later (core/completion.h): publish, broadcast, history, presence
// and presence_stats then answer once the engine has, through HttpConnection::Defer (the
// connection serves no further request meanwhile; one that closes first is answered by
// nobody, and nothing else changes). The memory engines answer at once and no completion
// is made for them. A batch (or a legacy body) runs its commands one after another still:
// a command answered later holds the ones after it until its answer is in, so that the
// answers keep their order and the bound above is checked on each real answer (with
// `parallel`, a publish is counted at its bound meanwhile: its answer is bounded).
//
// `b64data`: the JSON protocol carries publication data as JSON text, so decoded bytes that
// are valid JSON are published as `data`; anything else is error 107 (bad request) rather
// than bytes a JSON client could not parse.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/channel_rules.h"
#include "core/hub.h"
#include "core/inbox.h"
#include "core/scheduler.h"
#include "http/http_connection.h"
#include "http/request.h"
#include "proto/client_session.h"

namespace hermod::api {

// Runs action on every client connection of `user` (only `client` when it is not empty), on
// its own loop (the server posts it to every loop).
using ClientAction = std::function<void(proto::ClientSession&)>;
using ForEachClientFn =
    std::function<void(std::string user, std::string client, ClientAction action)>;

// What `info` reports about this node besides the hub's channels.
struct NodeInfo {
  std::string version;
  // {connected clients, distinct users}; null: 0, 0.
  std::function<std::pair<size_t, size_t>()> clients;
};

// The answer of a call that an engine completes later (Call returned kLater): the text
// around the pieces still awaited.
struct LaterPieces;
class LaterAnswer {
 public:
  // fn gets the HTTP status and the answer, on the loop the call was made on. Right after
  // Call returned kLater, before that loop runs anything else.
  void Then(std::function<void(int status, std::string answer)> fn);

 private:
  friend class ServerApi;
  std::shared_ptr<LaterPieces> pieces_;
  int status_ = 0;
};

// What the method handlers work with.
struct ApiContext {
  core::Hub& hub;
  const core::ChannelRules& rules;
  ForEachClientFn for_each_client;
  NodeInfo node;
  std::string uid;               // this node's id in `info`, random per start
  uint64_t started_ms = 0;       // for `uptime`
  core::Inbox* inbox = nullptr;  // null: no inbox namespaces
  // publish/broadcast with `delay` or `deliver_at`, `scheduled`, `scheduled_cancel`;
  // null: those answer 108 (not available).
  core::Scheduler* scheduler = nullptr;
};

class ServerApi {
 public:
  ServerApi(core::Hub& hub, const core::ChannelRules& rules, std::string api_key,
            ForEachClientFn for_each_client, NodeInfo node = {});

  // The paths Handle serves (POST): `/api`, and `/api/<name>` for every method.
  static std::vector<std::string> Routes();
  // Namespaces with `inbox: true` (core/inbox.h): before the loops run.
  void set_inbox(core::Inbox* inbox) { context_.inbox = inbox; }

  // The route handler for every path of Routes().
  void Handle(http::HttpConnection& connection, http::Request& request) const;
  // Answers one method: the HTTP status (200; 400 for a body that is not the method's
  // request; 404 for an unknown method; 413 with error 106 in out when nothing was done: a
  // publication larger than the broker carries, or an answer that would not fit in
  // reply_limit bytes) and the JSON answer in out. body is padded in place.
  // Without loop and later nothing waits: a publication an engine stores later is answered
  // without its position, a read an engine answers later with error 100.
  int Call(std::string_view method, std::string& body, std::string& out,
           size_t reply_limit = SIZE_MAX, net::Loop* loop = nullptr,
           LaterAnswer* later = nullptr) const;
  // The legacy `/api` body: 200 and one answer per line, or 400 when a line is no command.
  int CallLegacy(std::string& body, std::string& out, size_t reply_limit = SIZE_MAX,
                 net::Loop* loop = nullptr, LaterAnswer* later = nullptr) const;
  // What Call and CallLegacy return, on the calling loop, when an engine answers later:
  // out is left empty and *later tells the status and answer.
  static constexpr int kLater = 0;

  // Scheduled delivery (core/scheduler.h): set before the loops run.
  void set_scheduler(core::Scheduler* scheduler) { context_.scheduler = scheduler; }
  // Publishes a scheduled publication now, on loop (from that loop's thread), as its API
  // call would have: its delay is ignored and, without an idempotency_key of its own, it is
  // keyed by its id, so that firing it twice publishes it once. done(retry): true when it
  // was refused for now (error 100 or 111 in the answer), false once it is done.
  void Fire(const core::ScheduledPublication& s, net::Loop& loop,
            std::function<void(bool retry)> done) const;

 private:
  bool Authorized(const http::Request& request) const;
  // status, or kLater with *later waiting for pieces (then out moves into them).
  static int Settle(int status, std::shared_ptr<LaterPieces> pieces, std::string& out,
                    LaterAnswer* later);

  std::string api_key_;
  ApiContext context_;
};

}  // namespace hermod::api
