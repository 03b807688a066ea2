#include "auth/token_verifier.h"

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <string>

namespace hermod::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;

// Signs claims (a JSON object) with alg and key.
std::string Sign(const std::string& claims, jwt_alg_t alg, const std::string& key) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, claims.c_str()), 0);
  EXPECT_EQ(jwt_set_alg(jwt, alg,
                        key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* text = jwt_encode_str(jwt);
  std::string token = text ? text : "";
  std::free(text);
  jwt_free(jwt);
  return token;
}

// A fresh key pair as PEM {private, public}: generated per run, so no key is checked in.
std::pair<std::string, std::string> KeyPair(bool rsa) {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  EXPECT_NE(key, nullptr);
  auto pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  };
  std::string private_pem =
      pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  std::string public_pem = pem([&](BIO* b) { PEM_write_bio_PUBKEY(b, key); });
  EVP_PKEY_free(key);
  return {private_pem, public_pem};
}

TokenVerifier Hmac(std::string audience = {}, std::string issuer = {}) {
  TokenKeys keys;
  keys.hmac_secret = "secret";
  keys.audience = std::move(audience);
  keys.issuer = std::move(issuer);
  return TokenVerifier(keys);
}

TEST(TokenVerifier, AcceptsAnHmacTokenAndReadsItsClaims) {
  std::string token =
      Sign(R"({"sub":"42","exp":1800000100,"info":{"name":"Ann"},"channels":["a","b"]})",
           JWT_ALG_HS256, "secret");
  TokenClaims claims;
  ASSERT_EQ(Hmac().Verify(token, kNow, &claims), TokenStatus::kOk);
  EXPECT_EQ(claims.user, "42");
  EXPECT_EQ(claims.expires_at, 1800000100);
  EXPECT_EQ(claims.info, R"({"name":"Ann"})");
  EXPECT_EQ(claims.channels, (std::vector<std::string>{"a", "b"}));
}

TEST(TokenVerifier, ReadsB64InfoAndSubscriptionChannel) {
  // base64 of {"x":1}
  std::string token =
      Sign(R"({"sub":"u","channel":"$private","b64info":"eyJ4IjoxfQ=="})", JWT_ALG_HS512, "secret");
  TokenClaims claims;
  ASSERT_EQ(Hmac().Verify(token, kNow, &claims), TokenStatus::kOk);
  EXPECT_EQ(claims.channel, "$private");
  EXPECT_EQ(claims.info, R"({"x":1})");
}

TEST(TokenVerifier, ReportsExpiredTokensApart) {
  std::string token = Sign(R"({"sub":"42","exp":1799999999})", JWT_ALG_HS256, "secret");
  TokenClaims claims;
  EXPECT_EQ(Hmac().Verify(token, kNow, &claims), TokenStatus::kExpired);
}

TEST(TokenVerifier, RefusesWrongKeysNoneAndGarbage) {
  TokenClaims claims;
  EXPECT_EQ(Hmac().Verify(Sign(R"({"sub":"1"})", JWT_ALG_HS256, "other"), kNow, &claims),
            TokenStatus::kInvalid);
  EXPECT_EQ(Hmac().Verify(Sign(R"({"sub":"1"})", JWT_ALG_NONE, ""), kNow, &claims),
            TokenStatus::kInvalid);
  EXPECT_EQ(Hmac().Verify("not.a.token", kNow, &claims), TokenStatus::kInvalid);
  EXPECT_EQ(Hmac().Verify("", kNow, &claims), TokenStatus::kInvalid);
}

TEST(TokenVerifier, RefusesAnHmacTokenWhenOnlyAPublicKeyIsConfigured) {
  // Algorithm confusion: an HS256 token "signed" with the RSA public key's text.
  const std::string pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
  TokenKeys keys;
  keys.rsa_public_pem = pem;
  TokenClaims claims;
  EXPECT_EQ(TokenVerifier(keys).Verify(Sign(R"({"sub":"1"})", JWT_ALG_HS256, pem), kNow, &claims),
            TokenStatus::kInvalid);
}

