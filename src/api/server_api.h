// Centrifugo's server HTTP API: `POST /api/<method>` with a JSON body, authenticated by
// `Authorization: apikey KEY` or `X-API-Key: KEY`, answered with `{"result":{...}}` or
// `{"error":{"code":C,"message":"..."}}` (HTTP 200; 401 for a missing or wrong key, 400 for
// a body that is not a JSON object, 404 for a method that does not exist). Runs on whichever
// loop received the request: publish goes through the hub like a client's, the per-client
// methods (subscribe, unsubscribe, disconnect, refresh) reach every loop through its mailbox.
//
// Methods: publish, broadcast, subscribe, unsubscribe, disconnect, refresh, presence,
// presence_stats, history, history_remove, channels, info, batch. `batch` answers
// `{"replies":[{"<method>":{result}} or {"error":{...}}, ...]}` in command order; its
// `parallel` flag is accepted and the commands run one after another (each is a few
// microseconds of in-memory work here, nothing to overlap).
//
// `b64data`: the JSON protocol carries publication data as JSON text, so decoded bytes that
// are valid JSON are published as `data`; anything else is error 107 (bad request) rather
// than bytes a JSON client could not parse.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "core/channel_rules.h"
#include "core/hub.h"
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

class ServerApi {
 public:
  ServerApi(core::Hub& hub, const core::ChannelRules& rules, std::string api_key,
            ForEachClientFn for_each_client, NodeInfo node = {});

  static constexpr std::string_view kMethods[] = {
      "publish",  "broadcast", "subscribe",      "unsubscribe", "disconnect",
      "refresh",  "presence",  "presence_stats", "history",     "history_remove",
      "channels", "info",      "batch"};

  // The route handler for /api/<method>.
  void Handle(http::HttpConnection& connection, http::Request& request) const;
  // Answers one method: the HTTP status (200, 400 for a body that is not a JSON object, 404
  // for an unknown method) and, for 200, the JSON answer in out. body is padded in place.
  int Call(std::string_view method, std::string& body, std::string& out) const;

 private:
  bool Authorized(const http::Request& request) const;
  int Batch(std::string& body, std::string& out) const;

  core::Hub& hub_;
  const core::ChannelRules& rules_;
  std::string api_key_;
  ForEachClientFn for_each_client_;
  NodeInfo node_;
  std::string uid_;          // this node's id in `info`, random per start
  uint64_t started_ms_ = 0;  // for `uptime`
};

}  // namespace hermod::api
