// The hub across real loops: two net::Loops on their own threads, subscribers that are
// Connections on socketpairs, and publications from the test thread. What a subscriber's
// peer reads is what the hub queued to it, in order.
#include "core/hub.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "chunk_push.h"
#include "net/connection.h"
#include "store/engines.h"
#include "tests/unit/net/full_socket.h"

namespace hermod::core {
namespace {

// Tests publish plain data: the request with the rest left empty.
std::optional<StreamPosition> Publish(Hub& hub, std::string_view channel,
                                      const config::ChannelOptions& options, std::string_view data,
                                      std::string_view info, std::string_view key = {},
                                      std::string_view tags = {},
                                      std::optional<net::Priority> priority = std::nullopt,
                                      Hub::Refusal* refusal = nullptr) {
  Hub::PublishResult r = hub.Publish({channel, &options, data, info, key, tags, priority, {}});
  if (refusal != nullptr) *refusal = r.refusal;
  if (!r) return std::nullopt;
  return std::move(r.position);
}

// Frames are "channel|publication\n"; a publication is "data@offset".
std::string Publication(std::string_view data, std::string_view, uint64_t offset,
                        std::string_view) {
  return std::string(data) + "@" + std::to_string(offset);
}
Push* Frame(std::string_view channel, std::string_view publication) {
  return new ChunkPush(std::string(channel) + "|" + std::string(publication) + "\n");
}
Push* JoinLeave(std::string_view channel, bool join, std::string_view) {
  return Frame(channel, join ? "join" : "leave");
}
std::atomic<int> joined_pushes{0};
// A joined push: the frames one after another, in one chunk.
Push* Join(const Push* const* pushes, size_t count) {
  std::string text;
  for (size_t i = 0; i < count; ++i) text += static_cast<const ChunkPush*>(pushes[i])->text();
  ++joined_pushes;
  return new ChunkPush(text);
}

class Sink final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      loops_[i] = std::make_unique<net::Loop>(i, 4096);
      hub_.AttachLoop(*loops_[i]);
    }
    for (int i = 0; i < 2; ++i) threads_[i] = std::thread([this, i] { loops_[i]->Run(); });
    options_.history_size = 10;
    options_.history_ttl.ms = 60000;
    options_.presence = true;
  }
  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      net::Loop* loop = loops_[i].get();
      loop->Post([loop] { loop->Stop(); });
      threads_[i].join();
    }
    for (int fd : peers_) close(fd);
  }

  // Runs fn on loop i and waits for it.
  template <class F>
  auto On(int i, F fn) {
    std::packaged_task<decltype(fn())()> task(fn);
    auto result = task.get_future();
    loops_[i]->Post([&task] { task(); });
    return result.get();
  }

  struct Subscriber {
    Sink* connection;
    Subscription subscription;
    int peer;
  };

  // A subscriber on loop i (its Connection lives until the loop ends).
  std::unique_ptr<Subscriber> NewSubscriber(int i) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    auto s = std::make_unique<Subscriber>();
    s->peer = fds[1];
    peers_.push_back(fds[1]);
    s->connection = On(i, [&] { return new Sink(*loops_[i], fds[0], nullptr); });
    s->subscription.connection = s->connection;
    return s;
  }

  Hub::SubscribeResult Subscribe(int i, Subscriber& s, std::string client, bool recover = false,
                                 StreamPosition since = {}, std::string channel = "ch") {
    return On(i, [&] {
      Hub::SubscribeRequest r;
      r.channel = channel;
      r.options = &options_;
      r.client = client;
      r.user = "u";
      r.info = "{}";
      r.recoverable = true;
      r.recover = recover;
      r.since = since;
      return hub_.Subscribe(*loops_[i], r, &s.subscription);
    });
  }

  // Reads until `lines` newline-terminated frames arrived (or 5 s passed).
  static std::string Read(int fd, int lines) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::count(out.begin(), out.end(), '\n') < lines &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buffer[4096];
      ssize_t n = read(fd, buffer, sizeof buffer);
      if (n > 0) out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }

  Hub hub_{2, PushCodec{&Publication, &Frame, &JoinLeave, &Join}, store::MemoryStores()};
  std::unique_ptr<net::Loop> loops_[2];
  std::thread threads_[2];
  std::vector<int> peers_;
  config::ChannelOptions options_;
};

TEST_F(HubTest, DeliversEveryPublicationInOrderToSubscribersOnEveryLoop) {
  auto a = NewSubscriber(0);
  auto b = NewSubscriber(1);
  Subscribe(0, *a, "a");
  Subscribe(1, *b, "b");
  std::string expected;
  for (int i = 1; i <= 50; ++i) {
    StreamPosition p = *Publish(hub_, "ch", options_, std::to_string(i), "");
    EXPECT_EQ(p.offset, static_cast<uint64_t>(i));
    expected += "ch|" + std::to_string(i) + "@" + std::to_string(i) + "\n";
  }
  EXPECT_EQ(Read(a->peer, 50), expected);
  EXPECT_EQ(Read(b->peer, 50), expected);
}

