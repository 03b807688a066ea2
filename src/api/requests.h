// Each server API method's request, as a struct, and its parser. A body is one JSON object;
// a method reads the fields it knows and, as Centrifugo's decoder does, ignores the others.
// A field of the wrong type (a number for `channel`, a `b64data` that is not base64, tags
// whose values are not strings) makes the body no request at all: the caller answers 400
// for a lone call and error 107 inside a batch.
//
// Views in a request point into the body (padded in place by Parse) or into this thread's
// parser: a request lives until the next Parse on the same thread, which is all a handler
// needs (it parses, acts and answers before another request is read).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/history_stream.h"

namespace hermod::api {

// publish's and broadcast's publication.
struct Publication {
  std::string_view data;     // raw JSON text, as it came (or compacted_data)
  std::string decoded_data;  // b64data, decoded
  // data without its line breaks: a push is one line of the JSON protocol's frames, so JSON
  // whitespace with a newline in it would split a publication in two at every subscriber.
  std::string compacted_data;
  bool has_b64data = false;
  std::string tags;  // re-encoded JSON object of strings; empty when absent or {}
  std::string_view idempotency_key;
  std::string_view priority;  // low|normal|high|critical; empty: the namespace's default
  bool skip_history = false;
  bool delta = false;  // delta subscribers get it as a fossil delta (Centrifugo's)
  // Scheduled delivery: `delay` ("90s") or `deliver_at` (RFC 3339 text or Unix ms). A value
  // that is no such thing names its field in bad_field (answered 107, not 400).
  bool has_delay = false;
  uint64_t delay_ms = 0;
  bool has_deliver_at = false;
  int64_t deliver_at_ms = 0;
  std::string_view bad_field;
  bool scheduled() const { return has_delay || has_deliver_at || !bad_field.empty(); }
};

struct PublishRequest {
  std::string_view channel;
  Publication publication;
};

struct BroadcastRequest {
  std::vector<std::string_view> channels;
  Publication publication;
};

// The connections a per-client method acts on: the user's, or one client's (`session` is a
// client id here).
struct ClientSelector {
  std::string_view user;
  std::string_view client;
  std::string_view session;
};

// subscribe and unsubscribe.
struct ChannelForClientsRequest {
  ClientSelector clients;
  std::string_view channel;
};

struct DisconnectRequest {
  ClientSelector clients;
  // 0: absent. A value that is no unsigned integer is kept as UINT64_MAX, so that the
  // answer is 107 naming the field rather than a 400 for the whole body.
  uint64_t code = 0;
  std::string_view reason;
};

struct RefreshRequest {
  ClientSelector clients;
  bool expired = false;
  int64_t expire_at = 0;
};

// presence, presence_stats, history_remove.
struct ChannelRequest {
  std::string_view channel;
};

struct HistoryRequest {
  std::string_view channel;
  bool has_since = false;
  core::StreamPosition since;
  int64_t limit = 0;
  bool reverse = false;
};

// scheduled: pending scheduled publications, optionally of one channel, a page at a time.
struct ScheduledRequest {
  std::string_view channel;
  std::string_view cursor;
  int64_t limit = 0;  // 0: 100
};

// scheduled_cancel.
struct ScheduleCancelRequest {
  std::string_view schedule_id;
};

struct ChannelsRequest {
  std::string_view pattern;  // empty: every channel
};

// One command of a batch (`{"<method>": {params}}`) or of the legacy `/api` route
// (`{"method": "<method>", "params": {...}, "id": N}`), copied out of the body.
struct Command {
  std::string method;  // empty: not one method (a batch command of zero or two keys)
  std::string params;  // raw JSON text
  uint32_t id = 0;     // the legacy route's; 0: absent
};

struct BatchRequest {
  std::vector<Command> commands;
  bool parallel = false;
};

// Each returns false when body is no such request. body is padded in place.
bool Parse(std::string& body, PublishRequest* request);
bool Parse(std::string& body, BroadcastRequest* request);
bool Parse(std::string& body, ChannelForClientsRequest* request);
bool Parse(std::string& body, DisconnectRequest* request);
bool Parse(std::string& body, RefreshRequest* request);
bool Parse(std::string& body, ChannelRequest* request);
bool Parse(std::string& body, HistoryRequest* request);
bool Parse(std::string& body, ChannelsRequest* request);
bool Parse(std::string& body, ScheduledRequest* request);
bool Parse(std::string& body, ScheduleCancelRequest* request);
// RFC 3339 ("2026-12-06T17:00:00Z", "...00.250+01:00") to Unix ms; false if it is not.
bool ParseRfc3339(std::string_view text, int64_t* ms);
// info has no fields, but its body must still be a JSON object.
bool ParseEmpty(std::string& body);
// A batch body: `commands` (objects, each copied with its first key as the method) and
// `parallel` (a bool).
bool Parse(std::string& body, BatchRequest* request);
// The legacy `/api` body: one command object per line (blank lines skipped); `method` is
// matched without regard to case. False: a line is no command object.
bool ParseLegacy(std::string& body, std::vector<Command>* commands);

// Standard base64 (as Go's StdEncoding, which Centrifugo uses), padding optional.
bool DecodeBase64(std::string_view in, std::string* out);

}  // namespace hermod::api
