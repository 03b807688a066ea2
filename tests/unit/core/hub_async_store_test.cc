// The hub with a history engine that completes later (later_history_store.h). What must
// hold: publications reach subscribers on every loop in offset order however many threads
// publish, each publisher learns its position through its completion, reads answer through
// the caller's loop, a completion whose requester is gone is dropped, and a subscriber that
// recovers gets the publications it missed, then the live ones, once each, in order.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "chunk_push.h"
#include "core/hub.h"
#include "later_history_store.h"
#include "net/connection.h"

namespace hermod::core {
namespace {

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

class Sink final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

class HubAsyncStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      loops_[i] = std::make_unique<net::Loop>(i, 4096);
      hub_.AttachLoop(*loops_[i]);
    }
    for (int i = 0; i < 2; ++i) threads_[i] = std::thread([this, i] { loops_[i]->Run(); });
    options_.history_size = 1000;
    options_.history_ttl.ms = 60000;
  }
  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      net::Loop* loop = loops_[i].get();
      loop->Post([loop] { loop->Stop(); });
      threads_[i].join();
    }
    for (int fd : peers_) close(fd);
  }
  template <class F>
  auto On(int i, F fn) {
    std::packaged_task<decltype(fn())()> task(fn);
    auto result = task.get_future();
    loops_[i]->Post([&task] { task(); });
    return result.get();
  }
  // A subscriber of "ch" on loop i; returns its peer's fd.
  int Subscribe(int i, Subscription* s) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peers_.push_back(fds[1]);
    On(i, [&] {
      s->connection = new Sink(*loops_[i], fds[0], nullptr);
      const std::string client = "c" + std::to_string(i);
      Hub::SubscribeRequest r;
      r.channel = "ch";
      r.options = &options_;
      r.client = client;
      r.recoverable = true;
      return hub_.Subscribe(*loops_[i], r, s).position.offset;
    });
    return fds[1];
  }
  static std::string Read(int fd, int lines) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
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

  LaterHistoryStore* history_ = nullptr;
  Hub hub_{2, PushCodec{&Publication, &Frame, &JoinLeave, {}}, LaterStores(&history_)};
  std::unique_ptr<net::Loop> loops_[2];
  std::thread threads_[2];
  std::vector<int> peers_;
  config::ChannelOptions options_;
};

TEST_F(HubAsyncStoreTest, FansOutInOffsetOrderToEveryLoopWhenAppendsCompleteLater) {
  Subscription a, b;
  const int peer_a = Subscribe(0, &a);
  const int peer_b = Subscribe(1, &b);
  constexpr int kThreads = 3, kEach = 50, kAll = kThreads * kEach;
  std::mutex mutex;
  std::set<uint64_t> offsets;
  std::promise<void> all_done;
  std::vector<std::thread> publishers;
  for (int t = 0; t < kThreads; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string data = "t" + std::to_string(t);
        Hub::PublishRequest r{"ch", &options_, data, "", {}, {}, {}, {}};
        r.done = Completion<Hub::PublishResult>([&](Hub::PublishResult result) {
          EXPECT_TRUE(result.ok());
          std::lock_guard lock(mutex);
          offsets.insert(result.position.offset);
          if (offsets.size() == kAll) all_done.set_value();
        });
        EXPECT_EQ(hub_.Publish(std::move(r)).refusal, Hub::Refusal::kPending);
      }
    });
  }
  for (auto& t : publishers) t.join();
  all_done.get_future().wait();
  EXPECT_EQ(*offsets.begin(), 1u);
  EXPECT_EQ(*offsets.rbegin(), static_cast<uint64_t>(kAll));  // unique and contiguous
  for (int peer : {peer_a, peer_b}) {
    std::istringstream lines(Read(peer, kAll));
    std::string line;
    uint64_t expected = 1;
    while (std::getline(lines, line)) {
      ASSERT_EQ(line.substr(line.rfind('@') + 1), std::to_string(expected)) << line;
      ++expected;
    }
    EXPECT_EQ(expected, static_cast<uint64_t>(kAll) + 1);
  }
}

