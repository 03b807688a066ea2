// The broker's core NATS client (broker/nats_client.h) on a real loop against a real
// nats-server started on a free port (skipped without one).
#include "broker/nats_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/broker/loop_thread.h"
#include "tests/unit/broker/raw_peer.h"
#include "tests/unit/store/nats_server.h"

namespace hermod::broker {
namespace {

using namespace std::chrono_literals;

using test::LoopThread;

// What a client's events said, read from the test's thread.
struct Seen {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> messages;
  std::vector<std::string> errors;
  int connects = 0;
  int disconnects = 0;

  bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, pred);
  }
  NatsClient::Events Events() {
    NatsClient::Events e;
    e.message = [this](uint64_t, std::string_view payload) { Add(&messages, payload); };
    e.error = [this](std::string_view text) { Add(&errors, text); };
    e.connected = [this] { Count(&connects); };
    e.disconnected = [this](std::string_view) { Count(&disconnects); };
    return e;
  }

 private:
  void Add(std::vector<std::string>* to, std::string_view s) {
    std::lock_guard lock(mutex);
    to->emplace_back(s);
    cv.notify_all();
  }
  void Count(int* n) {
    std::lock_guard lock(mutex);
    ++*n;
    cv.notify_all();
  }
};

using test::ListenOnLoopback;

NatsClient::Options OptionsFor(const std::string& url, uint64_t dial_timeout_ms = 1000) {
  NatsClient::Options o;
  std::string error;
  EXPECT_TRUE(ParseNatsServers(url, &o.servers, &error)) << error;
  o.name = "test";
  o.dial_timeout_ms = dial_timeout_ms;
  o.reconnect_wait_ms = 50;
  return o;
}

class NatsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
  }
  // Made, started and (at the end) destroyed on the loop.
  std::unique_ptr<NatsClient> Make(NatsClient::Options o, Seen& seen) {
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
  LoopThread loop_;
};

TEST(NatsUrls, ParsesListsAndUserinfo) {
  std::vector<NatsServer> s;
  std::string error;
  ASSERT_TRUE(
      ParseNatsServers("nats://u:p@127.0.0.1:4333, 127.0.0.1,nats://tok@[::1]:5", &s, &error))
      << error;
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].user, "u");
  EXPECT_EQ(s[0].pass, "p");
  EXPECT_EQ(s[0].url, "nats://127.0.0.1:4333");
  EXPECT_EQ(s[1].url, "nats://127.0.0.1:4222");
  EXPECT_EQ(s[2].token, "tok");
  EXPECT_EQ(s[2].url, "nats://[::1]:5");
  // tls:// asks for TLS; the port's default is the same.
  ASSERT_TRUE(ParseNatsServers("tls://u:p@127.0.0.1,nats://127.0.0.1:5", &s, &error)) << error;
  EXPECT_TRUE(s[0].tls);
  EXPECT_EQ(s[0].url, "tls://127.0.0.1:4222");
  EXPECT_EQ(s[0].user, "u");
  EXPECT_FALSE(s[1].tls);
  EXPECT_FALSE(ParseNatsServers("http://127.0.0.1:4222", &s, &error));
  // A host name is not resolved here (at each attempt instead): one that does not resolve
  // now is no error; a malformed port is.
  ASSERT_TRUE(ParseNatsServers("nats://no-such-host.invalid:4222", &s, &error)) << error;
  EXPECT_EQ(s[0].address_len, 0u);
  EXPECT_EQ(s[0].host, "no-such-host.invalid");
  EXPECT_FALSE(ParseNatsServers("nats://127.0.0.1:http", &s, &error));
  EXPECT_FALSE(ParseNatsServers("nats://127.0.0.1:70000", &s, &error));
  EXPECT_FALSE(ParseNatsServers("", &s, &error));
  EXPECT_FALSE(ParseNatsServers("http://x", &s, &error));
}

