#include "proto/command.h"

#include <cstring>

#include "json/syntax.h"

namespace hermod::proto {

namespace {

using simdjson::SUCCESS;
namespace od = simdjson::ondemand;

Method MethodOf(std::string_view key) {
  static constexpr std::pair<std::string_view, Method> kMethods[] = {
      {"connect", Method::kConnect},
      {"subscribe", Method::kSubscribe},
      {"unsubscribe", Method::kUnsubscribe},
      {"publish", Method::kPublish},
      {"presence", Method::kPresence},
      {"presence_stats", Method::kPresenceStats},
      {"history", Method::kHistory},
      {"send", Method::kSend},
      {"rpc", Method::kRpc},
      {"refresh", Method::kRefresh},
      {"sub_refresh", Method::kSubRefresh},
  };
  for (const auto& [name, method] : kMethods) {
    if (key == name) return method;
  }
  return Method::kUnknown;
}

}  // namespace

simdjson::error_code RawJson(simdjson::ondemand::value v, std::string_view* out) {
  od::json_type type;
  if (auto e = v.type().get(type); e != SUCCESS) return e;
  std::string_view text;
  if (type == od::json_type::object) {
    od::object object;
    if (auto e = v.get_object().get(object); e != SUCCESS) return e;
    if (auto e = object.raw_json().get(text); e != SUCCESS) return e;
  } else if (type == od::json_type::array) {
    od::array array;
    if (auto e = v.get_array().get(array); e != SUCCESS) return e;
    if (auto e = array.raw_json().get(text); e != SUCCESS) return e;
  } else {
    text = v.raw_json_token();
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  *out = text;
  return SUCCESS;
}

namespace {

bool ReadSince(od::value value, Command* c) {
  od::object since;
  if (value.get_object().get(since) != SUCCESS) return false;
  c->has_since = true;
  for (auto field : since) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    od::value v = field.value();
    if (key == "offset") {
      if (v.get_uint64().get(c->since_offset) != SUCCESS) return false;
    } else if (key == "epoch") {
      if (v.get_string().get(c->since_epoch) != SUCCESS) return false;
    }
  }
  return true;
}

bool ReadSubs(od::value value, Command* c) {
  od::object subs;
  if (value.get_object().get(subs) != SUCCESS) return false;
  for (auto field : subs) {
    ConnectSub sub;
    od::object position;
    if (field.unescaped_key().get(sub.channel) != SUCCESS ||
        field.value().get_object().get(position) != SUCCESS) {
      return false;
    }
    for (auto f : position) {
      std::string_view key;
      od::value v;
      if (f.unescaped_key().get(key) != SUCCESS || f.value().get(v) != SUCCESS) return false;
      simdjson::error_code e = SUCCESS;
      if (key == "recover") {
        e = v.get_bool().get(sub.recover);
      } else if (key == "offset") {
        e = v.get_uint64().get(sub.offset);
      } else if (key == "epoch") {
        e = v.get_string().get(sub.epoch);
      }
      if (e != SUCCESS) return false;
    }
    c->subs.push_back(sub);
  }
  return true;
}

// One request object's fields; unknown ones are skipped.
bool ReadRequest(od::object request, Command* c) {
  for (auto field : request) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    od::value v;
    if (field.value().get(v) != SUCCESS) return false;
    simdjson::error_code e = SUCCESS;
    if (key == "channel") {
      e = v.get_string().get(c->channel);
    } else if (key == "token") {
      e = v.get_string().get(c->token);
    } else if (key == "data") {
      e = RawJson(v, &c->data);
    } else if (key == "method" && c->method == Method::kRpc) {
      e = v.get_string().get(c->rpc_method);
    } else if (key == "epoch") {
      e = v.get_string().get(c->epoch);
    } else if (key == "offset") {
      e = v.get_uint64().get(c->offset);
    } else if (key == "recover") {
      e = v.get_bool().get(c->recover);
    } else if (key == "recoverable") {
      e = v.get_bool().get(c->recoverable);
    } else if (key == "positioned") {
      e = v.get_bool().get(c->positioned);
    } else if (key == "join_leave") {
      e = v.get_bool().get(c->join_leave);
    } else if (key == "delta") {
      e = v.get_string().get(c->delta);
    } else if (key == "limit") {
      e = v.get_int64().get(c->limit);
    } else if (key == "reverse") {
      e = v.get_bool().get(c->reverse);
    } else if (key == "since") {
      if (!ReadSince(v, c)) return false;
    } else if (key == "subs" && c->method == Method::kConnect) {
      if (!ReadSubs(v, c)) return false;
    }
    if (e != SUCCESS) return false;
  }
  return true;
}

}  // namespace

