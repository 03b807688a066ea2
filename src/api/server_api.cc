#include "api/server_api.h"

#include <simdjson.h>

#include <vector>

#include "http/response.h"
#include "metrics/loop_metrics.h"
#include "proto/codes.h"
#include "proto/command.h"
#include "proto/encode.h"

namespace hermod::api {

namespace {

namespace od = simdjson::ondemand;
using simdjson::SUCCESS;

// The fields of every method's request; views into the padded body.
struct ApiRequest {
  std::string_view channel;
  std::vector<std::string_view> channels;
  std::string_view data;
  std::string_view user;
  std::string_view client;
  uint64_t code = 0;
  std::string_view reason;
  std::string_view idempotency_key;
  bool skip_history = false;
  bool has_since = false;
  core::StreamPosition since;
  int64_t limit = 0;
  bool reverse = false;
};

bool ReadDisconnect(od::value v, ApiRequest* r) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS) {
      return false;
    }
    if (key == "code" && value.get_uint64().get(r->code) != SUCCESS) return false;
    if (key == "reason" && value.get_string().get(r->reason) != SUCCESS) return false;
  }
  return true;
}

bool ReadSince(od::value v, ApiRequest* r) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  r->has_since = true;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS) {
      return false;
    }
    std::string_view epoch;
    if (key == "offset" && value.get_uint64().get(r->since.offset) != SUCCESS) return false;
    if (key == "epoch") {
      if (value.get_string().get(epoch) != SUCCESS) return false;
      r->since.epoch = std::string(epoch);
    }
  }
  return true;
}

// Parses body (padded in place); the views in *r live as long as parser and body.
bool Parse(od::parser& parser, simdjson::dom::parser& validator, std::string& body, ApiRequest* r) {
  const size_t size = body.size();
  body.resize(size + simdjson::SIMDJSON_PADDING);
  simdjson::dom::element ignored;
  if (validator.parse(body.data(), size, false).get(ignored) != SUCCESS) return false;
  od::document doc;
  if (parser.iterate(body.data(), size, body.size()).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    od::value v;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(v) != SUCCESS) {
      return false;
    }
    simdjson::error_code e = SUCCESS;
    if (key == "channel") {
      e = v.get_string().get(r->channel);
    } else if (key == "data") {
      e = proto::RawJson(v, &r->data);
    } else if (key == "user") {
      e = v.get_string().get(r->user);
    } else if (key == "client") {
      e = v.get_string().get(r->client);
    } else if (key == "idempotency_key") {
      e = v.get_string().get(r->idempotency_key);
    } else if (key == "skip_history") {
      e = v.get_bool().get(r->skip_history);
    } else if (key == "limit") {
      e = v.get_int64().get(r->limit);
    } else if (key == "reverse") {
      e = v.get_bool().get(r->reverse);
    } else if (key == "since") {
      if (!ReadSince(v, r)) return false;
    } else if (key == "disconnect") {
      if (!ReadDisconnect(v, r)) return false;
    } else if (key == "channels") {
      od::array array;
      if (v.get_array().get(array) != SUCCESS) return false;
      for (auto item : array) {
        std::string_view channel;
        if (item.get_string().get(channel) != SUCCESS) return false;
        r->channels.push_back(channel);
      }
    }
    if (e != SUCCESS) return false;
  }
  return true;
}

void AppendError(std::string& out, proto::ErrorCode code) {
  out += "{\"error\":{\"code\":";
  out += std::to_string(static_cast<uint32_t>(code));
  out += ",\"message\":";
  proto::AppendJsonString(out, proto::ErrorMessage(code));
  out += "}}";
}

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

}  // namespace

ServerApi::ServerApi(core::Hub& hub, const core::ChannelRules& rules, std::string api_key,
                     ForEachClientFn for_each_client)
    : hub_(hub),
      rules_(rules),
      api_key_(std::move(api_key)),
      for_each_client_(std::move(for_each_client)) {}

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
  if (!Authorized(request)) {
    connection.Respond(http::BuildResponse(401, "text/plain", "unauthorized\n", keep_alive),
                       keep_alive);
    return;
  }
  std::string_view path = request.Path();
  std::string_view method = path.substr(path.rfind('/') + 1);
  std::string out;
  const uint64_t started_us = net::Loop::MonotonicUs();
  const bool ok = Call(method, request.body, out);
  metrics::RecordApiCall(method, net::Loop::MonotonicUs() - started_us);
  if (!ok) {
    connection.Respond(http::BuildResponse(400, "text/plain", "bad request\n", keep_alive),
                       keep_alive);
    return;
  }
  out += '\n';
  connection.Respond(http::BuildResponse(200, "application/json", out, keep_alive), keep_alive);
}

