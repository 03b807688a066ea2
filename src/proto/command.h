// Commands from a client (Centrifugo client protocol v2, JSON): a WebSocket text message
// holds one or more JSON objects separated by '\n', each `{"id":N,"<method>":{request}}`,
// or `{}` (the client's pong). Parsed with simdjson On Demand from one padded copy of the
// message, one command at a time: every string_view in a Command (channel, token, and
// `data` as raw JSON text, passed on verbatim) is valid until the next call to Next.
//
// Unknown fields are ignored (newer SDKs send more); a malformed line fails the whole
// message, and the caller disconnects with 3501 bad request.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hermod::proto {

enum class Method : uint8_t {
  kPong,  // `{}`: no id, no method
  kConnect,
  kSubscribe,
  kUnsubscribe,
  kPublish,
  kPresence,
  kPresenceStats,
  kHistory,
  kSend,
  kRpc,
  kRefresh,
  kSubRefresh,
  kUnknown,  // a method this server does not know: error 104 method not found
};

// Method's names in its order: the `method` label of the client command metrics.
inline constexpr std::array<std::string_view, static_cast<size_t>(Method::kUnknown) + 1>
    kMethodNames = {"pong",     "connect",        "subscribe", "unsubscribe", "publish",
                    "presence", "presence_stats", "history",   "send",        "rpc",
                    "refresh",  "sub_refresh",    "unknown"};

// connect.subs: where the client is in a server-side subscription's stream.
struct ConnectSub {
  std::string_view channel;
  bool recover = false;
  uint64_t offset = 0;
  std::string_view epoch;
};

struct Command {
  uint32_t id = 0;
  Method method = Method::kPong;
  std::string_view channel;
  std::string_view token;
  std::string_view data;        // raw JSON of `data`, empty when absent
  std::string_view rpc_method;  // rpc: `method`
  std::string_view epoch;
  uint64_t offset = 0;
  bool recover = false;
  bool recoverable = false;
  bool positioned = false;
  bool join_leave = false;
  std::string_view delta;  // subscribe: the delta type asked for ("fossil"), empty: none
  // history
  bool has_since = false;
  uint64_t since_offset = 0;
  std::string_view since_epoch;
  int64_t limit = 0;
  bool reverse = false;
  std::vector<ConnectSub> subs;  // connect
};

// The text of any JSON value as it came (a view into the parsed buffer), without the
// whitespace that follows it: how publication data passes through unchanged.
simdjson::error_code RawJson(simdjson::ondemand::value v, std::string_view* out);

enum class ParseStatus : uint8_t { kOk, kEnd, kInvalidJson, kInvalidCommand };

class CommandParser {
 public:
  // Starts on a message (copied).
  void Reset(std::string_view message);
  // kOk: *command holds the next command; kEnd: the message is done.
  ParseStatus Next(Command* command);
  // After a message: frees the message copy and the parser's index when that message grew
  // them past keep_bytes (a 1 MiB message leaves no 1 MiB copy and ~5 MiB of index behind).
  // Returns the copy's capacity before.
  size_t Release(size_t keep_bytes);
  size_t held_bytes() const { return buffer_.capacity(); }

 private:
  ParseStatus ParseLine(size_t begin, size_t end, Command* command);
  simdjson::ondemand::parser parser_;
  std::vector<char> buffer_;  // the padded copy the views point into
  size_t size_ = 0;
  size_t position_ = 0;
};

}  // namespace hermod::proto