TEST(TokenVerifier, AcceptsRsaAndEcdsaTokensWithTheirPublicKeys) {
  auto [rsa_private, rsa_public] = KeyPair(true);
  auto [ec_private, ec_public] = KeyPair(false);
  TokenKeys keys;
  keys.rsa_public_pem = rsa_public;
  keys.ecdsa_public_pem = ec_public;
  TokenVerifier verifier(keys);
  TokenClaims claims;
  EXPECT_EQ(verifier.Verify(Sign(R"({"sub":"r"})", JWT_ALG_RS256, rsa_private), kNow, &claims),
            TokenStatus::kOk);
  EXPECT_EQ(claims.user, "r");
  EXPECT_EQ(verifier.Verify(Sign(R"({"sub":"e"})", JWT_ALG_ES256, ec_private), kNow, &claims),
            TokenStatus::kOk);
  EXPECT_EQ(claims.user, "e");
  // Signed by another key pair of the same kind: refused.
  auto [other_private, other_public] = KeyPair(true);
  EXPECT_EQ(verifier.Verify(Sign(R"({"sub":"r"})", JWT_ALG_RS256, other_private), kNow, &claims),
            TokenStatus::kInvalid);
  // An HMAC token "signed" with the configured public key's text: refused (no HMAC key).
  EXPECT_EQ(verifier.Verify(Sign(R"({"sub":"x"})", JWT_ALG_HS256, rsa_public), kNow, &claims),
            TokenStatus::kInvalid);
}

TEST(TokenVerifier, ChecksAudienceAndIssuerWhenConfigured) {
  TokenClaims claims;
  std::string good = Sign(R"({"sub":"1","aud":["x","app"],"iss":"me"})", JWT_ALG_HS256, "secret");
  EXPECT_EQ(Hmac("app", "me").Verify(good, kNow, &claims), TokenStatus::kOk);
  std::string bad_aud = Sign(R"({"sub":"1","aud":"other","iss":"me"})", JWT_ALG_HS256, "secret");
  EXPECT_EQ(Hmac("app", "me").Verify(bad_aud, kNow, &claims), TokenStatus::kInvalid);
  std::string no_iss = Sign(R"({"sub":"1","aud":"app"})", JWT_ALG_HS256, "secret");
  EXPECT_EQ(Hmac("app", "me").Verify(no_iss, kNow, &claims), TokenStatus::kInvalid);
}

}  // namespace
TEST(TokenVerifier, ExpireAtSetsTheExpiryInsteadOfExp) {
  TokenClaims claims;
  // exp checks the token; expire_at, later than exp here, is when the connection ends.
  ASSERT_EQ(Hmac().Verify(Sign(R"({"sub":"1","exp":1800000100,"expire_at":1800000500})",
                               JWT_ALG_HS256, "secret"),
                          kNow, &claims),
            TokenStatus::kOk);
  EXPECT_EQ(claims.expires_at, 1800000500);
  // 0: the connection never expires, though the token has an exp.
  ASSERT_EQ(
      Hmac().Verify(Sign(R"({"sub":"1","exp":1800000100,"expire_at":0})", JWT_ALG_HS256, "secret"),
                    kNow, &claims),
      TokenStatus::kOk);
  EXPECT_EQ(claims.expires_at, 0);
  // Without exp, expire_at alone.
  ASSERT_EQ(Hmac().Verify(Sign(R"({"sub":"1","expire_at":1800000007})", JWT_ALG_HS256, "secret"),
                          kNow, &claims),
            TokenStatus::kOk);
  EXPECT_EQ(claims.expires_at, 1800000007);
}

