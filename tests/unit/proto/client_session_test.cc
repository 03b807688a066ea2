// The client session through a fake transport (proto/transport.h, the seam): what the
// session sends, pushes and closes with is recorded instead of framed. The rest is real: a
// net::Loop that runs when the test says (on a clock the test moves), core::Hub with proto's
// push codec, channel rules from a Config. The fake is a net::Connection on a socketpair only
// because the hub's subscriptions point at one (closing, CutSlow); nothing is written to it.
#include "proto/client_session.h"

#include <gtest/gtest.h>
#include <jwt.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/later_history_store.h"
#include "auth/token_verifier.h"
#include "config/config.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "log/fields.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "proto/client_registry.h"
#include "proto/prepared_push.h"
#include "proto/transport.h"
#include "store/engines.h"

namespace hermod::proto {
namespace {

// An HS256 connection token with these claims (raw JSON, e.g. server-side `channels`).
std::string Token(const std::string& claims, const char* secret) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, claims.c_str()), 0);
  EXPECT_EQ(jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret),
                        static_cast<int>(strlen(secret))),
            0);
  char* text = jwt_encode_str(jwt);
  std::string token = text != nullptr ? text : "";
  free(text);
  jwt_free(jwt);
  return token;
}

uint64_t fake_now_ms = 1'000'000;
uint64_t FakeNow() { return fake_now_ms; }

// A transport kind of the test's own: its framing is the push's JSON and a newline, built
// once per push and shared by every fake subscriber (the encode-once rule, per kind).
struct LineFrame final : FramedPush {
  explicit LineFrame(std::string_view json) : text(std::string(json) + "\n") {}
  std::string text;
};
int line_frames_built = 0;
FramedPush* FrameLine(std::string_view json) {
  ++line_frames_built;
  return new LineFrame(json);
}
const size_t kLineKind = RegisterTransportKind(&FrameLine);

class FakeTransport final : public net::Connection, public Transport {
 public:
  FakeTransport(net::Loop& loop, int fd, ClientContext& context)
      : net::Connection(loop, fd, nullptr), timer(loop, session), session(*this, context) {}

  net::Loop& loop() const override { return net::Connection::loop(); }
  size_t kind() const override { return kLineKind; }
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override {
    (lane == net::Lane::kControl ? replies : lane_normal).emplace_back(json);
    return net::SendStatus::kQueued;
  }
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass) override {
    if (refuse_pushes) return net::SendStatus::kMissed;
    const auto& frame = static_cast<const LineFrame&>(push.framed(kLineKind));
    frames.push_back(&frame);
    pushes.push_back(frame.text);
    return net::SendStatus::kQueued;
  }
  void Close(Disconnect reason) override { closed_with.push_back(reason.code); }
  size_t queued_bytes() const override { return 0; }
  bool closing() const override { return net::Connection::closing(); }
  std::string PeerIp() const override { return "192.0.2.1"; }
  net::Connection& connection() override { return *this; }
  void SetSessionTimer(uint64_t due_ms) override { timer.Set(due_ms); }
  ClientSession& client_session() override { return session; }

  void OnData(uint8_t*, size_t) override {}
  void OnClosed() override { session.OnTransportClosed(); }

  SessionTimer timer;  // before the session, which sets it when it is made
  ClientSession session;
  std::vector<std::string> replies;      // control lane: replies, pings, own pushes
  std::vector<std::string> lane_normal;  // behind the queued publications
  std::vector<std::string> pushes;       // the hub's, as framed for this kind
  std::vector<const FramedPush*> frames;
  std::vector<uint16_t> closed_with;
  bool refuse_pushes = false;  // SendPush answers kMissed (backpressure)
};

