// TokenSigner against the server's own TokenVerifier: what gentoken signs, the server accepts.
#include "auth/token_signer.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>

#include "auth/token_verifier.h"

namespace hermod::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;

// A fresh key pair as PEM {private, public}, generated per run.
std::pair<std::string, std::string> KeyPair(EVP_PKEY* key) {
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

TokenVerifier HmacVerifier(std::string secret) {
  TokenKeys keys;
  keys.hmac_secret = std::move(secret);
  return TokenVerifier(keys);
}

std::string SignOrFail(const TokenSigner& signer, const TokenRequest& request) {
  std::string token, error;
  EXPECT_TRUE(signer.Sign(request, &token, &error)) << error;
  return token;
}

TEST(TokenSigner, HmacTokenRoundTripsThroughTheVerifier) {
  TokenRequest request;
  request.user = "42";
  request.now_s = kNow;
  request.ttl_s = 600;
  request.info = R"({ "name" : "Ann" })";
  std::string token = SignOrFail(TokenSigner::Hmac("secret"), request);
  TokenClaims claims;
  std::string reason;
  ASSERT_EQ(HmacVerifier("secret").Verify(token, kNow, &claims, &reason), TokenStatus::kOk)
      << reason;
  EXPECT_EQ(claims.user, "42");
  EXPECT_EQ(claims.expires_at, kNow + 600);
  EXPECT_EQ(claims.info, R"({"name":"Ann"})");
  EXPECT_TRUE(claims.channel.empty());
}

TEST(TokenSigner, SubscriptionTokenCarriesTheChannelAndAudience) {
  TokenRequest request;
  request.user = "u";
  request.now_s = kNow;
  request.channel = "$private";
  request.audience = "app";
  request.issuer = "me";
  std::string token = SignOrFail(TokenSigner::Hmac("secret"), request);
  TokenKeys keys;
  keys.hmac_secret = "secret";
  keys.audience = "app";
  keys.issuer = "me";
  TokenClaims claims;
  ASSERT_EQ(TokenVerifier(keys).Verify(token, kNow, &claims), TokenStatus::kOk);
  EXPECT_EQ(claims.channel, "$private");
}

TEST(TokenSigner, ExpiredTokenIsReportedWithItsAge) {
  TokenRequest request;
  request.user = "42";
  request.now_s = kNow - 100;
  request.ttl_s = 60;  // expired 40 s before kNow
  std::string token = SignOrFail(TokenSigner::Hmac("secret"), request);
  TokenClaims claims;
  std::string reason;
  EXPECT_EQ(HmacVerifier("secret").Verify(token, kNow, &claims, &reason), TokenStatus::kExpired);
  EXPECT_EQ(reason, "expired 40 s ago (exp 1799999960)");
  // No ttl: no exp, never expires.
  request.ttl_s = 0;
  token = SignOrFail(TokenSigner::Hmac("secret"), request);
  EXPECT_EQ(HmacVerifier("secret").Verify(token, kNow + 1'000'000, &claims), TokenStatus::kOk);
  EXPECT_EQ(claims.expires_at, 0);
}

TEST(TokenSigner, WrongKeyIsRefusedWithTheReason) {
  TokenRequest request;
  request.user = "42";
  request.now_s = kNow;
  std::string token = SignOrFail(TokenSigner::Hmac("secret"), request);
  TokenClaims claims;
  std::string reason;
  EXPECT_EQ(HmacVerifier("other").Verify(token, kNow, &claims, &reason), TokenStatus::kInvalid);
  EXPECT_EQ(reason, "the signature does not verify with the configured key");
  TokenKeys rsa_only;
  rsa_only.rsa_public_pem = KeyPair(EVP_RSA_gen(2048)).second;
  EXPECT_EQ(TokenVerifier(rsa_only).Verify(token, kNow, &claims, &reason), TokenStatus::kInvalid);
  EXPECT_EQ(reason, "an HMAC token, and no token_hmac_secret_key is configured");
  EXPECT_EQ(HmacVerifier("secret").Verify("garbage", kNow, &claims, &reason),
            TokenStatus::kInvalid);
  EXPECT_NE(reason.find("not a JWT"), std::string::npos) << reason;
}

TEST(TokenSigner, PrivateKeysSignRs256AndEs256ForTheirPublicKeys) {
  auto [rsa_private, rsa_public] = KeyPair(EVP_RSA_gen(2048));
  auto [ec_private, ec_public] = KeyPair(EVP_EC_gen("P-256"));
  TokenKeys keys;
  keys.rsa_public_pem = rsa_public;
  keys.ecdsa_public_pem = ec_public;
  TokenVerifier verifier(keys);
  TokenRequest request;
  request.user = "k";
  request.now_s = kNow;
  for (const std::string& pem : {rsa_private, ec_private}) {
    TokenSigner signer;
    std::string error;
    ASSERT_TRUE(TokenSigner::FromPrivateKeyPem(pem, &signer, &error)) << error;
    TokenClaims claims;
    std::string reason;
    EXPECT_EQ(verifier.Verify(SignOrFail(signer, request), kNow, &claims, &reason),
              TokenStatus::kOk)
        << signer.algorithm() << ": " << reason;
    EXPECT_EQ(claims.user, "k");
  }
  TokenSigner signer;
  std::string error;
  ASSERT_TRUE(TokenSigner::FromPrivateKeyPem(rsa_private, &signer, &error));
  EXPECT_STREQ(signer.algorithm(), "RS256");
  ASSERT_TRUE(TokenSigner::FromPrivateKeyPem(ec_private, &signer, &error));
  EXPECT_STREQ(signer.algorithm(), "ES256");
  // A public key cannot sign.
  EXPECT_FALSE(TokenSigner::FromPrivateKeyPem(rsa_public, &signer, &error));
  EXPECT_NE(error.find("no PEM private key"), std::string::npos) << error;
}

TEST(TokenSigner, ConfigWithOnlyPublicKeysAsksForThePrivateKey) {
  config::Config config;
  TokenSigner signer;
  std::string error;
  EXPECT_FALSE(TokenSigner::FromConfig(config, &signer, &error));
  EXPECT_NE(error.find("no token key configured"), std::string::npos) << error;
  config.token_rsa_public_key = "-----BEGIN PUBLIC KEY-----\n";
  EXPECT_FALSE(TokenSigner::FromConfig(config, &signer, &error));
  EXPECT_NE(error.find("--key FILE"), std::string::npos) << error;
  config.token_hmac_secret_key = "s";
  EXPECT_TRUE(TokenSigner::FromConfig(config, &signer, &error));
  EXPECT_STREQ(signer.algorithm(), "HS256");
}

TEST(TokenSigner, RefusesInfoThatIsNotJson) {
  TokenRequest request;
  request.info = "{not json";
  std::string token, error;
  EXPECT_FALSE(TokenSigner::Hmac("s").Sign(request, &token, &error));
  EXPECT_EQ(error, "info is not valid JSON");
}

}  // namespace
}  // namespace hermod::auth
