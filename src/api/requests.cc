#include "api/requests.h"

#include <simdjson.h>

#include <charconv>

#include "config/config.h"
#include "json/string_writer.h"
#include "json/syntax.h"
#include "proto/command.h"

namespace hermod::api {

namespace {

namespace od = simdjson::ondemand;
using simdjson::SUCCESS;

// Calls read(key, value) for each field of the object in body, padded in place; false when
// body is no JSON object or read refuses a field. The body is validated by syntax alone
// (json/syntax.h): `data` passes through, and a number in it of any size is JSON.
template <class ReadField>
bool ForEachField(od::parser& parser, std::string& body, ReadField&& read) {
  const size_t size = body.size();
  if (!json::IsJson(body)) return false;
  body.resize(size + simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (parser.iterate(body.data(), size, body.size()).get(doc) != SUCCESS) return false;
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS ||
        !read(key, value)) {
      return false;
    }
  }
  return true;
}

// The requests' parser: string views it hands out live until its next document.
template <class ReadField>
bool ForEachField(std::string& body, ReadField&& read) {
  thread_local od::parser parser;
  return ForEachField(parser, body, read);
}

bool String(od::value v, std::string_view* out) { return v.get_string().get(*out) == SUCCESS; }

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
    json::AppendJsonString(*out, key);
    *out += ':';
    json::AppendJsonString(*out, value);
  }
  *out += '}';
  if (*out == "{}") out->clear();
  return true;
}

// JSON text without the line breaks of its whitespace (minified); false when a line break is
// left, which only a string could hold, where JSON allows none.
bool WithoutLineBreaks(std::string_view json, std::string* out) {
  out->resize(json.size());
  size_t size = 0;
  if (simdjson::minify(json.data(), json.size(), out->data(), size) != SUCCESS) return false;
  out->resize(size);
  return out->find_first_of("\r\n") == std::string::npos;
}

// A field of publish's and broadcast's publication; true for a key that is none of them.
bool ReadPublication(std::string_view key, od::value v, Publication* p) {
  if (key == "data") {
    if (proto::RawJson(v, &p->data) != SUCCESS) return false;
    if (p->data.find_first_of("\r\n") == std::string_view::npos) return true;
    if (!WithoutLineBreaks(p->data, &p->compacted_data)) return false;
    p->data = p->compacted_data;
    return true;
  }
  if (key == "b64data") {
    std::string_view text;
    p->has_b64data = true;
    if (!String(v, &text) || !DecodeBase64(text, &p->decoded_data)) return false;
    // Binary data stays as it is; JSON in it is published as JSON, one line like data's.
    std::string compact;
    if (p->decoded_data.find_first_of("\r\n") != std::string::npos &&
        WithoutLineBreaks(p->decoded_data, &compact)) {
      p->decoded_data = std::move(compact);
    }
    return true;
  }
  if (key == "tags") return ReadTags(v, &p->tags);
  if (key == "idempotency_key") return String(v, &p->idempotency_key);
  if (key == "priority") return String(v, &p->priority);
  if (key == "skip_history") return v.get_bool().get(p->skip_history) == SUCCESS;
  if (key == "delta") return v.get_bool().get(p->delta) == SUCCESS;
  if (key == "delay") {
    p->has_delay = true;
    std::string_view text;
    if (!String(v, &text) || !config::ParseDuration(text, &p->delay_ms)) p->bad_field = "delay";
    return true;
  }
  if (key == "deliver_at") {
    p->has_deliver_at = true;
    std::string_view text;
    od::json_type type;
    bool ok = v.type().get(type) == SUCCESS;
    if (ok && type == od::json_type::number) {
      ok = v.get_int64().get(p->deliver_at_ms) == SUCCESS;
    } else {
      ok = ok && String(v, &text) && ParseRfc3339(text, &p->deliver_at_ms);
    }
    if (!ok) p->bad_field = "deliver_at";
    return true;
  }
  return true;
}

bool ReadClients(std::string_view key, od::value v, ClientSelector* c) {
  if (key == "user") return String(v, &c->user);
  if (key == "client") return String(v, &c->client);
  if (key == "session") return String(v, &c->session);
  return true;
}

bool ReadDisconnect(od::value v, DisconnectRequest* r) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS) {
      return false;
    }
    if (key == "code" && value.get_uint64().get(r->code) != SUCCESS) r->code = UINT64_MAX;
    if (key == "reason" && !String(value, &r->reason)) return false;
  }
  return true;
}

bool ReadSince(od::value v, HistoryRequest* r) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  r->has_since = true;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != SUCCESS || field.value().get(value) != SUCCESS) {
      return false;
    }
    if (key == "offset" && value.get_uint64().get(r->since.offset) != SUCCESS) return false;
    if (key == "epoch") {
      std::string_view epoch;
      if (!String(value, &epoch)) return false;
      r->since.epoch = std::string(epoch);
    }
  }
  return true;
}

}  // namespace

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

bool Parse(std::string& body, PublishRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key == "channel") return String(v, &r->channel);
    return ReadPublication(key, v, &r->publication);
  });
}

bool Parse(std::string& body, BroadcastRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key != "channels") return ReadPublication(key, v, &r->publication);
    od::array array;
    if (v.get_array().get(array) != SUCCESS) return false;
    for (auto item : array) {
      std::string_view channel;
      if (item.get_string().get(channel) != SUCCESS) return false;
      r->channels.push_back(channel);
    }
    return true;
  });
}

bool Parse(std::string& body, ChannelForClientsRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key == "channel") return String(v, &r->channel);
    return ReadClients(key, v, &r->clients);
  });
}

bool Parse(std::string& body, DisconnectRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key == "disconnect") return ReadDisconnect(v, r);
    return ReadClients(key, v, &r->clients);
  });
}

