// Core NATS's text protocol, the client side (nats_client.h speaks it on a loop): the parser of
// what a server sends, and the writers of what a client sends.
//
// Server to client: INFO {json}, MSG <subject> <sid> [reply] <#bytes> then the payload and
// CRLF, PING, PONG, +OK, -ERR '<text>'. The parser is fed whatever each read returned (a line
// or a payload may be cut anywhere) and calls its handler once per whole message; the views it
// hands over are valid for that call only. A line longer than max_line, a payload longer
// than max_payload, an unknown verb, a bad number or a payload not followed by CRLF is a
// protocol error: Feed returns false, error() says why, and the parser stays failed until
// Reset (the connection is closed and made again, as libnats does).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hermod::broker {

class NatsParser {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void OnInfo(std::string_view json) = 0;
    virtual void OnMsg(std::string_view subject, uint64_t sid, std::string_view reply,
                       std::string_view payload) = 0;
    virtual void OnPing() = 0;
    virtual void OnPong() = 0;
    virtual void OnOk() = 0;
    virtual void OnErr(std::string_view text) = 0;  // without the quotes
  };
  // A control line's bound: an INFO with a cluster's URLs in it fits; a peer that never ends
  // its line costs no more than this.
  static constexpr size_t kMaxLine = 64 * 1024;
  // Before the server has said its max_payload (INFO): a payload's bound.
  static constexpr uint64_t kDefaultMaxPayload = 1 << 20;

  explicit NatsParser(Handler& handler, size_t max_line = kMaxLine)
      : handler_(handler), max_line_(max_line) {}

  // The server's max_payload (its INFO): a MSG whose payload is longer is an error.
  void set_max_payload(uint64_t n) { max_payload_ = n; }
  uint64_t max_payload() const { return max_payload_; }
  // false: a protocol error (error()); nothing more is parsed until Reset.
  bool Feed(std::string_view bytes);
  void Reset();
  const std::string& error() const { return error_; }
  // Bytes held between reads (a cut line or payload).
  size_t buffered() const { return buffer_.size(); }

 private:
  // Parses whole messages at the start of data; returns the bytes consumed (a cut message
  // is left for the next read), or npos on an error.
  size_t Parse(std::string_view data);
  // One control line (without CRLF) at the start of data, followed by the rest of data.
  // Returns the bytes the message takes, 0 when it needs more than data has (need_ set),
  // or npos on an error.
  size_t Message(std::string_view line, std::string_view data);
  bool Fail(std::string why);

  Handler& handler_;
  const size_t max_line_;
  uint64_t max_payload_ = kDefaultMaxPayload;
  std::string buffer_;  // a cut message, from its first byte
  size_t need_ = 0;     // buffer_ holds a MSG whose whole is this long (0: unknown)
  std::string error_;
  bool failed_ = false;
};

// The INFO's max_payload (a positive integer), or 0 when it has none or it does not parse.
uint64_t InfoMaxPayload(std::string_view json);
// Whether the INFO's boolean key (tls_required, tls_available) is true.
bool InfoFlag(std::string_view json, std::string_view key);

struct ConnectOptions {
  std::string name;
  std::string user;
  std::string pass;
  std::string token;
};
// CONNECT with verbose, pedantic, headers and echo false (no_echo: the server never returns
// this client's own messages), then CRLF.
void AppendConnect(std::string& out, const ConnectOptions& options);
void AppendPub(std::string& out, std::string_view subject, std::string_view payload);
void AppendSub(std::string& out, std::string_view subject, uint64_t sid);
void AppendUnsub(std::string& out, uint64_t sid);

}  // namespace hermod::broker
