#include "api/server_api.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <random>
#include <vector>

#include "api/channel_pattern.h"
#include "core/rate_limit.h"
#include "http/response.h"
#include "log/fields.h"
#include "metrics/loop_metrics.h"
#include "proto/codes.h"
#include "proto/command.h"
#include "proto/encode.h"
#include "proto/json_syntax.h"

namespace hermod::api {

namespace {

namespace od = simdjson::ondemand;
using simdjson::SUCCESS;

// The fields of every method's request; views into the padded body (or into the strings
// here, for what had to be decoded).
struct ApiRequest {
  std::string_view channel;
  std::vector<std::string_view> channels;
  std::string_view data;
  std::string decoded_data;  // b64data, decoded
  bool has_b64data = false;
  std::string tags;  // re-encoded JSON object of strings; empty when absent
  std::string_view user;
  std::string_view client;
  std::string_view session;
  uint64_t code = 0;
  std::string_view reason;
  std::string_view idempotency_key;
  std::string_view pattern;
  std::string_view priority;  // low|normal|high|critical; empty: the namespace's default
  bool skip_history = false;
  bool has_since = false;
  core::StreamPosition since;
  int64_t limit = 0;
  bool reverse = false;
  bool expired = false;
  int64_t expire_at = 0;
};

// Standard base64 (as Go's StdEncoding, which Centrifugo uses), padding optional.
bool DecodeBase64(std::string_view in, std::string* out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  out->clear();
  uint32_t bits = 0;
  int count = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') {
      v = ch - 'A';
    } else if (ch >= 'a' && ch <= 'z') {
      v = ch - 'a' + 26;
    } else if (ch >= '0' && ch <= '9') {
      v = ch - '0' + 52;
    } else if (ch == '+') {
      v = 62;
    } else if (ch == '/') {
      v = 63;
    } else {
      return false;
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out->push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  return count < 6;  // one leftover symbol (6 bits) cannot end a valid encoding
}

// tags: an object whose values are strings, re-encoded as compact JSON.
bool ReadTags(od::value v, std::string* out) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  *out = "{";
  for (auto field : object) {
    std::string_view key;
    std::string_view value;
    if (field.unescaped_key().get(key) != SUCCESS ||
        field.value().get_string().get(value) != SUCCESS) {
      return false;
    }
    if (out->size() > 1) *out += ',';
    proto::AppendJsonString(*out, key);
    *out += ':';
    proto::AppendJsonString(*out, value);
  }
  *out += '}';
  if (*out == "{}") out->clear();
  return true;
}

bool ReadDisconnect(od::value v, ApiRequest* r) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS) {
      return false;
    }
    // A code that is no unsigned integer (negative, past 2^64, a string) is kept as an
    // unsendable one, so that the answer is 107 naming the field, not a 400 for the body.
    if (key == "code" && value.get_uint64().get(r->code) != SUCCESS) r->code = UINT64_MAX;
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
// The body is validated by syntax alone (proto/json_syntax.h): `data` passes through, and a
// number in it of any size is JSON.
bool Parse(od::parser& parser, std::string& body, ApiRequest* r) {
  const size_t size = body.size();
  if (!proto::IsJson(body)) return false;
  body.resize(size + simdjson::SIMDJSON_PADDING);
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
    } else if (key == "b64data") {
      std::string_view text;
      e = v.get_string().get(text);
      if (e == SUCCESS && !DecodeBase64(text, &r->decoded_data)) return false;
      r->has_b64data = true;
    } else if (key == "tags") {
      if (!ReadTags(v, &r->tags)) return false;
    } else if (key == "client") {
      e = v.get_string().get(r->client);
    } else if (key == "session") {
      e = v.get_string().get(r->session);
    } else if (key == "pattern") {
      e = v.get_string().get(r->pattern);
    } else if (key == "expired") {
      e = v.get_bool().get(r->expired);
    } else if (key == "expire_at") {
      e = v.get_int64().get(r->expire_at);
    } else if (key == "idempotency_key") {
      e = v.get_string().get(r->idempotency_key);
    } else if (key == "priority") {
      e = v.get_string().get(r->priority);
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

}  // namespace