class ClientSessionTest : public ::testing::Test {
 protected:
  ClientSessionTest() : ClientSessionTest(store::MemoryStores(), MakeConfig()) {}
  ClientSessionTest(core::Stores stores, config::Config config)
      : config_(std::move(config)), hub_(1, JsonPushCodec(), std::move(stores)) {
    fake_now_ms = 1'000'000;
    context_.options.allow_anonymous = true;
    context_.options.ping_interval_ms = 10'000;
    context_.options.pong_timeout_ms = 4'000;
    context_.options.stale_close_ms = 5'000;
    hub_.AttachLoop(loop_);
  }
  ~ClientSessionTest() override {
    // Closed the way a peer's FIN closes them: each session unsubscribes and leaves the
    // registry, then the loop frees them at the end of the iteration.
    for (FakeTransport* t : transports_) {
      if (!t->closed()) t->net::Connection::Close();
    }
    RunOnce();
    for (int fd : peers_) close(fd);
  }

  FakeTransport& NewClient() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peers_.push_back(fds[1]);
    transports_.push_back(new FakeTransport(loop_, fds[0], context_));
    return *transports_.back();
  }
  FakeTransport& Connected() {
    FakeTransport& t = NewClient();
    t.session.OnMessage(R"({"id":1,"connect":{}})");
    EXPECT_TRUE(t.session.connected());
    t.replies.clear();
    return t;
  }
  // Runs the loop's mailbox once (and its timers, at the fake clock).
  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  void Advance(uint64_t ms) {
    fake_now_ms += ms;
    RunOnce();
  }

  uint64_t clock_reset_ = fake_now_ms = 1'000'000;
  net::Loop loop_{0, 4096, &FakeNow};
  static config::Config MakeConfig() {
    config::Config config;
    config.channel.allow_subscribe_for_client = true;
    config.channel.allow_subscribe_for_anonymous = true;
    config.channel.allow_publish_for_client = true;
    config.channel.push_coalesce_max_bytes = 0;  // a push leaves with its mailbox run
    return config;
  }

  config::Config config_;
  core::ChannelRules rules_{config_};
  static auth::TokenKeys Keys() {
    auth::TokenKeys keys;
    keys.hmac_secret = kSecret;
    return keys;
  }
  static constexpr const char* kSecret = "secret";
  auth::TokenVerifier tokens_{Keys()};
  core::Hub hub_;
  ClientRegistry registry_{1};
  ClientContext context_{hub_, rules_, tokens_, ClientOptions{}, &registry_, nullptr};
  std::vector<FakeTransport*> transports_;  // the loop owns them
  std::vector<int> peers_;
};

TEST_F(ClientSessionTest, ConnectRepliesWithTheClientIdAndIsCountedByUser) {
  FakeTransport& t = NewClient();
  t.session.OnMessage(R"({"id":1,"connect":{}})");
  ASSERT_EQ(t.replies.size(), 1u);
  EXPECT_TRUE(t.replies[0].starts_with(R"({"id":1,"connect":{"client":")")) << t.replies[0];
  EXPECT_NE(t.replies[0].find(R"("ping":10,"pong":true)"), std::string::npos) << t.replies[0];
  EXPECT_EQ(t.session.client_id().size(), 36u);
  EXPECT_EQ(registry_.Get(), (std::pair<size_t, size_t>{1, 1}));
  int found = 0;
  registry_.ForEachOfUser(loop_, "", "", [&](ClientSession& s) {
    EXPECT_EQ(&s, &t.session);
    ++found;
  });
  EXPECT_EQ(found, 1);
  registry_.ForEachOfUser(loop_, "someone", "", [&](ClientSession&) { ++found; });
  EXPECT_EQ(found, 1);
  t.session.Disconnect(kDisconnectShutdown);
  EXPECT_EQ(registry_.Get(), (std::pair<size_t, size_t>{0, 0}));
  registry_.ForEachOfUser(loop_, "", "", [&](ClientSession&) { ++found; });
  EXPECT_EQ(found, 1);
}

TEST_F(ClientSessionTest, TheFirstCommandMustBeConnect) {
  FakeTransport& t = NewClient();
  t.session.OnMessage(R"({"id":1,"subscribe":{"channel":"news"}})");
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{3501});
  EXPECT_TRUE(t.replies.empty());
  EXPECT_EQ(registry_.Get().first, 0u);
}