bool Parse(std::string& body, RefreshRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key == "expired") return v.get_bool().get(r->expired) == SUCCESS;
    if (key == "expire_at") return v.get_int64().get(r->expire_at) == SUCCESS;
    return ReadClients(key, v, &r->clients);
  });
}

bool Parse(std::string& body, ChannelRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    return key != "channel" || String(v, &r->channel);
  });
}

bool Parse(std::string& body, HistoryRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key == "channel") return String(v, &r->channel);
    if (key == "since") return ReadSince(v, r);
    if (key == "limit") return v.get_int64().get(r->limit) == SUCCESS;
    if (key == "reverse") return v.get_bool().get(r->reverse) == SUCCESS;
    return true;
  });
}

bool Parse(std::string& body, ChannelsRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    return key != "pattern" || String(v, &r->pattern);
  });
}

bool Parse(std::string& body, ScheduledRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    if (key == "channel") return String(v, &r->channel);
    if (key == "cursor") return String(v, &r->cursor);
    if (key == "limit") return v.get_int64().get(r->limit) == SUCCESS;
    return true;
  });
}

bool Parse(std::string& body, ScheduleCancelRequest* r) {
  return ForEachField(body, [r](std::string_view key, od::value v) {
    return key != "schedule_id" || String(v, &r->schedule_id);
  });
}

namespace {

// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view text, size_t at, size_t n, unsigned* out) {
  if (at + n > text.size()) return false;
  *out = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    *out = *out * 10 + static_cast<unsigned>(text[i] - '0');
  }
  return true;
}

}  // namespace

bool ParseRfc3339(std::string_view t, int64_t* ms) {
  unsigned year, month, day, hour, minute, second;
  if (!Digits(t, 0, 4, &year) || t.size() < 20 || t[4] != '-' || !Digits(t, 5, 2, &month) ||
      t[7] != '-' || !Digits(t, 8, 2, &day) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      !Digits(t, 11, 2, &hour) || t[13] != ':' || !Digits(t, 14, 2, &minute) || t[16] != ':' ||
      !Digits(t, 17, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  size_t at = 19;
  int64_t millis = 0;
  if (t[at] == '.') {
    size_t n = 0;
    for (++at; at < t.size() && t[at] >= '0' && t[at] <= '9'; ++at, ++n) {
      if (n < 3) millis = millis * 10 + (t[at] - '0');
    }
    if (n == 0) return false;
    for (; n < 3; ++n) millis *= 10;
  }
  int64_t offset_min = 0;
  if (at < t.size() && (t[at] == 'Z' || t[at] == 'z')) {
    ++at;
  } else if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
    unsigned oh, om;
    if (!Digits(t, at + 1, 2, &oh) || at + 3 >= t.size() || t[at + 3] != ':' ||
        !Digits(t, at + 4, 2, &om) || oh > 23 || om > 59) {
      return false;
    }
    offset_min = (t[at] == '-' ? -1 : 1) * static_cast<int64_t>(oh * 60 + om);
    at += 6;
  } else {
    return false;
  }
  if (at != t.size()) return false;
  const int64_t days = DaysFromCivil(year, month, day);
  const int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  *ms = seconds * 1000 + millis;
  return true;
}

bool ParseEmpty(std::string& body) {
  return ForEachField(body, [](std::string_view, od::value) { return true; });
}

// Commands are copied out: each runs through a handler that parses again, with the
// requests' parser, while the batch's document would still be open on this one.
bool Parse(std::string& body, BatchRequest* r) {
  thread_local od::parser parser;
  return ForEachField(parser, body, [r](std::string_view key, od::value v) {
    if (key == "parallel") return v.get_bool().get(r->parallel) == SUCCESS;
    if (key != "commands") return true;
    od::array array;
    if (v.get_array().get(array) != SUCCESS) return false;
    for (auto item : array) {
      od::object object;
      if (item.get_object().get(object) != SUCCESS) return false;
      Command command;
      size_t fields = 0;
      for (auto field : object) {
        std::string_view name;
        od::value params;
        std::string_view raw;
        if (field.unescaped_key().get(name) != SUCCESS || field.value().get(params) != SUCCESS ||
            proto::RawJson(params, &raw) != SUCCESS) {
          return false;
        }
        if (++fields == 1) {
          command.method = std::string(name);
          command.params = std::string(raw);
        }
      }
      // A command is one method: none or several is a bad command, answered in place.
      if (fields != 1) command.method.clear();
      r->commands.push_back(std::move(command));
    }
    return true;
  });
}

bool ParseLegacy(std::string& body, std::vector<Command>* commands) {
  thread_local od::parser parser;
  std::string line;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    line.assign(body, start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Command command;
    bool has_params = false;
    const bool ok = ForEachField(parser, line, [&](std::string_view key, od::value v) {
      if (key == "method") {
        // Centrifugo matches the name without regard to case; a method given by number is
        // not one hermod knows, and is answered 104.
        std::string_view name;
        if (String(v, &name)) {
          for (char ch : name) {
            command.method += (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
          }
        }
        return true;
      }
      if (key == "params") {
        std::string_view raw;
        has_params = true;
        if (proto::RawJson(v, &raw) != SUCCESS) return false;
        command.params = std::string(raw);
        return true;
      }
      if (key == "id") {
        uint64_t id;
        if (v.get_uint64().get(id) != SUCCESS || id > UINT32_MAX) return false;
        command.id = static_cast<uint32_t>(id);
      }
      return true;
    });
    if (!ok) return false;
    if (!has_params) command.params = "{}";
    commands->push_back(std::move(command));
  }
  return true;
}

}  // namespace hermod::api