// Publications that reach a loop in one mailbox run leave as joined pushes, in order.
class CoalescingTest : public HubTest {
 protected:
  // Publishes n while loop 0 is blocked (they all reach it in one run); returns what the
  // subscriber read and how many joined pushes were built.
  std::pair<std::string, int> Burst(int n) {
    auto a = NewSubscriber(0);
    Subscribe(0, *a, "a");
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    loops_[0]->Post([released] { released.wait(); });
    const int before = joined_pushes.load();
    std::string expected;
    for (int i = 1; i <= n; ++i) {
      Publish(hub_, "ch", options_, std::to_string(i), "");
      expected += "ch|" + std::to_string(i) + "@" + std::to_string(i) + "\n";
    }
    release.set_value();
    std::string got = Read(a->peer, n);
    EXPECT_EQ(got, expected);
    // A round trip through loop 0 after the batch: the count is final.
    On(0, [] { return 0; });
    On(0, [] { return 0; });
    return {got, joined_pushes.load() - before};
  }
};

TEST_F(CoalescingTest, JoinsABurstIntoOnePushPerLoop) { EXPECT_EQ(Burst(20).second, 1); }

TEST_F(CoalescingTest, SplitsBatchesAtTheSizeBound) {
  options_.push_coalesce_max_bytes = 24;  // two or three of these frames
  EXPECT_GE(Burst(20).second, 7);
}

TEST_F(CoalescingTest, SendsEachPushAloneWhenOff) {
  options_.push_coalesce_max_bytes = 0;
  EXPECT_EQ(Burst(20).second, 0);
}

TEST_F(CoalescingTest, WaitsForTheDelayToJoinMore) {
  options_.push_coalesce_delay.ms = 200;
  auto a = NewSubscriber(0);
  Subscribe(0, *a, "a");
  const int before = joined_pushes.load();
  for (int i = 1; i <= 3; ++i) Publish(hub_, "ch", options_, std::to_string(i), "");
  EXPECT_EQ(Read(a->peer, 3), "ch|1@1\nch|2@2\nch|3@3\n");
  EXPECT_EQ(joined_pushes.load() - before, 1);
}

TEST_F(HubTest, RecoversMissedPublicationsWithoutDeliveringThemTwice) {
  for (int i = 1; i <= 3; ++i) Publish(hub_, "ch", options_, "p" + std::to_string(i), "");
  auto s = NewSubscriber(1);
  std::string epoch = hub_.History("ch", options_, nullptr, 0, false).position.epoch;
  Hub::SubscribeResult r = Subscribe(1, *s, "c", true, {1, epoch});
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.publications, (std::vector<std::string>{"p2@2", "p3@3"}));
  EXPECT_EQ(r.position.offset, 3u);
  Publish(hub_, "ch", options_, "p4", "");
  EXPECT_EQ(Read(s->peer, 1), "ch|p4@4\n");
}

// A channel with no stream has the empty epoch: a `since` naming one is unrecoverable (112),
// an empty one is any epoch; asking makes no stream either way.
TEST_F(HubTest, HistorySinceAnEpochOfAChannelWithNoStreamIsUnrecoverable) {
  const StreamPosition other{1, "not-this-one"};
  Hub::HistoryResult named = hub_.History("none", options_, &other, -1, false);
  EXPECT_TRUE(named.unrecoverable);
  const StreamPosition any{1, ""};
  Hub::HistoryResult empty = hub_.History("none", options_, &any, -1, false);
  EXPECT_FALSE(empty.unrecoverable);
  EXPECT_EQ(empty.position.offset, 0u);
  EXPECT_TRUE(empty.publications.empty());
  EXPECT_EQ(hub_.ChannelCount(), 0u);
}

TEST_F(HubTest, ReportsUnrecoveredForAnotherEpoch) {
  Publish(hub_, "ch", options_, "p1", "");
  auto s = NewSubscriber(0);
  Hub::SubscribeResult r = Subscribe(0, *s, "c", true, {0, "not-this-one"});
  EXPECT_FALSE(r.recovered);
  EXPECT_TRUE(r.publications.empty());
}

TEST_F(HubTest, UnsubscribeStopsDeliveryAndLeavesPresence) {
  auto a = NewSubscriber(0);
  auto b = NewSubscriber(1);
  Subscribe(0, *a, "a");
  Subscribe(1, *b, "b");
  EXPECT_EQ(hub_.PresenceStats("ch"), (std::pair<size_t, size_t>{2, 1}));
  On(1, [&] {
    hub_.Unsubscribe(*loops_[1], "ch", options_, "b", "{}", &b->subscription);
    return 0;
  });
  EXPECT_EQ(hub_.PresenceStats("ch"), (std::pair<size_t, size_t>{1, 1}));
  // b also listens on another channel: what it reads first after "x" shows that "x" never
  // came (both were posted to its loop's mailbox in this order).
  auto b2 = NewSubscriber(1);
  Subscribe(1, *b2, "b2", false, {}, "other");
  Publish(hub_, "ch", options_, "x", "");
  Publish(hub_, "other", options_, "y", "");
  EXPECT_EQ(Read(a->peer, 1), "ch|x@1\n");
  EXPECT_EQ(Read(b2->peer, 1), "other|y@1\n");
  pollfd p{b->peer, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);  // nothing for b
}

// The sweep and the idempotency window on an injectable clock: one loop that never runs, its
// timer wheel advanced by hand, so every tick is the test's.
uint64_t fake_now_ms = 1'000'000;
uint64_t FakeNow() { return fake_now_ms; }

