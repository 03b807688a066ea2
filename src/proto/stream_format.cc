#include "proto/stream_format.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>

#include "json/string_writer.h"
#include "json/syntax.h"
#include "proto/command.h"

namespace hermod::proto {

namespace {

namespace od = simdjson::ondemand;
using simdjson::SUCCESS;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

od::parser& Parser() {
  thread_local od::parser parser;
  return parser;
}

// A string's unescaped text, or any other value's JSON text.
bool Verbatim(od::value v, std::string* out) {
  od::json_type type;
  if (v.type().get(type) != SUCCESS) return false;
  if (type == od::json_type::string) {
    std::string_view s;
    if (v.get_string().get(s) != SUCCESS) return false;
    out->assign(s);
    return true;
  }
  std::string_view raw;
  if (RawJson(v, &raw) != SUCCESS) return false;
  out->assign(raw);
  return true;
}

bool ReadPublication(od::object pub, Fragment* out) {
  bool has_data = false;
  out->offset = 0;
  for (auto field : pub) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    od::value v;
    if (field.value().get(v) != SUCCESS) return false;
    if (key == "data") {
      if (!Verbatim(v, &out->data)) return false;
      has_data = true;
    } else if (key == "offset") {
      if (v.get_uint64().get(out->offset) != SUCCESS) return false;
    }
  }
  return has_data;
}

bool ReadSubscribeResult(od::object result, SubscribeReplyView* out) {
  for (auto r : result) {
    std::string_view name;
    if (r.unescaped_key().get(name) != SUCCESS) return false;
    od::value rv;
    if (r.value().get(rv) != SUCCESS) return false;
    if (name == "epoch") {
      std::string_view epoch;
      if (rv.get_string().get(epoch) != SUCCESS) return false;
      out->epoch.assign(epoch);
    } else if (name == "offset") {
      if (rv.get_uint64().get(out->offset) != SUCCESS) return false;
    } else if (name == "recovered") {
      if (rv.get_bool().get(out->recovered) != SUCCESS) return false;
    } else if (name == "publications") {
      od::array pubs;
      if (rv.get_array().get(pubs) != SUCCESS) return false;
      for (auto p : pubs) {
        od::value pv;
        if (p.get(pv) != SUCCESS) return false;
        std::string_view raw;
        if (RawJson(pv, &raw) != SUCCESS) return false;
        out->publications.emplace_back(raw);
      }
    }
  }
  return true;
}

}  // namespace

void ForEachJsonValue(std::string_view text, const std::function<bool(std::string_view)>& fn) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i < n && IsSpace(text[i])) ++i;
    if (i >= n) return;
    const size_t start = i;
    if (text[i] == '{' || text[i] == '[') {
      size_t depth = 0;
      bool in_string = false;
      for (; i < n; ++i) {
        const char c = text[i];
        if (in_string) {
          if (c == '\\') {
            ++i;
          } else if (c == '"') {
            in_string = false;
          }
        } else if (c == '"') {
          in_string = true;
        } else if (c == '{' || c == '[') {
          ++depth;
        } else if (c == '}' || c == ']') {
          if (--depth == 0) break;
        }
      }
      if (i >= n) return;  // never closed
      ++i;
    } else if (text[i] == '"') {
      for (++i; i < n && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      if (i >= n) return;
      ++i;
    } else {
      while (i < n && !IsSpace(text[i])) ++i;
    }
    if (!fn(text.substr(start, i - start))) return;
  }
}

UniValue ToUni(std::string_view value) {
  UniValue u;
  value = Trim(value);
  if (value == "{}") {
    u.kind = UniValue::kPing;
    return u;
  }
  constexpr std::string_view kPush = "{\"push\":";
  if (value.substr(0, kPush.size()) == kPush && value.back() == '}') {
    u.kind = UniValue::kPush;
    u.body = Trim(value.substr(kPush.size(), value.size() - kPush.size() - 1));
    return u;
  }
  constexpr std::string_view kId = "{\"id\":";
  if (value.substr(0, kId.size()) != kId || value.back() != '}') return u;
  size_t i = kId.size();
  while (i < value.size() && value[i] >= '0' && value[i] <= '9') ++i;
  uint64_t id = 0;
  if (ParseUint(value.substr(kId.size(), i - kId.size()), &id) && id <= UINT32_MAX) {
    u.id = static_cast<uint32_t>(id);
  }
  std::string_view rest = value.substr(i, value.size() - i - 1);  // without the final '}'
  constexpr std::string_view kConnect = ",\"connect\":";
  constexpr std::string_view kError = ",\"error\":{\"code\":";
  if (rest.substr(0, kConnect.size()) == kConnect) {
    u.kind = UniValue::kConnect;
    u.body = rest.substr(kConnect.size());
  } else if (rest.substr(0, kError.size()) == kError) {
    u.kind = UniValue::kError;
    rest.remove_prefix(kError.size());
    uint64_t code = 0;
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (ParseUint(rest.substr(0, digits), &code) && code <= UINT32_MAX) {
      u.error_code = static_cast<uint32_t>(code);
    }
  }
  return u;
}

