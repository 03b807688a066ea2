#include "core/loop_channels.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "chunk_push.h"
#include "net/event_loop.h"
#include "tests/unit/net/full_socket.h"

namespace hermod::core {
namespace {

uint64_t fake_now_ms = 1'000'000;
uint64_t FakeNow() { return fake_now_ms; }

class Sink final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

// Joins as the protocol does (newline-separated), bracketed so that a joined frame is told
// from the same pushes sent one by one.
Push* JoinBracketed(const Push* const* pushes, size_t count) {
  std::string text = "[";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) text += '|';
    text += static_cast<const ChunkPush*>(pushes[i])->text();
  }
  text += "]";
  return new ChunkPush(text);
}

class LoopChannelsTest : public ::testing::Test {
 protected:
  ~LoopChannelsTest() override {
    for (int fd : peers_) close(fd);
  }
  struct Peer {
    Subscription subscription;
    int fd = -1;
    int server_fd = -1;
  };
  // Fills the peer's socket as a subscriber that stopped reading leaves it, so what is sent
  // to it stays queued; returns how many bytes the socket took.
  static size_t Fill(const Peer& peer) { return testing::FillSocket(peer.server_fd); }
  Peer& NewPeer(uint64_t delivered_offset = 0, bool join_leave = false) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peers_.push_back(fds[1]);
    auto peer = std::make_unique<Peer>();
    peer->fd = fds[1];
    peer->server_fd = fds[0];
    peer->subscription.connection = new Sink(loop_, fds[0], nullptr);  // the loop owns it
    peer->subscription.delivered_offset = delivered_offset;
    peer->subscription.wants_join_leave = join_leave;
    owned_.push_back(std::move(peer));
    return *owned_.back();
  }
  // Runs the loop's mailbox once, its timers at the fake clock, and the end-of-iteration
  // flush.
  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  static std::string Read(const Peer& peer) {
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = read(peer.fd, buffer, sizeof buffer)) > 0) {
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
  // Delivers a fresh push of text (the test's reference dropped after).
  void Deliver(LoopChannels& channels, std::string_view text, uint64_t offset,
               bool join_leave = false, Delivery delivery = {}) {
    auto* push = new ChunkPush(text);
    channels.Deliver("ch", *push, offset, join_leave, delivery);
    push->Unref();
  }

  uint64_t clock_reset_ = fake_now_ms = 1'000'000;
  net::Loop loop_{0, 4096, &FakeNow};
  std::vector<std::unique_ptr<Peer>> owned_;
  std::vector<int> peers_;
};

TEST_F(LoopChannelsTest, AddAndRemoveReportTheFirstAndTheLastSubscriber) {
  LoopChannels channels;
  Peer& a = NewPeer();
  Peer& b = NewPeer();
  Peer& c = NewPeer();
  EXPECT_TRUE(channels.Add("ch", &a.subscription));
  EXPECT_FALSE(channels.Add("ch", &b.subscription));
  EXPECT_FALSE(channels.Add("ch", &c.subscription));
  EXPECT_TRUE(channels.Add("other", &c.subscription));  // the loop's first of "other"
  EXPECT_EQ(channels.channel_count(), 2u);
  // Removing from the middle moves the last into its slot: the rest stay reachable.
  EXPECT_FALSE(channels.Remove("ch", &a.subscription));
  Deliver(channels, "x", 1);
  RunOnce();
  EXPECT_EQ(Read(a), "");
  EXPECT_EQ(Read(b), "x");
  EXPECT_EQ(Read(c), "x");
  EXPECT_FALSE(channels.Remove("ch", &a.subscription));  // not subscribed: nothing changes
  EXPECT_FALSE(channels.Remove("ch", &c.subscription));
  EXPECT_TRUE(channels.Remove("ch", &b.subscription));
  EXPECT_EQ(channels.channel_count(), 1u);
  EXPECT_TRUE(channels.Remove("nope", &b.subscription));
  EXPECT_TRUE(channels.Remove("other", &c.subscription));
  EXPECT_EQ(channels.channel_count(), 0u);
}

TEST_F(LoopChannelsTest, DeliversInOrderToEverySubscriberAndSkipsWhatRecoveryDelivered) {
  LoopChannels channels;
  Peer& fresh = NewPeer();
  Peer& recovered = NewPeer(/*delivered_offset=*/2);
  channels.Add("ch", &fresh.subscription);
  channels.Add("ch", &recovered.subscription);
  Deliver(channels, "1;", 1);
  Deliver(channels, "2;", 2);
  Deliver(channels, "3;", 3);
  Deliver(channels, "n;", 0);                                // no offset: always delivered
  channels.Deliver("unknown", ChunkPush("lost"), 4, false);  // no subscriber: ignored
  RunOnce();
  EXPECT_EQ(Read(fresh), "1;2;3;n;");
  EXPECT_EQ(Read(recovered), "3;n;");
}

