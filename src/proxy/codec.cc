#include "proxy/codec.h"

#include <simdjson.h>

#include "json/string_writer.h"

namespace hermod::proxy {

namespace {

using json::AppendJsonString;
using simdjson::SUCCESS;

void Field(std::string& out, std::string_view key, std::string_view value) {
  out += ',';
  AppendJsonString(out, key);
  out += ':';
  AppendJsonString(out, value);
}

std::string Begin(const ClientFields& c) {
  std::string out = "{\"client\":";
  AppendJsonString(out, c.client);
  Field(out, "transport", c.transport);
  Field(out, "protocol", c.protocol);
  Field(out, "encoding", c.encoding);
  if (!c.meta.empty()) {
    out += ",\"meta\":";
    out += c.meta;  // a JSON object the server checked when it got it
  }
  return out;
}

void User(std::string& out, const ClientFields& c) { Field(out, "user", c.user); }

void Data(std::string& out, std::string_view data) {
  if (data.empty()) return;
  out += ",\"data\":";
  out += data;  // the client's JSON, verbatim
}

// At most 32 bytes (Centrifugo's bound on a disconnect reason, which travels in a WebSocket
// Close frame), cut on a UTF-8 boundary.
std::string CutReason(std::string_view reason) {
  if (reason.size() <= 32) return std::string(reason);
  size_t n = 32;
  while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  return std::string(reason.substr(0, n));
}

bool ReadData(simdjson::dom::object object, std::string* out) {
  simdjson::dom::element value;
  if (object["data"].get(value) == SUCCESS) {
    *out = simdjson::minify(value);
    return true;
  }
  if (object["b64data"].get(value) != SUCCESS) return true;
  std::string_view text;
  std::string decoded;
  simdjson::dom::parser parser;  // its own: the caller's document must outlive this
  simdjson::dom::element data;
  if (value.get_string().get(text) != SUCCESS || !auth::DecodeBase64(text, &decoded) ||
      parser.parse(decoded).get(data) != SUCCESS) {
    return false;
  }
  *out = simdjson::minify(data);
  return true;
}

bool ReadOverrideFlag(simdjson::dom::object object, std::string_view key, auth::OverrideFlag* f) {
  simdjson::dom::element value;
  if (object[key].get(value) != SUCCESS) return true;
  simdjson::dom::object wrapper;
  if (value.get_object().get(wrapper) != SUCCESS) return false;
  f->set = true;
  simdjson::dom::element inner;
  if (wrapper["value"].get(inner) != SUCCESS) return true;
  return inner.get_bool().get(f->value) == SUCCESS;
}

bool ReadResult(Kind kind, simdjson::dom::object r, Reply* reply) {
  simdjson::dom::element value;
  if (!ReadData(r, &reply->data)) return false;
  if (!auth::ReadInfo(r, &reply->claims.info)) return false;
  if (r["expire_at"].get(value) == SUCCESS &&
      value.get_int64().get(reply->claims.expires_at) != SUCCESS) {
    return false;
  }
  if (r["expired"].get(value) == SUCCESS && value.get_bool().get(reply->expired) != SUCCESS) {
    return false;
  }
  if (r["skip_history"].get(value) == SUCCESS &&
      value.get_bool().get(reply->skip_history) != SUCCESS) {
    return false;
  }
  if (kind == Kind::kConnect) {
    std::string_view user;
    // A connect result names the user ("" is an anonymous one, and must be said).
    if (r["user"].get(value) != SUCCESS || value.get_string().get(user) != SUCCESS) return false;
    reply->claims.user = std::string(user);
    if (!auth::ReadMeta(r, &reply->claims.meta)) return false;
    if (r["channels"].get(value) == SUCCESS) {
      simdjson::dom::array channels;
      if (value.get_array().get(channels) != SUCCESS) return false;
      for (simdjson::dom::element ch : channels) {
        std::string_view name;
        if (ch.get_string().get(name) != SUCCESS || name.empty()) return false;
        reply->claims.channels.emplace_back(name);
      }
    }
    if (r["subs"].get(value) == SUCCESS && !auth::ReadSubs(value, &reply->claims.subs)) {
      return false;
    }
  }
  if (kind == Kind::kSubscribe && r["override"].get(value) == SUCCESS) {
    simdjson::dom::object flags;
    auth::TokenSubscription& o = reply->overrides;
    if (value.get_object().get(flags) != SUCCESS ||
        !ReadOverrideFlag(flags, "presence", &o.presence) ||
        !ReadOverrideFlag(flags, "join_leave", &o.join_leave) ||
        !ReadOverrideFlag(flags, "force_push_join_leave", &o.force_push_join_leave) ||
        !ReadOverrideFlag(flags, "force_recovery", &o.force_recovery)) {
      return false;
    }
  }
  return true;
}

bool Parse(Kind kind, std::string_view body, Reply* reply) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object object;
  if (parser.parse(body.data(), body.size()).get(root) != SUCCESS ||
      root.get_object().get(object) != SUCCESS) {
    return false;
  }
  simdjson::dom::element value;
  if (object["disconnect"].get(value) == SUCCESS && !value.is_null()) {
    simdjson::dom::object d;
    uint64_t code = 0;
    std::string_view reason;
    if (value.get_object().get(d) != SUCCESS || d["code"].get_uint64().get(code) != SUCCESS ||
        code < 4000 || code > 4999) {
      return false;
    }
    if (d["reason"].get(value) == SUCCESS && value.get_string().get(reason) != SUCCESS) {
      return false;
    }
    reply->outcome = Outcome::kDisconnect;
    reply->disconnect_code = static_cast<uint16_t>(code);
    reply->disconnect_reason = CutReason(reason);
    return true;
  }
  if (object["error"].get(value) == SUCCESS && !value.is_null()) {
    simdjson::dom::object e;
    uint64_t code = 0;
    std::string_view message;
    if (value.get_object().get(e) != SUCCESS || e["code"].get_uint64().get(code) != SUCCESS ||
        code < 400 || code > 1999) {
      return false;
    }
    if (e["message"].get(value) == SUCCESS && value.get_string().get(message) != SUCCESS) {
      return false;
    }
    if (e["temporary"].get(value) == SUCCESS &&
        value.get_bool().get(reply->error_temporary) != SUCCESS) {
      return false;
    }
    reply->outcome = Outcome::kError;
    reply->error_code = static_cast<uint32_t>(code);
    reply->error_message = std::string(message);
    return true;
  }
  simdjson::dom::object result;
  if (object["result"].get(value) == SUCCESS && !value.is_null()) {
    if (value.get_object().get(result) != SUCCESS || !ReadResult(kind, result, reply)) {
      return false;
    }
  } else if (kind == Kind::kConnect) {
    return false;  // a connect needs its user
  }
  reply->outcome = Outcome::kOk;
  return true;
}

}  // namespace

