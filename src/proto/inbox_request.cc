#include "proto/inbox_request.h"

#include <simdjson.h>

#include <charconv>

namespace hermod::proto {

bool ParseInboxRequest(std::string_view json, InboxRequest* r, size_t max_offsets) {
  if (json.empty()) return false;
  namespace od = simdjson::ondemand;
  using simdjson::SUCCESS;
  thread_local od::parser parser;
  thread_local std::string padded;
  padded.assign(json);
  padded.resize(json.size() + simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (parser.iterate(padded.data(), json.size(), padded.size()).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != SUCCESS) return false;
    od::value v = field.value();
    std::string_view s;
    if (key == "channel" || key == "user") {
      if (v.get_string().get(s) != SUCCESS) return false;
      (key == "channel" ? r->channel : r->user) = std::string(s);
    } else if (key == "reason") {
      if (v.get_string().get(s) != SUCCESS) return false;
      r->reason = std::string(s.substr(0, 256));
    } else if (key == "up_to") {
      uint64_t n;
      if (v.get_uint64().get(n) != SUCCESS) return false;
      r->up_to = n;
    } else if (key == "cursor") {
      if (v.get_string().get(s) == SUCCESS) {
        if (!s.empty() &&
            std::from_chars(s.data(), s.data() + s.size(), r->cursor).ec != std::errc()) {
          r->cursor = 0;
        }
      } else if (v.get_uint64().get(r->cursor) != SUCCESS) {
        return false;
      }
    } else if (key == "limit") {
      if (v.get_uint64().get(r->limit) != SUCCESS) return false;
    } else if (key == "offsets") {
      od::array array;
      if (v.get_array().get(array) != SUCCESS) return false;
      for (auto item : array) {
        uint64_t n;
        if (item.get_uint64().get(n) != SUCCESS) return false;
        if (r->offsets.size() >= max_offsets) return false;
        r->offsets.push_back(n);
      }
    }
  }
  return true;
}

}  // namespace hermod::proto