class HubClockTest : public ::testing::Test {
 protected:
  static constexpr size_t kBudget = 4;
  void SetUp() override {
    fake_now_ms = 1'000'000;
    hub_.AttachLoop(loop_);
    options_.history_size = 10;
    options_.history_ttl.ms = 5000;
  }
  // Moves the clock on by ms and fires the timers due, one sweep tick per interval.
  void Tick(uint64_t ms = 1000) {
    fake_now_ms += ms;
    loop_.timers().Advance(fake_now_ms);
  }

  // Reset before loop_ reads the clock: a clock left far ahead by an earlier test would put
  // the sweep timer's first tick past this test's whole run.
  uint64_t clock_reset_ = fake_now_ms = 1'000'000;
  Hub hub_{1, PushCodec{&Publication, &Frame, &JoinLeave, &Join}, store::MemoryStores(), &FakeNow,
           SweepPolicy{1000, kBudget}};
  net::Loop loop_{0, 4096, &FakeNow};
  config::ChannelOptions options_;
};

TEST_F(HubClockTest, TimerReclaimsChannelsWhoseHistoryExpiredWithoutAnyPublish) {
  config::ChannelOptions lasting = options_;
  lasting.history_ttl.ms = 3'600'000;
  for (int i = 0; i < 40; ++i) Publish(hub_, "short" + std::to_string(i), options_, "d", {});
  Publish(hub_, "lasting", lasting, "d", {});
  EXPECT_EQ(hub_.ChannelCount(), 41u);
  EXPECT_EQ(hub_.State().reclaim_queued, 41u);
  Tick(4000);  // within the TTL: nothing is due
  EXPECT_EQ(hub_.ChannelCount(), 41u);
  EXPECT_EQ(hub_.State().reclaim_backlog, 0u);
  // The TTL passed: the next tick takes every due channel off its shard's queue (at most
  // kBudget per shard per tick; 40 names over 64 shards need at most a few ticks).
  fake_now_ms += 1000;
  EXPECT_EQ(hub_.State().reclaim_backlog, 40u);
  for (int tick = 0; tick < 10 && hub_.ChannelCount() > 1; ++tick) Tick();
  EXPECT_EQ(hub_.ChannelCount(), 1u);
  const Hub::StateStats state = hub_.State();
  EXPECT_EQ(state.reclaim_backlog, 0u);
  EXPECT_EQ(state.reclaim_queued, 1u);  // "lasting", an hour from now
  EXPECT_EQ(state.reclaimed, 40u);
  EXPECT_EQ(hub_.History("lasting", lasting, nullptr, -1, false).publications.size(), 1u);
}

// 3,000 publications a second, each to a new channel name, history_ttl 2 s. The
// channel count settles near rate x TTL instead of growing, the backlog stays small, and
// once the names stop, the timer reclaims the rest at its budget per shard and tick.
TEST_F(HubClockTest, ReclaimKeepsUpWithAStreamOfNewChannelNames) {
  options_.history_ttl.ms = 2000;
  constexpr int kPerMs = 3;
  constexpr int kMs = 20'000;
  size_t peak = 0;
  uint64_t peak_backlog = 0;
  int name = 0;
  for (int ms = 0; ms < kMs; ++ms) {
    for (int i = 0; i < kPerMs; ++i)
      Publish(hub_, "order-" + std::to_string(name++), options_, "d", {});
    Tick(1);
    if (ms % 100 == 0) {
      const Hub::StateStats state = hub_.State();
      peak = std::max<size_t>(peak, state.channels);
      peak_backlog = std::max(peak_backlog, state.reclaim_backlog);
    }
  }
  // 2 s of names is 6,000 channels; a tick (1 s) of lag adds at most 3,000.
  EXPECT_LE(peak, size_t{kPerMs} * 3000);
  EXPECT_GE(peak, size_t{kPerMs} * 1900);  // the TTL is kept: not reclaimed early
  EXPECT_LE(peak_backlog, size_t{kPerMs} * 1000);
  // No more names: the timer alone reclaims kBudget per shard per tick (64 shards), so the
  // TTL's ticks and as many as the last TTL's names need (twice: names hash unevenly across
  // shards), and nothing is left.
  const size_t ticks = 2 + 2 * hub_.ChannelCount() / (64 * kBudget) + 2;
  for (size_t tick = 0; tick < ticks && hub_.ChannelCount() > 0; ++tick) Tick();
  EXPECT_EQ(hub_.ChannelCount(), 0u);
  EXPECT_EQ(hub_.State().reclaimed, static_cast<uint64_t>(name));
}

// The same stream without any timer: creating channels alone reclaims the due ones, so the
// count stays bounded by the creation rate x TTL however slow the timer is.
TEST(HubReclaim, CreatingChannelsReclaimsDueOnesWithoutTheTimer) {
  fake_now_ms = 1'000'000;
  Hub hub{1, PushCodec{&Publication, &Frame, &JoinLeave, &Join}, store::MemoryStores(), &FakeNow,
          SweepPolicy{0, 0}};
  config::ChannelOptions options;
  options.history_size = 10;
  options.history_ttl.ms = 2000;
  size_t peak = 0;
  int name = 0;
  for (int ms = 0; ms < 20'000; ++ms) {
    fake_now_ms += 1;
    for (int i = 0; i < 3; ++i) Publish(hub, "job-" + std::to_string(name++), options, "d", {});
    peak = std::max(peak, hub.ChannelCount());
  }
  // 6,000 live channels; shards differ in their share of new names, so some slack.
  EXPECT_LE(peak, size_t{7500});
  EXPECT_GE(peak, size_t{5700});
}