TEST(TokenVerifier, ExpireAtInThePastOrAnExpiredExpIsExpired) {
  TokenClaims claims;
  EXPECT_EQ(Hmac().Verify(Sign(R"({"sub":"1","expire_at":1799999999})", JWT_ALG_HS256, "secret"),
                          kNow, &claims),
            TokenStatus::kExpired);
  // expire_at does not revive a token whose exp has passed.
  EXPECT_EQ(
      Hmac().Verify(Sign(R"({"sub":"1","exp":1799999999,"expire_at":0})", JWT_ALG_HS256, "secret"),
                    kNow, &claims),
      TokenStatus::kExpired);
  EXPECT_EQ(Hmac().Verify(Sign(R"({"sub":"1","expire_at":"soon"})", JWT_ALG_HS256, "secret"), kNow,
                          &claims),
            TokenStatus::kInvalid);
  EXPECT_EQ(
      Hmac().Verify(Sign(R"({"sub":"1","expire_at":-5})", JWT_ALG_HS256, "secret"), kNow, &claims),
      TokenStatus::kInvalid);
}

TEST(TokenVerifier, ReadsTheSubsClaimWithPerChannelOptions) {
  // b64info of {"role":"b"}; b64data of [1,2]
  std::string token = Sign(
      R"({"sub":"u","subs":{"a":{"info":{"role":"a"},"data":{"hello":1},)"
      R"("override":{"presence":{"value":true},"join_leave":{"value":false},)"
      R"("force_recovery":{"value":true}}},"b":{"b64info":"eyJyb2xlIjoiYiJ9","b64data":"WzEsMl0="},)"
      R"("c":{}}})",
      JWT_ALG_HS256, "secret");
  TokenClaims claims;
  ASSERT_EQ(Hmac().Verify(token, kNow, &claims), TokenStatus::kOk);
  ASSERT_EQ(claims.subs.size(), 3u);
  const TokenSubscription& a = claims.subs[0];
  EXPECT_EQ(a.channel, "a");
  EXPECT_EQ(a.info, R"({"role":"a"})");
  EXPECT_EQ(a.data, R"({"hello":1})");
  EXPECT_TRUE(a.presence.set && a.presence.value);
  EXPECT_TRUE(a.join_leave.set && !a.join_leave.value);
  EXPECT_TRUE(a.force_recovery.set && a.force_recovery.value);
  EXPECT_FALSE(a.force_push_join_leave.set);
  EXPECT_EQ(claims.subs[1].channel, "b");
  EXPECT_EQ(claims.subs[1].info, R"({"role":"b"})");
  EXPECT_EQ(claims.subs[1].data, "[1,2]");
  EXPECT_EQ(claims.subs[2].channel, "c");
  EXPECT_TRUE(claims.subs[2].info.empty() && claims.subs[2].data.empty());
}

TEST(TokenVerifier, RefusesMalformedSubs) {
  TokenClaims claims;
  for (const char* subs :
       {R"(["a"])", R"({"a":1})", R"({"":{}})", R"({"a":{"b64info":"***"}})",
        R"({"a":{"b64info":"bm90IGpzb24="}})", R"({"a":{"override":{"presence":true}}})",
        R"({"a":{"override":{"presence":{"value":"yes"}}}})", R"({"a":{"override":[]}})"}) {
    std::string claims_json = std::string(R"({"sub":"u","subs":)") + subs + "}";
    EXPECT_EQ(Hmac().Verify(Sign(claims_json, JWT_ALG_HS256, "secret"), kNow, &claims),
              TokenStatus::kInvalid)
        << subs;
  }
}

TEST(TokenVerifier, RefusesB64InfoThatIsNotJson) {
  TokenClaims claims;  // base64 of "not json"
  EXPECT_EQ(Hmac().Verify(Sign(R"({"sub":"u","b64info":"bm90IGpzb24="})", JWT_ALG_HS256, "secret"),
                          kNow, &claims),
            TokenStatus::kInvalid);
}

}  // namespace hermod::auth
