// permessage-deflate (RFC 7692). Negotiation picks the parameters; Inflater and Deflater wrap
// zlib raw deflate streams.
//
// Memory is the design constraint: a zlib stream costs tens of KiB, and most connections are
// idle. So streams exist only where context takeover requires them. With
// client_no_context_takeover every message is inflated from a fresh state, and one Inflater
// per loop serves all its connections; with server_no_context_takeover one Deflater per loop
// compresses a message once for every receiver (the fan-out path). Only a connection that
// negotiated context takeover owns a stream of its own.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hermod::ws {

// What the server is willing to do (from config).
struct DeflateConfig {
  bool enabled = false;
  bool server_no_context_takeover = false;  // insist on it even when the client does not ask
  bool client_no_context_takeover = false;  // insist on it even when the client does not ask
  int server_max_window_bits = 15;          // 8..15; the most the server will use
  int client_max_window_bits = 15;          // 8..15; asked of clients that allow it
  int level = 1;                            // zlib level for outgoing messages
  size_t min_size = 64;                     // messages shorter than this are sent uncompressed
};

// What was agreed with one client.
struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
};

struct DeflateNegotiation {
  DeflateParams params;
  std::string response;  // the Sec-WebSocket-Extensions value to send back
};

// Parses the client's Sec-WebSocket-Extensions header (all offers, RFC 7692 §5) and accepts
// the first permessage-deflate offer the config can satisfy; nullopt means "no deflate".
std::optional<DeflateNegotiation> NegotiateDeflate(std::string_view extensions_header,
                                                   const DeflateConfig& config);

enum class InflateStatus { kOk, kTooBig, kCorrupt };

class Inflater {
 public:
  explicit Inflater(int window_bits = 15);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Inflates one whole message (RFC 7692 §7.2.2: appends 00 00 ff ff), replacing out.
  // Stops with kTooBig as soon as the output would pass max_size: a zip bomb costs at most
  // max_size bytes. With reset, the stream starts from a fresh window (no context takeover).
  InflateStatus Inflate(std::string_view in, size_t max_size, bool reset, std::string& out);

 private:
  z_stream stream_{};
};

class Deflater {
 public:
  Deflater(int level, int window_bits);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Compresses one whole message and strips the trailing 00 00 ff ff (RFC 7692 §7.2.1),
  // replacing out. With reset, no context is carried into the next message.
  void Deflate(std::string_view in, bool reset, std::string& out);

 private:
  z_stream stream_{};
};

// Streams owned by the calling thread (one loop), for messages without context takeover:
// each message starts fresh, so one stream serves every connection on the loop. Deflaters
// are kept per window size (8 is served by 9, which zlib requires); the level is fixed by
// the first call on the thread.
Deflater& ThreadDeflater(int level, int window_bits);
Inflater& ThreadInflater();

}  // namespace hermod::ws