// Cluster mode: a broker that carries at most kMax bytes of data.
class SmallBroker final : public core::Broker {
 public:
  static constexpr size_t kMax = 100;
  void Publish(const core::BrokerMessage& m) override { sent.emplace_back(m.data); }
  bool Fits(const core::BrokerMessage& m) override { return m.data.size() <= kMax; }
  std::vector<std::string> sent;
};

// a publication the broker cannot carry is refused with its reason before it
// gets an offset, so neither this node nor any other has it; the next one goes through.
TEST_F(HubClockTest, APublicationTheBrokerCannotCarryIsRefusedEverywhere) {
  SmallBroker broker;
  hub_.set_broker(&broker);
  Hub::Refusal refusal = Hub::Refusal::kNone;
  EXPECT_FALSE(Publish(hub_, "big", options_, std::string(SmallBroker::kMax + 1, 'x'), {}, {}, {},
                       std::nullopt, &refusal));
  EXPECT_EQ(refusal, Hub::Refusal::kTooLarge);
  EXPECT_EQ(hub_.ChannelCount(), 0u);  // no stream, no history entry, no offset taken
  EXPECT_TRUE(broker.sent.empty());
  const std::optional<StreamPosition> small =
      Publish(hub_, "big", options_, std::string(SmallBroker::kMax, 'x'), {}, {}, {}, std::nullopt,
              &refusal);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->offset, 1u);
  EXPECT_EQ(refusal, Hub::Refusal::kNone);
  EXPECT_EQ(broker.sent.size(), 1u);
  hub_.set_broker(nullptr);
}

// Records what the hub tells a broker about the channels this node holds.
class InterestBroker final : public core::Broker {
 public:
  void Publish(const core::BrokerMessage&) override {}
  bool Fits(const core::BrokerMessage&) override { return true; }
  void Interest(std::string_view channel, bool on) override {
    events.push_back(std::string(on ? "+" : "-") + std::string(channel));
  }
  std::vector<std::string> events;
};

// The node holds a channel from its first subscriber to its last (not per subscriber, not
// per loop); a channel published to without history or subscribers is never held; a
// history stream is held until it expires, and its position is then not kept (the node
// hears nothing for it afterwards, so a later stream has a new epoch).
TEST_F(HubClockTest, TheBrokerHearsWhenTheNodeStartsAndStopsHoldingAChannel) {
  InterestBroker broker;
  hub_.set_broker(&broker);
  config::ChannelOptions plain;  // no history
  Subscription s1, s2;
  Hub::SubscribeRequest r;
  r.channel = "a";
  r.options = &plain;
  r.client = "c1";
  hub_.Subscribe(loop_, r, &s1);
  r.client = "c2";
  hub_.Subscribe(loop_, r, &s2);
  EXPECT_EQ(broker.events, std::vector<std::string>{"+a"});
  hub_.Unsubscribe(loop_, "a", plain, "c1", "{}", &s1);
  EXPECT_EQ(broker.events, std::vector<std::string>{"+a"});
  hub_.Unsubscribe(loop_, "a", plain, "c2", "{}", &s2);
  EXPECT_EQ(broker.events, (std::vector<std::string>{"+a", "-a"}));
  // Again: a subscribe after the last unsubscribe holds it again.
  hub_.Subscribe(loop_, r, &s2);
  hub_.Unsubscribe(loop_, "a", plain, "c2", "{}", &s2);
  EXPECT_EQ(broker.events, (std::vector<std::string>{"+a", "-a", "+a", "-a"}));
  broker.events.clear();

  ASSERT_TRUE(Publish(hub_, "nobody", plain, "d", {}));
  EXPECT_TRUE(broker.events.empty());

  const std::optional<StreamPosition> first = Publish(hub_, "h", options_, "d", {});
  ASSERT_TRUE(first);
  EXPECT_EQ(broker.events, std::vector<std::string>{"+h"});
  Tick(options_.history_ttl.ms + 1000);
  for (int tick = 0; tick < 70 && hub_.ChannelCount() > 0; ++tick) Tick();
  EXPECT_EQ(broker.events, (std::vector<std::string>{"+h", "-h"}));
  const std::optional<StreamPosition> later = Publish(hub_, "h", options_, "d", {});
  ASSERT_TRUE(later);
  EXPECT_EQ(later->offset, 1u);
  EXPECT_NE(later->epoch, first->epoch);
  hub_.set_broker(nullptr);
}

// A broker whose subscription to a channel is not yet in place: the subscriber's reply
// waits (pending, its pushes held) until the broker says it is.
class SlowInterestBroker final : public core::Broker {
 public:
  void Publish(const core::BrokerMessage&) override {}
  bool Fits(const core::BrokerMessage&) override { return true; }
  bool AwaitInterest(std::string_view, std::function<void()> ready) override {
    waiting.push_back(std::move(ready));
    return true;
  }
  std::vector<std::function<void()>> waiting;
};

