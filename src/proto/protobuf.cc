#include "proto/protobuf.h"

#include <array>
#include <cstring>
#include <span>

#include "json/syntax.h"
#include "ws/utf8.h"

namespace hermod::proto {

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Wire types (protobuf encoding: VARINT, I64, LEN, I32; the group types 3 and 4 are refused).
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// A bounded reader over one message: every read checks the end first.
struct Reader {
  const uint8_t* p;
  const uint8_t* end;

  bool done() const { return p >= end; }
  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p >= end) return false;
      const uint8_t byte = *p++;
      if (shift == 63 && byte > 1) return false;  // past 64 bits
      result |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  bool Tag(uint32_t* field, uint32_t* wire) {
    uint64_t tag;
    if (!Varint(&tag) || tag > UINT32_MAX) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire = static_cast<uint32_t>(tag & 7);
    return *field != 0;
  }
  bool Bytes(std::string_view* out) {
    uint64_t length;
    if (!Varint(&length) || length > static_cast<uint64_t>(end - p)) return false;
    *out = {reinterpret_cast<const char*>(p), static_cast<size_t>(length)};
    p += length;
    return true;
  }
  bool Sub(Reader* sub) {
    std::string_view bytes;
    if (!Bytes(&bytes)) return false;
    *sub = {reinterpret_cast<const uint8_t*>(bytes.data()),
            reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size()};
    return true;
  }
  bool Skip(uint32_t wire) {
    uint64_t ignored;
    std::string_view bytes;
    switch (wire) {
      case kVarint:
        return Varint(&ignored);
      case kFixed64:
        if (end - p < 8) return false;
        p += 8;
        return true;
      case kLen:
        return Bytes(&bytes);
      case kFixed32:
        if (end - p < 4) return false;
        p += 4;
        return true;
      default:
        return false;
    }
  }
};

// One field of a request: reads it by wire type, or fails on a wrong one.
// proto3 strings are UTF-8; the JSON protocol's replies and logs repeat them.
bool ReadString(Reader& r, uint32_t wire, std::string_view* out) {
  return wire == kLen && r.Bytes(out) && ws::IsValidUtf8(*out);
}
bool ReadBytes(Reader& r, uint32_t wire, std::string_view* out) {
  return wire == kLen && r.Bytes(out);
}
bool ReadBool(Reader& r, uint32_t wire, bool* out) {
  uint64_t v;
  if (wire != kVarint || !r.Varint(&v)) return false;
  *out = v != 0;
  return true;
}
bool ReadUint(Reader& r, uint32_t wire, uint64_t* out) { return wire == kVarint && r.Varint(out); }

// `data` of a request: JSON text passes as it is; anything else is binary (see the header).
bool ReadData(Reader& r, uint32_t wire, bool binary_allowed, std::string& binary,
              std::string_view* out) {
  std::string_view bytes;
  if (!ReadBytes(r, wire, &bytes)) return false;
  if (bytes.empty()) {
    *out = {};
    return true;
  }
  if (bytes.find_first_of("\r\n") == std::string_view::npos && json::IsJson(bytes)) {
    *out = bytes;
    return true;
  }
  if (!binary_allowed) return false;
  binary.assign(1, kBinaryDataMark);
  AppendBase64(binary, bytes);
  *out = binary;
  return true;
}

// A connect's `subs` entry: map<string, SubscribeRequest> (key 1, value 2).
bool ReadConnectSub(Reader r, Command* c) {
  ConnectSub sub;
  uint32_t field, wire;
  while (!r.done()) {
    if (!r.Tag(&field, &wire)) return false;
    bool ok = true;
    if (field == 1) {
      ok = ReadString(r, wire, &sub.channel);
    } else if (field == 2) {
      Reader value;
      if (wire != kLen || !r.Sub(&value)) return false;
      while (ok && !value.done()) {
        uint32_t f, w;
        if (!value.Tag(&f, &w)) return false;
        if (f == 3) {
          ok = ReadBool(value, w, &sub.recover);
        } else if (f == 6) {
          ok = ReadString(value, w, &sub.epoch);
        } else if (f == 7) {
          ok = ReadUint(value, w, &sub.offset);
        } else {
          ok = value.Skip(w);
        }
      }
    } else {
      ok = r.Skip(wire);
    }
    if (!ok) return false;
  }
  c->subs.push_back(sub);
  return true;
}