TEST_F(HubAsyncStoreTest, APublishersCompletionRunsOnItsLoopAndIsDroppedOnceItIsGone) {
  Subscription a;
  const int peer = Subscribe(0, &a);
  history_->worker().SetOpen(false);  // appends wait
  auto alive = std::make_shared<int>(0);
  auto gone = std::make_shared<int>(0);
  std::promise<std::thread::id> ran_on;
  std::atomic<bool> gone_ran{false};
  Hub::PublishRequest kept{"ch", &options_, "kept", "", {}, {}, {}, {}};
  kept.done = Completion<Hub::PublishResult>(*loops_[1], std::weak_ptr<const void>(alive),
                                             [&](Hub::PublishResult r) {
                                               EXPECT_EQ(r.position.offset, 1u);
                                               ran_on.set_value(std::this_thread::get_id());
                                             });
  Hub::PublishRequest dropped{"ch", &options_, "dropped", "", {}, {}, {}, {}};
  dropped.done = Completion<Hub::PublishResult>(*loops_[1], std::weak_ptr<const void>(gone),
                                                [&](Hub::PublishResult) { gone_ran = true; });
  EXPECT_EQ(hub_.Publish(std::move(kept)).refusal, Hub::Refusal::kPending);
  EXPECT_EQ(hub_.Publish(std::move(dropped)).refusal, Hub::Refusal::kPending);
  gone.reset();  // the second publisher's connection closes before its append completes
  history_->worker().SetOpen(true);
  EXPECT_EQ(ran_on.get_future().get(), threads_[1].get_id());
  // Both were stored and fanned out; the second completion's task ran (or will) on loop 1
  // before this one, and did nothing.
  EXPECT_EQ(Read(peer, 2), "ch|kept@1\nch|dropped@2\n");
  // The worker's next task runs after the second completion was posted to loop 1; loop 1's
  // next task runs after that completion's.
  std::promise<void> idle;
  history_->worker().Post([&] { idle.set_value(); });
  idle.get_future().wait();
  On(1, [] { return 0; });
  EXPECT_FALSE(gone_ran);
}

TEST_F(HubAsyncStoreTest, HistoryAnswersThroughTheCallersLoopAndSubscribeReportsTheFannedOutTop) {
  std::promise<void> stored;
  for (int i = 1; i <= 3; ++i) {
    Hub::PublishRequest r{"ch", &options_, "p", "", {}, {}, {}, {}};
    if (i == 3)
      r.done = Completion<Hub::PublishResult>([&](Hub::PublishResult) { stored.set_value(); });
    hub_.Publish(std::move(r));
  }
  stored.get_future().wait();
  std::promise<HistoryPage> answered;
  std::thread::id on;
  const Hub::HistoryResult now = On(0, [&] {
    return hub_.History("ch", options_, nullptr, -1, false, SIZE_MAX,
                        Completion<HistoryPage>(*loops_[0], [&](HistoryPage page) {
                          on = std::this_thread::get_id();
                          answered.set_value(std::move(page));
                        }));
  });
  EXPECT_TRUE(now.pending);
  HistoryPage page = answered.get_future().get();
  EXPECT_EQ(on, threads_[0].get_id());
  EXPECT_EQ(page.publications, (std::vector<std::string>{"p@1", "p@2", "p@3"}));
  EXPECT_EQ(page.position.offset, 3u);
  // Recovery the engine cannot answer at once: told recovered=false, at the fanned-out top.
  Subscription s;
  s.connection = nullptr;
  const Hub::SubscribeResult sub = On(1, [&] {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peers_.push_back(fds[1]);
    s.connection = new Sink(*loops_[1], fds[0], nullptr);
    Hub::SubscribeRequest r;
    r.channel = "ch";
    r.options = &options_;
    r.client = "late";
    r.recoverable = true;
    r.recover = true;
    r.since = {1, "later"};
    return hub_.Subscribe(*loops_[1], r, &s);
  });
  EXPECT_FALSE(sub.recovered);
  EXPECT_EQ(sub.position.offset, 3u);
  EXPECT_EQ(sub.position.epoch, "later");
}