ServerApi::ServerApi(core::Hub& hub, const core::ChannelRules& rules, std::string api_key,
                     ForEachClientFn for_each_client, NodeInfo node)
    : hub_(hub),
      rules_(rules),
      api_key_(std::move(api_key)),
      for_each_client_(std::move(for_each_client)),
      node_(std::move(node)),
      started_ms_(net::Loop::MonotonicMs()) {
  std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) uid_ += '-';
    uid_ += kHex[random() & 15];
  }
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
  const uint64_t started_us = net::Loop::MonotonicUs();
  const int status = Call(method, request.body, out);
  metrics::RecordApiCall(method, net::Loop::MonotonicUs() - started_us);
  if (status == 400) {
    log::Write(spdlog::level::debug, {{"method", method}, {"code", 400}, {"reason", "bad request"}},
               "api {}: bad request body", method);
    connection.Respond(http::BuildResponse(400, "text/plain", "bad request\n", keep_alive),
                       keep_alive);
    return;
  }
  if (status == 404) {
    connection.Respond(http::BuildResponse(404, "text/plain", "not found\n", keep_alive),
                       keep_alive);
    return;
  }
  out += '\n';
  // 413: a publication larger than the cluster's broker carries; the body is the error
  // (106), and the status tells HTTP clients that check only statuses: never a 200.
  connection.Respond(http::BuildResponse(status, "application/json", out, keep_alive), keep_alive);
}

int ServerApi::Batch(std::string& body, std::string& out) const {
  // First the commands, copied out of the body, then each one: Call reuses the parsers.
  std::vector<std::pair<std::string, std::string>> commands;  // method, params
  {
    thread_local od::parser parser;
    const size_t size = body.size();
    if (!proto::IsJson(body)) return 400;
    body.resize(size + simdjson::SIMDJSON_PADDING);
    od::document doc;
    od::object object;
    if (parser.iterate(body.data(), size, body.size()).get(doc) != SUCCESS ||
        doc.get_object().get(object) != SUCCESS) {
      return 400;
    }
    for (auto field : object) {
      std::string_view key;
      od::value v;
      if (field.unescaped_key().get(key) != SUCCESS || field.value().get(v) != SUCCESS) {
        return 400;
      }
      if (key == "parallel") {
        bool parallel;
        if (v.get_bool().get(parallel) != SUCCESS) return 400;
      } else if (key == "commands") {
        od::array array;
        if (v.get_array().get(array) != SUCCESS) return 400;
        for (auto item : array) {
          od::object command;
          if (item.get_object().get(command) != SUCCESS) return 400;
          std::string method;
          std::string params;
          size_t fields = 0;
          for (auto f : command) {
            std::string_view name;
            od::value p;
            std::string_view raw;
            if (f.unescaped_key().get(name) != SUCCESS || f.value().get(p) != SUCCESS ||
                proto::RawJson(p, &raw) != SUCCESS) {
              return 400;
            }
            if (++fields == 1) {
              method = std::string(name);
              params = std::string(raw);
            }
          }
          // A command is one method: none or several is a bad command, answered in place.
          if (fields != 1) method.clear();
          commands.emplace_back(std::move(method), std::move(params));
        }
      }
    }
  }
  out += "{\"replies\":[";
  std::string reply;
  for (size_t i = 0; i < commands.size(); ++i) {
    if (i > 0) out += ',';
    auto& [method, params] = commands[i];
    reply.clear();
    int status = 400;
    if (!method.empty() && method != "batch") status = Call(method, params, reply);
    constexpr std::string_view kResult = "{\"result\":";
    if (status == 404) {
      AppendError(out, proto::ErrorCode::kMethodNotFound);
    } else if (status != 200 && status != 413) {  // 413: the reply is the error
      AppendError(out, proto::ErrorCode::kBadRequest);
    } else if (reply.starts_with(kResult)) {
      out += "{";
      proto::AppendJsonString(out, method);
      out += ':';
      out.append(reply, kResult.size());
    } else {
      out += reply;  // an error object
    }
  }
  out += "]}";
  return 200;
}