bool ServerApi::Call(std::string_view method, std::string& body, std::string& out) const {
  thread_local od::parser parser;
  thread_local simdjson::dom::parser validator;
  ApiRequest r;
  if (!Parse(parser, validator, body, &r)) return false;

  auto options_or_error = [&](std::string_view channel) -> const config::ChannelOptions* {
    if (channel.empty() || channel.size() > rules_.max_length()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return nullptr;
    }
    const config::ChannelOptions* options = rules_.Find(channel);
    if (!options) AppendError(out, proto::ErrorCode::kUnknownChannel);
    return options;
  };

  if (method == "publish") {
    if (r.data.empty()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return true;
    }
    const config::ChannelOptions* options = options_or_error(r.channel);
    if (!options) return true;
    config::ChannelOptions effective = *options;
    if (r.skip_history) effective.history_size = 0;
    out += "{\"result\":";
    AppendPosition(out, hub_.Publish(r.channel, effective, r.data, {}, r.idempotency_key));
    out += '}';
  } else if (method == "broadcast") {
    if (r.data.empty() || r.channels.empty()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return true;
    }
    out += "{\"result\":{\"responses\":[";
    for (size_t i = 0; i < r.channels.size(); ++i) {
      if (i > 0) out += ',';
      const config::ChannelOptions* options = options_or_error(r.channels[i]);
      if (!options) continue;
      out += "{\"result\":";
      AppendPosition(out, hub_.Publish(r.channels[i], *options, r.data, {}));
      out += '}';
    }
    out += "]}}";
  } else if (method == "disconnect") {
    if (r.user.empty() && r.client.empty()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return true;
    }
    const uint16_t code = r.code != 0 ? static_cast<uint16_t>(r.code) : 3503;
    std::string reason = r.code != 0 ? std::string(r.reason) : "force disconnect";
    for_each_client_(std::string(r.user), std::string(r.client),
                     [code, reason = std::move(reason)](proto::ClientConnection& c) {
                       c.Disconnect({code, reason});
                     });
    out += "{\"result\":{}}";
  } else if (method == "subscribe" || method == "unsubscribe") {
    if (r.user.empty() && r.client.empty()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return true;
    }
    if (!options_or_error(r.channel)) return true;
    std::string channel(r.channel);
    if (method == "subscribe") {
      for_each_client_(std::string(r.user), std::string(r.client),
                       [channel](proto::ClientConnection& c) { c.SubscribeFromServer(channel); });
    } else {
      for_each_client_(std::string(r.user), std::string(r.client),
                       [channel](proto::ClientConnection& c) { c.UnsubscribeFromServer(channel); });
    }
    out += "{\"result\":{}}";
  } else if (method == "history_remove") {
    if (!options_or_error(r.channel)) return true;
    hub_.RemoveHistory(r.channel);
    out += "{\"result\":{}}";
  } else if (method == "channels") {
    out += "{\"result\":{\"channels\":{";
    auto channels = hub_.Channels();
    for (size_t i = 0; i < channels.size(); ++i) {
      if (i > 0) out += ',';
      proto::AppendJsonString(out, channels[i].first);
      out += ":{\"num_clients\":" + std::to_string(channels[i].second) + "}";
    }
    out += "}}}";
  } else if (method == "presence" || method == "presence_stats") {
    const config::ChannelOptions* options = options_or_error(r.channel);
    if (!options) return true;
    if (!options->presence) {
      AppendError(out, proto::ErrorCode::kNotAvailable);
      return true;
    }
    if (method == "presence") {
      out += "{\"result\":{\"presence\":{";
      auto presence = hub_.Presence(r.channel);
      for (size_t i = 0; i < presence.size(); ++i) {
        if (i > 0) out += ',';
        proto::AppendJsonString(out, presence[i].first);
        out += ':';
        out += presence[i].second.info;
      }
      out += "}}}";
    } else {
      auto [clients, users] = hub_.PresenceStats(r.channel);
      out += "{\"result\":{\"num_clients\":" + std::to_string(clients) +
             ",\"num_users\":" + std::to_string(users) + "}}";
    }
  } else if (method == "history") {
    const config::ChannelOptions* options = options_or_error(r.channel);
    if (!options) return true;
    if (options->history_size == 0) {
      AppendError(out, proto::ErrorCode::kNotAvailable);
      return true;
    }
    core::Hub::HistoryResult h =
        hub_.History(r.channel, *options, r.has_since ? &r.since : nullptr, r.limit, r.reverse);
    if (h.unrecoverable) {
      AppendError(out, proto::ErrorCode::kUnrecoverablePosition);
      return true;
    }
    out += "{\"result\":{\"publications\":[";
    for (size_t i = 0; i < h.publications.size(); ++i) {
      if (i > 0) out += ',';
      out += h.publications[i];
    }
    out += "],\"epoch\":";
    proto::AppendJsonString(out, h.position.epoch);
    out += ",\"offset\":" + std::to_string(h.position.offset) + "}}";
  } else if (method == "info") {
    out += "{\"result\":{\"nodes\":[{\"name\":\"hermod\"}]}}";
  } else {
    AppendError(out, proto::ErrorCode::kMethodNotFound);
  }
  return true;
}

}  // namespace hermod::api