// A subscriber that recovers while publications keep coming: it gets the ones it missed (in
// its reply, here a frame written first), then the ones published during the engine's read,
// then the live ones, each once, in offset order.
TEST_F(HubAsyncStoreTest, RecoveryThatCompletesLaterIsFollowedByWhatWasPublishedMeanwhileOnce) {
  Subscription a;
  const int peer_a = Subscribe(0, &a);  // loop 0: a subscriber since offset 0
  std::promise<void> stored;
  for (int i = 1; i <= 3; ++i) {
    Hub::PublishRequest r{"ch", &options_, "p", "", {}, {}, {}, {}};
    if (i == 3)
      r.done = Completion<Hub::PublishResult>([&](Hub::PublishResult) { stored.set_value(); });
    hub_.Publish(std::move(r));
  }
  stored.get_future().wait();
  history_->reader().SetOpen(false);  // the recovery's read waits
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  peers_.push_back(fds[1]);
  Subscription s;
  std::promise<Hub::SubscribeResult> completed;
  const Hub::SubscribeResult now = On(1, [&] {
    s.connection = new Sink(*loops_[1], fds[0], nullptr);
    Hub::SubscribeRequest r;
    r.channel = "ch";
    r.options = &options_;
    r.client = "late";
    r.recoverable = true;
    r.recover = true;
    r.since = {1, "later"};
    return hub_.Subscribe(*loops_[1], r, &s,
                          Hub::SubscribeDone(*loops_[1], [&](Hub::SubscribeResult result) {
                            // The reply, then the held pushes.
                            std::string reply = "reply|";
                            for (const std::string& p : result.publications) reply += p + " ";
                            Push* push = new ChunkPush(reply + "\n");
                            push->SendTo(s);
                            push->Unref();
                            hub_.Resume(&s, result);
                            completed.set_value(std::move(result));
                          }));
  });
  EXPECT_TRUE(now.pending);
  EXPECT_EQ(now.position.offset, 3u);
  // Published, stored and fanned out while the read waits: held on loop 1.
  std::promise<void> meanwhile;
  for (int i = 4; i <= 5; ++i) {
    Hub::PublishRequest r{"ch", &options_, "m", "", {}, {}, {}, {}};
    if (i == 5)
      r.done = Completion<Hub::PublishResult>([&](Hub::PublishResult) { meanwhile.set_value(); });
    hub_.Publish(std::move(r));
  }
  meanwhile.get_future().wait();
  EXPECT_EQ(On(1, [&] { return s.held ? s.held->entries.size() : 99; }), 2u);
  // The read completes while more are published, from another thread.
  history_->reader().SetOpen(true);
  std::thread publisher([&] {
    for (int i = 6; i <= 30; ++i) {
      hub_.Publish(Hub::PublishRequest{"ch", &options_, "l", "", {}, {}, {}, {}});
    }
  });
  publisher.join();
  const Hub::SubscribeResult result = completed.get_future().get();
  EXPECT_TRUE(result.recovered);
  EXPECT_EQ(result.publications, (std::vector<std::string>{"p@2", "p@3"}));
  EXPECT_EQ(result.delivered_offset, 3u);
  std::string expected = "reply|p@2 p@3 \nch|m@4\nch|m@5\n";
  for (int i = 6; i <= 30; ++i) expected += "ch|l@" + std::to_string(i) + "\n";
  EXPECT_EQ(Read(fds[1], 28), expected);
  // The subscriber from the start saw every one, once.
  std::string all = "ch|p@1\nch|p@2\nch|p@3\nch|m@4\nch|m@5\n";
  for (int i = 6; i <= 30; ++i) all += "ch|l@" + std::to_string(i) + "\n";
  EXPECT_EQ(Read(peer_a, 30), all);
  On(1, [&] {
    hub_.Unsubscribe(*loops_[1], "ch", options_, "late", "", &s);
    return 0;
  });
}

