// The server's opening handshake (RFC 6455 §4.2). Checks run in the order that gives the
// client the most useful refusal:
//
//   405 + Allow: GET      method is not GET (§4.1 item 2)
//   400                   HTTP older than 1.1, or no Host (§4.1 items 2 and 4)
//   426 + Upgrade         no "websocket" token in Upgrade: a plain request to a WebSocket
//                         endpoint; RFC 7231 §6.5.15 names the protocol to switch to
//   400                   no "upgrade" token in Connection (§4.2.1 item 4)
//   426 + Sec-WebSocket-Version: 13   another version (§4.2.2 item 4, §4.4); checked before
//                         the key because older drafts used other key formats
//   400                   Sec-WebSocket-Key not base64 of 16 bytes (§4.2.1 item 5)
//   403                   Origin not allowed (§4.2.2 item 4, §10.2)
//
// Origin is a browser's statement, so it is checked only when present: a request without one
// comes from a non-browser client, which could send any Origin it liked anyway.
#include "ws/handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <memory>

#include "ws/header_syntax.h"

namespace hermod::ws {

namespace {

// RFC 6455 §1.3.
constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// SHA-1 of data into digest, with the digest fetched from OpenSSL's provider once and a
// context per thread kept: OpenSSL 3's one-shot SHA1() fetches the digest on every call (a
// locked, case-insensitive name lookup through the provider store) and makes and frees a
// context; under churn that, not the digest, was most of a WebSocket upgrade's CPU
// (docs/benchmarks.md). Both live as long as the process (or the thread).
void Sha1(std::string_view data, unsigned char (&digest)[SHA_DIGEST_LENGTH]) {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    return fetched != nullptr ? fetched : EVP_sha1();
  }();
  thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(
      EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned int size = 0;
  if (context == nullptr || EVP_DigestInit_ex2(context.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), digest, &size) != 1 || size != SHA_DIGEST_LENGTH) {
    SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  }
}

// Calls f on each trimmed, non-empty element of a comma-separated list until f returns true.
template <typename F>
bool AnyListElement(std::string_view list, F f) {
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = TrimOws(list.substr(0, comma));
    if (!item.empty() && f(item)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// §4.1 item 7: base64 of 16 bytes is 22 characters and "==".
bool IsValidKey(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, IsBase64Char);
}

// The authority of an origin ("scheme://host[:port]" -> "host[:port]").
std::string_view OriginAuthority(std::string_view origin) {
  const size_t scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) return {};
  return origin.substr(scheme_end + 3);
}

bool OriginAllowedIn(std::string_view origin, std::string_view host,
                     const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  if (allowed.empty()) {
    const std::string_view authority = OriginAuthority(origin);
    return !authority.empty() && EqualsIgnoreCase(authority, host);
  }
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& a) { return a == "*" || EqualsIgnoreCase(a, origin); });
}

const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 405:
      return "Method Not Allowed";
    case 426:
      return "Upgrade Required";
    default:
      return "Error";
  }
}

HandshakeResult Refuse(int status, std::string reason, std::string_view extra_headers = {}) {
  HandshakeResult result;
  result.status = status;
  result.reason = std::move(reason);
  const std::string body = result.reason + "\n";
  result.response.reserve(160 + extra_headers.size() + body.size());
  result.response += "HTTP/1.1 ";
  result.response += std::to_string(status);
  result.response += ' ';
  result.response += StatusText(status);
  result.response += "\r\n";
  result.response += extra_headers;
  result.response += "Content-Type: text/plain\r\nContent-Length: ";
  result.response += std::to_string(body.size());
  result.response += "\r\n\r\n";
  result.response += body;
  return result;
}

}  // namespace

bool HeaderHasToken(std::string_view header_value, std::string_view token) {
  return AnyListElement(header_value,
                        [&](std::string_view item) { return EqualsIgnoreCase(item, token); });
}

std::string AcceptKey(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kAcceptGuid.size());
  input.append(key).append(kAcceptGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  Sha1(input, digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(n));
}

HandshakeResult AcceptUpgrade(const UpgradeRequest& request, const HandshakePolicy& policy) {
  // Every refusal closes the connection: the client expected to switch protocols on it.
  constexpr std::string_view kClose = "Connection: close\r\n";
  if (request.method != "GET") {
    return Refuse(405, "WebSocket handshake must use GET", "Allow: GET\r\nConnection: close\r\n");
  }
  if (request.http_version < 11) return Refuse(400, "WebSocket needs HTTP/1.1", kClose);
  if (TrimOws(request.host).empty()) return Refuse(400, "missing Host header", kClose);
  if (!HeaderHasToken(request.upgrade, "websocket")) {
    // RFC 7230 §6.7: a sender of Upgrade lists it in Connection too.
    return Refuse(426, "WebSocket endpoint: Upgrade: websocket required",
                  "Upgrade: websocket\r\nConnection: close, Upgrade\r\n");
  }
  if (!HeaderHasToken(request.connection, "upgrade")) {
    return Refuse(400, "Connection header lacks the upgrade token", kClose);
  }
  if (TrimOws(request.version) != "13") {
    return Refuse(
        426, "unsupported Sec-WebSocket-Version",
        "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: close, Upgrade\r\n");
  }
  const std::string_view key = TrimOws(request.key);
  if (!IsValidKey(key)) return Refuse(400, "invalid Sec-WebSocket-Key", kClose);
  const std::string_view origin = TrimOws(request.origin);
  if (!OriginAllowedIn(origin, TrimOws(request.host), policy.allowed_origins)) {
    return Refuse(403, "origin not allowed", kClose);
  }

  HandshakeResult result;
  result.status = 101;
  // §4.2.2 item 5, /subprotocol/: the server's preference wins among those offered.
  for (const std::string& p : policy.subprotocols) {
    if (AnyListElement(request.protocols, [&](std::string_view item) { return item == p; })) {
      result.subprotocol = p;
      break;
    }
  }
  std::optional<DeflateNegotiation> deflate;
  if (policy.deflate.enabled && !request.extensions.empty()) {
    deflate = NegotiateDeflate(request.extensions, policy.deflate);
  }
  result.response.reserve(256);
  result.response +=
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  result.response += AcceptKey(key);
  result.response += "\r\n";
  if (!result.subprotocol.empty()) {
    result.response += "Sec-WebSocket-Protocol: ";
    result.response += result.subprotocol;
    result.response += "\r\n";
  }
  if (deflate) {
    result.deflate = true;
    result.deflate_params = deflate->params;
    result.response += "Sec-WebSocket-Extensions: ";
    result.response += deflate->response;
    result.response += "\r\n";
  }
  result.response += "\r\n";
  return result;
}

bool OriginAllowed(std::string_view origin, std::string_view host,
                   const std::vector<std::string>& allowed) {
  return OriginAllowedIn(origin, host, allowed);
}

}  // namespace hermod::ws