void CommandParser::Reset(std::string_view message) {
  size_ = message.size();
  position_ = 0;
  if (buffer_.size() < size_ + simdjson::SIMDJSON_PADDING) {
    buffer_.resize(size_ + simdjson::SIMDJSON_PADDING);
  }
  std::memcpy(buffer_.data(), message.data(), size_);
  std::memset(buffer_.data() + size_, 0, simdjson::SIMDJSON_PADDING);
}

size_t CommandParser::Release(size_t keep_bytes) {
  const size_t held = buffer_.capacity();
  if (held > keep_bytes) std::vector<char>().swap(buffer_);
  if (parser_.capacity() > keep_bytes) parser_ = simdjson::ondemand::parser{};
  return held;
}

ParseStatus CommandParser::Next(Command* command) {
  while (position_ < size_) {
    const char* start = buffer_.data() + position_;
    const void* newline = std::memchr(start, '\n', size_ - position_);
    size_t end =
        newline ? static_cast<size_t>(static_cast<const char*>(newline) - buffer_.data()) : size_;
    size_t begin = position_;
    position_ = end + 1;
    // Skip blank lines (a trailing '\n', "\r\n" endings).
    bool blank = true;
    for (size_t i = begin; i < end && blank; ++i) {
      char ch = buffer_[i];
      blank = ch == ' ' || ch == '\t' || ch == '\r';
    }
    if (blank) continue;
    return ParseLine(begin, end, command);
  }
  return ParseStatus::kEnd;
}

ParseStatus CommandParser::ParseLine(size_t begin, size_t end, Command* c) {
  *c = Command{};
  // Full validation first: On Demand checks only what it reads, and `data` goes to every
  // subscriber, whose SDK would fail on malformed JSON. Syntax only (json/syntax.h): a number
  // too large for a double or an int64 is still JSON.
  if (!json::IsJson({buffer_.data() + begin, end - begin})) return ParseStatus::kInvalidJson;
  od::document doc;
  if (parser_.iterate(buffer_.data() + begin, end - begin, buffer_.size() - begin).get(doc) !=
      SUCCESS) {
    return ParseStatus::kInvalidJson;
  }
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return ParseStatus::kInvalidJson;
  bool has_method = false;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return ParseStatus::kInvalidJson;
    od::value v;
    if (field.value().get(v) != SUCCESS) return ParseStatus::kInvalidJson;
    if (key == "id") {
      uint64_t id;
      if (v.get_uint64().get(id) != SUCCESS || id > UINT32_MAX) {
        return ParseStatus::kInvalidCommand;
      }
      c->id = static_cast<uint32_t>(id);
      continue;
    }
    od::object request;
    if (v.get_object().get(request) != SUCCESS) return ParseStatus::kInvalidCommand;
    if (has_method) return ParseStatus::kInvalidCommand;  // one method per command
    has_method = true;
    c->method = MethodOf(key);
    if (!ReadRequest(request, c)) return ParseStatus::kInvalidCommand;
  }
  if (has_method != (c->id != 0)) return ParseStatus::kInvalidCommand;
  return ParseStatus::kOk;
}

}  // namespace hermod::proto