std::string ConnectRequest(const ClientFields& c, std::string_view name, std::string_view version,
                           std::string_view data) {
  std::string out = Begin(c);
  if (!name.empty()) Field(out, "name", name);
  if (!version.empty()) Field(out, "version", version);
  Data(out, data);
  out += '}';
  return out;
}

std::string RefreshRequest(const ClientFields& c) {
  std::string out = Begin(c);
  User(out, c);
  out += '}';
  return out;
}

std::string SubscribeRequest(const ClientFields& c, std::string_view channel,
                             std::string_view data) {
  std::string out = Begin(c);
  User(out, c);
  Field(out, "channel", channel);
  Data(out, data);
  out += '}';
  return out;
}

std::string PublishRequest(const ClientFields& c, std::string_view channel, std::string_view data) {
  return SubscribeRequest(c, channel, data);  // the same fields
}

std::string SubRefreshRequest(const ClientFields& c, std::string_view channel) {
  return SubscribeRequest(c, channel, {});
}

std::string RpcRequest(const ClientFields& c, std::string_view method, std::string_view data) {
  std::string out = Begin(c);
  User(out, c);
  Field(out, "method", method);
  Data(out, data);
  out += '}';
  return out;
}

void ParseReply(Kind kind, std::string_view body, Reply* reply) {
  Reply parsed;
  if (!Parse(kind, body, &parsed)) {
    *reply = Reply{};
    reply->outcome = Outcome::kInvalid;
    return;
  }
  *reply = std::move(parsed);
}

}  // namespace hermod::proxy