TEST_F(ClientSessionTest, MalformedJsonAndASecondConnectAreBadRequests) {
  FakeTransport& a = NewClient();
  a.session.OnMessage("{not json");
  EXPECT_EQ(a.closed_with, std::vector<uint16_t>{3501});
  FakeTransport& b = Connected();
  b.session.OnMessage(R"({"id":2,"connect":{}})");
  EXPECT_EQ(b.closed_with, std::vector<uint16_t>{3501});
}

TEST_F(ClientSessionTest, AConnectTokenThatDoesNotVerifyIsDisconnectedWith3500) {
  FakeTransport& t = NewClient();
  t.session.OnMessage(R"({"id":1,"connect":{"token":"a.b.c"}})");
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{3500});
  EXPECT_FALSE(t.session.connected());
}

TEST_F(ClientSessionTest, SubscribePublishAndThePushFramedOnceForItsKind) {
  FakeTransport& a = Connected();
  FakeTransport& b = Connected();
  a.session.OnMessage(R"({"id":2,"subscribe":{"channel":"news"}})");
  b.session.OnMessage(R"({"id":2,"subscribe":{"channel":"news"}})");
  EXPECT_EQ(a.replies, std::vector<std::string>{R"({"id":2,"subscribe":{}})"});
  // Two commands in one message: one reply message, newline-joined.
  b.replies.clear();
  b.session.OnMessage(
      "{\"id\":3,\"publish\":{\"channel\":\"news\",\"data\":{\"n\":1}}}\n"
      "{\"id\":4,\"unknown_method\":{}}");
  ASSERT_EQ(b.replies.size(), 1u);
  EXPECT_EQ(b.replies[0],
            "{\"id\":3,\"publish\":{}}\n{\"id\":4,\"error\":{\"code\":104,"
            "\"message\":\"method not found\"}}");
  const int built = line_frames_built;
  RunOnce();
  ASSERT_EQ(a.pushes.size(), 1u);
  ASSERT_EQ(b.pushes.size(), 1u);
  EXPECT_TRUE(a.pushes[0].starts_with(R"({"push":{"channel":"news","pub":{"data":{"n":1},)"))
      << a.pushes[0];
  EXPECT_TRUE(a.pushes[0].ends_with("}}}\n")) << a.pushes[0];
  // Framed once for this kind, and both subscribers got the same frame.
  EXPECT_EQ(line_frames_built, built + 1);
  EXPECT_EQ(a.frames[0], b.frames[0]);
}

TEST_F(ClientSessionTest, ARefusedCommandGetsItsErrorReplyAndTheSessionGoesOn) {
  FakeTransport& t = Connected();
  t.session.OnMessage(R"({"id":2,"subscribe":{"channel":"nons:news"}})");
  t.session.OnMessage(R"({"id":3,"history":{"channel":"news"}})");
  t.session.OnMessage(R"({"id":4,"subscribe":{"channel":"news"}})");
  t.session.OnMessage(R"({"id":5,"subscribe":{"channel":"news"}})");
  ASSERT_EQ(t.replies.size(), 4u);
  EXPECT_EQ(t.replies[0], R"({"id":2,"error":{"code":102,"message":"unknown channel"}})");
  EXPECT_EQ(t.replies[1], R"({"id":3,"error":{"code":108,"message":"not available"}})");
  EXPECT_EQ(t.replies[2], R"({"id":4,"subscribe":{}})");
  EXPECT_EQ(t.replies[3], R"({"id":5,"error":{"code":105,"message":"already subscribed"}})");
  EXPECT_TRUE(t.closed_with.empty());
}

TEST_F(ClientSessionTest, ARateLimitedCommandGets111ThenPersistentAbuseIs3013) {
  context_.options.rate_limits.total = {1, 1};  // one command a second
  context_.options.rate_limits.disconnect_after = 3;
  context_.options.rate_limits.disconnect_window_ms = 60'000;
  FakeTransport& t = Connected();
  t.session.OnMessage(R"({"id":2,"subscribe":{"channel":"a"}})");
  t.session.OnMessage(R"({"id":3,"subscribe":{"channel":"b"}})");
  ASSERT_EQ(t.replies.size(), 2u);
  EXPECT_EQ(t.replies[1],
            R"({"id":3,"error":{"code":111,"message":"too many requests","temporary":true}})");
  for (int i = 4; i < 10 && t.closed_with.empty(); ++i) {
    t.session.OnMessage(R"({"id":)" + std::to_string(i) + R"(,"subscribe":{"channel":"c"}})");
  }
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{3013});
}