TEST_F(HubClockTest, ASubscribeReplyWaitsForTheBrokersInterest) {
  SlowInterestBroker broker;
  hub_.set_broker(&broker);
  ASSERT_TRUE(Publish(hub_, "w", options_, "before", {}));
  Subscription s;
  Hub::SubscribeRequest r;
  r.channel = "w";
  r.options = &options_;
  r.client = "c";
  r.recoverable = true;
  std::optional<Hub::SubscribeResult> answered;
  Hub::SubscribeResult result = hub_.Subscribe(
      loop_, r, &s,
      Hub::SubscribeDone([&](Hub::SubscribeResult got) { answered = std::move(got); }));
  EXPECT_TRUE(result.pending);
  EXPECT_TRUE(s.held != nullptr);  // what is published meanwhile waits for the reply
  ASSERT_EQ(broker.waiting.size(), 1u);
  EXPECT_FALSE(answered);
  broker.waiting[0]();
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->position.offset, 1u);
  EXPECT_EQ(answered->delivered_offset, 1u);
  // Without a completion (a server-side subscription) nothing waits.
  Subscription t;
  r.client = "d";
  EXPECT_FALSE(hub_.Subscribe(loop_, r, &t).pending);
  hub_.Unsubscribe(loop_, "w", options_, "c", "{}", &s);
  hub_.Unsubscribe(loop_, "w", options_, "d", "{}", &t);
  hub_.set_broker(nullptr);
}

// State reports what the hub holds, channels counted by the loop that sweeps their shard.
TEST_F(HubTest, StateCountsChannelsSubscriptionsHistoryPresenceAndKeys) {
  auto a = NewSubscriber(0);
  auto b = NewSubscriber(1);
  Subscribe(0, *a, "a");
  Subscribe(1, *b, "b");
  ASSERT_TRUE(Publish(hub_, "ch", options_, "one", {}, "key-1"));
  ASSERT_TRUE(Publish(hub_, "ch", options_, "three", {}));
  config::ChannelOptions no_history;
  ASSERT_TRUE(Publish(hub_, "keyed", no_history, "x", {}, "key-2"));
  const Hub::StateStats all = hub_.State();
  EXPECT_EQ(all.channels, 2u);
  EXPECT_EQ(all.subscriptions, 2u);
  EXPECT_EQ(all.presence_entries, 2u);
  EXPECT_EQ(all.history_entries, 2u);
  EXPECT_EQ(all.history_bytes, std::string("one@1").size() + std::string("three@2").size());
  EXPECT_EQ(all.idempotency_keys, 2u);
  EXPECT_EQ(all.reclaim_queued, 1u);  // "keyed": nobody subscribes to it
  const Hub::StateStats l0 = hub_.State(0);
  const Hub::StateStats l1 = hub_.State(1);
  EXPECT_EQ(l0.channels + l1.channels, all.channels);
  EXPECT_EQ(l0.history_bytes + l1.history_bytes, all.history_bytes);
  EXPECT_EQ(l0.idempotency_keys + l1.idempotency_keys, all.idempotency_keys);
  // Both publications delivered before the subscribers go.
  EXPECT_EQ(Read(a->peer, 2), "ch|one@1\nch|three@2\n");
  EXPECT_EQ(Read(b->peer, 2), "ch|one@1\nch|three@2\n");
}

// The dashboard reads Totals every second: counters kept as channels and subscribers come
// and go, which must agree with State's walk of every channel after each change.
TEST_F(HubTest, TotalsKeptAsTheyChangeAgreeWithAWalkOfEveryChannel) {
  config::ChannelOptions plain;  // no history, presence or keys: freed with its last subscriber
  auto expect_walk = [&](uint64_t channels, uint64_t subscriptions) {
    const Hub::StateStats walk = hub_.State();
    const Hub::Counts totals = hub_.Totals();
    EXPECT_EQ(totals.channels, walk.channels);
    EXPECT_EQ(totals.subscriptions, walk.subscriptions);
    EXPECT_EQ(totals.channels, channels);
    EXPECT_EQ(totals.subscriptions, subscriptions);
  };
  struct Member {
    int loop;
    std::string client;
    std::string channel;
    std::unique_ptr<Subscriber> s;
  };
  std::vector<Member> members;
  auto subscribe = [&](int loop, std::string client, std::string channel,
                       const config::ChannelOptions& options) {
    Member m{loop, std::move(client), std::move(channel), NewSubscriber(loop)};
    On(loop, [&] {
      Hub::SubscribeRequest r;
      r.channel = m.channel;
      r.options = &options;
      r.client = m.client;
      r.user = "u";
      r.info = "{}";
      return hub_.Subscribe(*loops_[loop], r, &m.s->subscription);
    });
    members.push_back(std::move(m));
  };
  auto unsubscribe = [&](const std::string& client, const std::string& channel,
                         const config::ChannelOptions& options) {
    for (auto it = members.begin(); it != members.end(); ++it) {
      if (it->client != client || it->channel != channel) continue;
      On(it->loop, [&] {
        hub_.Unsubscribe(*loops_[it->loop], channel, options, client, "{}", &it->s->subscription);
        return 0;
      });
      members.erase(it);
      return;
    }
    ADD_FAILURE() << client << " is not subscribed to " << channel;
  };

  expect_walk(0, 0);
  subscribe(0, "a", "group", options_);
  subscribe(1, "b", "group", options_);
  subscribe(1, "c", "group", options_);
  subscribe(0, "a", "personal-a", plain);
  subscribe(1, "b", "personal-b", plain);
  subscribe(1, "c", "personal-c", plain);
  ASSERT_TRUE(Publish(hub_, "published", options_, "x", {}));  // a channel with no subscriber
  expect_walk(5, 6);
  unsubscribe("b", "group", options_);  // the channel stays: a and c hold it
  expect_walk(5, 5);
  unsubscribe("b", "personal-b", plain);  // its last subscriber: the channel is freed
  expect_walk(4, 4);
  // c disconnects: every subscription of its client goes.
  unsubscribe("c", "group", options_);
  unsubscribe("c", "personal-c", plain);
  expect_walk(3, 2);
  subscribe(0, "d", "published", options_);  // a subscriber to a channel a publish made
  subscribe(1, "b", "personal-b", plain);    // back to a freed channel
  expect_walk(4, 4);
  unsubscribe("a", "group", options_);
  unsubscribe("a", "personal-a", plain);
  unsubscribe("d", "published", options_);
  unsubscribe("b", "personal-b", plain);
  // "published" keeps its publication (reclaimed by time); the others held nothing more.
  expect_walk(1, 0);
}