void AppendSseData(std::string& out, std::string_view text) {
  size_t i = 0;
  while (true) {
    size_t end = i;
    while (end < text.size() && text[end] != '\n' && text[end] != '\r') ++end;
    out += "data: ";
    out.append(text.substr(i, end - i));
    out += '\n';
    if (end >= text.size()) break;
    i = end + 1;
    if (text[end] == '\r' && i < text.size() && text[i] == '\n') ++i;
    if (i >= text.size()) break;  // a final newline ends the last line, not a new one
  }
  out += '\n';
}

void AppendJsonLine(std::string& out, std::string_view text) {
  const size_t from = out.size();
  out.append(text);
  for (size_t i = from; i < out.size(); ++i) {
    if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
  }
  out += '\n';
}

void AppendHttpChunk(std::string& out, std::string_view payload) {
  if (payload.empty()) return;
  char hex[20];
  auto [end, ec] = std::to_chars(hex, hex + sizeof(hex), payload.size(), 16);
  (void)ec;
  out.append(hex, static_cast<size_t>(end - hex));
  out += "\r\n";
  out.append(payload);
  out += "\r\n";
}

bool WrapConnect(std::string_view request, std::string* command) {
  request = Trim(request);
  if (request.empty()) request = "{}";
  if (request.front() != '{' || !json::IsJson(request)) return false;
  command->assign("{\"id\":1,\"connect\":");
  AppendJsonLine(*command, request);
  command->back() = '}';  // the newline AppendJsonLine ended with
  return true;
}

bool WrapConnect(std::string_view request, const std::vector<NamedPosition>& recover,
                 std::string* command) {
  if (!WrapConnect(request, command)) return false;
  if (recover.empty()) return true;
  request = Trim(request);
  if (request.empty()) request = "{}";
  simdjson::padded_string padded(request);
  od::document doc;
  od::object object;
  if (Parser().iterate(padded).get(doc) != SUCCESS || doc.get_object().get(object) != SUCCESS) {
    return false;
  }
  auto recovers = [&](std::string_view channel) {
    return std::any_of(recover.begin(), recover.end(),
                       [&](const NamedPosition& n) { return n.channel == channel; });
  };
  auto append_recover = [&](std::string& out, bool first) {
    for (const NamedPosition& n : recover) {
      if (!first) out += ',';
      first = false;
      json::AppendJsonString(out, n.channel);
      out += ":{\"recover\":true,\"epoch\":";
      json::AppendJsonString(out, n.position.epoch);
      out += ",\"offset\":";
      out += std::to_string(n.position.offset);
      out += '}';
    }
  };
  std::string connect = "{";
  bool first = true;
  bool had_subs = false;
  for (auto field : object) {
    std::string_view key;
    od::value v;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(v) != SUCCESS) return false;
    if (!first) connect += ',';
    first = false;
    json::AppendJsonString(connect, key);
    connect += ':';
    std::string_view raw;
    if (key != "subs" || had_subs) {
      if (RawJson(v, &raw) != SUCCESS) return false;
      connect += raw;
      continue;
    }
    had_subs = true;
    od::object subs;
    if (v.get_object().get(subs) != SUCCESS) return false;
    connect += '{';
    bool first_sub = true;
    for (auto sub : subs) {
      std::string_view channel;
      od::value position;
      if (sub.unescaped_key().get(channel) != SUCCESS || sub.value().get(position) != SUCCESS) {
        return false;
      }
      if (recovers(channel)) continue;
      if (!first_sub) connect += ',';
      first_sub = false;
      json::AppendJsonString(connect, channel);
      connect += ':';
      if (RawJson(position, &raw) != SUCCESS) return false;
      connect += raw;
    }
    append_recover(connect, first_sub);
    connect += '}';
  }
  if (!had_subs) {
    if (!first) connect += ',';
    connect += "\"subs\":{";
    append_recover(connect, true);
    connect += '}';
  }
  connect += '}';
  command->assign("{\"id\":1,\"connect\":");
  AppendJsonLine(*command, connect);
  command->back() = '}';  // the newline AppendJsonLine ended with
  return true;
}

