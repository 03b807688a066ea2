// The broker's NATS client over TLS (broker/nats_client.h) against a real nats-server with
// TLS on, certificates made at run time (tests/unit/store/test_pki.h): the handshake after the
// plain INFO, a round trip through it (a message larger than the read buffer too), the
// upgrade a server requiring TLS gets on a nats:// URL, and the refusals (an unknown CA, a
// wrong name, no client certificate for verify: true, no TLS on the server) as failed
// attempts counted as TLS.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/nats_client.h"
#include "tests/unit/broker/loop_thread.h"
#include "tests/unit/store/nats_server.h"
#include "tests/unit/store/test_pki.h"

namespace hermod::broker {
namespace {

using namespace std::chrono_literals;

using test::LoopThread;

// What a client's events said, read from the test's thread.
struct TlsSeen {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> messages;
  std::vector<std::string> failures;  // attempt_failed's why
  int connects = 0;
  int tls_faults = 0;

  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 10s, pred);
  }
  NatsClient::Events Events() {
    NatsClient::Events e;
    e.message = [this](uint64_t, std::string_view payload) {
      Locked([&] { messages.emplace_back(payload); });
    };
    e.connected = [this] { Locked([&] { ++connects; }); };
    e.attempt_failed = [this](std::string_view, std::string_view why) {
      Locked([&] { failures.emplace_back(why); });
    };
    e.fault = [this](NatsClient::Fault f) {
      if (f == NatsClient::Fault::kTls) Locked([&] { ++tls_faults; });
    };
    return e;
  }

 private:
  void Locked(const std::function<void()>& f) {
    std::lock_guard lock(mutex);
    f();
    cv.notify_all();
  }
};

class NatsClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
    if (!test::TestPki::Available()) GTEST_SKIP() << "no openssl";
    ASSERT_TRUE(pki_.ok());
  }
  // nats-server with TLS on (tls_required in its INFO); verify: client certificates asked.
  void StartServer(bool verify = false) {
    std::vector<std::string> args = {"--tls", "--tlscert", pki_.file("server.pem"), "--tlskey",
                                     pki_.file("server.key")};
    if (verify) {
      args.insert(args.end(), {"--tlsverify", "--tlscacert", pki_.file("ca.pem")});
    }
    server_.set_args(args);
    ASSERT_TRUE(server_.Start());
  }
  std::string TlsUrl() const { return "tls://127.0.0.1:" + std::to_string(server_.port()); }
  NatsClient::Options OptionsFor(const std::string& url, const std::string& ca,
                                 bool client_cert = false) {
    NatsClient::Options o;
    std::string error;
    EXPECT_TRUE(ParseNatsServers(url, &o.servers, &error)) << error;
    o.name = "tls-test";
    o.dial_timeout_ms = 2000;
    o.reconnect_wait_ms = 50;
    net::TlsClientContext::Options t;
    t.ca_file = pki_.file(ca);
    if (client_cert) {
      t.cert_file = pki_.file("client.pem");
      t.key_file = pki_.file("client.key");
    }
    o.tls = net::TlsClientContext::Create(t, &error);
    EXPECT_NE(o.tls, nullptr) << error;
    return o;
  }
  std::unique_ptr<NatsClient> Make(NatsClient::Options o, TlsSeen& seen) {
    return loop_.Run([&] {
      auto c = std::make_unique<NatsClient>(loop_.loop(), std::move(o), seen.Events());
      c->Start();
      return c;
    });
  }
  void Destroy(std::unique_ptr<NatsClient>& c) {
    loop_.Run([&] { c.reset(); });
  }
  bool Ping(NatsClient& c) {
    auto done = std::make_shared<std::promise<bool>>();
    auto result = done->get_future();
    loop_.Run([&] { c.Ping([done](bool ok) { done->set_value(ok); }); });
    return result.wait_for(10s) == std::future_status::ready && result.get();
  }
  // A client that must not connect: at least two failed attempts, each a TLS fault, the
  // first one's why holding expected.
  void ExpectRefused(NatsClient::Options o, const std::string& expected) {
    TlsSeen seen;
    auto c = Make(std::move(o), seen);
    ASSERT_TRUE(seen.WaitFor([&] { return seen.failures.size() >= 2 && seen.tls_faults >= 2; }));
    {
      std::lock_guard lock(seen.mutex);
      EXPECT_EQ(seen.connects, 0);
      EXPECT_NE(seen.failures[0].find(expected), std::string::npos) << seen.failures[0];
    }
    EXPECT_FALSE(loop_.Run([&] { return c->connected(); }));
    EXPECT_GE(loop_.Run([&] { return c->stats().tls_failures; }), 2u);
    Destroy(c);
  }

  test::TestPki pki_;
  test::NatsServer server_;
  LoopThread loop_;
};