TEST_F(HubClockTest, TimerKeepsChannelsWithLiveHistory) {
  Publish(hub_, "kept", options_, "d", {});
  for (int tick = 0; tick < 70; ++tick) {
    fake_now_ms += 50;  // 3.5 s in all: within the 5 s TTL
    loop_.timers().Advance(fake_now_ms);
  }
  EXPECT_EQ(hub_.ChannelCount(), 1u);
}

TEST_F(HubClockTest, IdempotencyKeyHoldsForTheWindowThenPublishesAgain) {
  const StreamPosition first = *Publish(hub_, "pay", options_, "1", {}, "key");
  EXPECT_EQ(first.offset, 1u);
  fake_now_ms += 5 * 60 * 1000 - 1;  // just inside Centrifugo's 5 minutes
  EXPECT_EQ(Publish(hub_, "pay", options_, "2", {}, "key")->offset, 1u);
  fake_now_ms += 1;
  EXPECT_EQ(Publish(hub_, "pay", options_, "3", {}, "key")->offset, 2u);
}

TEST_F(HubClockTest, SweepFreesChannelsOnceTheirIdempotencyKeysExpire) {
  config::ChannelOptions no_history;
  Publish(hub_, "keyed", no_history, "1", {}, "key");
  EXPECT_EQ(hub_.ChannelCount(), 1u);
  for (int tick = 0; tick < 70; ++tick) Tick();  // 70 s: the key is live, the channel stays
  EXPECT_EQ(hub_.ChannelCount(), 1u);
  for (int tick = 0; tick < 5 * 60 + 70 && hub_.ChannelCount() > 0; ++tick) Tick();
  EXPECT_EQ(hub_.ChannelCount(), 0u);
}

// a swept channel's stream continues (epoch, top offset) while its position is
// kept (history_meta_ttl), and starts anew once it is not.
TEST_F(HubClockTest, SweptChannelContinuesItsStreamWithinTheMetaTtl) {
  Hub::Limits limits;
  limits.history_meta_ttl_ms = 600'000;
  hub_.set_limits(limits);
  const StreamPosition first = *Publish(hub_, "gone", options_, "1", {});
  Publish(hub_, "gone", options_, "2", {});
  Tick(5000);
  for (int tick = 0; tick < 200 && hub_.ChannelCount() > 0; ++tick) Tick();
  ASSERT_EQ(hub_.ChannelCount(), 0u);
  // Asking does not bring the channel back, but answers with its position.
  Hub::HistoryResult kept = hub_.History("gone", options_, nullptr, -1, false);
  EXPECT_EQ(kept.position.epoch, first.epoch);
  EXPECT_EQ(kept.position.offset, 2u);
  EXPECT_EQ(hub_.ChannelCount(), 0u);
  const StreamPosition next = *Publish(hub_, "gone", options_, "3", {});
  EXPECT_EQ(next.epoch, first.epoch);
  EXPECT_EQ(next.offset, 3u);

  // Past the TTL the position is forgotten: a new stream, a new epoch.
  Tick(5000);
  for (int tick = 0; tick < 200 && hub_.ChannelCount() > 0; ++tick) Tick();
  ASSERT_EQ(hub_.ChannelCount(), 0u);
  fake_now_ms += 600'000;
  const StreamPosition fresh = *Publish(hub_, "gone", options_, "4", {});
  EXPECT_NE(fresh.epoch, first.epoch);
  EXPECT_EQ(fresh.offset, 1u);
}

