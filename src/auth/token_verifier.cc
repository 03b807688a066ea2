#include "auth/token_verifier.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <cstdlib>
#include <memory>

#include "auth/jwt_ptr.h"

namespace hermod::auth {

namespace {

using simdjson::SUCCESS;

enum class Family { kNone, kHmac, kRsa, kEcdsa };

Family FamilyOf(jwt_alg_t alg) {
  switch (alg) {
    case JWT_ALG_HS256:
    case JWT_ALG_HS384:
    case JWT_ALG_HS512:
      return Family::kHmac;
    case JWT_ALG_RS256:
    case JWT_ALG_RS384:
    case JWT_ALG_RS512:
      return Family::kRsa;
    case JWT_ALG_ES256:
    case JWT_ALG_ES384:
    case JWT_ALG_ES512:
      return Family::kEcdsa;
    default:
      return Family::kNone;
  }
}

}  // namespace

// Standard or URL-safe base64, padded or not (b64info).
bool DecodeBase64(std::string_view in, std::string* out) {
  std::string s(in);
  for (char& ch : s) {
    if (ch == '-') ch = '+';
    if (ch == '_') ch = '/';
  }
  while (s.size() % 4 != 0) s += '=';
  out->resize(s.size() / 4 * 3);
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return false;
  size_t padding = 0;
  for (size_t i = s.size(); i > 0 && s[i - 1] == '='; --i) ++padding;
  out->resize(static_cast<size_t>(n) - std::min<size_t>(padding, 2));
  return true;
}

// info: raw JSON; b64info: base64 of JSON (this server speaks the JSON protocol only).
bool ReadInfo(simdjson::dom::object object, std::string* out) {
  simdjson::dom::element value;
  if (object["info"].get(value) == SUCCESS) {
    *out = simdjson::minify(value);
    return true;
  }
  if (object["b64info"].get(value) != SUCCESS) return true;
  std::string_view text;
  if (value.get_string().get(text) != SUCCESS) return false;
  std::string decoded;
  if (!DecodeBase64(text, &decoded)) return false;
  simdjson::dom::parser parser;  // not the caller's: its document must outlive this
  simdjson::dom::element info;
  if (parser.parse(decoded).get(info) != SUCCESS) return false;
  *out = simdjson::minify(info);
  return true;
}

namespace {

bool ReadOverride(simdjson::dom::object object, std::string_view key, OverrideFlag* flag) {
  simdjson::dom::element value;
  if (object[key].get(value) != SUCCESS) return true;
  simdjson::dom::object wrapper;  // a BoolValue: {"value": bool}
  if (value.get_object().get(wrapper) != SUCCESS) return false;
  flag->set = true;
  simdjson::dom::element inner;
  if (wrapper["value"].get(inner) != SUCCESS) return true;  // absent: false, as protobuf's
  return inner.get_bool().get(flag->value) == SUCCESS;
}

}  // namespace

bool ReadMeta(simdjson::dom::object object, std::string* out) {
  simdjson::dom::element value;
  if (object["meta"].get(value) != SUCCESS || value.is_null()) return true;
  if (!value.is_object()) return false;
  *out = simdjson::minify(value);
  return true;
}

// `subs`: {"channel": {"info", "b64info", "data", "b64data", "override": {...}}}.
bool ReadSubs(simdjson::dom::element subs, std::vector<TokenSubscription>* out) {
  simdjson::dom::object map;
  if (subs.get_object().get(map) != SUCCESS) return false;
  for (auto [channel, options_value] : map) {
    TokenSubscription sub;
    sub.channel = std::string(channel);
    if (sub.channel.empty()) return false;
    simdjson::dom::object options;
    if (options_value.get_object().get(options) != SUCCESS) return false;
    if (!ReadInfo(options, &sub.info)) return false;
    simdjson::dom::element value;
    if (options["data"].get(value) == SUCCESS) {
      sub.data = simdjson::minify(value);
    } else if (options["b64data"].get(value) == SUCCESS) {
      std::string_view text;
      std::string decoded;
      simdjson::dom::parser parser;
      simdjson::dom::element data;
      if (value.get_string().get(text) != SUCCESS || !DecodeBase64(text, &decoded) ||
          parser.parse(decoded).get(data) != SUCCESS) {
        return false;
      }
      sub.data = simdjson::minify(data);
    }
    if (options["override"].get(value) == SUCCESS) {
      simdjson::dom::object flags;
      if (value.get_object().get(flags) != SUCCESS ||
          !ReadOverride(flags, "presence", &sub.presence) ||
          !ReadOverride(flags, "join_leave", &sub.join_leave) ||
          !ReadOverride(flags, "force_push_join_leave", &sub.force_push_join_leave) ||
          !ReadOverride(flags, "force_recovery", &sub.force_recovery)) {
        return false;
      }
    }
    out->push_back(std::move(sub));
  }
  return true;
}

namespace {

bool AudienceMatches(simdjson::dom::element aud, std::string_view want) {
  std::string_view one;
  if (aud.get_string().get(one) == SUCCESS) return one == want;
  simdjson::dom::array list;
  if (aud.get_array().get(list) != SUCCESS) return false;
  for (simdjson::dom::element item : list) {
    if (item.get_string().get(one) == SUCCESS && one == want) return true;
  }
  return false;
}

}  // namespace

TokenKeys TokenKeys::FromConfig(const config::Config& config) {
  TokenKeys keys;
  keys.hmac_secret = config.token_hmac_secret_key;
  keys.rsa_public_pem = config.token_rsa_public_key;
  keys.ecdsa_public_pem = config.token_ecdsa_public_key;
  keys.audience = config.token_audience;
  keys.issuer = config.token_issuer;
  return keys;
}

TokenStatus TokenVerifier::Verify(std::string_view token, int64_t now_s, TokenClaims* claims,
                                  std::string* reason) const {
  auto invalid = [reason](const char* why) {
    if (reason != nullptr) *reason = why;
    return TokenStatus::kInvalid;
  };
  const std::string text(token);  // libjwt wants a C string
  jwt_t* raw = nullptr;
  // First pass, unverified, only to learn the algorithm (from the header: without a key,
  // libjwt reports the algorithm as none) and so the key.
  if (jwt_decode(&raw, text.c_str(), nullptr, 0) != 0) {
    return invalid("not a JWT (three base64url parts with a JSON header and claims)");
  }
  JwtPtr unverified(raw);
  const char* alg_name = jwt_get_header(unverified.get(), "alg");
  if (alg_name == nullptr) return invalid("the header has no alg");
  const jwt_alg_t alg = jwt_str_alg(alg_name);
  const std::string* key = nullptr;
  switch (FamilyOf(alg)) {
    case Family::kHmac:
      key = &keys_.hmac_secret;
      break;
    case Family::kRsa:
      key = &keys_.rsa_public_pem;
      break;
    case Family::kEcdsa:
      key = &keys_.ecdsa_public_pem;
      break;
    case Family::kNone:
      return invalid("the algorithm is none or not one of HS*, RS*, ES*");
  }
  if (key->empty()) {
    switch (FamilyOf(alg)) {
      case Family::kHmac:
        return invalid("an HMAC token, and no token_hmac_secret_key is configured");
      case Family::kRsa:
        return invalid("an RSA token, and no token_rsa_public_key is configured");
      default:
        return invalid("an ECDSA token, and no token_ecdsa_public_key is configured");
    }
  }
  raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(key->data()),
                 static_cast<int>(key->size())) != 0) {
    return invalid("the signature does not verify with the configured key");
  }
  JwtPtr jwt(raw);
  if (jwt_get_alg(jwt.get()) != alg) return invalid("the algorithm changed on verification");

  char* grants = jwt_get_grants_json(jwt.get(), nullptr);
  if (grants == nullptr) return invalid("no claims");
  std::string json(grants);
  std::free(grants);
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(json).get(object) != SUCCESS) return invalid("the claims are not a JSON object");

  *claims = TokenClaims{};
  simdjson::dom::element value;
  std::string_view text_value;
  if (object["sub"].get(value) == SUCCESS) {
    if (value.get_string().get(text_value) != SUCCESS) return invalid("sub is not a string");
    claims->user = std::string(text_value);
  }
  int64_t exp = 0;
  if (object["exp"].get(value) == SUCCESS) {
    if (value.get_int64().get(exp) != SUCCESS) return invalid("exp is not an integer");
  }
  claims->expires_at = exp;
  if (object["expire_at"].get(value) == SUCCESS) {
    if (value.get_int64().get(claims->expires_at) != SUCCESS || claims->expires_at < 0) {
      return invalid("expire_at is not a non-negative integer");
    }
  }
  // RFC 7519 §4.1.5: a token is not to be accepted before its nbf (Centrifugo: invalid).
  if (object["nbf"].get(value) == SUCCESS) {
    int64_t not_before = 0;
    if (value.get_int64().get(not_before) != SUCCESS || not_before > now_s) {
      return TokenStatus::kInvalid;
    }
  }
  if (!keys_.audience.empty()) {
    if (object["aud"].get(value) != SUCCESS || !AudienceMatches(value, keys_.audience)) {
      return invalid("aud does not name the configured token_audience");
    }
  }
  if (!keys_.issuer.empty()) {
    if (object["iss"].get(value) != SUCCESS || value.get_string().get(text_value) != SUCCESS ||
        text_value != keys_.issuer) {
      return invalid("iss is not the configured token_issuer");
    }
  }
  simdjson::dom::array channels;
  if (object["channels"].get(value) == SUCCESS) {
    if (value.get_array().get(channels) != SUCCESS) return invalid("channels is not an array");
    for (simdjson::dom::element item : channels) {
      if (item.get_string().get(text_value) != SUCCESS) {
        return invalid("channels holds a non-string");
      }
      claims->channels.emplace_back(text_value);
    }
  }
  if (object["subs"].get(value) == SUCCESS && !ReadSubs(value, &claims->subs)) {
    return invalid("subs is not a map of channel to subscription options");
  }
  if (object["channel"].get(value) == SUCCESS) {
    if (value.get_string().get(text_value) != SUCCESS) return invalid("channel is not a string");
    claims->channel = std::string(text_value);
  }
  if (!ReadInfo(object, &claims->info)) return invalid("info, or b64info as base64 of JSON");
  if (!ReadMeta(object, &claims->meta)) return invalid("meta is not an object");
  // The token itself (exp), then what it opens (expire_at: 0 never expires).
  if (exp != 0 && exp <= now_s) {
    if (reason != nullptr) {
      *reason =
          "expired " + std::to_string(now_s - exp) + " s ago (exp " + std::to_string(exp) + ")";
    }
    return TokenStatus::kExpired;
  }
  if (claims->expires_at != 0 && claims->expires_at <= now_s) {
    if (reason != nullptr) {
      *reason = "expired " + std::to_string(now_s - claims->expires_at) + " s ago (expire_at " +
                std::to_string(claims->expires_at) + ")";
    }
    return TokenStatus::kExpired;
  }
  return TokenStatus::kOk;
}

}  // namespace hermod::auth