TEST_F(ClientSessionTest, AMissedPushIsToldAsUnsubscribe2500BehindThePublications) {
  FakeTransport& t = Connected();
  t.session.OnMessage(R"({"id":2,"subscribe":{"channel":"news"}})");
  t.refuse_pushes = true;
  ASSERT_TRUE(hub_.Publish({"news", &config_.channel, R"({"n":1})", ""}));
  RunOnce();
  EXPECT_TRUE(t.pushes.empty());
  EXPECT_EQ(t.lane_normal,
            std::vector<std::string>{R"({"push":{"channel":"news","unsubscribe":{"code":2500,)"
                                     R"("reason":"slow: publications lost"}}})"});
  EXPECT_TRUE(t.closed_with.empty());
  // Unsubscribed: the next publication is not sent to it at all.
  t.refuse_pushes = false;
  ASSERT_TRUE(hub_.Publish({"news", &config_.channel, R"({"n":2})", ""}));
  RunOnce();
  EXPECT_TRUE(t.pushes.empty());
  EXPECT_EQ(t.lane_normal.size(), 1u);
}

// The session's subscription list keeps its first entry inside and moves to the heap from
// the second: subscribing past it, unsubscribing from the middle and subscribing again keep
// every channel's pushes, and only its own.
TEST_F(ClientSessionTest, SubscriptionsGrowPastTheOneInsideAndLeaveFromTheMiddle) {
  FakeTransport& t = Connected();
  const char* channels[] = {"a", "b", "c", "d"};
  uint32_t id = 2;
  for (const char* c : channels) {
    t.session.OnMessage(R"({"id":)" + std::to_string(id++) + R"(,"subscribe":{"channel":")" + c +
                        R"("}})");
  }
  ASSERT_EQ(t.replies.size(), 4u);
  t.session.OnMessage(R"({"id":9,"unsubscribe":{"channel":"b"}})");
  t.session.OnMessage(R"({"id":10,"subscribe":{"channel":"e"}})");
  t.session.OnMessage(R"({"id":11,"unsubscribe":{"channel":"a"}})");
  for (const char* c : {"a", "b", "c", "d", "e"}) {
    ASSERT_TRUE(hub_.Publish({c, &config_.channel, R"({"n":1})", ""}));
  }
  RunOnce();
  std::vector<std::string> got;
  for (const std::string& p : t.pushes) got.push_back(p.substr(0, p.find(",\"pub\"")));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{R"({"push":{"channel":"c")", R"({"push":{"channel":"d")",
                                           R"({"push":{"channel":"e")"}));
  // The rest leave with the transport (the fixture closes it): UnsubscribeAll on the heap.
}

// Each line's log::Write fields, as the JSON log format reads them (log/fields.h).
class FieldSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::map<std::string, std::string>> lines;

 protected:
  void sink_it_(const spdlog::details::log_msg&) override {
    std::map<std::string, std::string> fields;
    for (const log::Field& f : log::CurrentFields()) {
      fields[std::string(f.key)] = f.is_number ? std::to_string(f.number) : std::string(f.text);
    }
    lines.push_back(std::move(fields));
  }
  void flush_() override {}
};

TEST_F(ClientSessionTest, TheLogLineOfAMissedPushCarriesItsChannelAsAField) {
  // The line is throttled per loop thread (a second): an earlier test on this thread may
  // have had the second that starts at the fixture's clock.
  Advance(3'600'000);
  auto sink = std::make_shared<FieldSink>();
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  FakeTransport& t = Connected();
  t.session.OnMessage(R"({"id":2,"subscribe":{"channel":"news"}})");
  t.refuse_pushes = true;
  ASSERT_TRUE(hub_.Publish({"news", &config_.channel, R"({"n":1})", ""}));
  RunOnce();
  spdlog::set_default_logger(previous);
  ASSERT_EQ(sink->lines.size(), 1u);
  EXPECT_EQ(sink->lines[0]["channel"], "news");
  EXPECT_EQ(sink->lines[0]["client"], t.session.client_id());
  EXPECT_EQ(sink->lines[0]["code"], "2500");
}

