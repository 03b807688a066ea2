#include "proto/emulation_request.h"

#include <simdjson.h>

#include <cstdint>

#include "json/syntax.h"
#include "proto/command.h"

namespace hermod::proto {

namespace {

namespace od = simdjson::ondemand;
using simdjson::SUCCESS;

bool Fail(std::string* why, std::string_view text) {
  why->assign(text);
  return false;
}

bool ReadVarint(std::string_view in, size_t* at, uint64_t* out) {
  uint64_t value = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (*at >= in.size()) return false;
    const auto byte = static_cast<uint8_t>(in[(*at)++]);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *out = value;
      return true;
    }
  }
  return false;  // more than ten bytes
}

bool DecodeProtobuf(std::string_view in, EmulationRequest* out, std::string* why) {
  size_t at = 0;
  while (at < in.size()) {
    uint64_t tag = 0;
    if (!ReadVarint(in, &at, &tag)) return Fail(why, "truncated varint");
    const uint64_t field = tag >> 3;
    const auto wire = static_cast<uint8_t>(tag & 7);
    if (field == 0) return Fail(why, "field number 0");
    switch (wire) {
      case 0: {
        uint64_t ignored = 0;
        if (!ReadVarint(in, &at, &ignored)) return Fail(why, "truncated varint");
        if (field <= 3) return Fail(why, "wrong wire type");
        break;
      }
      case 1:
      case 5: {
        const size_t n = wire == 1 ? 8 : 4;
        if (in.size() - at < n) return Fail(why, "truncated field");
        at += n;
        if (field <= 3) return Fail(why, "wrong wire type");
        break;
      }
      case 2: {
        uint64_t length = 0;
        if (!ReadVarint(in, &at, &length)) return Fail(why, "truncated varint");
        if (length > in.size() - at) return Fail(why, "length past the end");
        const std::string_view bytes = in.substr(at, static_cast<size_t>(length));
        at += static_cast<size_t>(length);
        if (field == 1) {
          out->node.assign(bytes);
        } else if (field == 2) {
          out->session.assign(bytes);
        } else if (field == 3) {
          out->data.assign(bytes);
        }
        break;
      }
      default:
        return Fail(why, "unsupported wire type");
    }
  }
  return true;
}

bool DecodeJson(std::string_view in, EmulationRequest* out, std::string* why) {
  if (!json::IsJson(in)) return Fail(why, "not JSON");
  simdjson::padded_string padded(in);
  thread_local od::parser parser;
  od::document doc;
  if (parser.iterate(padded).get(doc) != SUCCESS) return Fail(why, "not JSON");
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return Fail(why, "not a JSON object");
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return Fail(why, "bad key");
    od::value v;
    if (field.value().get(v) != SUCCESS) return Fail(why, "bad value");
    if (key == "node" || key == "session") {
      std::string_view s;
      if (v.get_string().get(s) != SUCCESS) return Fail(why, "node and session are strings");
      (key == "node" ? out->node : out->session).assign(s);
    } else if (key == "data") {
      od::json_type type;
      if (v.type().get(type) != SUCCESS) return Fail(why, "bad data");
      if (type == od::json_type::string) {
        std::string_view s;
        if (v.get_string().get(s) != SUCCESS) return Fail(why, "bad data");
        out->data.assign(s);
      } else if (type == od::json_type::object || type == od::json_type::array) {
        std::string_view raw;
        if (RawJson(v, &raw) != SUCCESS) return Fail(why, "bad data");
        out->data.assign(raw);
      } else {
        return Fail(why, "data is a string of commands");
      }
    }
  }
  return true;
}

}  // namespace

bool DecodeEmulationRequest(std::string_view body, bool protobuf, EmulationRequest* out,
                            std::string* why) {
  *out = {};
  if (!(protobuf ? DecodeProtobuf(body, out, why) : DecodeJson(body, out, why))) return false;
  if (out->node.empty()) return Fail(why, "no node");
  if (out->session.empty()) return Fail(why, "no session");
  if (out->data.empty()) return Fail(why, "no data");
  return true;
}

}  // namespace hermod::proto
