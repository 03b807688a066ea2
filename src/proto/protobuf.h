// The client protocol's Protobuf encoding (Centrifugo's client.proto, as the `centrifuge`
// SDK's protobuf build speaks it): a binary WebSocket message holds varint-length-delimited
// Command messages one after another, and the server answers with varint-length-delimited
// Reply messages. A hand-written codec of the wire format (README.md says why), in two parts:
//
// - ProtobufCommandParser decodes Commands into the same Command struct the JSON parser
//   fills, so the session's state machine is one for both encodings.
// - ProtobufReplyEncoder turns what the session and the hub write (the JSON protocol's
//   replies and pushes) into Reply messages, field by field from a table of client.proto's
//   field numbers. `data` fields are raw bytes: JSON data arrives as its JSON text, and the
//   `b64data` a binary publication is kept as (below) arrives as its bytes.
//
// Binary data: a Protobuf client's `data` that is not JSON (or holds a line break, which the
// JSON protocol's framing cannot carry) is published as base64 in the publication object's
// `b64data` field. In a Command it is handed on as kBinaryDataMark followed by the base64
// text (a byte no JSON text starts with); PublicationJson writes it as `"b64data":"..."`.
// Only `publish` takes binary data; other commands need JSON data (a connect, RPC or send
// with binary data is a bad request).
//
// Malformed input (truncated varints, wrong wire types, lengths past the message, groups)
// is kInvalidCommand, never a crash; a varint is at most 10 bytes, a length never trusted
// past what the message holds.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/command.h"

namespace hermod::proto {

inline constexpr char kBinaryDataMark = '\0';
inline bool IsBinaryData(std::string_view data) {
  return !data.empty() && data.front() == kBinaryDataMark;
}

void AppendBase64(std::string& out, std::string_view bytes);
// Standard base64, padding optional; false on anything else.
bool DecodeBase64Into(std::string_view text, std::string& out);

// Protobuf varints and tags (little-endian base-128).
void AppendVarint(std::string& out, uint64_t value);

class ProtobufCommandParser {
 public:
  // Starts on a message (copied).
  void Reset(std::string_view message);
  // kOk: *command holds the next command (its views valid until the next call); kEnd: done.
  ParseStatus Next(Command* command);
  // As CommandParser::Release.
  size_t Release(size_t keep_bytes);
  size_t held_bytes() const { return buffer_.capacity(); }

 private:
  std::string buffer_;
  size_t position_ = 0;
  std::string binary_;  // kBinaryDataMark + base64 of the current command's binary data
};

class ProtobufReplyEncoder {
 public:
  // Appends one length-delimited Reply per line of json (the JSON protocol's replies and
  // pushes, newline-separated; `{}` is a ping, an empty Reply). False when a line is not a
  // JSON object (never for what the server writes); out then holds the lines before it.
  bool Append(std::string_view json, std::string& out);
  size_t Release(size_t keep_bytes);

 private:
  simdjson::ondemand::parser parser_;
  std::string padded_;
  std::string scratch_;
};

}  // namespace hermod::proto