TEST_F(ClientSessionTest, PingsEveryIntervalAndAClientSilentPastThePongTimeoutIs3012) {
  FakeTransport& t = Connected();
  Advance(10'000);
  EXPECT_EQ(t.replies, std::vector<std::string>{"{}"});
  t.session.OnMessage("{}");  // the pong
  Advance(3'999);             // a pong timeout after the ping: answered, nothing happens
  EXPECT_TRUE(t.closed_with.empty());
  Advance(6'001);  // the second ping, never answered
  EXPECT_EQ(t.replies.size(), 2u);
  Advance(3'000);
  EXPECT_TRUE(t.closed_with.empty());
  Advance(1'100);
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{3012});
}

TEST_F(ClientSessionTest, ClientsThatConnectedWithinATenthOfASecondArePingedTogether) {
  FakeTransport& first = Connected();
  Advance(40);
  FakeTransport& second = Connected();
  Advance(9'960);  // the first's interval: the second's ping is 40 ms early, not 40 ms apart
  EXPECT_EQ(first.replies, std::vector<std::string>{"{}"});
  EXPECT_EQ(second.replies, std::vector<std::string>{"{}"});
  first.session.OnMessage("{}");
  second.session.OnMessage("{}");
  Advance(9'999);
  EXPECT_EQ(second.replies.size(), 1u);
  Advance(1);  // and they stay together
  EXPECT_EQ(first.replies.size(), 2u);
  EXPECT_EQ(second.replies.size(), 2u);
}

TEST_F(ClientSessionTest, AConnectionWithoutConnectIsClosedStaleWith3502) {
  FakeTransport& t = NewClient();
  Advance(4'900);
  EXPECT_TRUE(t.closed_with.empty());
  Advance(200);
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{3502});
}

TEST_F(ClientSessionTest, TheApiActionsSubscribeUnsubscribeAndDisconnect) {
  FakeTransport& t = Connected();
  t.session.SubscribeFromServer("news");
  ASSERT_EQ(t.replies.size(), 1u);
  EXPECT_EQ(t.replies[0], R"({"push":{"channel":"news","subscribe":{}}})");
  t.session.UnsubscribeFromServer("news");
  ASSERT_EQ(t.replies.size(), 2u);
  EXPECT_EQ(
      t.replies[1],
      R"({"push":{"channel":"news","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}})");
  t.session.Disconnect({4000, "custom"});
  t.session.Disconnect(kDisconnectShutdown);  // once only
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{4000});
  t.session.OnMessage(R"({"id":9,"subscribe":{"channel":"news"}})");  // ignored once closed
  EXPECT_EQ(t.replies.size(), 2u);
}

TEST_F(ClientSessionTest, TheTransportsEndUnsubscribesAndLeavesTheRegistry) {
  FakeTransport& t = Connected();
  t.session.OnMessage(R"({"id":2,"subscribe":{"channel":"news"}})");
  EXPECT_EQ(registry_.Get().first, 1u);
  t.net::Connection::Close();  // the peer went away: OnClosed
  EXPECT_EQ(registry_.Get().first, 0u);
  std::erase(transports_, &t);
  RunOnce();  // frees t
  EXPECT_EQ(hub_.Presence("news").size(), 0u);
}

// The same session over a history engine that completes later (its reads on a thread the
// test holds): the subscribe reply of a recovering client waits for the engine.
class ClientSessionLaterStoreTest : public ClientSessionTest {
 protected:
  ClientSessionLaterStoreTest() : ClientSessionTest(Stores(), HistoryConfig()), history_(made_) {}
  ~ClientSessionLaterStoreTest() override { WaitForReads(); }
  static core::Stores Stores() { return core::LaterStores(&made_); }
  static config::Config HistoryConfig() {
    config::Config config = MakeConfig();
    config.channel.history_size = 100;
    config.channel.history_ttl.ms = 60'000;
    config.channel.force_recovery = true;  // server-side subscriptions recover
    return config;
  }
  // Publishes and waits until the publication is stored and posted to the loop.
  void Publish(std::string_view data, std::string_view channel = "news") {
    std::promise<void> stored;
    core::Hub::PublishRequest r{channel, &config_.channel, data, ""};
    r.done = core::Completion<core::Hub::PublishResult>([&](core::Hub::PublishResult result) {
      EXPECT_TRUE(result.ok());
      stored.set_value();
    });
    EXPECT_EQ(hub_.Publish(std::move(r)).refusal, core::Hub::Refusal::kPending);
    stored.get_future().wait();
  }
  // Every read asked so far has completed (and posted its answer to the loop).
  void WaitForReads() {
    std::promise<void> idle;
    history_->reader().Post([&] { idle.set_value(); });
    idle.get_future().wait();
  }
  static inline core::LaterHistoryStore* made_ = nullptr;
  core::LaterHistoryStore* history_;
};

TEST_F(ClientSessionLaterStoreTest, TheRecoveredReplyComesWhenTheEngineAnswersThenTheLivePushes) {
  FakeTransport& t = Connected();
  Publish(R"({"n":1})");
  Publish(R"({"n":2})");
  history_->reader().SetOpen(false);
  t.session.OnMessage(
      R"({"id":2,"subscribe":{"channel":"news","recoverable":true,"recover":true,"offset":1,"epoch":"later"}})");
  EXPECT_TRUE(t.replies.empty());  // the engine has not answered
  Publish(R"({"n":3})");           // during the read: held for the subscriber
  RunOnce();
  EXPECT_TRUE(t.replies.empty());
  EXPECT_TRUE(t.pushes.empty());
  history_->reader().SetOpen(true);
  WaitForReads();
  RunOnce();
  ASSERT_EQ(t.replies.size(), 1u);
  const std::string& reply = t.replies[0];
  EXPECT_TRUE(reply.starts_with(R"({"id":2,"subscribe":{)")) << reply;
  EXPECT_NE(reply.find(R"("recovered":true)"), std::string::npos) << reply;
  EXPECT_NE(reply.find(R"("data":{"n":2},"offset":2)"), std::string::npos) << reply;
  EXPECT_EQ(reply.find(R"("n":1)"), std::string::npos) << reply;
  EXPECT_EQ(reply.find(R"("n":3)"), std::string::npos) << reply;
  EXPECT_NE(reply.find(R"("offset":2)"), std::string::npos) << reply;
  ASSERT_EQ(t.pushes.size(), 1u);
  EXPECT_NE(t.pushes[0].find(R"("data":{"n":3},"offset":3)"), std::string::npos) << t.pushes[0];
  Publish(R"({"n":4})");
  RunOnce();
  ASSERT_EQ(t.pushes.size(), 2u);
  EXPECT_NE(t.pushes[1].find(R"("data":{"n":4},"offset":4)"), std::string::npos) << t.pushes[1];
}

TEST_F(ClientSessionLaterStoreTest, AClientThatUnsubscribesBeforeTheEngineAnswersGetsNoReplyForIt) {
  FakeTransport& t = Connected();
  Publish(R"({"n":1})");
  history_->reader().SetOpen(false);
  t.session.OnMessage(
      R"({"id":2,"subscribe":{"channel":"news","recoverable":true,"recover":true,"offset":0,"epoch":"later"}})");
  Publish(R"({"n":2})");
  RunOnce();
  t.session.OnMessage(R"({"id":3,"unsubscribe":{"channel":"news"}})");
  // Subscribed again at once, recovering too: only the second recovery answers it.
  t.session.OnMessage(
      R"({"id":4,"subscribe":{"channel":"news","recoverable":true,"recover":true,"offset":1,"epoch":"later"}})");
  history_->reader().SetOpen(true);
  WaitForReads();
  RunOnce();
  ASSERT_EQ(t.replies.size(), 2u);
  EXPECT_EQ(t.replies[0], R"({"id":3,"unsubscribe":{}})");
  EXPECT_TRUE(t.replies[1].starts_with(R"({"id":4,"subscribe":{)")) << t.replies[1];
  EXPECT_NE(t.replies[1].find(R"("data":{"n":2},"offset":2)"), std::string::npos) << t.replies[1];
  EXPECT_TRUE(t.pushes.empty());  // n=2 came in the second reply, never as a push
}

TEST_F(ClientSessionLaterStoreTest,
       MoreThanTheWriteBudgetHeldDuringTheReadIsToldAs2500AfterTheReply) {
  FakeTransport& t = Connected();
  Publish(R"({"n":1})");
  loop_.set_max_write_buffer_bytes(400);
  history_->reader().SetOpen(false);
  t.session.OnMessage(
      R"({"id":2,"subscribe":{"channel":"news","recoverable":true,"recover":true,"offset":1,"epoch":"later"}})");
  const std::string big(150, 'x');
  for (int i = 0; i < 4; ++i) Publish(R"({"big":")" + big + R"("})");
  RunOnce();  // held, past the budget: dropped
  history_->reader().SetOpen(true);
  WaitForReads();
  RunOnce();
  ASSERT_EQ(t.replies.size(), 1u);
  EXPECT_NE(t.replies[0].find(R"("recovered":true)"), std::string::npos) << t.replies[0];
  EXPECT_TRUE(t.pushes.empty());
  EXPECT_EQ(t.lane_normal,
            std::vector<std::string>{R"({"push":{"channel":"news","unsubscribe":{"code":2500,)"
                                     R"("reason":"insufficient state"}}})"});
}

// Server-side subscriptions (the connection token's `channels`) recovered from connect.subs:
// the connect reply waits for the engine, as a subscribe's does; every server-side
// subscription holds what is published meanwhile and gets it after the reply, once.
TEST_F(ClientSessionLaterStoreTest,
       AConnectRecoversItsServerSideSubscriptionsWhenTheEngineAnswers) {
  Publish(R"({"n":1})");
  Publish(R"({"n":2})");
  history_->reader().SetOpen(false);
  FakeTransport& t = NewClient();
  t.session.OnMessage(R"({"id":1,"connect":{"token":")" +
                      Token(R"({"sub":"u1","channels":["news","other"]})", kSecret) +
                      R"(","subs":{"news":{"recover":true,"offset":1,"epoch":"later"}}}})");
  EXPECT_TRUE(t.session.connected());
  EXPECT_TRUE(t.replies.empty());  // the engine has not answered
  Publish(R"({"n":3})");           // during the read: held
  Publish(R"({"o":1})", "other");  // not recovering, but held behind the reply too
  RunOnce();
  EXPECT_TRUE(t.replies.empty());
  EXPECT_TRUE(t.pushes.empty());
  history_->reader().SetOpen(true);
  WaitForReads();
  RunOnce();
  ASSERT_EQ(t.replies.size(), 1u);
  const std::string& reply = t.replies[0];
  EXPECT_TRUE(reply.starts_with(R"({"id":1,"connect":{"client":")")) << reply;
  const size_t news = reply.find(R"("news":{)");
  const size_t other = reply.find(R"("other":{)");
  ASSERT_NE(news, std::string::npos) << reply;
  ASSERT_NE(other, std::string::npos) << reply;
  const std::string news_sub = reply.substr(news, other > news ? other - news : std::string::npos);
  EXPECT_NE(news_sub.find(R"("recovered":true)"), std::string::npos) << reply;
  EXPECT_NE(news_sub.find(R"("data":{"n":2},"offset":2)"), std::string::npos) << reply;
  EXPECT_EQ(reply.find(R"("n":1)"), std::string::npos) << reply;
  EXPECT_EQ(reply.find(R"("n":3)"), std::string::npos) << reply;
  EXPECT_EQ(reply.find(R"("o":1)"), std::string::npos) << reply;
  ASSERT_EQ(t.pushes.size(), 2u);
  EXPECT_NE(t.pushes[0].find(R"("data":{"n":3},"offset":3)"), std::string::npos) << t.pushes[0];
  EXPECT_NE(t.pushes[1].find(R"("data":{"o":1},"offset":1)"), std::string::npos) << t.pushes[1];
  Publish(R"({"n":4})");
  RunOnce();
  ASSERT_EQ(t.pushes.size(), 3u);
  EXPECT_NE(t.pushes[2].find(R"("data":{"n":4},"offset":4)"), std::string::npos) << t.pushes[2];
}

// A recovery the engine cannot make (another epoch): recovered false with the position, and
// the pushes held meanwhile follow the reply.
TEST_F(ClientSessionLaterStoreTest, AConnectWhoseRecoveryFailsIsToldNotRecoveredThenGetsTheHeld) {
  Publish(R"({"n":1})");
  history_->reader().SetOpen(false);
  FakeTransport& t = NewClient();
  t.session.OnMessage(R"({"id":1,"connect":{"token":")" +
                      Token(R"({"sub":"u1","channels":["news"]})", kSecret) +
                      R"(","subs":{"news":{"recover":true,"offset":1,"epoch":"gone"}}}})");
  EXPECT_TRUE(t.replies.empty());
  Publish(R"({"n":2})");
  RunOnce();
  history_->reader().SetOpen(true);
  WaitForReads();
  RunOnce();
  ASSERT_EQ(t.replies.size(), 1u);
  EXPECT_EQ(t.replies[0].find(R"("recovered")"), std::string::npos) << t.replies[0];  // false
  EXPECT_NE(t.replies[0].find(R"("offset":1,"was_recovering":true)"), std::string::npos)
      << t.replies[0];
  ASSERT_EQ(t.pushes.size(), 1u);
  EXPECT_NE(t.pushes[0].find(R"("data":{"n":2},"offset":2)"), std::string::npos) << t.pushes[0];
}