TEST_F(LoopChannelsTest, JoinAndLeaveGoOnlyToThoseWhoAskedForThem) {
  LoopChannels channels;
  Peer& plain = NewPeer();
  Peer& wants = NewPeer(/*delivered_offset=*/100, /*join_leave=*/true);
  channels.Add("ch", &plain.subscription);
  channels.Add("ch", &wants.subscription);
  Deliver(channels, "join;", 0, /*join_leave=*/true);
  Deliver(channels, "pub;", 7);
  RunOnce();
  EXPECT_EQ(Read(plain), "pub;");
  EXPECT_EQ(Read(wants), "join;");  // offset 7 <= 100: recovery delivered it
}

TEST_F(LoopChannelsTest, InboxBytesCountWhatIsPostedAndNotDelivered) {
  LoopChannels channels;
  EXPECT_EQ(channels.inbox_bytes(), 0u);
  channels.AddInbox(300);
  channels.AddInbox(200);
  EXPECT_EQ(channels.inbox_bytes(), 500u);
  channels.SubInbox(300);
  EXPECT_EQ(channels.inbox_bytes(), 200u);
  channels.SubInbox(200);
  EXPECT_EQ(channels.inbox_bytes(), 0u);
}

TEST_F(LoopChannelsTest, CoalescesOneMailboxRunIntoOneJoinedPushSharedBySubscribers) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& a = NewPeer();
  Peer& b = NewPeer();
  channels.Add("ch", &a.subscription);
  channels.Add("ch", &b.subscription);
  const Delivery batched{{/*max_bytes=*/1000, /*delay_ms=*/0}};
  Deliver(channels, "a", 1, false, batched);
  Deliver(channels, "b", 2, false, batched);
  Deliver(channels, "c", 3, false, batched);
  EXPECT_EQ(a.subscription.connection->queued_bytes(), 0u);  // held until the mailbox runs
  RunOnce();
  EXPECT_EQ(Read(a), "[a|b|c]");
  EXPECT_EQ(Read(b), "[a|b|c]");
  // A batch of one is the original push, not joined.
  Deliver(channels, "d", 4, false, batched);
  RunOnce();
  EXPECT_EQ(Read(a), "d");
}

TEST_F(LoopChannelsTest, ASubscriberThatMustNotGetTheWholeBatchGetsTheOriginals) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& whole = NewPeer();
  Peer& partial = NewPeer(/*delivered_offset=*/1);
  channels.Add("ch", &whole.subscription);
  channels.Add("ch", &partial.subscription);
  const Delivery batched{{1000, 0}};
  Deliver(channels, "a", 1, false, batched);
  Deliver(channels, "b", 2, false, batched);
  Deliver(channels, "c", 3, false, batched);
  RunOnce();
  EXPECT_EQ(Read(whole), "[a|b|c]");
  EXPECT_EQ(Read(partial), "bc");
}

TEST_F(LoopChannelsTest, RunsAreBoundedByMaxBytesAndSplitByPriority) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& a = NewPeer();
  channels.Add("ch", &a.subscription);
  // Each push costs its size plus one (the newline): two of three bytes fit in 8.
  const Delivery normal{{8, 0}};
  const Delivery high{{8, 0}, net::Priority::kHigh};
  Deliver(channels, "aaa", 1, false, normal);
  Deliver(channels, "bbb", 2, false, normal);
  Deliver(channels, "ccc", 3, false, normal);
  Deliver(channels, "ddd", 4, false, high);
  Deliver(channels, "eee", 5, false, high);
  RunOnce();
  // High priority is written first by the connection's lanes; each run joined on its own.
  const std::string got = Read(a);
  EXPECT_NE(got.find("[aaa|bbb]"), std::string::npos) << got;
  EXPECT_NE(got.find("[ddd|eee]"), std::string::npos) << got;
  EXPECT_NE(got.find("ccc"), std::string::npos) << got;
  EXPECT_EQ(got.find("[bbb|ccc]"), std::string::npos) << got;
  EXPECT_EQ(got.find("ccc|ddd"), std::string::npos) << got;
  EXPECT_EQ(got.size(), std::string("[aaa|bbb]ccc[ddd|eee]").size()) << got;
}

TEST_F(LoopChannelsTest, AnUncoalescedPushFlushesThePendingBatchFirst) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& a = NewPeer();
  channels.Add("ch", &a.subscription);
  Deliver(channels, "a", 1, false, Delivery{{1000, 0}});
  Deliver(channels, "b", 2, false, Delivery{{1000, 0}});
  Deliver(channels, "now", 3);  // coalescing off for this one: order still holds
  RunOnce();
  EXPECT_EQ(Read(a), "[a|b]now");
}

