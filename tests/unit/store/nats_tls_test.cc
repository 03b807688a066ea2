// nats.tls on the libnats stores (store/nats_tls.h) against a real nats-server -js with TLS
// and client certificates required (verify), certificates made at run time: a KV bucket
// written and read through it; no client certificate, or an unknown CA, refused.
#include "store/nats_tls.h"

#include <gtest/gtest.h>

#include <string>

#include "store/nats_kv.h"
#include "tests/unit/store/nats_server.h"
#include "tests/unit/store/test_pki.h"

namespace hermod::store {
namespace {

TEST(NatsTls, TheCommonHostNameIsCheckedOnlyWhenEveryUrlHasIt) {
  EXPECT_EQ(NatsCommonHostName("tls://nats.internal:4222"), "nats.internal");
  EXPECT_EQ(NatsCommonHostName("tls://u:p@nats.internal, nats://nats.internal:4223"),
            "nats.internal");
  EXPECT_EQ(NatsCommonHostName("tls://a.internal,tls://b.internal"), "");
  EXPECT_EQ(NatsCommonHostName("tls://127.0.0.1:4222"), "");
  EXPECT_EQ(NatsCommonHostName("tls://[::1]:4222"), "");
}

class NatsTlsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
    if (!test::TestPki::Available()) GTEST_SKIP() << "no openssl";
    ASSERT_TRUE(pki_.ok());
    server_.set_args({"--tls", "--tlscert", pki_.file("server.pem"), "--tlskey",
                      pki_.file("server.key"), "--tlsverify", "--tlscacert", pki_.file("ca.pem")});
    ASSERT_TRUE(server_.Start());
  }
  NatsKvOptions Options(const std::string& ca, bool client_cert) const {
    NatsKvOptions o;
    o.url = "tls://127.0.0.1:" + std::to_string(server_.port());
    o.dial_timeout_ms = 2000;
    o.tls.ca_file = pki_.file(ca);
    if (client_cert) {
      o.tls.cert_file = pki_.file("client.pem");
      o.tls.key_file = pki_.file("client.key");
    }
    return o;
  }
  bool Connects(const NatsKvOptions& o, std::string* error) {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    const bool ok = ConnectNatsKv(o, "test", &nc, &js, error);
    if (ok) {
      kvStore* kv = nullptr;
      EXPECT_EQ(OpenNatsBucket(js, "tls_test", 0, &kv), NATS_OK);
      uint64_t revision = 0;
      EXPECT_EQ(kvStore_PutString(&revision, kv, "k", "over tls"), NATS_OK);
      kvEntry* entry = nullptr;
      EXPECT_EQ(kvStore_Get(&entry, kv, "k"), NATS_OK);
      if (entry != nullptr) {
        EXPECT_STREQ(kvEntry_ValueString(entry), "over tls");
        kvEntry_Destroy(entry);
      }
      kvStore_Destroy(kv);
    }
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
    return ok;
  }

  test::TestPki pki_;
  test::NatsServer server_;
};

TEST_F(NatsTlsStoreTest, AKvBucketWorksOverMutualTls) {
  std::string error;
  EXPECT_TRUE(Connects(Options("ca.pem", true), &error)) << error;
}

TEST_F(NatsTlsStoreTest, NoClientCertificateOrAnUnknownCaIsRefused) {
  std::string error;
  EXPECT_FALSE(Connects(Options("ca.pem", false), &error));
  EXPECT_FALSE(Connects(Options("other-ca.pem", true), &error));
  EXPECT_NE(error.find("test: connect at tls://127.0.0.1"), std::string::npos) << error;
}

TEST_F(NatsTlsStoreTest, AFileThatDoesNotLoadNamesTheKey) {
  NatsKvOptions o = Options("ca.pem", true);
  o.tls.ca_file = pki_.file("ca.key");  // a key, not a certificate
  std::string error;
  EXPECT_FALSE(Connects(o, &error));
  EXPECT_NE(error.find("nats.tls.ca_file"), std::string::npos) << error;
}

}  // namespace
}  // namespace hermod::store