TEST_F(HubAsyncStoreTest, ASubscriberGoneBeforeItsRecoveryCompletesIsToldNothingAndHoldsNothing) {
  std::promise<void> stored;
  Hub::PublishRequest first{"ch", &options_, "p", "", {}, {}, {}, {}};
  first.done = Completion<Hub::PublishResult>([&](Hub::PublishResult) { stored.set_value(); });
  hub_.Publish(std::move(first));
  stored.get_future().wait();
  history_->reader().SetOpen(false);
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  peers_.push_back(fds[1]);
  auto s = std::make_unique<Subscription>();
  auto alive = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  EXPECT_TRUE(On(1, [&] {
    s->connection = new Sink(*loops_[1], fds[0], nullptr);
    Hub::SubscribeRequest r;
    r.channel = "ch";
    r.options = &options_;
    r.client = "gone";
    r.recoverable = true;
    r.recover = true;
    r.since = {0, "later"};
    return hub_
        .Subscribe(*loops_[1], r, s.get(),
                   Hub::SubscribeDone(*loops_[1], std::weak_ptr<const void>(alive),
                                      [&](Hub::SubscribeResult) { ran = true; }))
        .pending;
  }));
  std::promise<void> held;
  Hub::PublishRequest second{"ch", &options_, "q", "", {}, {}, {}, {}};
  second.done = Completion<Hub::PublishResult>([&](Hub::PublishResult) { held.set_value(); });
  hub_.Publish(std::move(second));
  held.get_future().wait();
  On(1, [&] {
    EXPECT_EQ(s->held->entries.size(), 1u);
    // Its session goes: unsubscribed and freed, the pushes it held with it (ASan: no leak).
    hub_.Unsubscribe(*loops_[1], "ch", options_, "gone", "", s.get());
    s.reset();
    alive.reset();
    return 0;
  });
  history_->reader().SetOpen(true);
  std::promise<void> idle;
  history_->reader().Post([&] { idle.set_value(); });
  idle.get_future().wait();
  On(1, [] { return 0; });  // the completion's task, posted before this one, ran
  EXPECT_FALSE(ran);
  pollfd p{fds[1], POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);  // nothing was written
}

// Two publications with one idempotency key in flight together: the hub's keys know
// neither yet, the engine stores the first and answers the second as a duplicate. The
// second is not fanned out, and both publishers get the first's position.
TEST_F(HubAsyncStoreTest, ADuplicateTheEngineReportsIsNotFannedOutAndAnswersTheOriginalPosition) {
  Subscription a;
  const int peer = Subscribe(0, &a);
  history_->worker().SetOpen(false);
  std::promise<Hub::PublishResult> first, second;
  Hub::PublishRequest r1{"ch", &options_, "a", "", "k", {}, {}, {}};
  r1.done = Completion<Hub::PublishResult>([&](Hub::PublishResult r) { first.set_value(r); });
  Hub::PublishRequest r2{"ch", &options_, "b", "", "k", {}, {}, {}};
  r2.done = Completion<Hub::PublishResult>([&](Hub::PublishResult r) { second.set_value(r); });
  EXPECT_EQ(hub_.Publish(std::move(r1)).refusal, Hub::Refusal::kPending);
  EXPECT_EQ(hub_.Publish(std::move(r2)).refusal, Hub::Refusal::kPending);
  history_->worker().SetOpen(true);
  const Hub::PublishResult one = first.get_future().get();
  const Hub::PublishResult two = second.get_future().get();
  EXPECT_TRUE(one.ok());
  EXPECT_TRUE(two.ok());
  EXPECT_EQ(one.position.offset, 1u);
  EXPECT_EQ(two.position.offset, 1u);
  EXPECT_EQ(two.position.epoch, "later");
  // Known to the hub's keys now: answered at once, nothing stored.
  const Hub::PublishResult three =
      hub_.Publish(Hub::PublishRequest{"ch", &options_, "c", "", "k", {}, {}, {}});
  EXPECT_TRUE(three.ok());
  EXPECT_EQ(three.position.offset, 1u);
  std::promise<void> stored;
  Hub::PublishRequest next{"ch", &options_, "d", "", {}, {}, {}, {}};
  next.done = Completion<Hub::PublishResult>([&](Hub::PublishResult r) {
    EXPECT_EQ(r.position.offset, 2u);  // the duplicate took no offset
    stored.set_value();
  });
  hub_.Publish(std::move(next));
  stored.get_future().wait();
  EXPECT_EQ(Read(peer, 2), "ch|a@1\nch|d@2\n");
}

