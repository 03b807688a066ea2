// Presence join/leave batching (a namespace's join_leave_batch_delay) on an injectable clock:
// one loop that runs only when the test says, its timer wheel driven by the fake clock, so a
// window ends exactly when the test moves time past it, with no sleep. A watcher is a
// Connection on a socketpair: what its peer reads is what the hub queued to it.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "chunk_push.h"
#include "core/hub.h"
#include "net/connection.h"
#include "stats/loop_metrics.h"
#include "store/engines.h"

namespace hermod::core {
namespace {

uint64_t now_ms = 1'000'000;
uint64_t FakeNow() { return now_ms; }

std::string Publication(std::string_view data, std::string_view, uint64_t, std::string_view) {
  return std::string(data);
}
Push* PublicationPush(std::string_view, std::string_view publication) {
  return new ChunkPush(std::string(publication) + "\n");
}
// "join <info>\n": the tests use the client's name as its info.
Push* JoinLeave(std::string_view, bool join, std::string_view info) {
  return new ChunkPush((join ? "join " : "leave ") + std::string(info) + "\n");
}
// Sizes of the joined pushes built, in order.
std::vector<size_t> joins;
Push* JoinPushes(const Push* const* pushes, size_t count) {
  std::string text;
  for (size_t i = 0; i < count; ++i) text += static_cast<const ChunkPush*>(pushes[i])->text();
  joins.push_back(count);
  return new ChunkPush(text);
}

class Sink final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

class JoinLeaveBatchTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kWindowMs = 100;
  void SetUp() override {
    joins.clear();
    stats::BindThread(&metrics_);
    hub_.AttachLoop(loop_);
    options_.presence = true;
    options_.join_leave = true;
    options_.push_coalesce_max_bytes = 0;  // what the hub posts leaves as it is
    options_.join_leave_batch_delay.ms = kWindowMs;
    options_.join_leave_batch_max = 100;
    watcher_ = NewPeer(&watcher_connection_);
    watch_.connection = watcher_connection_;
    watch_.wants_join_leave = true;
    others_ = NewPeer(&others_connection_);
  }
  void TearDown() override {
    stats::BindThread(nullptr);
    close(watcher_);
    close(others_);
  }
  int NewPeer(Sink** connection) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    *connection = new Sink(loop_, fds[0], nullptr);
    return fds[1];
  }
  // A client subscription that does not want join/leave itself.
  Subscription* Client(const std::string& client) {
    auto& s = clients_[client];
    if (!s) {
      s = std::make_unique<Subscription>();
      s->connection = others_connection_;
    }
    return s.get();
  }
  void Subscribe(const std::string& client, Subscription* s, const std::string& user = "u") {
    Hub::SubscribeRequest r;
    r.channel = "ch";
    r.options = &options_;
    r.client = client;
    r.user = user;
    r.info = client;
    hub_.Subscribe(loop_, r, s);
  }
  void Join(const std::string& client, const std::string& user = "u") {
    Subscribe(client, Client(client), user);
  }
  void Leave(const std::string& client) {
    hub_.Unsubscribe(loop_, "ch", options_, client, client, Client(client));
  }
  // Moves the clock on, fires the timers due and runs what they posted.
  void Pass(uint64_t ms) {
    now_ms += ms;
    loop_.timers().Advance(now_ms);
    RunOnce();
  }
  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  std::string Watched() {
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = read(watcher_, buffer, sizeof buffer)) > 0) {
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
  uint64_t Events(stats::PresenceKind kind, stats::PresenceOutcome outcome) const {
    return metrics_.presence_events[static_cast<size_t>(kind)][static_cast<size_t>(outcome)];
  }
  // The watcher subscribes and its own join's window passes.
  void Watch() {
    Subscribe("watcher", &watch_);
    Pass(kWindowMs + net::TimerWheel::kTickMs);
    ASSERT_EQ(Watched(), "join watcher\n");
    joins.clear();
  }

  // The clock starts over before the loop is built: its timer wheel takes its start from it,
  // and a clock left ahead by the previous test in this process would never fire its timers.
  uint64_t clock_start_ = now_ms = 1'000'000;
  stats::LoopMetrics metrics_;
  net::Loop loop_{0, 4096, &FakeNow};
  Hub hub_{1, PushCodec{&Publication, &PublicationPush, &JoinLeave, &JoinPushes},
           store::MemoryStores(), &FakeNow};
  config::ChannelOptions options_;
  Sink* watcher_connection_ = nullptr;
  Sink* others_connection_ = nullptr;
  int watcher_ = -1;
  int others_ = -1;
  Subscription watch_;
  std::map<std::string, std::unique_ptr<Subscription>> clients_;
};

