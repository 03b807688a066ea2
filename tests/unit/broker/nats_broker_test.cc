// The nats engine's interest rounds (broker/nats_broker.h) against a raw peer playing
// nats-server, which answers each PING when the test says so.
#include "broker/nats_broker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "config/config.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "proto/prepared_push.h"
#include "store/engines.h"
#include "tests/unit/broker/loop_thread.h"
#include "tests/unit/broker/raw_peer.h"

namespace hermod::broker {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

using test::ListenOnLoopback;

// Reads fd into *got until it holds `until` after position from, or timeout passes (or the
// socket ends); true once it does.
bool ReadUntil(int fd, std::string* got, size_t from, const std::string& until,
               milliseconds timeout) {
  const auto end = steady_clock::now() + timeout;
  char buf[4096];
  while (got->find(until, from) == std::string::npos) {
    const auto left = duration_cast<milliseconds>(end - steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    got->append(buf, static_cast<size_t>(n));
  }
  return true;
}

void Write(int fd, const std::string& bytes) { (void)!write(fd, bytes.data(), bytes.size()); }

// A round's SUBs leave while an earlier round still waits for its PONG, and each round's
// subscribers are answered at its own PONG, in order: a connect storm's subscribe replies wait
// one round trip, not one per round before them.
TEST(NatsBrokerRounds, ARoundInFlightDoesNotHoldBackTheNextAndTheyEndInOrder) {
  int port = 0;
  const int listener = ListenOnLoopback(&port);
  ASSERT_GE(listener, 0);
  std::promise<void> connected;
  std::promise<bool> first_sub;   // SUB of channel a and a PING after it
  std::promise<bool> second_sub;  // SUB of channel b and a PING after it, before any PONG
  std::promise<void> pong_first;
  std::promise<void> pong_second;
  std::thread peer([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    Write(fd, "INFO {\"max_payload\":1048576}\r\n");
    std::string got;
    ReadUntil(fd, &got, 0, "PING\r\n", 10s);
    Write(fd, "PONG\r\n");
    size_t at = got.size();
    connected.set_value();
    bool ok = ReadUntil(fd, &got, at, ".ch.a ", 10s);
    at = got.find(".ch.a ", at);
    first_sub.set_value(ok && ReadUntil(fd, &got, at, "PING\r\n", 10s));
    at = got.find("PING\r\n", at) + 1;
    ok = ReadUntil(fd, &got, at, ".ch.b ", 10s);
    const size_t b = got.find(".ch.b ", at);
    second_sub.set_value(ok && ReadUntil(fd, &got, b, "PING\r\n", 10s));
    pong_first.get_future().wait();
    Write(fd, "PONG\r\n");
    pong_second.get_future().wait();
    Write(fd, "PONG\r\n");
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  });

  config::Config config;
  core::ChannelRules rules(config);
  core::Hub hub(0, proto::JsonPushCodec(), store::MemoryStores());
  test::LoopThread loop;
  NatsBroker::Options o;
  o.url = "nats://127.0.0.1:" + std::to_string(port);
  o.dial_timeout_ms = 20000;  // no round is given up on while the test holds its PONG
  auto broker = std::make_unique<NatsBroker>(o, hub, rules, loop.loop());
  std::string error;
  ASSERT_TRUE(broker->Start(&error)) << error;
  ASSERT_EQ(connected.get_future().wait_for(10s), std::future_status::ready);

  std::promise<void> a_ready;
  std::promise<void> b_ready;
  auto a_done = a_ready.get_future();
  auto b_done = b_ready.get_future();
  broker->Interest("a", true);
  ASSERT_TRUE(broker->AwaitInterest("a", [&] { a_ready.set_value(); }));
  ASSERT_TRUE(first_sub.get_future().get());
  broker->Interest("b", true);
  ASSERT_TRUE(broker->AwaitInterest("b", [&] { b_ready.set_value(); }));
  EXPECT_TRUE(second_sub.get_future().get()) << "the second round waited for the first's PONG";
  EXPECT_EQ(a_done.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(b_done.wait_for(0s), std::future_status::timeout);

  pong_first.set_value();
  ASSERT_EQ(a_done.wait_for(10s), std::future_status::ready);
  // The first PONG answers the first round only.
  EXPECT_EQ(b_done.wait_for(100ms), std::future_status::timeout);
  pong_second.set_value();
  EXPECT_EQ(b_done.wait_for(10s), std::future_status::ready);
  // Both acknowledged: a later subscriber of either waits for nothing.
  EXPECT_FALSE(broker->AwaitInterest("a", [] {}));
  EXPECT_FALSE(broker->AwaitInterest("b", [] {}));

  broker.reset();
  shutdown(listener, SHUT_RDWR);
  peer.join();
  close(listener);
}

}  // namespace
}  // namespace hermod::broker