TEST_F(HubClockTest, MetaTtlZeroForgetsTheStreamWithTheChannel) {
  Hub::Limits limits;
  limits.history_meta_ttl_ms = 0;
  hub_.set_limits(limits);
  const StreamPosition first = *Publish(hub_, "gone", options_, "1", {});
  Tick(5000);
  for (int tick = 0; tick < 200 && hub_.ChannelCount() > 0; ++tick) Tick();
  ASSERT_EQ(hub_.ChannelCount(), 0u);
  const StreamPosition next = *Publish(hub_, "gone", options_, "2", {});
  EXPECT_NE(next.epoch, first.epoch);
  EXPECT_EQ(next.offset, 1u);
}

TEST_F(HubTest, AnIdempotentRetryOnOneLoopWhileTheOtherPublishesTheFirstPublishesOnce) {
  auto a = NewSubscriber(0);
  Subscribe(0, *a, "a");
  // The API's publish and its retry, handled at once by the two loops (each API request
  // lives on the loop that accepted it), many times over with a fresh key each round.
  for (int round = 0; round < 50; ++round) {
    const std::string key = "key-" + std::to_string(round);
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    std::future<uint64_t> first[2];
    for (int i = 0; i < 2; ++i) {
      std::packaged_task<uint64_t()> task([&, start] {
        start.wait();
        return Publish(hub_, "ch", options_, "p" + std::to_string(round), "", key)->offset;
      });
      first[i] = task.get_future();
      loops_[i]->Post([t = std::make_shared<decltype(task)>(std::move(task))] { (*t)(); });
    }
    go.set_value();
    const uint64_t x = first[0].get();
    const uint64_t y = first[1].get();
    EXPECT_EQ(x, y);
    EXPECT_EQ(x, static_cast<uint64_t>(round + 1));
  }
  std::string expected;
  for (int round = 0; round < 50; ++round) {
    expected += "ch|p" + std::to_string(round) + "@" + std::to_string(round + 1) + "\n";
  }
  EXPECT_EQ(Read(a->peer, 50), expected);
}

TEST(HubIdempotency, TheWindowComesFromLimits) {
  fake_now_ms = 0;
  Hub hub(1, PushCodec{&Publication, &Frame, &JoinLeave, &Join}, store::MemoryStores(), &FakeNow);
  hub.set_limits({Hub::Limits{}.inbox_budget_bytes, 1000});
  config::ChannelOptions options;
  options.history_size = 10;
  options.history_ttl.ms = 600000;
  EXPECT_EQ(Publish(hub, "ch", options, "a", "", "k")->offset, 1u);
  fake_now_ms = 999;
  EXPECT_EQ(Publish(hub, "ch", options, "a", "", "k")->offset, 1u);
  fake_now_ms = 1000;  // the window is over: a new publication
  EXPECT_EQ(Publish(hub, "ch", options, "a", "", "k")->offset, 2u);
}

// One loop that runs only when the test says: its mailbox fills as a busy loop's would.
void OnMissed(Subscription& s);

class StoppedLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hub_.AttachLoop(loop_);
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peer_ = fds[1];
    server_ = fds[0];
    sink_ = new Sink(loop_, fds[0], nullptr);
    subscription_.connection = sink_;
    options_.history_size = 1000;
    options_.history_ttl.ms = 60000;
  }
  void TearDown() override { close(peer_); }
  void Subscribe() {
    Hub::SubscribeRequest r;
    r.channel = "ch";
    r.options = &options_;
    r.client = "c";
    r.recoverable = true;
    hub_.Subscribe(loop_, r, &subscription_);
  }
  // Runs the loop's mailbox once (and the end-of-iteration flush).
  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  std::string ReadAll() {
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = read(peer_, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
    return out;
  }
  // Fills the sink's socket as a subscriber that stopped reading leaves it, so what the hub
  // sends it stays in its queue; returns how many bytes the socket took.
  size_t Fill() { return testing::FillSocket(server_); }
  // Everything the subscriber reads once it reads again (the loop writing what its queue
  // holds), less the first `skip` bytes.
  std::string ReadAllAgain(size_t skip) {
    std::string out = ReadAll();
    while (sink_->queued_bytes() > 0 && !sink_->closing()) {
      RunOnce();
      out += ReadAll();
    }
    EXPECT_GE(out.size(), skip);
    return out.substr(std::min(skip, out.size()));
  }

  net::Loop loop_{0, 4096};
  // The missed handler (PushCodec::missed): OnMissed below, for subscriptions with tell_missed.
  Hub hub_{1, PushCodec{&Publication, &Frame, &JoinLeave, &Join, {}, &OnMissed},
           store::MemoryStores()};
  Sink* sink_ = nullptr;
  Subscription subscription_;
  int peer_ = -1;
  int server_ = -1;
  config::ChannelOptions options_;
};

TEST_F(StoppedLoopTest, PublicationsAreRefusedWhileTheLoopsInboxIsOverBudget) {
  hub_.set_limits({4096, Hub::Limits{}.idempotency_window_ms});
  Subscribe();
  const std::string data(100, 'x');
  int accepted = 0;
  while (Publish(hub_, "ch", options_, data, "")) ++accepted;
  EXPECT_GT(accepted, 5);
  EXPECT_LT(accepted, 40);  // each push costs its bytes and a task: about 4096 / 240
  // Critical publications may use twice the budget.
  int critical = 0;
  while (Publish(hub_, "ch", options_, data, "", {}, {}, net::Priority::kCritical)) ++critical;
  EXPECT_GT(critical, 5);
  EXPECT_FALSE(Publish(hub_, "ch", options_, data, ""));
  RunOnce();  // the loop catches up: the budget is free again
  std::optional<StreamPosition> next = Publish(hub_, "ch", options_, data, "");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->offset, static_cast<uint64_t>(accepted + critical + 1));
  RunOnce();
  RunOnce();  // a coalesced batch leaves on the next mailbox run
  const std::string got = ReadAll();
  const int total = accepted + critical + 1;
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), total);
  EXPECT_TRUE(got.ends_with("@" + std::to_string(total) + "\n"));
}

