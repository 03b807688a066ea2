// Connection and subscription JWTs (Centrifugo's claims), verified with libjwt.
//
// The key is chosen by the token's algorithm family (HS* the HMAC secret, RS* the RSA public
// key, ES* the ECDSA public key) and the family is checked again after verification: a
// token can never make us verify an HMAC with a public key as the secret (algorithm
// confusion), and `none` is always refused. Then the claims: `exp` (expired is its own
// status, so the client refreshes), `aud` and `iss` when configured, `sub`, `info` or
// `b64info`, `channels` and `subs` (connection) and `channel` (subscription).
//
// `exp` says until when the token is valid; `expire_at` (Centrifugo's), when present, says
// until when the connection or subscription it opens lives, decoupled from the token: 0 means
// it never expires. An `expire_at` already past makes the token expired, as `exp` would.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace hermod::auth {

enum class TokenStatus : uint8_t { kOk, kInvalid, kExpired };

// A BoolValue of Centrifugo's `override` object: set says whether the token gave it.
struct OverrideFlag {
  bool set = false;
  bool value = false;
};

// One entry of a connection token's `subs` claim: a server-side subscription with options.
struct TokenSubscription {
  std::string channel;
  std::string info;  // chan_info (raw JSON, `info` or decoded `b64info`); empty when absent
  std::string data;  // raw JSON sent with the subscription's result; empty when absent
  OverrideFlag presence;
  OverrideFlag join_leave;
  OverrideFlag force_push_join_leave;
  OverrideFlag force_recovery;
};

struct TokenClaims {
  std::string user;  // sub
  // When the connection (or subscription) expires, seconds since the epoch; 0: never.
  // `expire_at` when the token has it, else `exp`.
  int64_t expires_at = 0;
  std::string info;  // ClientInfo's conn_info / chan_info: raw JSON, empty when absent
  // connection: `meta`, a JSON object the server keeps and never shows other clients (the
  // proxies send it with proxy_include_connection_meta); empty when absent.
  std::string meta;
  std::vector<std::string> channels;    // connection: server-side subscriptions
  std::vector<TokenSubscription> subs;  // connection: the same, with per-channel options
  std::string channel;                  // subscription: the channel it grants
};

// The claims' shapes, shared with the connect proxy's result (proxy/), which has the same
// fields. Standard or URL-safe base64, padded or not.
bool DecodeBase64(std::string_view in, std::string* out);
// `info` as raw JSON, or `b64info` decoded (it must be JSON); absent: *out untouched.
bool ReadInfo(simdjson::dom::object object, std::string* out);
// `subs`: {"channel": {"info", "b64info", "data", "b64data", "override": {...}}}.
bool ReadSubs(simdjson::dom::element subs, std::vector<TokenSubscription>* out);
// `meta` as a JSON object (minified); absent or null: *out untouched; false when not an object.
bool ReadMeta(simdjson::dom::object object, std::string* out);

struct TokenKeys {
  std::string hmac_secret;
  std::string rsa_public_pem;
  std::string ecdsa_public_pem;
  std::string audience;
  std::string issuer;

  static TokenKeys FromConfig(const config::Config& config);
  bool any() const {
    return !hmac_secret.empty() || !rsa_public_pem.empty() || !ecdsa_public_pem.empty();
  }
};

class TokenVerifier {
 public:
  explicit TokenVerifier(TokenKeys keys) : keys_(std::move(keys)) {}

  // now_s: wall clock, seconds since the epoch. When reason is given, a status other than
  // kOk comes with why, in words (`hermod checktoken`); the server passes none.
  TokenStatus Verify(std::string_view token, int64_t now_s, TokenClaims* claims,
                     std::string* reason = nullptr) const;
  bool enabled() const { return keys_.any(); }

 private:
  TokenKeys keys_;
};

}  // namespace hermod::auth