TEST_F(JoinLeaveBatchTest, JoinsWithinAWindowLeaveAsOneMessageWhenItEnds) {
  Watch();
  std::set<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    Join("c" + std::to_string(i));
    expected.insert("join c" + std::to_string(i));
  }
  Pass(kWindowMs - 2 * net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "");            // the window is still open
  Pass(2 * net::TimerWheel::kTickMs);  // no further event: the timer alone ends it
  const std::string got = Watched();
  std::set<std::string> lines;
  for (size_t start = 0, end; (end = got.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.insert(got.substr(start, end - start));
  }
  EXPECT_EQ(lines, expected);
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 20);
  EXPECT_EQ(joins, std::vector<size_t>{20});  // one joined push for the 20
  EXPECT_EQ(Events(stats::PresenceKind::kJoin, stats::PresenceOutcome::kSent), 21u);
}

TEST_F(JoinLeaveBatchTest, AJoinAndALeaveOfOneClientWithinAWindowCancel) {
  Watch();
  Join("brief");
  Join("stays");
  Leave("brief");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "join stays\n");
  EXPECT_EQ(Events(stats::PresenceKind::kJoin, stats::PresenceOutcome::kCancelled), 1u);
  EXPECT_EQ(Events(stats::PresenceKind::kLeave, stats::PresenceOutcome::kCancelled), 1u);
  EXPECT_EQ(Events(stats::PresenceKind::kJoin, stats::PresenceOutcome::kSent), 2u);

  // Leave then join of the same client (unsubscribe, subscribe again): nothing to show.
  Leave("stays");
  Join("stays");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "");
  EXPECT_EQ(Events(stats::PresenceKind::kLeave, stats::PresenceOutcome::kCancelled), 2u);

  // The same user on a new client is another client: both leave and join are sent, in order.
  Leave("stays");
  Join("stays-again");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "leave stays\njoin stays-again\n");
  EXPECT_EQ(Events(stats::PresenceKind::kLeave, stats::PresenceOutcome::kSent), 1u);
}

TEST_F(JoinLeaveBatchTest, ALeaveInALaterWindowComesAfterItsJoin) {
  Watch();
  Join("a");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  Leave("a");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "join a\nleave a\n");
}

TEST_F(JoinLeaveBatchTest, TheBatchBoundFlushesEarly) {
  options_.join_leave_batch_max = 5;
  Watch();
  for (int i = 0; i < 12; ++i) Join("c" + std::to_string(i));
  RunOnce();  // no time has passed: only the full batches left
  EXPECT_EQ(joins, (std::vector<size_t>{5, 5}));
  std::string got = Watched();
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 10);
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(joins, (std::vector<size_t>{5, 5, 2}));
  got = Watched();
  EXPECT_EQ(got, "join c10\njoin c11\n");
}

TEST_F(JoinLeaveBatchTest, PresenceAnswersAreImmediate) {
  Watch();
  Join("a", "ua");
  Join("b", "ub");
  auto [clients, users] = hub_.PresenceStats("ch");
  EXPECT_EQ(clients, 3u);  // watcher, a, b: before any push of theirs left
  EXPECT_EQ(users, 3u);
  Leave("a");
  EXPECT_EQ(hub_.PresenceStats("ch").first, 2u);
  std::set<std::string> present;
  for (const auto& [client, entry] : hub_.Presence("ch")) present.insert(client);
  EXPECT_EQ(present, (std::set<std::string>{"watcher", "b"}));
  EXPECT_EQ(Watched(), "");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "join b\n");
}

