#include "auth/token_signer.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <simdjson.h>

#include <cstdlib>
#include <memory>

#include "auth/jwt_ptr.h"

namespace hermod::auth {

TokenSigner TokenSigner::Hmac(std::string secret) {
  TokenSigner signer;
  signer.alg_ = JWT_ALG_HS256;
  signer.key_ = std::move(secret);
  return signer;
}

bool TokenSigner::FromPrivateKeyPem(const std::string& pem, TokenSigner* signer,
                                    std::string* error) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) {
    *error = "the key file holds no PEM private key (RSA or ECDSA)";
    return false;
  }
  const int type = EVP_PKEY_get_base_id(key);
  const int bits = EVP_PKEY_get_bits(key);
  EVP_PKEY_free(key);
  if (type == EVP_PKEY_RSA) {
    signer->alg_ = JWT_ALG_RS256;
  } else if (type == EVP_PKEY_EC && bits == 256) {
    signer->alg_ = JWT_ALG_ES256;
  } else if (type == EVP_PKEY_EC && bits == 384) {
    signer->alg_ = JWT_ALG_ES384;
  } else if (type == EVP_PKEY_EC && bits == 521) {
    signer->alg_ = JWT_ALG_ES512;
  } else {
    *error = "the private key is neither RSA nor ECDSA on P-256, P-384 or P-521";
    return false;
  }
  signer->key_ = pem;
  return true;
}

bool TokenSigner::FromConfig(const config::Config& config, TokenSigner* signer,
                             std::string* error) {
  if (!config.token_hmac_secret_key.empty()) {
    *signer = Hmac(config.token_hmac_secret_key);
    return true;
  }
  if (!config.token_rsa_public_key.empty() || !config.token_ecdsa_public_key.empty()) {
    *error =
        "the config has only a public key (token_rsa_public_key or token_ecdsa_public_key), "
        "which verifies but cannot sign: pass the matching private key with --key FILE";
  } else {
    *error = "no token key configured: set token_hmac_secret_key, or pass --key FILE";
  }
  return false;
}

const char* TokenSigner::algorithm() const { return jwt_alg_str(static_cast<jwt_alg_t>(alg_)); }

bool TokenSigner::Sign(const TokenRequest& request, std::string* token, std::string* error) const {
  std::string claims = "{\"sub\":";
  config::AppendJsonString(claims, request.user);
  claims += ",\"iat\":" + std::to_string(request.now_s);
  if (request.ttl_s > 0) claims += ",\"exp\":" + std::to_string(request.now_s + request.ttl_s);
  if (!request.channel.empty()) {
    claims += ",\"channel\":";
    config::AppendJsonString(claims, request.channel);
  }
  if (!request.audience.empty()) {
    claims += ",\"aud\":";
    config::AppendJsonString(claims, request.audience);
  }
  if (!request.issuer.empty()) {
    claims += ",\"iss\":";
    config::AppendJsonString(claims, request.issuer);
  }
  if (!request.info.empty()) {
    simdjson::dom::parser parser;
    simdjson::dom::element info;
    if (parser.parse(request.info).get(info) != simdjson::SUCCESS) {
      *error = "info is not valid JSON";
      return false;
    }
    claims += ",\"info\":" + simdjson::minify(info);
  }
  claims += '}';

  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) {
    *error = "libjwt: out of memory";
    return false;
  }
  JwtPtr jwt(raw);
  if (jwt_add_grants_json(jwt.get(), claims.c_str()) != 0) {
    *error = "libjwt refused the claims";
    return false;
  }
  if (jwt_set_alg(jwt.get(), static_cast<jwt_alg_t>(alg_),
                  reinterpret_cast<const unsigned char*>(key_.data()),
                  static_cast<int>(key_.size())) != 0) {
    *error = std::string("libjwt refused the key for ") + algorithm();
    return false;
  }
  char* text = jwt_encode_str(jwt.get());
  if (text == nullptr) {
    *error = std::string("libjwt could not sign with ") + algorithm();
    return false;
  }
  *token = text;
  std::free(text);
  return true;
}

}  // namespace hermod::auth