TEST_F(NatsClientTest, PublishSubscribeRoundTripWithoutEcho) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  Seen a_seen;
  Seen b_seen;
  auto a = Make(OptionsFor(server.url()), a_seen);
  auto b = Make(OptionsFor(server.url()), b_seen);
  ASSERT_TRUE(a_seen.WaitFor([&] { return a_seen.connects == 1; }));
  ASSERT_TRUE(b_seen.WaitFor([&] { return b_seen.connects == 1; }));
  loop_.Run([&] { return a->Subscribe("t.x"); });  // its own never come back (no echo)
  const uint64_t sid = loop_.Run([&] { return b->Subscribe("t.x"); });
  // The SUB is the server's once the PONG after it is back: a publication now reaches b.
  ASSERT_TRUE(Ping(*b));
  EXPECT_EQ(loop_.Run([&] { return b->max_payload(); }), 1024u * 1024u);
  const std::string big(100 * 1024, 'z');
  ASSERT_TRUE(loop_.Run([&] { return a->Publish("t.x", "hello") && a->Publish("t.x", big); }));
  ASSERT_TRUE(b_seen.WaitFor([&] { return b_seen.messages.size() == 2; }));
  EXPECT_EQ(b_seen.messages[0], "hello");
  EXPECT_EQ(b_seen.messages[1], big);
  ASSERT_TRUE(Ping(*a));  // anything a would have got has come by now
  EXPECT_TRUE(a_seen.messages.empty());
  // Unsubscribed: b's next PONG comes after the UNSUB, and nothing more reaches it.
  loop_.Run([&] {
    b->Unsubscribe(sid);
    return 0;
  });
  ASSERT_TRUE(Ping(*b));
  ASSERT_TRUE(loop_.Run([&] { return a->Publish("t.x", "after"); }));
  ASSERT_TRUE(Ping(*a));
  ASSERT_TRUE(Ping(*b));
  EXPECT_EQ(b_seen.messages.size(), 2u);
  Destroy(a);
  Destroy(b);
}

TEST_F(NatsClientTest, ReconnectsAfterKillAndSubscribesAgain) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  Seen seen;
  auto c = Make(OptionsFor(server.url()), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  loop_.Run([&] { return c->Subscribe("t.y"); });
  ASSERT_TRUE(Ping(*c));
  server.Stop(/*kill=*/true);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.disconnects == 1; }));
  EXPECT_FALSE(Ping(*c));
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 2; }));
  // Its SUB was written again on the reconnect: another client's publication reaches it.
  ASSERT_TRUE(Ping(*c));
  Seen other_seen;
  auto other = Make(OptionsFor(server.url()), other_seen);
  ASSERT_TRUE(other_seen.WaitFor([&] { return other_seen.connects == 1; }));
  ASSERT_TRUE(loop_.Run([&] { return other->Publish("t.y", "again"); }));
  ASSERT_TRUE(seen.WaitFor([&] { return seen.messages.size() == 1; }));
  EXPECT_EQ(seen.messages[0], "again");
  Destroy(other);
  Destroy(c);
}

// Publications made while the client is not connected are held (up to
// reconnect_buffer_bytes) and written on the connect after the SUBs: a subscriber that is
// back before the publisher gets them. Past the bound, and once closed, Publish fails.
TEST_F(NatsClientTest, PublicationsWhileDisconnectedAreHeldAndWrittenOnTheReconnect) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  Seen sub_seen;
  Seen pub_seen;
  auto sub = Make(OptionsFor(server.url()), sub_seen);
  NatsClient::Options o = OptionsFor(server.url());
  o.reconnect_buffer_bytes = 1024;
  o.reconnect_wait_ms = 3000;  // back well after the subscriber
  auto pub = Make(std::move(o), pub_seen);
  ASSERT_TRUE(sub_seen.WaitFor([&] { return sub_seen.connects == 1; }));
  ASSERT_TRUE(pub_seen.WaitFor([&] { return pub_seen.connects == 1; }));
  loop_.Run([&] { return sub->Subscribe("t.h"); });
  ASSERT_TRUE(Ping(*sub));
  server.Stop(/*kill=*/true);
  ASSERT_TRUE(pub_seen.WaitFor([&] { return pub_seen.disconnects == 1; }));
  // Held: two fit the bound, the third would pass it.
  const std::string part(400, 'h');
  EXPECT_TRUE(loop_.Run([&] { return pub->Publish("t.h", part + "1"); }));
  EXPECT_TRUE(loop_.Run([&] { return pub->Publish("t.h", part + "2"); }));
  EXPECT_FALSE(loop_.Run([&] { return pub->Publish("t.h", part + "3"); }));
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(sub_seen.WaitFor([&] { return sub_seen.connects == 2; }));
  ASSERT_TRUE(Ping(*sub));  // its SUB is the server's
  ASSERT_FALSE(loop_.Run([&] { return pub->connected(); })) << "the publisher is back early";
  ASSERT_TRUE(pub_seen.WaitFor([&] { return pub_seen.connects == 2; }));
  ASSERT_TRUE(sub_seen.WaitFor([&] { return sub_seen.messages.size() == 2; }));
  EXPECT_EQ(sub_seen.messages[0], part + "1");
  EXPECT_EQ(sub_seen.messages[1], part + "2");
  loop_.Run([&] {
    pub->Close();
    return 0;
  });
  EXPECT_FALSE(loop_.Run([&] { return pub->Publish("t.h", "closed"); }));
  Destroy(pub);
  Destroy(sub);
}

