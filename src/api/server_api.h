// Centrifugo's server HTTP API: `POST /api/<method>` with a JSON body, authenticated by
// `Authorization: apikey KEY` or `X-API-Key: KEY`, answered with `{"result":{...}}` or
// `{"error":{"code":C,"message":"..."}}` (HTTP 200; 401 for a missing or wrong key, 400 for
// a body that is not a JSON object). Runs on whichever loop received the request: publish
// goes through the hub like a client's, disconnect reaches every loop through its mailbox.
//
// Methods so far: publish, broadcast, subscribe, unsubscribe, disconnect, presence,
// presence_stats, history, history_remove, channels, info.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/channel_rules.h"
#include "core/hub.h"
#include "http/http_connection.h"
#include "http/request.h"
#include "proto/client_connection.h"

namespace hermod::api {

// Runs action on every client connection of `user` (only `client` when it is not empty), on
// its own loop (the server posts it to every loop).
using ClientAction = std::function<void(proto::ClientConnection&)>;
using ForEachClientFn =
    std::function<void(std::string user, std::string client, ClientAction action)>;

class ServerApi {
 public:
  ServerApi(core::Hub& hub, const core::ChannelRules& rules, std::string api_key,
            ForEachClientFn for_each_client);

  // The route handler for /api/<method>.
  void Handle(http::HttpConnection& connection, http::Request& request) const;
  // One call without HTTP (Handle's core; public for the fuzz target, tests/fuzz/api):
  // appends the method's answer to out; false for a 400.
  bool Call(std::string_view method, std::string& body, std::string& out) const;

 private:
  bool Authorized(const http::Request& request) const;

  core::Hub& hub_;
  const core::ChannelRules& rules_;
  std::string api_key_;
  ForEachClientFn for_each_client_;
};

}  // namespace hermod::api
