#include "proto/delta.h"

#include <simdjson.h>

#include "core/fossil_delta.h"
#include "json/string_writer.h"
#include "proto/command.h"
#include "proto/protobuf.h"

namespace hermod::proto {

namespace {

// A publication object's parts.
struct Parts {
  std::string data;
  std::string_view info;
  std::string_view tags;
  uint64_t offset = 0;
};

// For Protobuf, data holds the bytes (b64data decoded); for JSON, the data's JSON text, and
// for binary data the JSON text of its base64 string: what the JSON protocol calls binary
// data, and what a JSON delta subscriber's SDK parses (it JSON-parses every payload).
bool Split(std::string_view publication, Format format, Parts* p,
           simdjson::ondemand::parser& parser, simdjson::padded_string& padded) {
  padded = simdjson::padded_string(publication);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object object;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(object)) return false;
  for (auto field : object) {
    std::string_view key;
    simdjson::ondemand::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) return false;
    std::string_view text;
    if (key == "data") {
      if (RawJson(v, &text)) return false;
      p->data.assign(text);
    } else if (key == "b64data") {
      if (v.get_string().get(text)) return false;
      if (format == Format::kJson) {
        p->data.assign(1, '"').append(text).push_back('"');
      } else if (!DecodeBase64Into(text, p->data)) {
        return false;
      }
    } else if (key == "info") {
      if (RawJson(v, &p->info)) return false;
    } else if (key == "tags") {
      if (RawJson(v, &p->tags)) return false;
    } else if (key == "offset") {
      if (v.get_uint64().get(p->offset)) return false;
    }
  }
  return true;
}

void AppendRest(std::string& out, const Parts& p, bool delta) {
  if (!p.info.empty()) {
    out += ",\"info\":";
    out += p.info;
  }
  if (p.offset != 0) {
    out += ",\"offset\":";
    out += std::to_string(p.offset);
  }
  if (!p.tags.empty()) {
    out += ",\"tags\":";
    out += p.tags;
  }
  if (delta) out += ",\"delta\":true";
  out += '}';
}

}  // namespace

bool DeltaPublication(std::string_view publication, std::string_view base, Format format,
                      std::string* out, bool* is_delta) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded;
  Parts p;
  if (!Split(publication, format, &p, parser, padded)) return false;
  std::string patch;
  *is_delta = false;
  if (!base.empty()) {
    simdjson::ondemand::parser base_parser;
    simdjson::padded_string base_padded;
    Parts b;
    if (Split(base, format, &b, base_parser, base_padded)) {
      core::AppendFossilDelta(patch, b.data, p.data);
      *is_delta = patch.size() < p.data.size() &&
                  (format != Format::kJson || simdjson::validate_utf8(patch.data(), patch.size()));
    }
  }
  out->clear();
  if (format == Format::kJson) {
    // Binary data too: the SDK parses every payload of a delta subscription as JSON text.
    *out += "{\"data\":";
    json::AppendJsonString(*out, *is_delta ? std::string_view(patch) : std::string_view(p.data));
  } else {
    if (!*is_delta) {
      *out = publication;  // Protobuf's full payload is the plain data
      return true;
    }
    *out += "{\"b64data\":\"";
    AppendBase64(*out, patch);
    *out += '"';
  }
  AppendRest(*out, p, *is_delta);
  return true;
}

}  // namespace hermod::proto