// 10,000 subscriptions written again after a kill -9 and restart, more bytes of SUBs than
// max_output_bytes: every one is the server's again (a publication to the first and the last
// arrives), and the connection is not cut for it.
TEST_F(NatsClientTest, TenThousandSubscriptionsPastTheOutputBoundAreAllWrittenAgain) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  Seen seen;
  NatsClient::Options o = OptionsFor(server.url());
  o.max_output_bytes = 256 * 1024;
  auto c = Make(std::move(o), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  const std::string tail(40, 's');
  auto subject = [&](int i) { return "t.many." + std::to_string(i) + "." + tail; };
  loop_.Run([&] {
    for (int i = 0; i < 10000; ++i) c->Subscribe(subject(i));
    return 0;
  });
  ASSERT_TRUE(Ping(*c));
  server.Stop(/*kill=*/true);
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 2; }));
  ASSERT_TRUE(Ping(*c));
  Seen other_seen;
  auto other = Make(OptionsFor(server.url()), other_seen);
  ASSERT_TRUE(other_seen.WaitFor([&] { return other_seen.connects == 1; }));
  ASSERT_TRUE(loop_.Run([&] {
    return other->Publish(subject(0), "first") && other->Publish(subject(9999), "last");
  }));
  ASSERT_TRUE(seen.WaitFor([&] { return seen.messages.size() == 2; }));
  {
    std::lock_guard lock(seen.mutex);
    EXPECT_EQ(seen.messages[0], "first");
    EXPECT_EQ(seen.messages[1], "last");
    EXPECT_EQ(seen.disconnects, 1);
  }
  EXPECT_EQ(loop_.Run([&] { return c->stats().write_deadlines; }), 0u);
  Destroy(other);
  Destroy(c);
}

TEST_F(NatsClientTest, OutputNotDrainedWithinTheWriteDeadlineReconnects) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  Seen seen;
  auto c = Make(OptionsFor(server.url(), /*dial_timeout_ms=*/300), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  server.Pause(true);  // reads nothing: the socket's buffers fill, then the client's output
  struct Resume {
    test::NatsServer& s;
    ~Resume() { s.Pause(false); }  // also when an assertion fails: the server can stop
  } resume{server};
  const std::string chunk(64 * 1024, 'w');
  ASSERT_TRUE(loop_.Run([&] {
    for (int i = 0; i < 200; ++i) {
      if (!c->Publish("t.w", chunk)) return false;
    }
    return true;
  }));
  ASSERT_TRUE(seen.WaitFor([&] { return seen.disconnects == 1; }));
  EXPECT_EQ(loop_.Run([&] { return c->stats().write_deadlines; }), 1u);
  server.Pause(false);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 2; }, 20s));
  Destroy(c);
}

// A server that stops answering (SIGSTOP: its socket stays open, TCP says nothing): the
// keepalive PINGs go unanswered, the client closes and reconnects once the server is back.
TEST_F(NatsClientTest, UnansweredKeepalivePingsCloseAndReconnect) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  Seen seen;
  NatsClient::Options o = OptionsFor(server.url(), /*dial_timeout_ms=*/300);
  o.ping_interval_ms = 100;
  o.max_pings_out = 2;
  auto c = Make(std::move(o), seen);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  // Quiet but answering: keepalive PINGs are answered, the connection stays.
  ASSERT_TRUE(Ping(*c));
  const uint64_t quiet_since = net::Loop::MonotonicMs();
  ASSERT_FALSE(seen.WaitFor([&] { return seen.disconnects > 0; }, 600ms));
  EXPECT_GE(net::Loop::MonotonicMs() - quiet_since, 600u);
  server.Pause(true);
  struct Resume {
    test::NatsServer& s;
    ~Resume() { s.Pause(false); }
  } resume{server};
  ASSERT_TRUE(seen.WaitFor([&] { return seen.disconnects == 1; }));
  EXPECT_EQ(loop_.Run([&] { return c->stats().ping_timeouts; }), 1u);
  EXPECT_EQ(loop_.Run([&] { return c->stats().write_deadlines; }), 0u);
  server.Pause(false);
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 2; }, 20s));
  ASSERT_TRUE(Ping(*c));
  Destroy(c);
}