bool ParseLastEventId(std::string_view text, std::string* epoch, uint64_t* offset) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 64) return false;
  const std::string_view e = text.substr(0, colon);
  for (char c : e) {
    if (c == ':' || static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return false;
  }
  if (!ParseUint(text.substr(colon + 1), offset)) return false;
  epoch->assign(e);
  return true;
}

bool ParseEventPositions(std::string_view text, size_t channels, std::vector<StreamPosition>* out) {
  std::vector<NamedPosition> named;
  return ParseEventPositions(text, channels, out, &named) && named.empty();
}

namespace {

bool EscapedInId(unsigned char c) {
  return c == '%' || c == ',' || c == '=' || c < 0x21 || c > 0x7e;
}

void AppendEscapedChannel(std::string& out, std::string_view channel) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char ch : channel) {
    const auto c = static_cast<unsigned char>(ch);
    if (!EscapedInId(c)) {
      out += ch;
      continue;
    }
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool UnescapeChannel(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c != '%') {
      if (EscapedInId(c)) return false;
      *out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return false;
    const int hi = HexDigit(text[i + 1]);
    const int lo = HexDigit(text[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return !out->empty();
}

}  // namespace

bool ParseEventPositions(std::string_view text, size_t channels, std::vector<StreamPosition>* out,
                         std::vector<NamedPosition>* named) {
  out->clear();
  named->clear();
  if (text.size() > kMaxLastEventIdBytes || text.empty()) return false;
  if (channels > 0 && text.find(',') == std::string_view::npos &&
      text.find('=') == std::string_view::npos) {
    StreamPosition p;
    if (!ParseLastEventId(text, &p.epoch, &p.offset)) return false;
    p.known = true;
    out->assign(channels, p);
    return true;
  }
  size_t from = 0;
  while (true) {
    const size_t comma = text.find(',', from);
    const std::string_view item =
        text.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from);
    StreamPosition p;
    if (out->size() < channels) {
      if (!item.empty()) {
        if (!ParseLastEventId(item, &p.epoch, &p.offset)) return false;
        p.known = true;
      }
      out->push_back(std::move(p));
    } else {
      // Past the positional ones: a named position.
      const size_t equals = item.find('=');
      if (equals == std::string_view::npos) return false;
      NamedPosition n;
      if (!UnescapeChannel(item.substr(0, equals), &n.channel) ||
          !ParseLastEventId(item.substr(equals + 1), &n.position.epoch, &n.position.offset)) {
        return false;
      }
      n.position.known = true;
      for (const NamedPosition& other : *named) {
        if (other.channel == n.channel) return false;
      }
      named->push_back(std::move(n));
    }
    if (comma == std::string_view::npos) break;
    from = comma + 1;
  }
  return out->size() == channels;
}

void AppendEventPositions(std::string& out, const std::vector<StreamPosition>& positions) {
  for (size_t i = 0; i < positions.size(); ++i) {
    if (i > 0) out += ',';
    if (!positions[i].known) continue;
    out += positions[i].epoch;
    out += ':';
    out += std::to_string(positions[i].offset);
  }
}

void AppendEventPositions(std::string& out, const std::vector<StreamPosition>& positions,
                          const std::vector<NamedPosition>& named) {
  const size_t start = out.size();
  AppendEventPositions(out, positions);
  bool first = positions.empty();
  for (const NamedPosition& n : named) {
    if (!n.position.known) continue;
    const size_t before = out.size();
    if (!first) out += ',';
    AppendEscapedChannel(out, n.channel);
    out += '=';
    out += n.position.epoch;
    out += ':';
    out += std::to_string(n.position.offset);
    if (out.size() - start > kMaxLastEventIdBytes) {
      out.resize(before);
      continue;
    }
    first = false;
  }
}

bool FragmentOf(std::string_view push, Fragment* out) {
  simdjson::padded_string padded(push);
  od::document doc;
  if (Parser().iterate(padded).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  bool has_pub = false;
  bool has_channel = false;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    od::value v;
    if (field.value().get(v) != SUCCESS) return false;
    if (key == "channel") {
      std::string_view channel;
      if (v.get_string().get(channel) != SUCCESS) return false;
      out->channel.assign(channel);
      has_channel = true;
    } else if (key == "pub") {
      od::object pub;
      if (v.get_object().get(pub) != SUCCESS || !ReadPublication(pub, out)) return false;
      has_pub = true;
    }
  }
  return has_pub && has_channel;
}

bool FragmentOfPublication(std::string_view publication, std::string_view channel, Fragment* out) {
  simdjson::padded_string padded(publication);
  od::document doc;
  if (Parser().iterate(padded).get(doc) != SUCCESS) return false;
  od::object pub;
  if (doc.get_object().get(pub) != SUCCESS || !ReadPublication(pub, out)) return false;
  out->channel.assign(channel);
  return true;
}

namespace {

// `event: <name>\n` and `id: <id>\n` when id is not empty. A raw newline would end a field
// early: the channel rules refuse control characters, but this framing holds whatever it is
// given.
void AppendEventHead(std::string& out, std::string_view name, std::string_view id) {
  out += "event: ";
  const size_t from = out.size();
  out += name;
  for (size_t i = from; i < out.size(); ++i) {
    if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
  }
  out += '\n';
  if (!id.empty()) {
    out += "id: ";
    out += id;
    out += '\n';
  }
}

}  // namespace

void AppendFragmentEvent(std::string& out, const Fragment& f, std::string_view epoch) {
  std::string id;
  if (!epoch.empty()) {
    id.assign(epoch);
    id += ':';
    id += std::to_string(f.offset);
  }
  AppendFragmentEventWithId(out, f, id);
}

void AppendFragmentEventWithId(std::string& out, const Fragment& f, std::string_view id) {
  AppendEventHead(out, f.channel, id);
  AppendSseData(out, f.data);
}

void AppendUnrecoveredEvent(std::string& out, std::string_view channel, std::string_view id) {
  AppendEventHead(out, "unrecovered", id);
  AppendSseData(out, channel);
}

bool FormPublication(std::string_view message, std::string* channel, std::string* data) {
  if (!json::IsJson(message)) return false;  // one value, nothing after it
  simdjson::padded_string padded(message);
  od::document doc;
  if (Parser().iterate(padded).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  bool has_channel = false;
  data->assign("{");
  for (auto field : object) {
    std::string_view raw_key;
    if (field.unescaped_key().get(raw_key) != SUCCESS) return false;
    std::string key;
    json::AppendJsonString(key, raw_key);
    od::value v;
    if (field.value().get(v) != SUCCESS) return false;
    if (raw_key == "HEADERS") continue;  // htmx's request headers: not data (skipped)
    std::string_view raw;
    std::string quoted;
    if (raw_key == "channel") {
      std::string_view name;
      if (v.get_string().get(name) != SUCCESS) return false;
      channel->assign(name);
      has_channel = true;
      json::AppendJsonString(quoted, name);
      raw = quoted;
    } else if (RawJson(v, &raw) != SUCCESS) {
      return false;
    }
    while (!raw.empty() && IsSpace(raw.back())) raw.remove_suffix(1);
    if (data->size() > 1) *data += ',';
    data->append(key);
    *data += ':';
    data->append(raw);
  }
  *data += '}';
  return has_channel && !channel->empty();
}

bool ParseSubscribeReply(std::string_view reply, SubscribeReplyView* out) {
  simdjson::padded_string padded(reply);
  od::document doc;
  if (Parser().iterate(padded).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  bool found = false;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    od::value v;
    if (field.value().get(v) != SUCCESS) return false;
    if (key == "id") {
      uint64_t id = 0;
      if (v.get_uint64().get(id) != SUCCESS || id > UINT32_MAX) return false;
      out->id = static_cast<uint32_t>(id);
    } else if (key == "channel") {
      std::string_view channel;
      if (v.get_string().get(channel) != SUCCESS) return false;
      out->channel.assign(channel);
    } else if (key == "subscribe") {
      od::object result;
      if (v.get_object().get(result) != SUCCESS || !ReadSubscribeResult(result, out)) {
        return false;
      }
      found = true;
    }
  }
  return found;
}

bool ParseConnectSubs(std::string_view connect_result, std::vector<SubscribeReplyView>* out) {
  simdjson::padded_string padded(connect_result);
  od::document doc;
  if (Parser().iterate(padded).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    if (key != "subs") continue;
    od::object subs;
    if (field.value().get_object().get(subs) != SUCCESS) return false;
    for (auto sub : subs) {
      std::string_view channel;
      if (sub.unescaped_key().get(channel) != SUCCESS) return false;
      od::object result;
      if (sub.value().get_object().get(result) != SUCCESS) return false;
      SubscribeReplyView view;
      view.channel.assign(channel);
      if (!ReadSubscribeResult(result, &view)) return false;
      out->push_back(std::move(view));
    }
  }
  return true;
}

}  // namespace hermod::proto
