// The server side of the opening handshake (RFC 6455 §4.2), independent of how the HTTP
// request was parsed: the caller fills an UpgradeRequest with views of the header values and
// receives either the complete 101 response or the status and headers to refuse with.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/deflate.h"

namespace hermod::ws {

struct UpgradeRequest {
  std::string_view method;  // "GET"
  int http_version = 11;    // 11 for HTTP/1.1
  std::string_view host;
  std::string_view upgrade;     // Upgrade header (token list)
  std::string_view connection;  // Connection header (token list)
  std::string_view key;         // Sec-WebSocket-Key
  std::string_view version;     // Sec-WebSocket-Version
  std::string_view origin;      // Origin (may be empty)
  std::string_view protocols;   // Sec-WebSocket-Protocol (comma-separated, may be empty)
  std::string_view extensions;  // Sec-WebSocket-Extensions (may be empty)
};

struct HandshakePolicy {
  // Allowed Origin values ("*" allows all; an empty list allows requests without Origin and
  // same-host origins only). Compared case-insensitively, exactly (scheme://host[:port]).
  std::vector<std::string> allowed_origins;
  std::vector<std::string> subprotocols;  // server preference order
  DeflateConfig deflate;
};

struct HandshakeResult {
  int status = 101;      // 101, or 400 / 403 / 405 / 426 to refuse
  std::string reason;    // human-readable, for the body of a refusal and the log
  std::string response;  // complete HTTP response (head only for 101; with body otherwise)
  std::string subprotocol;
  bool deflate = false;
  DeflateParams deflate_params;
};

HandshakeResult AcceptUpgrade(const UpgradeRequest& request, const HandshakePolicy& policy);

// base64(SHA-1(key + GUID)), RFC 6455 §4.2.2 step 5.
std::string AcceptKey(std::string_view key);

// The allowed_origins rule of the upgrade (HandshakePolicy::allowed_origins): true for no
// Origin, a listed one (or "*"), or, with an empty list, an origin of the request's host.
// The streamed transports apply it too.
bool OriginAllowed(std::string_view origin, std::string_view host,
                   const std::vector<std::string>& allowed);

// True when a comma-separated header value contains token (case-insensitive).
bool HeaderHasToken(std::string_view header_value, std::string_view token);

}  // namespace hermod::ws