// A name that does not resolve is a failed attempt like a refused connect: the next URL is
// tried (and connected to).
TEST_F(NatsClientTest, AnUnresolvableNameIsAFailedAttemptAndTheNextIsTried) {
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  std::vector<std::string> failures;
  std::mutex failures_mutex;
  Seen seen;
  NatsClient::Options o = OptionsFor("nats://no-such-host.invalid:4222,nats://127.0.0.1:" +
                                     std::to_string(server.port()));
  auto c = loop_.Run([&] {
    NatsClient::Events e = seen.Events();
    e.attempt_failed = [&](std::string_view url, std::string_view why) {
      std::lock_guard lock(failures_mutex);
      failures.push_back(std::string(url) + ": " + std::string(why));
    };
    auto client = std::make_unique<NatsClient>(loop_.loop(), std::move(o), std::move(e));
    client->Start();
    return client;
  });
  ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
  ASSERT_TRUE(Ping(*c));
  EXPECT_EQ(loop_.Run([&] { return c->stats().failed_attempts; }), 1u);
  {
    std::lock_guard lock(failures_mutex);
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_NE(failures[0].find("no-such-host.invalid"), std::string::npos) << failures[0];
    EXPECT_NE(failures[0].find("cannot resolve"), std::string::npos) << failures[0];
  }
  Destroy(c);
}

TEST_F(NatsClientTest, AuthorizationFailureIsReportedAndRetried) {
  test::NatsServer server;
  server.set_args({"--user", "u", "--pass", "secret"});
  ASSERT_TRUE(server.Start());
  Seen bad_seen;
  auto bad =
      Make(OptionsFor("nats://u:wrong@127.0.0.1:" + std::to_string(server.port())), bad_seen);
  ASSERT_TRUE(bad_seen.WaitFor([&] { return bad_seen.errors.size() >= 2; }));
  EXPECT_NE(bad_seen.errors[0].find("Authorization Violation"), std::string::npos)
      << bad_seen.errors[0];
  EXPECT_EQ(bad_seen.connects, 0);
  EXPECT_FALSE(loop_.Run([&] { return bad->connected(); }));
  EXPECT_GE(loop_.Run([&] { return bad->stats().failed_attempts; }), 2u);
  Seen good_seen;
  auto good =
      Make(OptionsFor("nats://u:secret@127.0.0.1:" + std::to_string(server.port())), good_seen);
  ASSERT_TRUE(good_seen.WaitFor([&] { return good_seen.connects == 1; }));
  EXPECT_TRUE(good_seen.errors.empty());
  Destroy(bad);
  Destroy(good);
}