// A publication without history (the API's skip_history) accepted while appends are in
// flight waits behind them: subscribers get the channel's publications in the order they
// were accepted.
TEST_F(HubAsyncStoreTest, APublicationWithoutHistoryWaitsBehindTheAppendsInFlight) {
  Subscription a, b;
  const int peer_a = Subscribe(0, &a);
  const int peer_b = Subscribe(1, &b);
  config::ChannelOptions skip = options_;
  skip.history_size = 0;
  history_->worker().SetOpen(false);
  std::promise<void> stored;
  EXPECT_EQ(hub_.Publish(Hub::PublishRequest{"ch", &options_, "a", "", {}, {}, {}, {}}).refusal,
            Hub::Refusal::kPending);
  const Hub::PublishResult s1 =
      hub_.Publish(Hub::PublishRequest{"ch", &skip, "s", "", {}, {}, {}, {}});
  EXPECT_TRUE(s1.ok());  // answered at once: it takes no offset
  EXPECT_EQ(s1.position.offset, 0u);
  Hub::PublishRequest last{"ch", &options_, "b", "", {}, {}, {}, {}};
  last.done = Completion<Hub::PublishResult>([&](Hub::PublishResult) { stored.set_value(); });
  EXPECT_EQ(hub_.Publish(std::move(last)).refusal, Hub::Refusal::kPending);
  hub_.Publish(Hub::PublishRequest{"ch", &skip, "t", "", {}, {}, {}, {}});
  On(0, [] { return 0; });
  On(1, [] { return 0; });
  for (int peer : {peer_a, peer_b}) {
    pollfd p{peer, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0);  // nothing overtook the appends
  }
  history_->worker().SetOpen(true);
  stored.get_future().wait();
  for (int peer : {peer_a, peer_b}) EXPECT_EQ(Read(peer, 4), "ch|a@1\nch|s@0\nch|b@2\nch|t@0\n");
  // Nothing in flight: at once.
  hub_.Publish(Hub::PublishRequest{"ch", &skip, "u", "", {}, {}, {}, {}});
  for (int peer : {peer_a, peer_b}) EXPECT_EQ(Read(peer, 1), "ch|u@0\n");
}

TEST_F(HubAsyncStoreTest, PresenceWithACompletionAlwaysAnswersThroughIt) {
  options_.presence = true;
  Subscription a;
  Subscribe(0, &a);
  std::promise<size_t> listed;
  std::promise<size_t> counted;
  std::promise<size_t> nobody;
  On(1, [&] {
    EXPECT_TRUE(
        hub_.Presence("ch", Completion<PresenceList>(
                                *loops_[1], [&](PresenceList l) { listed.set_value(l.size()); }))
            .empty());
    hub_.PresenceStats("ch", Completion<PresenceCounts>(*loops_[1], [&](PresenceCounts c) {
                         counted.set_value(c.clients);
                       }));
    hub_.Presence("none",
                  Completion<PresenceList>([&](PresenceList l) { nobody.set_value(l.size()); }));
    return 0;
  });
  EXPECT_EQ(listed.get_future().get(), 1u);
  EXPECT_EQ(counted.get_future().get(), 1u);
  EXPECT_EQ(nobody.get_future().get(), 0u);
}

}  // namespace
}  // namespace hermod::core