int ServerApi::Call(std::string_view method, std::string& body, std::string& out) const {
  if (method == "batch") return Batch(body, out);
  if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods)) {
    return 404;
  }
  thread_local od::parser parser;
  ApiRequest r;
  if (!Parse(parser, body, &r)) return 400;

  auto options_or_error = [&](std::string_view channel) -> const config::ChannelOptions* {
    if (!rules_.NameAllowed(channel)) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return nullptr;
    }
    const config::ChannelOptions* options = rules_.Find(channel);
    if (!options) AppendError(out, proto::ErrorCode::kUnknownChannel);
    return options;
  };
  // A publication's priority (slow consumers drop low, then normal, first); absent: the
  // namespace's default_priority.
  std::optional<net::Priority> priority;
  if (!r.priority.empty()) {
    priority = core::ParsePriority(r.priority);
    if (!priority && (method == "publish" || method == "broadcast")) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return 200;
    }
  }
  // data, or b64data decoded: the JSON protocol publishes JSON only (see the header).
  auto data_or_error = [&](std::string_view* data) {
    *data = r.data;
    if (data->empty() && r.has_b64data) {
      if (proto::IsJson(r.decoded_data)) *data = r.decoded_data;
    }
    if (data->empty()) AppendError(out, proto::ErrorCode::kBadRequest);
    return !data->empty();
  };
  bool too_large = false;  // a publication the broker cannot carry: HTTP 413 for `publish`
  auto publish = [&](std::string_view channel, const config::ChannelOptions& options,
                     std::string_view data) {
    config::ChannelOptions effective = options;
    if (r.skip_history) effective.history_size = 0;
    const core::Hub::PublishResult published =
        hub_.Publish({channel, &effective, data, {}, r.idempotency_key, r.tags, priority, {}});
    if (published.refusal == core::Hub::Refusal::kTooLarge) {
      // Larger than the cluster's broker carries: published nowhere (106, not temporary).
      AppendError(out, proto::ErrorCode::kLimitExceeded);
      too_large = true;
      return;
    }
    if (!published.ok()) {
      // A loop the channel reaches is over its inbox budget, or the channel is over its
      // namespace's publish_rate_limit: nothing was published. (kPending needs a deferred
      // answer: no engine that completes later is offered yet.)
      AppendError(out, published.refusal == core::Hub::Refusal::kStoreFailed
                           ? proto::ErrorCode::kInternal
                           : proto::ErrorCode::kTooManyRequests);
      return;
    }
    out += "{\"result\":";
    AppendPosition(out, published.position);
    out += '}';
  };
  // The per-client methods select connections by user, then client (or session: hermod's
  // sessions are its client ids).
  auto clients_or_error = [&](std::string* user, std::string* client) {
    if (r.user.empty() && r.client.empty() && r.session.empty()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return false;
    }
    *user = std::string(r.user);
    *client = std::string(r.client.empty() ? r.session : r.client);
    return true;
  };

  std::string user;
  std::string client;
  if (method == "publish") {
    std::string_view data;
    if (!data_or_error(&data)) return 200;
    const config::ChannelOptions* options = options_or_error(r.channel);
    if (!options) return 200;
    publish(r.channel, *options, data);
    if (too_large) return 413;
  } else if (method == "broadcast") {
    std::string_view data;
    if (!data_or_error(&data)) return 200;
    if (r.channels.empty()) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return 200;
    }
    out += "{\"result\":{\"responses\":[";
    for (size_t i = 0; i < r.channels.size(); ++i) {
      if (i > 0) out += ',';
      const config::ChannelOptions* options = options_or_error(r.channels[i]);
      if (options) publish(r.channels[i], *options, data);
    }
    out += "]}}";
  } else if (method == "disconnect") {
    if (!clients_or_error(&user, &client)) return 200;
    if (r.code != 0 && !SendableDisconnectCode(r.code)) {
      AppendError(out, proto::ErrorCode::kBadRequest, "disconnect.code must be 3000..4999");
      return 200;
    }
    const uint16_t code = r.code != 0 ? static_cast<uint16_t>(r.code) : 3503;
    std::string reason = r.code != 0 ? std::string(r.reason) : "force disconnect";
    for_each_client_(std::move(user), std::move(client),
                     [code, reason = std::move(reason)](proto::ClientSession& c) {
                       c.Disconnect({code, reason});
                     });
    out += "{\"result\":{}}";
  } else if (method == "refresh") {
    if (!clients_or_error(&user, &client)) return 200;
    if (r.expire_at < 0) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return 200;
    }
    for_each_client_(std::move(user), std::move(client),
                     [expired = r.expired, expire_at = r.expire_at](proto::ClientSession& c) {
                       c.RefreshFromServer(expired, expire_at);
                     });
    out += "{\"result\":{}}";
  } else if (method == "subscribe" || method == "unsubscribe") {
    if (!clients_or_error(&user, &client)) return 200;
    if (!options_or_error(r.channel)) return 200;
    std::string channel(r.channel);
    if (method == "subscribe") {
      for_each_client_(std::move(user), std::move(client),
                       [channel](proto::ClientSession& c) { c.SubscribeFromServer(channel); });
    } else {
      for_each_client_(std::move(user), std::move(client),
                       [channel](proto::ClientSession& c) { c.UnsubscribeFromServer(channel); });
    }
    out += "{\"result\":{}}";
  } else if (method == "history_remove") {
    if (!options_or_error(r.channel)) return 200;
    hub_.RemoveHistory(r.channel);
    out += "{\"result\":{}}";
  } else if (method == "channels") {
    if (!ChannelPattern::Valid(r.pattern)) {
      AppendError(out, proto::ErrorCode::kBadRequest);
      return 200;
    }
    out += "{\"result\":{\"channels\":{";
    bool first = true;
    for (const auto& [name, count] : hub_.Channels()) {
      if (!r.pattern.empty() && !ChannelPattern::Matches(r.pattern, name)) continue;
      if (!first) out += ',';
      first = false;
      proto::AppendJsonString(out, name);
      out += ":{\"num_clients\":" + std::to_string(count) + "}";
    }
    out += "}}}";
  } else if (method == "presence" || method == "presence_stats") {
    const config::ChannelOptions* options = options_or_error(r.channel);
    if (!options) return 200;
    if (!options->presence) {
      AppendError(out, proto::ErrorCode::kNotAvailable);
      return 200;
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
    if (!options) return 200;
    if (options->history_size == 0) {
      AppendError(out, proto::ErrorCode::kNotAvailable);
      return 200;
    }
    core::Hub::HistoryResult h =
        hub_.History(r.channel, *options, r.has_since ? &r.since : nullptr, r.limit, r.reverse);
    if (h.unrecoverable) {
      AppendError(out, proto::ErrorCode::kUnrecoverablePosition);
      return 200;
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
    // Centrifugo's Node object, for this one node.
    size_t channels = 0;
    size_t subscriptions = 0;
    for (const auto& [name, count] : hub_.Channels()) {
      ++channels;
      subscriptions += count;
    }
    auto [clients, users] = node_.clients ? node_.clients() : std::pair<size_t, size_t>{0, 0};
    out += "{\"result\":{\"nodes\":[{\"uid\":";
    proto::AppendJsonString(out, uid_);
    out += ",\"name\":\"hermod\",\"version\":";
    proto::AppendJsonString(out, node_.version);
    out += ",\"num_clients\":" + std::to_string(clients);
    out += ",\"num_users\":" + std::to_string(users);
    out += ",\"num_channels\":" + std::to_string(channels);
    out += ",\"uptime\":" + std::to_string((net::Loop::MonotonicMs() - started_ms_) / 1000);
    out += ",\"num_subs\":" + std::to_string(subscriptions);
    out += "}]}}";
  }
  return 200;
}

}  // namespace hermod::api