int missed_calls = 0;
Hub* missed_hub = nullptr;
net::Loop* missed_loop = nullptr;
const config::ChannelOptions* missed_options = nullptr;
// As proto's client does: the subscription ends (the SDK will resubscribe and recover).
void OnMissed(Subscription& s) {
  ++missed_calls;
  missed_hub->Unsubscribe(*missed_loop, "ch", *missed_options, "c", "{}", &s);
}

TEST_F(StoppedLoopTest, AShedPublicationTellsTheRecoverableSubscriberOnce) {
  net::SendLimits limits;
  limits.drop_low_bytes = 1000;
  limits.drop_normal_bytes = 2000;
  loop_.set_send_limits(limits);
  options_.push_coalesce_max_bytes = 0;
  missed_calls = 0;
  missed_hub = &hub_;
  missed_loop = &loop_;
  missed_options = &options_;
  subscription_.tell_missed = true;
  Subscribe();
  const size_t filled = Fill();
  const std::string data(100, 'x');
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Publish(hub_, "ch", options_, data, ""));
  RunOnce();  // all 50 in one mailbox run to a full socket: the watermark is passed
  EXPECT_EQ(missed_calls, 1);
  // Told, not shed: the subscriber learns of the gap at once.
  EXPECT_EQ(loop_.stats().send_dropped[stats::DropReason::kTold][2], 1u);
  EXPECT_EQ(loop_.stats().send_dropped[stats::DropReason::kWatermark][2], 0u);
  const std::string got = ReadAllAgain(filled);
  // Every publication before the gap arrived, whole and in order; none after it.
  const size_t frame = std::string("ch|" + data + "@1\n").size();
  const size_t delivered = std::count(got.begin(), got.end(), '\n');
  EXPECT_GT(delivered, 5u);
  EXPECT_LT(delivered, 50u);
  EXPECT_GE(got.size(), delivered * frame);
  EXPECT_TRUE(got.ends_with("@" + std::to_string(delivered) + "\n"));
}

TEST_F(StoppedLoopTest, ADroppableChannelShedsSilentlyAndNeverTells) {
  net::SendLimits limits;
  limits.drop_low_bytes = 1000;
  limits.drop_normal_bytes = 2000;
  loop_.set_send_limits(limits);
  options_.push_coalesce_max_bytes = 0;
  options_.droppable = true;
  missed_calls = 0;
  missed_hub = &hub_;
  missed_loop = &loop_;
  missed_options = &options_;
  subscription_.tell_missed = true;
  Subscribe();
  const size_t filled = Fill();
  const std::string data(100, 'x');
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Publish(hub_, "ch", options_, data, ""));
  RunOnce();
  EXPECT_EQ(missed_calls, 0);
  EXPECT_EQ(loop_.stats().send_dropped[stats::DropReason::kTold][2], 0u);
  const size_t shed = loop_.stats().send_dropped[stats::DropReason::kWatermark][2];
  const std::string got = ReadAllAgain(filled);
  // Every publication was either delivered or counted as shed; the subscriber stays.
  EXPECT_GT(shed, 0u);
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n') + shed, 50u);
  EXPECT_FALSE(sink_->closing());
}

TEST_F(StoppedLoopTest, AMissedPushWithNobodyToTellCutsTheConnection) {
  net::SendLimits limits;
  limits.drop_low_bytes = 1000;
  limits.drop_normal_bytes = 2000;
  loop_.set_send_limits(limits);
  options_.push_coalesce_max_bytes = 0;
  subscription_.tell_missed = false;  // a subscriber that could not be told otherwise
  Subscribe();
  Fill();
  const std::string data(100, 'x');
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Publish(hub_, "ch", options_, data, ""));
  RunOnce();
  EXPECT_EQ(loop_.stats().slow_consumer_disconnects[stats::SlowReason::kMissed], 1u);
  EXPECT_EQ(loop_.stats().send_dropped[stats::DropReason::kTold][2], 1u);
}

TEST_F(StoppedLoopTest, LatestDeliveryGivesASlowClientTheNewestValueNotABacklog) {
  options_.delivery = config::Delivery::kLatest;
  Subscribe();
  for (const int coalesce : {64 * 1024, 0}) {
    options_.push_coalesce_max_bytes = static_cast<uint64_t>(coalesce);
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(Publish(hub_, "ch", options_, "v", ""));
    RunOnce();
    RunOnce();  // a coalesced batch leaves on the next mailbox run
  }
  // Each round: one frame, the newest of its five.
  EXPECT_EQ(ReadAll(), "ch|v@5\nch|v@10\n");
}

}  // namespace
}  // namespace hermod::core