TEST_F(JoinLeaveBatchTest, ABatchOutlivesTheOptionsOfTheSubscriptionThatStartedIt) {
  Watch();
  // A subscription with token overrides owns its options; it may end before its window.
  auto own = std::make_unique<config::ChannelOptions>(options_);
  Hub::SubscribeRequest r;
  r.channel = "ch";
  r.options = own.get();
  r.client = "own";
  r.user = "u";
  r.info = "own";
  hub_.Subscribe(loop_, r, Client("own"));
  own.reset();
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(Watched(), "join own\n");
}

TEST_F(JoinLeaveBatchTest, WithoutADelayEachPushLeavesAtOnce) {
  options_.join_leave_batch_delay.ms = 0;
  Subscribe("watcher", &watch_);
  Join("a");
  Leave("a");
  RunOnce();
  EXPECT_EQ(Watched(), "join watcher\njoin a\nleave a\n");
  EXPECT_TRUE(joins.empty());
  EXPECT_EQ(Events(stats::PresenceKind::kJoin, stats::PresenceOutcome::kSent), 2u);
  EXPECT_EQ(Events(stats::PresenceKind::kLeave, stats::PresenceOutcome::kSent), 1u);
  EXPECT_EQ(Events(stats::PresenceKind::kJoin, stats::PresenceOutcome::kCancelled), 0u);
}

// Cluster mode: what the hub hands its broker (the engine itself runs in tests/cluster/).
class Recorder final : public core::Broker {
 public:
  void Publish(const core::BrokerMessage& m) override {
    sent.push_back((m.kind == core::BrokerMessageKind::kJoin ? "join " : "leave ") +
                   std::string(m.info));
  }
  bool Fits(const core::BrokerMessage&) override { return true; }
  std::vector<std::string> sent;
};

TEST_F(JoinLeaveBatchTest, OnlyWhatSurvivesTheWindowIsSentToOtherNodesWhenItEnds) {
  Recorder recorder;
  hub_.set_broker(&recorder);
  Watch();
  recorder.sent.clear();
  Join("brief");
  Join("stays");
  Leave("brief");
  Join("late");
  EXPECT_TRUE(recorder.sent.empty());  // nothing leaves the node before the window ends
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(recorder.sent, (std::vector<std::string>{"join stays", "join late"}));
  EXPECT_EQ(Watched(), "join stays\njoin late\n");
  Leave("late");
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  EXPECT_EQ(recorder.sent, (std::vector<std::string>{"join stays", "join late", "leave late"}));
  hub_.set_broker(nullptr);
}

TEST_F(JoinLeaveBatchTest, EventsFromOtherNodesAreBatchedShownInOrderAndNeverSentOn) {
  Recorder recorder;
  hub_.set_broker(&recorder);
  Watch();
  recorder.sent.clear();
  for (int i = 0; i < 10; ++i)
    hub_.JoinLeaveFromBroker("ch", options_, true, "r" + std::to_string(i));
  // A remote leave of a remote join in the same window is shown, not cancelled: the other
  // node cancelled what it could, and sent these from two of its windows.
  hub_.JoinLeaveFromBroker("ch", options_, false, "r0");
  RunOnce();                 // the events' mailbox tasks
  EXPECT_EQ(Watched(), "");  // the window is still open
  Pass(kWindowMs + net::TimerWheel::kTickMs);
  std::string expected;
  for (int i = 0; i < 10; ++i) expected += "join r" + std::to_string(i) + "\n";
  expected += "leave r0\n";
  EXPECT_EQ(Watched(), expected);
  EXPECT_EQ(joins, std::vector<size_t>{11});  // one message
  EXPECT_TRUE(recorder.sent.empty());         // never back out to the broker
  // Counted on the node of their clients, not here.
  EXPECT_EQ(Events(stats::PresenceKind::kJoin, stats::PresenceOutcome::kSent), 1u);
  hub_.set_broker(nullptr);
}

}  // namespace
}  // namespace hermod::core