TEST_F(NatsClientTlsTest, RoundTripOverTls) {
  StartServer();
  TlsSeen a_seen;
  TlsSeen b_seen;
  auto a = Make(OptionsFor(TlsUrl(), "ca.pem"), a_seen);
  auto b = Make(OptionsFor(TlsUrl(), "ca.pem"), b_seen);
  ASSERT_TRUE(a_seen.WaitFor([&] { return a_seen.connects == 1; }));
  ASSERT_TRUE(b_seen.WaitFor([&] { return b_seen.connects == 1; }));
  loop_.Run([&] { return b->Subscribe("t.x"); });
  ASSERT_TRUE(Ping(*b));
  // Larger than a TLS record and than the loop's read buffer: read through SSL_pending.
  const std::string big(300 * 1024, 'z');
  ASSERT_TRUE(loop_.Run([&] { return a->Publish("t.x", "hello") && a->Publish("t.x", big); }));
  ASSERT_TRUE(b_seen.WaitFor([&] { return b_seen.messages.size() == 2; }));
  EXPECT_EQ(b_seen.messages[0], "hello");
  EXPECT_EQ(b_seen.messages[1], big);
  EXPECT_EQ(loop_.Run([&] { return a->stats().tls_failures; }), 0u);
  Destroy(a);
  Destroy(b);
}

// As nats.go: a server whose INFO says tls_required gets TLS on a nats:// URL too.
TEST_F(NatsClientTlsTest, AServerRequiringTlsIsUpgradedOnANatsUrl) {
  StartServer();
  TlsSeen seen;
  auto c = Make(OptionsFor(server_.url(), "ca.pem"), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  ASSERT_TRUE(Ping(*c));
  Destroy(c);
}

// The CA that signed the server's certificate is not the one trusted: refused, retried.
TEST_F(NatsClientTlsTest, AnUnknownCaIsAFailedAttemptCountedAsTls) {
  StartServer();
  ExpectRefused(OptionsFor(TlsUrl(), "other-ca.pem"), "certificate verify failed");
}

// The certificate is for 127.0.0.1 and localhost: another name is refused.
TEST_F(NatsClientTlsTest, AWrongServerNameIsRefused) {
  StartServer();
  NatsClient::Options o = OptionsFor(TlsUrl(), "ca.pem");
  o.tls_server_name = "nats.example.org";
  ExpectRefused(std::move(o), "certificate verify failed");
  // The name the certificate has is accepted.
  TlsSeen seen;
  NatsClient::Options good = OptionsFor(TlsUrl(), "ca.pem");
  good.tls_server_name = "localhost";
  auto c = Make(std::move(good), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  Destroy(c);
}

// nats-server's verify: true: without a client certificate the server ends the connection
// in (TLS 1.2) or right after (TLS 1.3) the handshake; with one, it connects.
TEST_F(NatsClientTlsTest, MutualTlsNeedsTheClientCertificate) {
  StartServer(/*verify=*/true);
  ExpectRefused(OptionsFor(TlsUrl(), "ca.pem"), "TLS");
  TlsSeen seen;
  auto c = Make(OptionsFor(TlsUrl(), "ca.pem", /*client_cert=*/true), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  ASSERT_TRUE(Ping(*c));
  Destroy(c);
}

// TLS asked for (tls://) from a server without it: a failed attempt, never plain text.
TEST_F(NatsClientTlsTest, TlsAskedOfAServerWithoutItIsRefused) {
  ASSERT_TRUE(server_.Start());
  ExpectRefused(OptionsFor(TlsUrl(), "ca.pem"), "offers none");
}

// A peer whose INFO says tls_required and then never answers the ClientHello: the handshake
// is bounded by dial_timeout like the rest of the attempt, and the next attempt follows.
TEST_F(NatsClientTlsTest, AHandshakeThatNeverEndsIsCutByTheDialTimeout) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  // Two attempts: each gets the INFO, its ClientHello is read and left unanswered until the
  // client closes.
  std::thread peer([listener] {
    for (int i = 0; i < 2; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      const std::string info = "INFO {\"tls_required\":true,\"max_payload\":1024}\r\n";
      (void)!write(fd, info.data(), info.size());
      char buf[4096];
      while (read(fd, buf, sizeof buf) > 0) {
      }
      close(fd);
    }
  });
  TlsSeen seen;
  NatsClient::Options o = OptionsFor("nats://127.0.0.1:" + std::to_string(port), "ca.pem");
  o.dial_timeout_ms = 300;
  auto c = Make(std::move(o), seen);
  EXPECT_TRUE(seen.WaitFor([&] { return seen.failures.size() >= 2; }));
  {
    std::lock_guard lock(seen.mutex);
    EXPECT_EQ(seen.connects, 0);
    EXPECT_NE(seen.failures[0].find("nats.dial_timeout"), std::string::npos) << seen.failures[0];
  }
  Destroy(c);
  shutdown(listener, SHUT_RDWR);
  peer.join();
  close(listener);
}

}  // namespace
}  // namespace hermod::broker