// A peer that speaks the handshake and then sends a line no server sends: the client counts
// a protocol error, closes, and connects again (to the same peer, which sees a second
// CONNECT). Not nats-server: no real server sends a malformed line.
TEST(NatsClientProtocol, AMalformedLineClosesCountsAndReconnects) {
  int port = 0;
  const int listener = ListenOnLoopback(&port);
  ASSERT_GE(listener, 0);
  // Two connections: the first gets a malformed MSG line after the handshake, the second
  // is left open until the client closes.
  std::thread peer([listener] {
    for (int i = 0; i < 2; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      const std::string info = "INFO {\"max_payload\":1024}\r\n";
      (void)!write(fd, info.data(), info.size());
      std::string got;
      char buf[4096];
      while (got.find("PING\r\n") == std::string::npos) {
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      const std::string reply = i == 0 ? "PONG\r\nMSG a.b 1 nope\r\n" : "PONG\r\n";
      (void)!write(fd, reply.data(), reply.size());
      while (read(fd, buf, sizeof buf) > 0) {
      }
      close(fd);
    }
  });
  Seen seen;
  std::unique_ptr<NatsClient> c;
  {
    LoopThread loop;
    c = loop.Run([&] {
      auto client = std::make_unique<NatsClient>(
          loop.loop(), OptionsFor("nats://127.0.0.1:" + std::to_string(port)), seen.Events());
      client->Start();
      return client;
    });
    EXPECT_TRUE(seen.WaitFor([&] { return seen.connects == 2 && seen.disconnects == 1; }));
    EXPECT_EQ(loop.Run([&] { return c->stats().protocol_errors; }), 1u);
    loop.Run([&] {
      c.reset();
      return 0;
    });
  }
  shutdown(listener, SHUT_RDWR);
  peer.join();
  close(listener);
}

// nats-server sends INFO again on a live connection (a cluster's connect_urls, a lame-duck
// notice): news only, never a second handshake. The client answers the server's PING, writes
// no second CONNECT, stays connected, and takes the new max_payload.
TEST(NatsClientProtocol, AnInfoOnALiveConnectionIsNotASecondHandshake) {
  int port = 0;
  const int listener = ListenOnLoopback(&port);
  ASSERT_GE(listener, 0);
  std::promise<std::string> after;  // what the client wrote after the second INFO
  std::thread peer([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    const std::string info = "INFO {\"max_payload\":1024}\r\n";
    (void)!write(fd, info.data(), info.size());
    std::string got;
    char buf[4096];
    while (got.find("PING\r\n") == std::string::npos) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    const std::string reply =
        "PONG\r\nINFO {\"max_payload\":2048,\"connect_urls\":[\"127.0.0.1:1\"]}\r\nPING\r\n";
    (void)!write(fd, reply.data(), reply.size());
    got.clear();
    while (got.find("PONG\r\n") == std::string::npos) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    after.set_value(got);
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  });
  Seen seen;
  std::unique_ptr<NatsClient> c;
  {
    LoopThread loop;
    c = loop.Run([&] {
      auto client = std::make_unique<NatsClient>(
          loop.loop(), OptionsFor("nats://127.0.0.1:" + std::to_string(port)), seen.Events());
      client->Start();
      return client;
    });
    auto written = after.get_future();
    ASSERT_EQ(written.wait_for(10s), std::future_status::ready);
    const std::string got = written.get();
    EXPECT_EQ(got.find("CONNECT"), std::string::npos) << got;
    EXPECT_NE(got.find("PONG\r\n"), std::string::npos) << got;
    EXPECT_TRUE(loop.Run([&] { return c->connected(); }));
    EXPECT_EQ(loop.Run([&] { return c->max_payload(); }), 2048u);
    {
      std::lock_guard lock(seen.mutex);
      EXPECT_EQ(seen.connects, 1);
      EXPECT_EQ(seen.disconnects, 0);
    }
    loop.Run([&] {
      c.reset();
      return 0;
    });
  }
  shutdown(listener, SHUT_RDWR);
  peer.join();
  close(listener);
}

// A server that takes the output slower than it was queued, but steadily: the write deadline
// counts from the last byte the socket took, so a busy link is not cut. The peer reads 256 KiB
// every 50 ms (20 times within the 1 s deadline) from a 12.8 MB backlog that takes it about
// 2.5 s: a deadline counted from the first full socket would cut it.
TEST(NatsClientProtocol, AServerThatReadsSlowlyButSteadilyIsNotCutByTheWriteDeadline) {
  int port = 0;
  const int listener = ListenOnLoopback(&port, 64 * 1024);  // the backlog stays the client's
  ASSERT_GE(listener, 0);
  constexpr int kChunks = 200;
  const std::string chunk(64 * 1024, 'w');
  std::atomic<bool> published{false};
  std::atomic<size_t> payload_read{0};
  std::promise<void> peer_done;  // every payload byte read, or the connection closed
  std::thread peer([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    const std::string info = "INFO {\"max_payload\":1048576}\r\n";
    (void)!write(fd, info.data(), info.size());
    std::string got;
    char buf[64 * 1024];
    while (got.find("PING\r\n") == std::string::npos) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    (void)!write(fd, "PONG\r\n", 6);
    while (!published.load()) std::this_thread::yield();
    // The payload bytes ('w', in no other part of the PUBs) until all of them came, or the
    // client closed.
    const size_t want = kChunks * chunk.size();
    while (payload_read.load() < want) {
      for (int i = 0; i < 4; ++i) {
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
          peer_done.set_value();
          close(fd);
          return;
        }
        payload_read += static_cast<size_t>(std::count(buf, buf + n, 'w'));
      }
      std::this_thread::sleep_for(50ms);  // pacing the reads, not waiting for anything
    }
    peer_done.set_value();
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  });
  Seen seen;
  std::unique_ptr<NatsClient> c;
  {
    LoopThread loop;
    c = loop.Run([&] {
      auto client = std::make_unique<NatsClient>(
          loop.loop(), OptionsFor("nats://127.0.0.1:" + std::to_string(port), 1000), seen.Events());
      client->Start();
      return client;
    });
    ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
    ASSERT_TRUE(loop.Run([&] {
      for (int i = 0; i < kChunks; ++i) {
        if (!c->Publish("t.x", chunk)) return false;
      }
      return true;
    }));
    published = true;
    // Every payload byte reaches the peer over the one connection.
    ASSERT_EQ(peer_done.get_future().wait_for(30s), std::future_status::ready);
    EXPECT_EQ(payload_read.load(), kChunks * chunk.size());
    EXPECT_EQ(loop.Run([&] { return c->stats().write_deadlines; }), 0u);
    {
      std::lock_guard lock(seen.mutex);
      EXPECT_EQ(seen.disconnects, 0);
    }
    loop.Run([&] {
      c.reset();
      return 0;
    });
  }
  shutdown(listener, SHUT_RDWR);
  peer.join();
  close(listener);
}