bool ReadSince(Reader r, Command* c) {
  c->has_since = true;
  uint32_t field, wire;
  while (!r.done()) {
    if (!r.Tag(&field, &wire)) return false;
    bool ok;
    if (field == 1) {
      ok = ReadUint(r, wire, &c->since_offset);
    } else if (field == 2) {
      ok = ReadString(r, wire, &c->since_epoch);
    } else {
      ok = r.Skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

// Command's request fields 4..15 (client.proto), in the order of their numbers.
constexpr std::array<Method, 12> kRequestMethods = {
    Method::kConnect,   Method::kSubscribe, Method::kUnsubscribe,
    Method::kPublish,   Method::kPresence,  Method::kPresenceStats,
    Method::kHistory,   Method::kUnknown,  // 11: ping, which the JSON protocol lacks too
    Method::kSend,      Method::kRpc,       Method::kRefresh,
    Method::kSubRefresh};

// One request message's fields into c (field numbers from client.proto's *Request).
bool ReadRequest(Reader r, std::string& binary, Command* c) {
  uint32_t field, wire;
  while (!r.done()) {
    if (!r.Tag(&field, &wire)) return false;
    bool ok = true;
    bool known = true;
    switch (c->method) {
      case Method::kConnect:
        if (field == 1) {
          ok = ReadString(r, wire, &c->token);
        } else if (field == 2) {
          ok = ReadData(r, wire, false, binary, &c->data);
        } else if (field == 3) {
          Reader entry;
          ok = wire == kLen && r.Sub(&entry) && ReadConnectSub(entry, c);
        } else {
          known = false;
        }
        break;
      case Method::kSubscribe:
        if (field == 1) {
          ok = ReadString(r, wire, &c->channel);
        } else if (field == 2) {
          ok = ReadString(r, wire, &c->token);
        } else if (field == 3) {
          ok = ReadBool(r, wire, &c->recover);
        } else if (field == 6) {
          ok = ReadString(r, wire, &c->epoch);
        } else if (field == 7) {
          ok = ReadUint(r, wire, &c->offset);
        } else if (field == 8) {
          ok = ReadData(r, wire, false, binary, &c->data);
        } else if (field == 9) {
          ok = ReadBool(r, wire, &c->positioned);
        } else if (field == 10) {
          ok = ReadBool(r, wire, &c->recoverable);
        } else if (field == 11) {
          ok = ReadBool(r, wire, &c->join_leave);
        } else if (field == 12) {
          ok = ReadString(r, wire, &c->delta);
        } else {
          known = false;
        }
        break;
      case Method::kUnsubscribe:
      case Method::kPresence:
      case Method::kPresenceStats:
        if (field == 1) {
          ok = ReadString(r, wire, &c->channel);
        } else {
          known = false;
        }
        break;
      case Method::kPublish:
        if (field == 1) {
          ok = ReadString(r, wire, &c->channel);
        } else if (field == 2) {
          ok = ReadData(r, wire, true, binary, &c->data);
        } else {
          known = false;
        }
        break;
      case Method::kHistory:
        if (field == 1) {
          ok = ReadString(r, wire, &c->channel);
        } else if (field == 7) {
          uint64_t limit;
          ok = ReadUint(r, wire, &limit);
          c->limit = static_cast<int32_t>(static_cast<uint32_t>(limit));  // int32 on the wire
        } else if (field == 8) {
          Reader since;
          ok = wire == kLen && r.Sub(&since) && ReadSince(since, c);
        } else if (field == 9) {
          ok = ReadBool(r, wire, &c->reverse);
        } else {
          known = false;
        }
        break;
      case Method::kSend:
      case Method::kRpc:
        if (field == 1) {
          ok = ReadData(r, wire, false, binary, &c->data);
        } else if (field == 2 && c->method == Method::kRpc) {
          ok = ReadString(r, wire, &c->rpc_method);
        } else {
          known = false;
        }
        break;
      case Method::kRefresh:
        if (field == 1) {
          ok = ReadString(r, wire, &c->token);
        } else {
          known = false;
        }
        break;
      case Method::kSubRefresh:
        if (field == 1) {
          ok = ReadString(r, wire, &c->channel);
        } else if (field == 2) {
          ok = ReadString(r, wire, &c->token);
        } else {
          known = false;
        }
        break;
      default:
        known = false;
    }
    if (!known) ok = r.Skip(wire);
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void AppendBase64(std::string& out, std::string_view bytes) {
  size_t i = 0;
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t n = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8) | b[i + 2];
    out += kBase64[n >> 18];
    out += kBase64[(n >> 12) & 63];
    out += kBase64[(n >> 6) & 63];
    out += kBase64[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = uint32_t{b[i]} << 16;
    if (i + 1 < bytes.size()) n |= uint32_t{b[i + 1]} << 8;
    out += kBase64[n >> 18];
    out += kBase64[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kBase64[(n >> 6) & 63] : '=';
    out += '=';
  }
}

bool DecodeBase64Into(std::string_view text, std::string& out) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    const char* at = std::strchr(kBase64, ch);
    if (ch == '\0' || at == nullptr) return false;
    acc = (acc << 6) | static_cast<uint32_t>(at - kBase64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return bits < 6;  // a lone trailing character is no base64
}

void AppendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

void ProtobufCommandParser::Reset(std::string_view message) {
  buffer_.assign(message);
  position_ = 0;
}

size_t ProtobufCommandParser::Release(size_t keep_bytes) {
  const size_t held = buffer_.capacity();
  if (held > keep_bytes) std::string().swap(buffer_);
  if (binary_.capacity() > keep_bytes) std::string().swap(binary_);
  return held;
}

ParseStatus ProtobufCommandParser::Next(Command* c) {
  if (position_ >= buffer_.size()) return ParseStatus::kEnd;
  *c = Command{};
  const auto* base = reinterpret_cast<const uint8_t*>(buffer_.data());
  Reader frame{base + position_, base + buffer_.size()};
  Reader r;
  if (!frame.Sub(&r)) {
    position_ = buffer_.size();
    return ParseStatus::kInvalidCommand;
  }
  position_ = static_cast<size_t>(frame.p - base);
  bool has_method = false;
  uint32_t field, wire;
  while (!r.done()) {
    if (!r.Tag(&field, &wire)) return ParseStatus::kInvalidCommand;
    if (field == 1) {
      uint64_t id;
      if (!ReadUint(r, wire, &id) || id > UINT32_MAX) return ParseStatus::kInvalidCommand;
      c->id = static_cast<uint32_t>(id);
    } else if (field >= 4 && field < 4 + kRequestMethods.size()) {
      if (wire != kLen || has_method) return ParseStatus::kInvalidCommand;
      has_method = true;
      c->method = kRequestMethods[field - 4];
      Reader request;
      if (!r.Sub(&request) || !ReadRequest(request, binary_, c)) {
        return ParseStatus::kInvalidCommand;
      }
    } else if (!r.Skip(wire)) {
      return ParseStatus::kInvalidCommand;
    }
  }
  // An id without a request this server knows: method not found (104), as JSON's unknown
  // method; a request without an id is no command.
  if (!has_method && c->id != 0) c->method = Method::kUnknown;
  if (has_method && c->id == 0) return ParseStatus::kInvalidCommand;
  return ParseStatus::kOk;
}

// ---- Replies ----

namespace {

namespace od = simdjson::ondemand;
using simdjson::SUCCESS;

enum class Kind : uint8_t {
  kString,     // string
  kRaw,        // bytes: the value's JSON text (data, conn_info, chan_info)
  kB64,        // bytes: a base64 string decoded (a binary publication's b64data)
  kBool,       // bool, written when true
  kUint,       // uint32 / uint64, written when non-zero
  kInt,        // int64, written when non-zero
  kMessage,    // a nested message
  kRepeated,   // repeated message, from an array
  kMap,        // map<string, message>, from an object
  kStringMap,  // map<string, string>, from an object
};

enum Msg : uint8_t {
  kReply,
  kError,
  kPush,
  kClientInfo,
  kPublication,
  kJoinLeave,
  kUnsubscribe,
  kSubscribe,
  kMessage,
  kConnect,
  kDisconnect,
  kRefresh,
  kConnectResult,
  kSubscribeResult,
  kPresenceResult,
  kPresenceStatsResult,
  kHistoryResult,
  kRpcResult,
  kRefreshResult,
  kSubRefreshResult,
  kEmpty,
  kMsgCount,
};

struct Field {
  std::string_view name;
  uint32_t number;
  Kind kind;
  Msg message = kEmpty;
};

// client.proto's field numbers, by the JSON names the protocol uses.
constexpr Field kReplyFields[] = {
    {"id", 1, Kind::kUint},
    {"error", 2, Kind::kMessage, kError},
    {"push", 4, Kind::kMessage, kPush},
    {"connect", 5, Kind::kMessage, kConnectResult},
    {"subscribe", 6, Kind::kMessage, kSubscribeResult},
    {"unsubscribe", 7, Kind::kMessage, kEmpty},
    {"publish", 8, Kind::kMessage, kEmpty},
    {"presence", 9, Kind::kMessage, kPresenceResult},
    {"presence_stats", 10, Kind::kMessage, kPresenceStatsResult},
    {"history", 11, Kind::kMessage, kHistoryResult},
    {"ping", 12, Kind::kMessage, kEmpty},
    {"rpc", 13, Kind::kMessage, kRpcResult},
    {"refresh", 14, Kind::kMessage, kRefreshResult},
    {"sub_refresh", 15, Kind::kMessage, kSubRefreshResult},
};
constexpr Field kErrorFields[] = {
    {"code", 1, Kind::kUint}, {"message", 2, Kind::kString}, {"temporary", 3, Kind::kBool}};
constexpr Field kPushFields[] = {
    {"channel", 2, Kind::kString},
    {"pub", 4, Kind::kMessage, kPublication},
    {"join", 5, Kind::kMessage, kJoinLeave},
    {"leave", 6, Kind::kMessage, kJoinLeave},
    {"unsubscribe", 7, Kind::kMessage, kUnsubscribe},
    {"message", 8, Kind::kMessage, kMessage},
    {"subscribe", 9, Kind::kMessage, kSubscribe},
    {"connect", 10, Kind::kMessage, kConnect},
    {"disconnect", 11, Kind::kMessage, kDisconnect},
    {"refresh", 12, Kind::kMessage, kRefresh},
};
constexpr Field kClientInfoFields[] = {{"user", 1, Kind::kString},
                                       {"client", 2, Kind::kString},
                                       {"conn_info", 3, Kind::kRaw},
                                       {"chan_info", 4, Kind::kRaw}};
constexpr Field kPublicationFields[] = {
    {"data", 4, Kind::kRaw},
    {"b64data", 4, Kind::kB64},
    {"info", 5, Kind::kMessage, kClientInfo},
    {"offset", 6, Kind::kUint},
    {"tags", 7, Kind::kStringMap},
    {"delta", 8, Kind::kBool},
    {"time", 9, Kind::kInt},
    {"channel", 10, Kind::kString},
};
constexpr Field kJoinLeaveFields[] = {{"info", 1, Kind::kMessage, kClientInfo}};
constexpr Field kUnsubscribeFields[] = {{"code", 2, Kind::kUint}, {"reason", 3, Kind::kString}};
constexpr Field kSubscribeFields[] = {{"recoverable", 1, Kind::kBool},
                                      {"epoch", 4, Kind::kString},
                                      {"offset", 5, Kind::kUint},
                                      {"positioned", 6, Kind::kBool},
                                      {"data", 7, Kind::kRaw}};
constexpr Field kMessageFields[] = {{"data", 1, Kind::kRaw}};
constexpr Field kConnectFields[] = {
    {"client", 1, Kind::kString},  {"version", 2, Kind::kString},
    {"data", 3, Kind::kRaw},       {"subs", 4, Kind::kMap, kSubscribeResult},
    {"expires", 5, Kind::kBool},   {"ttl", 6, Kind::kUint},
    {"ping", 7, Kind::kUint},      {"pong", 8, Kind::kBool},
    {"session", 9, Kind::kString}, {"node", 10, Kind::kString},
};
constexpr Field kDisconnectFields[] = {
    {"code", 1, Kind::kUint}, {"reason", 2, Kind::kString}, {"reconnect", 3, Kind::kBool}};
constexpr Field kRefreshFields[] = {{"expires", 1, Kind::kBool}, {"ttl", 2, Kind::kUint}};
constexpr Field kConnectResultFields[] = {
    {"client", 1, Kind::kString},  {"version", 2, Kind::kString},
    {"expires", 3, Kind::kBool},   {"ttl", 4, Kind::kUint},
    {"data", 5, Kind::kRaw},       {"subs", 6, Kind::kMap, kSubscribeResult},
    {"ping", 7, Kind::kUint},      {"pong", 8, Kind::kBool},
    {"session", 9, Kind::kString}, {"node", 10, Kind::kString},
    {"time", 11, Kind::kInt},
};
constexpr Field kSubscribeResultFields[] = {
    {"expires", 1, Kind::kBool},
    {"ttl", 2, Kind::kUint},
    {"recoverable", 3, Kind::kBool},
    {"epoch", 6, Kind::kString},
    {"publications", 7, Kind::kRepeated, kPublication},
    {"recovered", 8, Kind::kBool},
    {"offset", 9, Kind::kUint},
    {"positioned", 10, Kind::kBool},
    {"data", 11, Kind::kRaw},
    {"was_recovering", 12, Kind::kBool},
    {"delta", 13, Kind::kBool},
};
constexpr Field kPresenceResultFields[] = {{"presence", 1, Kind::kMap, kClientInfo}};
constexpr Field kPresenceStatsResultFields[] = {{"num_clients", 1, Kind::kUint},
                                                {"num_users", 2, Kind::kUint}};
constexpr Field kHistoryResultFields[] = {{"publications", 1, Kind::kRepeated, kPublication},
                                          {"epoch", 2, Kind::kString},
                                          {"offset", 3, Kind::kUint}};
constexpr Field kRpcResultFields[] = {{"data", 1, Kind::kRaw}};
constexpr Field kRefreshResultFields[] = {{"client", 1, Kind::kString},
                                          {"version", 2, Kind::kString},
                                          {"expires", 3, Kind::kBool},
                                          {"ttl", 4, Kind::kUint}};
constexpr Field kSubRefreshResultFields[] = {{"expires", 1, Kind::kBool}, {"ttl", 2, Kind::kUint}};

constexpr std::array<std::span<const Field>, kMsgCount> kMessages = {
    kReplyFields,
    kErrorFields,
    kPushFields,
    kClientInfoFields,
    kPublicationFields,
    kJoinLeaveFields,
    kUnsubscribeFields,
    kSubscribeFields,
    kMessageFields,
    kConnectFields,
    kDisconnectFields,
    kRefreshFields,
    kConnectResultFields,
    kSubscribeResultFields,
    kPresenceResultFields,
    kPresenceStatsResultFields,
    kHistoryResultFields,
    kRpcResultFields,
    kRefreshResultFields,
    kSubRefreshResultFields,
    std::span<const Field>{},
};

void AppendTag(std::string& out, uint32_t number, uint32_t wire) {
  AppendVarint(out, (uint64_t{number} << 3) | wire);
}

void AppendLen(std::string& out, uint32_t number, std::string_view bytes) {
  AppendTag(out, number, kLen);
  AppendVarint(out, bytes.size());
  out += bytes;
}

// Length-prefixes what was appended to out since start (a nested message written in place).
void Delimit(std::string& out, size_t start) {
  const size_t length = out.size() - start;
  char prefix[10];
  size_t n = 0;
  uint64_t v = length;
  while (v >= 0x80) {
    prefix[n++] = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  prefix[n++] = static_cast<char>(v);
  out.insert(start, prefix, n);
}

bool EncodeObject(od::object object, Msg message, std::string& out);

bool EncodeNested(od::value value, uint32_t number, Msg message, std::string& out) {
  od::object object;
  if (value.get_object().get(object) != SUCCESS) return false;
  AppendTag(out, number, kLen);
  const size_t start = out.size();
  if (!EncodeObject(object, message, out)) return false;
  Delimit(out, start);
  return true;
}

bool EncodeField(const Field& f, od::value value, std::string& out) {
  switch (f.kind) {
    case Kind::kString: {
      std::string_view s;
      if (value.get_string().get(s) != SUCCESS) return false;
      if (!s.empty()) AppendLen(out, f.number, s);
      return true;
    }
    case Kind::kRaw: {
      std::string_view raw;
      if (RawJson(value, &raw) != SUCCESS) return false;
      if (!raw.empty() && raw != "null") AppendLen(out, f.number, raw);
      return true;
    }
    case Kind::kB64: {
      std::string_view s;
      if (value.get_string().get(s) != SUCCESS) return false;
      AppendTag(out, f.number, kLen);
      const size_t start = out.size();
      if (!DecodeBase64Into(s, out)) return false;
      Delimit(out, start);
      return true;
    }
    case Kind::kBool: {
      bool b;
      if (value.get_bool().get(b) != SUCCESS) return false;
      if (b) {
        AppendTag(out, f.number, kVarint);
        out += '\x01';
      }
      return true;
    }
    case Kind::kUint: {
      uint64_t n;
      if (value.get_uint64().get(n) != SUCCESS) return false;
      if (n != 0) {
        AppendTag(out, f.number, kVarint);
        AppendVarint(out, n);
      }
      return true;
    }
    case Kind::kInt: {
      int64_t n;
      if (value.get_int64().get(n) != SUCCESS) return false;
      if (n != 0) {
        AppendTag(out, f.number, kVarint);
        AppendVarint(out, static_cast<uint64_t>(n));
      }
      return true;
    }
    case Kind::kMessage:
      return EncodeNested(value, f.number, f.message, out);
    case Kind::kRepeated: {
      od::array array;
      if (value.get_array().get(array) != SUCCESS) return false;
      for (auto element : array) {
        od::value v;
        if (element.get(v) != SUCCESS || !EncodeNested(v, f.number, f.message, out)) return false;
      }
      return true;
    }
    case Kind::kMap:
    case Kind::kStringMap: {
      od::object object;
      if (value.get_object().get(object) != SUCCESS) return false;
      for (auto entry : object) {
        std::string_view key;
        od::value v;
        if (entry.unescaped_key().get(key) != SUCCESS || entry.value().get(v) != SUCCESS) {
          return false;
        }
        AppendTag(out, f.number, kLen);
        const size_t start = out.size();
        AppendLen(out, 1, key);
        if (f.kind == Kind::kMap) {
          if (!EncodeNested(v, 2, f.message, out)) return false;
        } else {
          std::string_view s;
          if (v.get_string().get(s) != SUCCESS) return false;
          AppendLen(out, 2, s);
        }
        Delimit(out, start);
      }
      return true;
    }
  }
  return false;
}

bool EncodeObject(od::object object, Msg message, std::string& out) {
  const std::span<const Field> fields = kMessages[message];
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS) {
      return false;
    }
    const Field* f = nullptr;
    for (const Field& candidate : fields) {
      if (candidate.name == key) {
        f = &candidate;
        break;
      }
    }
    // A field client.proto lacks (hermod's additions) is left out; the SDK ignores it too.
    if (f != nullptr && !EncodeField(*f, value, out)) return false;
  }
  return true;
}

}  // namespace

bool ProtobufReplyEncoder::Append(std::string_view json, std::string& out) {
  padded_.assign(json);
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  size_t position = 0;
  while (position < json.size()) {
    size_t end = json.find('\n', position);
    if (end == std::string_view::npos) end = json.size();
    const size_t begin = position;
    position = end + 1;
    if (begin == end) continue;
    od::document doc;
    od::object object;
    if (parser_.iterate(padded_.data() + begin, end - begin, padded_.size() - begin).get(doc) !=
            SUCCESS ||
        doc.get_object().get(object) != SUCCESS) {
      return false;
    }
    scratch_.clear();
    if (!EncodeObject(object, kReply, scratch_)) return false;
    AppendVarint(out, scratch_.size());
    out += scratch_;
  }
  return true;
}

size_t ProtobufReplyEncoder::Release(size_t keep_bytes) {
  const size_t held = padded_.capacity() + scratch_.capacity();
  if (padded_.capacity() > keep_bytes) std::string().swap(padded_);
  if (scratch_.capacity() > keep_bytes) std::string().swap(scratch_);
  if (parser_.capacity() > keep_bytes) parser_ = od::parser{};
  return held;
}

}  // namespace hermod::proto
