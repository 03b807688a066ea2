// The unidirectional and fragment wire forms of the session's output (pure functions, no
// loop): what proto/stream_transport.* and the unidirectional WebSocket frame with.
//
// The session writes bidirectional JSON (replies `{"id":N,...}`, pushes `{"push":{...}}`,
// pings `{}`), several newline-joined in one message when joined. A unidirectional client
// gets each value alone and bare, as Centrifugo sends them: a push's inner object
// (`{"channel":"c","pub":{...}}`), the connect reply as `{"connect":{...}}`, pings `{}`.
// Values are split by their JSON structure, never at a newline: publication data is raw
// JSON and may hold newlines as whitespace, which the NDJSON and SSE forms turn into spaces
// (a raw newline cannot be inside a valid JSON string, so the value means the same).
//
// Fragments (hermod's own, for htmx): a publication becomes the SSE event
//   event: <channel>\nid: <position>,<position>,...\ndata: <line>\n...\n\n
// whose data is the publication's data verbatim (a JSON string unquoted), one `data:` line
// per line of it. The id is the stream's position in every channel the request named, in
// the request's order, each `<epoch>:<offset>` (empty for a channel without history): the
// browser's reconnect sends the last one back as Last-Event-ID and every channel recovers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hermod::proto {

// Calls fn with each top-level JSON value of text (objects, arrays or scalars separated by
// whitespace); stops early when fn returns false. Text that is not JSON ends the walk at
// the first value that does not close.
void ForEachJsonValue(std::string_view text, const std::function<bool(std::string_view)>& fn);

// One value of the session's output in its unidirectional form.
struct UniValue {
  enum Kind : uint8_t { kPush, kConnect, kError, kPing, kOther } kind = kOther;
  std::string_view body;    // kPush: the inner object; kConnect: the connect result object
  uint32_t error_code = 0;  // kError
  uint32_t id = 0;          // kConnect, kError, kOther: the reply's command id
};
UniValue ToUni(std::string_view value);

// `data: <line>\n` per line of text (LF, CRLF or CR), then the blank line that ends the event.
void AppendSseData(std::string& out, std::string_view text);
// text with raw CR and LF as spaces, then '\n' (one JSON value per line).
void AppendJsonLine(std::string& out, std::string_view text);
// An HTTP/1.1 chunk: hex size, CRLF, payload, CRLF (an empty payload writes nothing).
void AppendHttpChunk(std::string& out, std::string_view payload);
inline constexpr std::string_view kHttpLastChunk = "0\r\n\r\n";

// A connect request as a unidirectional client sends it (a bare JSON object, or nothing)
// wrapped as the session's first command; false when it is not one JSON object.
bool WrapConnect(std::string_view request, std::string* command);

// Last-Event-ID as fragments write it: `<epoch>:<offset>` (epoch without ':', at most 64
// bytes; offset decimal, no sign, fits uint64).
bool ParseLastEventId(std::string_view text, std::string* epoch, uint64_t* offset);

// One channel's position in a fragments event id; known false: none (no history, or not
// yet subscribed).
struct StreamPosition {
  std::string epoch;
  uint64_t offset = 0;
  bool known = false;
};
// A Last-Event-ID longer than this is refused (the ids hermod writes stay under it: the
// app refuses more channels than fit, kMaxPositionBytes each).
inline constexpr size_t kMaxLastEventIdBytes = 8192;
inline constexpr size_t kMaxPositionBytes = 64 + 1 + 20 + 1;  // epoch, ':', offset, ','
// Last-Event-ID as positions of `channels` channels: one `<epoch>:<offset>` or empty per
// channel, comma-separated. A single position without a comma (the id of a one-channel
// stream) is every channel's (each recovers if the epoch is its own). False when malformed,
// longer than kMaxLastEventIdBytes or with another count of positions.
bool ParseEventPositions(std::string_view text, size_t channels, std::vector<StreamPosition>* out);
// The id of positions (the inverse).
void AppendEventPositions(std::string& out, const std::vector<StreamPosition>& positions);

// A channel the request did not name (a token's `channels` claim, a server-side subscribe,
// every channel of uni_sse) is in the id by name, after the positional ones:
// `<channel>=<epoch>:<offset>`, the channel with '%', ',', '=' and bytes outside 0x21-0x7e
// percent-escaped. Named positions are known ones only.
struct NamedPosition {
  std::string channel;
  StreamPosition position;
};
// As ParseEventPositions, and then any number of named positions (at most one per channel:
// a repeated channel is malformed). channels may be 0 (every position named).
bool ParseEventPositions(std::string_view text, size_t channels, std::vector<StreamPosition>* out,
                         std::vector<NamedPosition>* named);
// The id of positions and then the known named ones; a named one that would take the id past
// kMaxLastEventIdBytes is left out (that channel does not recover).
void AppendEventPositions(std::string& out, const std::vector<StreamPosition>& positions,
                          const std::vector<NamedPosition>& named);
// As WrapConnect, the connect recovering each channel of recover from its position: the
// request's `subs` entry of that channel, if any, gives way to {"recover":true,"epoch":...,
// "offset":...} (a Last-Event-ID is newer than the positions the request was made with).
bool WrapConnect(std::string_view request, const std::vector<NamedPosition>& recover,
                 std::string* command);

// A publication push's inner object ({"channel":...,"pub":{"data":...,"offset":N}}) as a
// fragment: false for any other push.
struct Fragment {
  std::string channel;
  std::string data;  // verbatim: a JSON string's unescaped text, any other value's JSON
  uint64_t offset = 0;
};
bool FragmentOf(std::string_view push, Fragment* out);
// A publication object ({"data":...,"offset":N}) of a subscribe reply: false when it has no data.
bool FragmentOfPublication(std::string_view publication, std::string_view channel, Fragment* out);
// The event, with `id: <epoch>:<offset>` only when epoch is not empty.
void AppendFragmentEvent(std::string& out, const Fragment& f, std::string_view epoch);
// The event with the id given (none when empty).
void AppendFragmentEventWithId(std::string& out, const Fragment& f, std::string_view id);
// The event a fragments stream sends when a channel's publications since the position it
// was given cannot be replayed (history gone, another epoch): `event: unrecovered`, `data:
// <channel>`, with the id given.
void AppendUnrecoveredEvent(std::string& out, std::string_view channel, std::string_view id);

// A form htmx's `ws-send` sent (a JSON object of the form's fields, and `HEADERS`): the
// channel its `channel` field names, and the publication's data, the object without
// `HEADERS`. False when it is not such an object.
bool FormPublication(std::string_view message, std::string* channel, std::string* data);

// A subscribe reply's result: its epoch, offset, whether it recovered, and the recovered
// publications (raw JSON objects).
struct SubscribeReplyView {
  uint32_t id = 0;
  std::string channel;  // ParseConnectSubs, a subscribe push: the subscription's channel
  std::string epoch;
  uint64_t offset = 0;
  bool recovered = false;
  std::vector<std::string> publications;
};
bool ParseSubscribeReply(std::string_view reply, SubscribeReplyView* out);
// A connect result's server-side subscriptions ({"subs":{"ch":{...},...}}): each channel's
// epoch, offset and what it recovered.
bool ParseConnectSubs(std::string_view connect_result, std::vector<SubscribeReplyView>* out);

}  // namespace hermod::proto