TEST_F(LoopChannelsTest, ABatchWithADelayLeavesOnItsTimerOrWhenFull) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& a = NewPeer();
  channels.Add("ch", &a.subscription);
  const Delivery delayed{{/*max_bytes=*/100, /*delay_ms=*/50}};
  Deliver(channels, "a", 1, false, delayed);
  Deliver(channels, "b", 2, false, delayed);
  RunOnce();
  EXPECT_EQ(Read(a), "");  // waiting for the delay
  fake_now_ms += 60;
  RunOnce();
  EXPECT_EQ(Read(a), "[a|b]");
  // A batch that reaches max_bytes leaves at once, without waiting.
  const Delivery small{{/*max_bytes=*/4, /*delay_ms=*/50}};
  Deliver(channels, "c", 3, false, small);
  Deliver(channels, "d", 4, false, small);
  RunOnce();
  EXPECT_EQ(Read(a), "[c|d]");
}

TEST_F(LoopChannelsTest, LatestValueKeepsOnlyTheNewestPendingPublication) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& a = NewPeer(0, /*join_leave=*/true);
  channels.Add("ch", &a.subscription);
  const Delivery latest{{1000, 0}, net::Priority::kNormal, /*latest=*/true};
  Deliver(channels, "v1", 1, false, latest);
  Deliver(channels, "join", 0, /*join_leave=*/true, latest);
  Deliver(channels, "v2", 2, false, latest);
  Deliver(channels, "v3", 3, false, latest);
  RunOnce();
  EXPECT_EQ(Read(a), "[join|v3]");
}

TEST_F(LoopChannelsTest, RemovingTheLastSubscriberDropsItsPendingBatch) {
  LoopChannels channels(&JoinBracketed);
  channels.Attach(loop_);
  Peer& a = NewPeer();
  channels.Add("ch", &a.subscription);
  Deliver(channels, "a", 1, false, Delivery{{1000, 0}});
  EXPECT_TRUE(channels.Remove("ch", &a.subscription));
  EXPECT_EQ(channels.channel_count(), 0u);
  RunOnce();  // the posted flush finds no channel
  EXPECT_EQ(Read(a), "");
}

int missed = 0;
void CountMissed(Subscription&) { ++missed; }

TEST_F(LoopChannelsTest, BackpressureTellsOnMissedShedsDroppablesAndCutsTheRest) {
  net::SendLimits limits;
  limits.drop_low_bytes = 100;
  limits.drop_normal_bytes = 200;
  loop_.set_send_limits(limits);
  LoopChannels channels({}, &CountMissed);
  Peer& told = NewPeer();
  told.subscription.tell_missed = true;
  Peer& cut = NewPeer();
  channels.Add("ch", &told.subscription);
  channels.Add("ch", &cut.subscription);
  const size_t filled = Fill(told);  // both stopped reading
  Fill(cut);
  missed = 0;
  // Critical pushes always queue: both connections are now past their watermark.
  Deliver(channels, std::string(300, 'x'), 1, false, Delivery{{}, net::Priority::kCritical});
  Deliver(channels, "droppable", 2, false, Delivery{{}, net::Priority::kNormal, false, true});
  EXPECT_EQ(missed, 0);  // shed silently
  EXPECT_FALSE(cut.subscription.connection->closing());
  Deliver(channels, "must-arrive", 3);
  EXPECT_EQ(missed, 1);
  EXPECT_TRUE(cut.subscription.connection->closing());  // no tell_missed: cut as slow
  EXPECT_FALSE(told.subscription.connection->closing());
  EXPECT_EQ(Read(told), std::string(filled, 'f'));  // it reads again
  RunOnce();
  EXPECT_EQ(Read(told), std::string(300, 'x'));
}

TEST_F(LoopChannelsTest, TellMissedTellsEverySubscriberAfterWhatWasPendingAndHoldsNoGap) {
  LoopChannels channels(&JoinBracketed, &CountMissed);
  channels.Attach(loop_);
  Peer& told = NewPeer();
  told.subscription.tell_missed = true;
  Peer& cut = NewPeer();
  Peer& waiting = NewPeer();  // its subscribe reply is not out yet
  waiting.subscription.tell_missed = true;
  waiting.subscription.held = std::make_unique<HeldPushes>();
  Peer& elsewhere = NewPeer();
  elsewhere.subscription.tell_missed = true;
  channels.Add("ch", &told.subscription);
  channels.Add("ch", &cut.subscription);
  channels.Add("ch", &waiting.subscription);
  channels.Add("other", &elsewhere.subscription);
  missed = 0;
  Deliver(channels, "before", 1, false, Delivery{{1000, 0}});  // pending in a batch
  channels.TellMissed("ch");
  EXPECT_EQ(missed, 1);  // told; the one without tell_missed is cut instead
  EXPECT_TRUE(cut.subscription.connection->closing());
  EXPECT_TRUE(waiting.subscription.held->overflowed);  // learns it after its reply
  EXPECT_TRUE(waiting.subscription.held->entries.empty());
  EXPECT_FALSE(elsewhere.subscription.connection->closing());
  channels.TellMissed("nosuch");  // no subscriber here: nothing to tell
  EXPECT_EQ(missed, 1);
  RunOnce();
  EXPECT_EQ(Read(told), "before");  // what came before the gap still arrived first
}

}  // namespace
}  // namespace hermod::core
