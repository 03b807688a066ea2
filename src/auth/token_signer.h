// Signing connection and subscription JWTs with Centrifugo's claims: `hermod gentoken`, and
// tests that need tokens. The server itself never signs; it only verifies (token_verifier.h).
//
// The key decides the algorithm: an HMAC secret signs HS256; a PEM private key signs RS256
// (RSA) or ES256/ES384/ES512 (ECDSA on P-256/P-384/P-521), the algorithms TokenVerifier
// accepts with the matching public key. A public key cannot sign, so a config with only
// token_rsa_public_key or token_ecdsa_public_key needs the private key passed apart.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"

namespace hermod::auth {

struct TokenRequest {
  std::string user;      // sub; may be empty (anonymous)
  int64_t now_s = 0;     // iat, and the base of exp
  int64_t ttl_s = 3600;  // exp = now_s + ttl_s; 0: no exp
  std::string channel;   // set: a subscription token for this channel
  std::string info;      // raw JSON for the info claim; empty: none
  std::string audience;  // aud; empty: none
  std::string issuer;    // iss; empty: none
};

class TokenSigner {
 public:
  // HS256 with the secret.
  static TokenSigner Hmac(std::string secret);
  // RS256 or ES* by the key's type; false with *error when the PEM holds no private key.
  static bool FromPrivateKeyPem(const std::string& pem, TokenSigner* signer, std::string* error);
  // The configured HMAC secret; false with *error saying what is missing (only public keys
  // configured: signing needs the private key, `--key FILE`).
  static bool FromConfig(const config::Config& config, TokenSigner* signer, std::string* error);

  // False with *error when the info is not JSON or libjwt refuses.
  bool Sign(const TokenRequest& request, std::string* token, std::string* error) const;
  const char* algorithm() const;

 private:
  int alg_ = 0;  // jwt_alg_t
  std::string key_;
};

}  // namespace hermod::auth