// A server that always has some of the output waiting (it reads steadily, the publisher keeps
// max_output_bytes queued): what was written must not stay in the output buffer. Kept until
// the output drained once, the written bytes would grow the buffer by all that passed through
// it (16 MB here, unbounded under a lasting overload), whatever max_output_bytes says.
TEST(NatsClientProtocol, OutputBufferStaysBoundedWhileTheSocketIsAlwaysBehind) {
  int port = 0;
  const int listener = ListenOnLoopback(&port, 64 * 1024);  // the backlog stays the client's
  ASSERT_GE(listener, 0);
  std::thread peer([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    const std::string info = "INFO {\"max_payload\":1048576}\r\n";
    (void)!write(fd, info.data(), info.size());
    std::string got;
    char buf[64 * 1024];
    while (got.find("PING\r\n") == std::string::npos) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    (void)!write(fd, "PONG\r\n", 6);
    // Steady but slower than the publisher (16 KiB every 2 ms: a full max_output_bytes takes
    // it over 100 ms), until closed.
    while (read(fd, buf, 16 * 1024) > 0) std::this_thread::sleep_for(2ms);
    close(fd);
  });
  Seen seen;
  std::unique_ptr<NatsClient> c;
  {
    LoopThread loop;
    NatsClient::Options o = OptionsFor("nats://127.0.0.1:" + std::to_string(port), 5000);
    o.max_output_bytes = 1 << 20;
    c = loop.Run([&] {
      auto client = std::make_unique<NatsClient>(loop.loop(), std::move(o), seen.Events());
      client->Start();
      return client;
    });
    ASSERT_TRUE(seen.WaitFor([&] { return seen.connects == 1; }));
    const std::string chunk(16 * 1024, 'w');
    size_t passed = 0;
    size_t held = 0;
    while (passed < (16u << 20)) {
      // Topped up to max_output_bytes, then the loop writes what the socket takes.
      passed += loop.Run([&] {
        size_t n = 0;
        while (c->Publish("t.x", chunk)) n += chunk.size();
        held = std::max(held, c->output_buffer());
        return n;
      });
      std::this_thread::sleep_for(2ms);  // pacing the publisher, not waiting for anything
    }
    EXPECT_LE(held, 3u << 20) << "the output buffer kept what was written";
    EXPECT_EQ(loop.Run([&] { return c->stats().write_deadlines; }), 0u);
    loop.Run([&] {
      c.reset();
      return 0;
    });
  }
  shutdown(listener, SHUT_RDWR);
  peer.join();
  close(listener);
}

}  // namespace
}  // namespace hermod::broker