// A connection that ends before the engine answers is sent nothing.
TEST_F(ClientSessionLaterStoreTest, AConnectionGoneBeforeItsConnectRecoveryIsSentNothing) {
  history_->reader().SetOpen(false);
  FakeTransport& t = NewClient();
  t.session.OnMessage(R"({"id":1,"connect":{"token":")" +
                      Token(R"({"sub":"u1","channels":["news"]})", kSecret) +
                      R"(","subs":{"news":{"recover":true,"offset":0,"epoch":"later"}}}})");
  t.session.Disconnect({4000, "custom"});
  history_->reader().SetOpen(true);
  WaitForReads();
  RunOnce();
  EXPECT_TRUE(t.replies.empty());
  EXPECT_EQ(t.closed_with, std::vector<uint16_t>{4000});
}

// The session over a presence engine that may list later: the memory engine, asked with a
// completion, answers through it (on the loop's mailbox), as a later engine would.
class ClientSessionLaterPresenceTest : public ClientSessionTest {
 protected:
  ClientSessionLaterPresenceTest() : ClientSessionTest(Stores(), PresenceConfig()) {}
  static core::Stores Stores() {
    core::Stores stores = store::MemoryStores();
    stores.presence_inline = false;
    return stores;
  }
  static config::Config PresenceConfig() {
    config::Config config = MakeConfig();
    config.channel.presence = true;
    config.channel.allow_presence_for_subscriber = true;
    return config;
  }
};

TEST_F(ClientSessionLaterPresenceTest, PresenceAndItsStatsAreAnsweredWhenTheEngineAnswers) {
  FakeTransport& t = Connected();
  t.session.OnMessage(R"({"id":2,"subscribe":{"channel":"news"}})");
  ASSERT_EQ(t.replies.size(), 1u);
  t.replies.clear();
  t.session.OnMessage(R"({"id":3,"presence":{"channel":"news"}})");
  t.session.OnMessage(R"({"id":4,"presence_stats":{"channel":"news"}})");
  EXPECT_TRUE(t.replies.empty());  // answered through the loop, not inline
  RunOnce();
  ASSERT_EQ(t.replies.size(), 2u);
  EXPECT_TRUE(t.replies[0].starts_with(R"({"id":3,"presence":{"presence":{")")) << t.replies[0];
  EXPECT_NE(t.replies[0].find(t.session.client_id()), std::string::npos) << t.replies[0];
  EXPECT_EQ(t.replies[1], R"({"id":4,"presence_stats":{"num_clients":1,"num_users":1}})");
}

}  // namespace
}  // namespace hermod::proto
