// Connection and subscription JWTs (Centrifugo's claims), verified with libjwt.
//
// The key is chosen by the token's algorithm family (HS* the HMAC secret, RS* the RSA public
// key, ES* the ECDSA public key) and the family is checked again after verification: a
// token can never make us verify an HMAC with a public key as the secret (algorithm
// confusion), and `none` is always refused. Then the claims: `exp` (expired is its own
// status, so the client refreshes), `aud` and `iss` when configured, `sub`, `info` or
// `b64info`, `channels` (connection) and `channel` (subscription).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace hermod::auth {

enum class TokenStatus : uint8_t { kOk, kInvalid, kExpired };

struct TokenClaims {
  std::string user;        // sub
  int64_t expires_at = 0;  // exp, seconds since the epoch; 0: never
  std::string info;        // ClientInfo's conn_info / chan_info: raw JSON, empty when absent
  std::vector<std::string> channels;  // connection: server-side subscriptions
  std::string channel;                // subscription: the channel it grants
};

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
