#include "proto/encode.h"

#include "proto/protobuf.h"

namespace hermod::proto {

namespace {

void AppendTtl(std::string& out, int64_t ttl_s) {
  if (ttl_s > 0) {
    out += ",\"expires\":true,\"ttl\":";
    out += std::to_string(ttl_s);
  }
}

void AppendId(std::string& out, uint32_t id) {
  out += "{\"id\":";
  out += std::to_string(id);
}

void AppendPublications(std::string& out, const std::vector<std::string>& publications) {
  out += "\"publications\":[";
  for (size_t i = 0; i < publications.size(); ++i) {
    if (i > 0) out += ',';
    out += publications[i];
  }
  out += ']';
}

}  // namespace

std::string PublicationJson(std::string_view data, std::string_view info, uint64_t offset,
                            std::string_view tags) {
  std::string out;
  // One allocation: grown piece by piece, a 1 KiB publication was copied several times.
  out.reserve(data.size() + info.size() + tags.size() + 48);
  if (IsBinaryData(data)) {
    // A Protobuf client's binary data (proto/protobuf.h): base64, as the API's b64data.
    out = "{\"b64data\":\"";
    out += data.substr(1);
    out += '"';
  } else {
    out = "{\"data\":";
    out += data.empty() ? std::string_view("null") : data;
  }
  if (!info.empty()) {
    out += ",\"info\":";
    out += info;
  }
  if (offset != 0) {
    out += ",\"offset\":";
    out += std::to_string(offset);
  }
  if (!tags.empty()) {
    out += ",\"tags\":";
    out += tags;
  }
  out += '}';
  return out;
}

namespace {

// {"push":{"channel":"c","<kind>":<prefix><body><suffix>}}; body is already JSON.
void AppendPush(std::string& out, std::string_view channel, std::string_view kind,
                std::string_view prefix, std::string_view body, std::string_view suffix) {
  out += "{\"push\":{\"channel\":";
  AppendJsonString(out, channel);
  out += ",\"";
  out += kind;
  out += "\":";
  out += prefix;
  out += body;
  out += suffix;
  out += "}}";
}

}  // namespace

void AppendPublicationPush(std::string& out, std::string_view channel,
                           std::string_view publication) {
  AppendPush(out, channel, "pub", "", publication, "");
}

void AppendJoinLeavePush(std::string& out, std::string_view channel, bool join,
                         std::string_view info) {
  AppendPush(out, channel, join ? "join" : "leave", "{\"info\":", info, "}");
}

void AppendSubscribePush(std::string& out, std::string_view channel,
                         const core::Hub::SubscribeResult& result) {
  out += "{\"push\":{\"channel\":";
  AppendJsonString(out, channel);
  out += ",\"subscribe\":";
  AppendSubscribeResult(out, result, false);
  out += "}}";
}

void AppendUnsubscribePush(std::string& out, std::string_view channel, uint32_t code,
                           std::string_view reason) {
  out += "{\"push\":{\"channel\":";
  AppendJsonString(out, channel);
  out += ",\"unsubscribe\":{\"code\":";
  out += std::to_string(code);
  out += ",\"reason\":";
  AppendJsonString(out, reason);
  out += "}}}";
}

std::string ClientInfoJson(std::string_view user, std::string_view client,
                           std::string_view conn_info, std::string_view chan_info) {
  std::string out = "{\"user\":";
  AppendJsonString(out, user);
  out += ",\"client\":";
  AppendJsonString(out, client);
  if (!conn_info.empty()) {
    out += ",\"conn_info\":";
    out += conn_info;
  }
  if (!chan_info.empty()) {
    out += ",\"chan_info\":";
    out += chan_info;
  }
  out += '}';
  return out;
}

void AppendError(std::string& out, uint32_t id, ErrorCode code) {
  AppendId(out, id);
  out += ",\"error\":{\"code\":";
  out += std::to_string(static_cast<uint32_t>(code));
  out += ",\"message\":";
  AppendJsonString(out, ErrorMessage(code));
  if (IsTemporary(code)) out += ",\"temporary\":true";
  out += "}}";
}

void AppendBackendError(std::string& out, uint32_t id, uint32_t code, std::string_view message,
                        bool temporary) {
  AppendId(out, id);
  out += ",\"error\":{\"code\":";
  out += std::to_string(code);
  out += ",\"message\":";
  AppendJsonString(out, message);
  if (temporary) out += ",\"temporary\":true";
  out += "}}";
}

void AppendRpcReply(std::string& out, uint32_t id, std::string_view data) {
  AppendId(out, id);
  out += ",\"rpc\":{";
  if (!data.empty()) {
    out += "\"data\":";
    out += data;
  }
  out += "}}";
}

void AppendConnectReply(std::string& out, uint32_t id, const ConnectResult& r) {
  AppendId(out, id);
  out += ",\"connect\":{\"client\":";
  AppendJsonString(out, r.client);
  out += ",\"version\":";
  AppendJsonString(out, r.version);
  AppendTtl(out, r.ttl_s);
  if (r.ping_s > 0) {
    out += ",\"ping\":";
    out += std::to_string(r.ping_s);
  }
  if (r.pong) out += ",\"pong\":true";
  if (!r.data.empty()) {
    out += ",\"data\":";
    out += r.data;
  }
  if (!r.subs.empty()) {
    out += ",\"subs\":{";
    for (size_t i = 0; i < r.subs.size(); ++i) {
      if (i > 0) out += ',';
      AppendJsonString(out, r.subs[i].channel);
      out += ':';
      AppendSubscribeResult(out, *r.subs[i].result, r.subs[i].was_recovering, 0, r.subs[i].data);
    }
    out += '}';
  }
  out += "}}";
}

void AppendRefreshReply(std::string& out, uint32_t id, const ConnectResult& r) {
  AppendId(out, id);
  out += ",\"refresh\":{\"client\":";
  AppendJsonString(out, r.client);
  out += ",\"version\":";
  AppendJsonString(out, r.version);
  AppendTtl(out, r.ttl_s);
  out += "}}";
}

void AppendSubRefreshReply(std::string& out, uint32_t id, int64_t ttl_s) {
  AppendId(out, id);
  out += ",\"sub_refresh\":{";
  if (ttl_s > 0) out += "\"expires\":true,\"ttl\":" + std::to_string(ttl_s);
  out += "}}";
}

void AppendSubscribeResult(std::string& out, const core::Hub::SubscribeResult& r,
                           bool was_recovering, int64_t ttl_s, std::string_view data) {
  out += '{';
  bool first = true;
  auto sep = [&] {
    if (!first) out += ',';
    first = false;
  };
  if (ttl_s > 0) {
    sep();
    out += "\"expires\":true,\"ttl\":" + std::to_string(ttl_s);
  }
  if (r.recoverable) {
    sep();
    out += "\"recoverable\":true,\"epoch\":";
    AppendJsonString(out, r.position.epoch);
    if (r.position.offset != 0) {
      out += ",\"offset\":";
      out += std::to_string(r.position.offset);
    }
  }
  if (!r.publications.empty()) {
    sep();
    AppendPublications(out, r.publications);
  }
  if (r.recovered) {
    sep();
    out += "\"recovered\":true";
  }
  if (r.delta) {
    sep();
    out += "\"delta\":true";
  }
  if (was_recovering) {
    sep();
    out += "\"was_recovering\":true";
  }
  if (!data.empty()) {
    sep();
    out += "\"data\":";
    out += data;
  }
  out += '}';
}

void AppendSubscribeReply(std::string& out, uint32_t id, const core::Hub::SubscribeResult& r,
                          bool was_recovering, int64_t ttl_s, std::string_view data) {
  AppendId(out, id);
  out += ",\"subscribe\":";
  AppendSubscribeResult(out, r, was_recovering, ttl_s, data);
  out += '}';
}

void AppendEmptyReply(std::string& out, uint32_t id, std::string_view method) {
  AppendId(out, id);
  out += ",\"";
  out += method;
  out += "\":{}}";
}

void AppendHistoryReply(std::string& out, uint32_t id, const core::Hub::HistoryResult& r) {
  AppendId(out, id);
  out += ",\"history\":{";
  AppendPublications(out, r.publications);
  out += ",\"epoch\":";
  AppendJsonString(out, r.position.epoch);
  if (r.position.offset != 0) {
    out += ",\"offset\":";
    out += std::to_string(r.position.offset);
  }
  out += "}}";
}

void AppendPresenceReply(std::string& out, uint32_t id,
                         const std::vector<std::pair<std::string, core::PresenceEntry>>& p) {
  AppendId(out, id);
  out += ",\"presence\":{\"presence\":{";
  for (size_t i = 0; i < p.size(); ++i) {
    if (i > 0) out += ',';
    AppendJsonString(out, p[i].first);
    out += ':';
    out += p[i].second.info;
  }
  out += "}}}";
}

void AppendPresenceStatsReply(std::string& out, uint32_t id, size_t clients, size_t users) {
  AppendId(out, id);
  out += ",\"presence_stats\":{\"num_clients\":";
  out += std::to_string(clients);
  out += ",\"num_users\":";
  out += std::to_string(users);
  out += "}}";
}

}  // namespace hermod::proto
