// Everything the server sends in the client protocol, as JSON appended to a string: replies
// `{"id":N,"<method>":{result}}`, errors, and the pushes the hub fans out. Fields that are
// false, zero or empty are left out, as Centrifugo's JSON does (the SDK treats absence as
// the zero value). Publication `data` is raw JSON text and is copied in as it came.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/hub.h"
#include "json/string_writer.h"
#include "proto/codes.h"

namespace hermod::proto {

using json::AppendJsonString;

// `{"user":"..","client":"..","conn_info":..,"chan_info":..}`; the infos are raw JSON, left
// out when empty.
std::string ClientInfoJson(std::string_view user, std::string_view client,
                           std::string_view conn_info = {}, std::string_view chan_info = {});

void AppendError(std::string& out, uint32_t id, ErrorCode code);
// An error the application chose (a backend proxy's answer: code 400..1999).
void AppendBackendError(std::string& out, uint32_t id, uint32_t code, std::string_view message,
                        bool temporary);
// `{"id":N,"rpc":{"data":..}}`: data is raw JSON, left out when empty.
void AppendRpcReply(std::string& out, uint32_t id, std::string_view data);

// A server-side subscription's result, as the connect reply's `subs` carries it.
struct ServerSubscription {
  std::string_view channel;
  const core::Hub::SubscribeResult* result;
  bool was_recovering = false;
  std::string_view data;  // raw JSON (the token's subs[channel].data); empty when absent
};

struct ConnectResult {
  std::string_view client;
  std::string_view version;
  uint32_t ping_s = 0;
  bool pong = false;
  int64_t ttl_s = 0;  // > 0: the token expires (`expires`, `ttl`)
  std::vector<ServerSubscription> subs;
  std::string_view data;  // raw JSON (the connect proxy's `data`); empty when absent
};
void AppendConnectReply(std::string& out, uint32_t id, const ConnectResult& result);
// `refresh` (client, version, expires, ttl) and `sub_refresh` (expires, ttl).
void AppendRefreshReply(std::string& out, uint32_t id, const ConnectResult& result);
void AppendSubRefreshReply(std::string& out, uint32_t id, int64_t ttl_s);
// The subscribe result object alone, then the whole reply.
void AppendSubscribeResult(std::string& out, const core::Hub::SubscribeResult& r,
                           bool was_recovering, int64_t ttl_s = 0, std::string_view data = {});
void AppendSubscribeReply(std::string& out, uint32_t id, const core::Hub::SubscribeResult& r,
                          bool was_recovering, int64_t ttl_s = 0, std::string_view data = {});
// `{"id":N,"<method>":{}}`: unsubscribe, publish.
void AppendEmptyReply(std::string& out, uint32_t id, std::string_view method);
void AppendHistoryReply(std::string& out, uint32_t id, const core::Hub::HistoryResult& r);
void AppendPresenceReply(std::string& out, uint32_t id,
                         const std::vector<std::pair<std::string, core::PresenceEntry>>& p);
void AppendPresenceStatsReply(std::string& out, uint32_t id, size_t clients, size_t users);

// The publication object, as history stores it and pushes embed it (the hub's
// PushCodec::publication): data, info and tags (an object of strings) are raw JSON; offset 0
// and empty tags are left out.
std::string PublicationJson(std::string_view data, std::string_view info, uint64_t offset,
                            std::string_view tags = {});
// `{"push":{"channel":..,"pub":<publication>}}` and the join/leave pushes.
void AppendPublicationPush(std::string& out, std::string_view channel,
                           std::string_view publication);
void AppendJoinLeavePush(std::string& out, std::string_view channel, bool join,
                         std::string_view info);
// The pushes one client gets alone: a server-side subscribe (the API's subscribe) and an
// unsubscribe with its code (2000: the API's; 2500: publications were missed).
void AppendSubscribePush(std::string& out, std::string_view channel,
                         const core::Hub::SubscribeResult& result);
void AppendUnsubscribePush(std::string& out, std::string_view channel, uint32_t code,
                           std::string_view reason);

}  // namespace hermod::proto
