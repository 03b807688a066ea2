#include "net/output_queue.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hermod::net {
namespace {

std::string Pending(const OutputQueue& q) {
  iovec iov[OutputQueue::kMaxIov];
  int n = q.Gather(iov, OutputQueue::kMaxIov);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(OutputQueue, CoalescesOwnedAppendsIntoOneSegment) {
  OutputQueue q;
  q.Append("hello ");
  q.Append("world");
  iovec iov[4];
  EXPECT_EQ(q.Gather(iov, 4), 1);
  EXPECT_EQ(Pending(q), "hello world");
  EXPECT_EQ(q.bytes(), 11u);
}

TEST(OutputQueue, PartialConsumeKeepsTheRest) {
  OutputQueue q;
  q.Append("abcdef");
  q.Consume(2);
  EXPECT_EQ(Pending(q), "cdef");
  q.Append("gh");
  EXPECT_EQ(Pending(q), "cdefgh");
  q.Consume(6);
  EXPECT_TRUE(q.empty());
}

TEST(OutputQueue, SharedChunksAreReferencedNotCopied) {
  Chunk* frame = Chunk::Create(16);
  frame->Append("PUBLICATION");
  {
    OutputQueue a, b;
    a.Append("x");
    a.AppendShared(frame, 0, frame->size(), Lane::kControl);
    b.AppendShared(frame, 3, 4);
    EXPECT_TRUE(frame->shared());
    EXPECT_EQ(Pending(a), "xPUBLICATION");
    EXPECT_EQ(Pending(b), "LICA");
    a.Append("y");  // must not write into the shared chunk
    EXPECT_EQ(Pending(a), "xPUBLICATIONy");
    EXPECT_EQ(Pending(b), "LICA");
  }
  EXPECT_FALSE(frame->shared());
  frame->Unref();
}

TEST(OutputQueue, LargeAppendSpansChunks) {
  OutputQueue q;
  std::string big(OutputQueue::kChunkBytes * 2 + 17, 'z');
  q.Append("a");
  q.Append(big);
  EXPECT_EQ(q.bytes(), big.size() + 1);
  EXPECT_EQ(Pending(q), "a" + big);
  q.Consume(q.bytes());
  EXPECT_TRUE(q.empty());
}

Chunk* Frame(std::string_view text) {
  Chunk* chunk = Chunk::Create(text.size());
  chunk->Append(text);
  return chunk;
}

// Appends a shared frame to q and drops the test's own reference.
void Push(OutputQueue& q, std::string_view text, Lane lane, uint64_t key = 0, uint64_t now = 0) {
  Chunk* chunk = Frame(text);
  q.AppendShared(chunk, 0, chunk->size(), lane, key, now);
  chunk->Unref();
}

TEST(OutputQueue, WritesLanesInPriorityOrderAndFifoWithinALane) {
  OutputQueue q;
  Push(q, "low1,", Lane::kLow);
  Push(q, "normal1,", Lane::kNormal);
  q.Append("close,", {}, Lane::kFinal);
  Push(q, "critical1,", Lane::kCritical);
  q.Append("reply,");
  Push(q, "high1,", Lane::kHigh);
  Push(q, "normal2,", Lane::kNormal);
  Push(q, "low2,", Lane::kLow);
  EXPECT_EQ(Pending(q), "reply,critical1,high1,normal1,normal2,low1,low2,close,");
}

TEST(OutputQueue, AHalfSentFrameFinishesBeforeAnythingQueuedLater) {
  OutputQueue q;
  Push(q, "[normal frame]", Lane::kNormal);
  q.Consume(3);  // the socket took "[no"
  Push(q, "[critical]", Lane::kCritical);
  q.Append("[reply]");
  EXPECT_EQ(Pending(q), "rmal frame][reply][critical]");
  q.Consume(5);
  EXPECT_EQ(Pending(q), "frame][reply][critical]");
  q.Consume(6);
  EXPECT_EQ(Pending(q), "[reply][critical]");
  q.Consume(q.bytes());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.cost(), 0u);
}

TEST(OutputQueue, DropUnsentKeepsTheHalfSentFrameWhole) {
  OutputQueue q;
  Push(q, "[low frame]", Lane::kLow);
  Push(q, "[critical]", Lane::kCritical);
  q.Append("[reply]");
  q.Consume(9);  // all of [reply], and "[c" of [critical]
  Push(q, "[normal]", Lane::kNormal);
  const size_t before = q.cost();
  const size_t freed = q.DropUnsent();
  EXPECT_EQ(Pending(q), "ritical]");
  EXPECT_EQ(before - freed, q.cost());
  EXPECT_EQ(q.cost(), 8u + OutputQueue::kItemOverhead);
}

TEST(OutputQueue, ReplaceSwapsAnUnsentFrameOfTheSameKey) {
  OutputQueue q;
  Push(q, "[a v1]", Lane::kNormal, 11);
  Push(q, "[b v1]", Lane::kNormal, 22);
  Chunk* v2 = Frame("[a v2!]");
  EXPECT_TRUE(q.Replace(Lane::kNormal, 11, v2, 0, v2->size()));
  EXPECT_FALSE(q.Replace(Lane::kNormal, 33, v2, 0, v2->size()));
  EXPECT_FALSE(q.Replace(Lane::kHigh, 11, v2, 0, v2->size()));
  v2->Unref();
  EXPECT_EQ(Pending(q), "[a v2!][b v1]");
  EXPECT_EQ(q.bytes(), 13u);
  // A half-sent frame is never replaced: it is no longer in its lane.
  q.Consume(2);
  Chunk* v3 = Frame("[a v3]");
  EXPECT_FALSE(q.Replace(Lane::kNormal, 11, v3, 0, v3->size()));
  v3->Unref();
}

TEST(OutputQueue, CostCountsItemsAndTheAccountCountsWhatIsNotShared) {
  size_t total = 0;
  {
    OutputQueue q;
    q.set_account(&total);
    Push(q, "12345", Lane::kLow);
    q.Append("ab");
    q.Append("cd");  // grows the same item
    EXPECT_EQ(q.bytes(), 9u);
    EXPECT_EQ(q.cost(), 9u + 2 * OutputQueue::kItemOverhead);
    // The shared frame's 5 bytes are not this queue's: only its record is.
    EXPECT_EQ(q.footprint(), 4u + 2 * OutputQueue::kItemOverhead);
    EXPECT_EQ(total, q.footprint());
    q.Consume(3);  // "abc"
    EXPECT_EQ(total, 1u + 2 * OutputQueue::kItemOverhead);
    q.Consume(3);  // "d", then "12" of the shared frame: half-sent
    EXPECT_EQ(total, OutputQueue::kItemOverhead);
    Push(q, "xyz", Lane::kHigh);
    q.Append("reply");
    q.DropUnsent();
    EXPECT_EQ(total, q.footprint());
    EXPECT_EQ(total, OutputQueue::kItemOverhead);  // the half-sent frame stays
  }
  EXPECT_EQ(total, 0u);  // the destructor gives everything back
}

TEST(OutputQueue, UrgentSinceIsTheOldestCriticalOrHighItem) {
  OutputQueue q;
  EXPECT_EQ(q.UrgentSinceMs(), 0u);
  Push(q, "n", Lane::kNormal, 0, 5);
  EXPECT_EQ(q.UrgentSinceMs(), 0u);
  Push(q, "h", Lane::kHigh, 0, 30);
  Push(q, "c", Lane::kCritical, 0, 40);
  EXPECT_EQ(q.UrgentSinceMs(), 30u);
  q.Consume(1);  // "c" leaves first
  EXPECT_EQ(q.UrgentSinceMs(), 30u);
  q.Consume(1);
  EXPECT_EQ(q.UrgentSinceMs(), 0u);
}

// A reader that stops in the middle of a push still holds it past its deadline: the half-sent
// item, in no lane any more, keeps the push's time.
TEST(OutputQueue, PushSinceCountsAHalfSentPush) {
  OutputQueue q;
  Push(q, "0123456789", Lane::kNormal, 0, 25);
  EXPECT_EQ(q.PushSinceMs(), 25u);
  q.Consume(4);
  EXPECT_EQ(q.PushSinceMs(), 25u);
  Push(q, "later", Lane::kNormal, 0, 60);
  EXPECT_EQ(q.PushSinceMs(), 25u);
  q.Consume(6);  // the half-sent push is gone; the one behind it is the oldest
  EXPECT_EQ(q.PushSinceMs(), 60u);
  q.Consume(2);
  EXPECT_EQ(q.PushSinceMs(), 60u);
  q.Consume(3);
  EXPECT_EQ(q.PushSinceMs(), 0u);
}

// The queue against a model that keeps one list per lane, through random appends, writes that
// stop anywhere, drops and replacements: the same bytes in the same order, the same counts.
TEST(OutputQueue, MatchesALanePerListModel) {
  struct ModelItem {
    std::string text;
    uint64_t key;
    uint64_t stamp;
  };
  std::mt19937 rng(12345);
  size_t total = 0;
  OutputQueue q;
  q.set_account(&total);
  std::string partial;  // the model's half-sent frame
  std::array<std::deque<ModelItem>, kLanes> lanes;
  auto expected = [&] {
    std::string out = partial;
    for (const auto& lane : lanes) {
      for (const ModelItem& item : lane) out += item.text;
    }
    return out;
  };
  auto full = [&] {
    std::vector<iovec> iov(4096);
    const int n = q.Gather(iov.data(), static_cast<int>(iov.size()));
    std::string out;
    for (int i = 0; i < n; ++i) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
    return out;
  };
  uint64_t next = 1;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    const std::string text = "<" + std::to_string(next++) + ">";
    if (op < 4) {  // a shared push, the keys few enough to repeat
      const Lane lane = static_cast<Lane>(1 + rng() % kPriorities);
      const uint64_t key = rng() % 3 == 0 ? 1 + rng() % 4 : 0;
      Push(q, text, lane, key, next);
      lanes[static_cast<size_t>(lane)].push_back({text, key, next});
    } else if (op < 6) {  // the connection's own bytes: control, rarely a close
      const Lane lane = rng() % 8 == 0 ? Lane::kFinal : Lane::kControl;
      q.Append(text, {}, lane);
      auto& model = lanes[static_cast<size_t>(lane)];
      if (!model.empty() && model.back().stamp == 0 &&
          model.back().text.size() + text.size() <= OutputQueue::kChunkBytes) {
        model.back().text += text;  // the queue grows its own tail item in its chunk
      } else {
        model.push_back({text, 0, 0});
      }
    } else if (op < 9) {  // a write of any length
      const size_t n = q.bytes() == 0 ? 0 : rng() % (q.bytes() + 1);
      q.Consume(n);
      size_t left = n;
      if (left >= partial.size()) {
        left -= partial.size();
        partial.clear();
        for (auto& lane : lanes) {
          while (left > 0 && !lane.empty()) {
            if (left < lane.front().text.size()) {
              partial = lane.front().text.substr(left);
              left = 0;
            } else {
              left -= lane.front().text.size();
            }
            lane.pop_front();
          }
        }
      } else {
        partial.erase(0, left);
      }
    } else if (rng() % 4 == 0) {
      q.DropUnsent();
      for (auto& lane : lanes) lane.clear();
    } else {
      const Lane lane = static_cast<Lane>(1 + rng() % kPriorities);
      const uint64_t key = 1 + rng() % 4;
      Chunk* chunk = Frame(text);
      const bool replaced = q.Replace(lane, key, chunk, 0, chunk->size());
      chunk->Unref();
      auto& model = lanes[static_cast<size_t>(lane)];
      bool found = false;
      for (size_t i = model.size(); i > 0 && model.size() - i < OutputQueue::kReplaceScan; --i) {
        if (model[i - 1].key == key) {
          model[i - 1].text = text;
          found = true;
          break;
        }
      }
      ASSERT_EQ(replaced, found) << step;
    }
    ASSERT_EQ(full(), expected()) << step;
    ASSERT_EQ(q.bytes(), expected().size());
    size_t items = partial.empty() ? 0 : 1;
    uint64_t urgent = 0;
    for (size_t l = 0; l < kLanes; ++l) {
      ASSERT_EQ(q.lane_items(static_cast<Lane>(l)), lanes[l].size()) << step;
      items += lanes[l].size();
    }
    for (Lane l : {Lane::kCritical, Lane::kHigh}) {
      const auto& lane = lanes[static_cast<size_t>(l)];
      if (!lane.empty() && (urgent == 0 || lane.front().stamp < urgent)) {
        urgent = lane.front().stamp;
      }
    }
    ASSERT_EQ(q.UrgentSinceMs(), urgent) << step;
    ASSERT_EQ(q.cost(), q.bytes() + items * OutputQueue::kItemOverhead) << step;
    ASSERT_EQ(total, q.footprint()) << step;
  }
}

// Joining (per connection). A readable stand-in for a WebSocket text header: "<N>" before N
// payload bytes; a joined message is framed the same way.
size_t TestHeader(size_t payload_len, char* out) {
  const std::string header = "<" + std::to_string(payload_len) + ">";
  header.copy(out, header.size());
  return header.size();
}

std::string Message(std::string_view payload) {
  return "<" + std::to_string(payload.size()) + ">" + std::string(payload);
}

// Queues a joinable shared frame: header + payload.
void PushJoinable(OutputQueue& q, std::string_view payload, Lane lane = Lane::kNormal,
                  uint64_t now = 0) {
  Chunk* chunk = Frame(Message(payload));
  q.AppendShared(chunk, 0, chunk->size(), lane, 0, now,
                 static_cast<uint8_t>(chunk->size() - payload.size()));
  chunk->Unref();
}

void AppendJoinable(OutputQueue& q, std::string_view payload, Lane lane = Lane::kControl) {
  const std::string message = Message(payload);
  q.Append(std::string_view(message).substr(0, message.size() - payload.size()), payload, lane,
           true);
}

// What the joining Gather would write, and how many iovecs.
std::string PendingJoined(const OutputQueue& q, JoinPlan& plan, size_t max_bytes = 1024,
                          int* count = nullptr, int max_iov = OutputQueue::kMaxIov) {
  iovec iov[OutputQueue::kMaxIov];
  const int n = q.Gather(iov, max_iov, JoinSpec{max_bytes, &TestHeader}, plan);
  if (count) *count = n;
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(OutputQueueJoin, QueuedMessagesLeaveAsOneNewlineJoinedMessage) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "a");
  PushJoinable(q, "bb");
  PushJoinable(q, "c");
  int count = 0;
  EXPECT_EQ(PendingJoined(q, plan, 1024, &count), "<6>a\nbb\nc");
  EXPECT_EQ(count, 1);
  // The plain Gather still sees the queued frames as they are.
  EXPECT_EQ(Pending(q), "<1>a<2>bb<1>c");
  q.Consume(9, plan);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.cost(), 0u);
  EXPECT_EQ(plan.TakeCounts(), (std::pair<uint64_t, uint64_t>{1, 3}));
}

TEST(OutputQueueJoin, TheUnsentTailOfAJoinedMessageKeepsItsOldestPushsTime) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "aaaa", Lane::kNormal, 40);
  PushJoinable(q, "bbbb", Lane::kNormal, 30);
  EXPECT_EQ(PendingJoined(q, plan), "<9>aaaa\nbbbb");
  q.Consume(5, plan);  // the write stops inside the joined message
  EXPECT_EQ(Pending(q), "aa\nbbbb");
  EXPECT_EQ(q.PushSinceMs(), 30u);
  q.Consume(1);  // and again inside its tail
  EXPECT_EQ(q.PushSinceMs(), 30u);
  q.Consume(6);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.PushSinceMs(), 0u);
}

TEST(OutputQueueJoin, RepliesAndPushesOfEveryLaneJoinInWritingOrder) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "low", Lane::kLow);
  PushJoinable(q, "normal", Lane::kNormal);
  AppendJoinable(q, "reply1");
  AppendJoinable(q, "reply2");  // its own item, in the same chunk as reply1
  PushJoinable(q, "critical", Lane::kCritical);
  EXPECT_EQ(Pending(q), "<6>reply1<6>reply2<8>critical<6>normal<3>low");
  EXPECT_EQ(PendingJoined(q, plan), "<33>reply1\nreply2\ncritical\nnormal\nlow");
  q.Consume(37, plan);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.footprint(), 0u);
}

TEST(OutputQueueJoin, ALoneMessageIsSentByReference) {
  OutputQueue q;
  JoinPlan plan;
  Chunk* chunk = Frame(Message("only"));
  q.AppendShared(chunk, 0, chunk->size(), Lane::kNormal, 0, 0, 3);
  iovec iov[4];
  ASSERT_EQ(q.Gather(iov, 4, JoinSpec{1024, &TestHeader}, plan), 1);
  EXPECT_EQ(iov[0].iov_base, chunk->data());  // the shared frame itself, not a copy
  q.Consume(iov[0].iov_len, plan);
  EXPECT_EQ(plan.TakeCounts(), (std::pair<uint64_t, uint64_t>{0, 0}));
  chunk->Unref();
}

TEST(OutputQueueJoin, TheSizeBoundStartsANewMessage) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "aaaa");
  PushJoinable(q, "bbbb");
  PushJoinable(q, "cccc");
  PushJoinable(q, "dddd");
  PushJoinable(q, "eeeeeeeeeeee");  // 12 bytes: alone over the bound of 10
  PushJoinable(q, "ff");
  // 4 + 1 + 4 = 9 fits 10; adding another 5 does not.
  int count = 0;
  EXPECT_EQ(PendingJoined(q, plan, 10, &count), "<9>aaaa\nbbbb<9>cccc\ndddd<12>eeeeeeeeeeee<2>ff");
  EXPECT_EQ(count, 4);
  q.Consume(45, plan);
  EXPECT_TRUE(q.empty());
}

TEST(OutputQueueJoin, NothingNotJoinableIsJoinedNorJoinedAcross) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "a");
  PushJoinable(q, "b");
  Push(q, "[binary]", Lane::kNormal);  // not joinable: the run ends
  PushJoinable(q, "c");
  PushJoinable(q, "d");
  q.Append("[close]", {}, Lane::kFinal);  // a Close frame is never joinable
  EXPECT_EQ(PendingJoined(q, plan), "<3>a\nb[binary]<3>c\nd[close]");
}

TEST(OutputQueueJoin, ZeroBoundOrNoHeaderNeverJoins) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "a");
  PushJoinable(q, "b");
  EXPECT_EQ(PendingJoined(q, plan, 0), "<1>a<1>b");
  iovec iov[4];
  EXPECT_EQ(q.Gather(iov, 4, JoinSpec{1024, nullptr}, plan), 2);
}

TEST(OutputQueueJoin, AWriteEndingInsideAJoinedMessageKeepsItsTailFirstAndWhole) {
  OutputQueue q;
  JoinPlan plan;
  size_t account = 0;
  q.set_account(&account);
  PushJoinable(q, "first");
  PushJoinable(q, "second");
  PushJoinable(q, "third");
  const std::string joined = "<18>first\nsecond\nthird";
  ASSERT_EQ(PendingJoined(q, plan), joined);
  q.Consume(7, plan);  // "<18>fir"
  EXPECT_EQ(plan.TakeCounts(), (std::pair<uint64_t, uint64_t>{1, 3}));
  // Queued after the write: a critical push and a reply must not overtake the tail.
  PushJoinable(q, "late", Lane::kCritical);
  AppendJoinable(q, "reply");
  const std::string rest = joined.substr(7);
  EXPECT_EQ(PendingJoined(q, plan), rest + "<10>reply\nlate");
  EXPECT_EQ(q.bytes(), rest.size() + Message("late").size() + Message("reply").size());
  EXPECT_EQ(account, q.footprint());
  // Another partial write inside the (now owned) tail, then the rest.
  q.Consume(4, plan);
  EXPECT_EQ(PendingJoined(q, plan), rest.substr(4) + "<10>reply\nlate");
  q.Consume(PendingJoined(q, plan).size(), plan);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.cost(), 0u);
  EXPECT_EQ(account, 0u);
}

TEST(OutputQueueJoin, AWriteEndingBetweenMessagesLeavesTheRestQueuedAsItWas) {
  OutputQueue q;
  JoinPlan plan;
  Push(q, "[x]", Lane::kControl);
  PushJoinable(q, "a");
  PushJoinable(q, "b");
  Push(q, "[y]", Lane::kNormal);
  ASSERT_EQ(PendingJoined(q, plan), "[x]<3>a\nb[y]");
  q.Consume(2, plan);  // inside [x], an item sent as it is
  EXPECT_EQ(PendingJoined(q, plan), "]<3>a\nb[y]");
  q.Consume(1, plan);  // [x] done, the joined message not begun
  EXPECT_EQ(plan.TakeCounts(), (std::pair<uint64_t, uint64_t>{0, 0}));
  EXPECT_EQ(Pending(q), "<1>a<1>b[y]");
  EXPECT_EQ(PendingJoined(q, plan), "<3>a\nb[y]");
  q.Consume(6 + 2, plan);  // the joined message and "[y" of [y]
  EXPECT_EQ(PendingJoined(q, plan), "]");
}

TEST(OutputQueueJoin, DropUnsentAfterAPartialJoinKeepsTheTail) {
  OutputQueue q;
  JoinPlan plan;
  PushJoinable(q, "aaaa");
  PushJoinable(q, "bbbb");
  ASSERT_EQ(PendingJoined(q, plan), "<9>aaaa\nbbbb");
  q.Consume(5, plan);
  PushJoinable(q, "cccc");
  q.DropUnsent();
  EXPECT_EQ(PendingJoined(q, plan), "aa\nbbbb");
}

// Random appends, partial writes of the joined output and drops against a model of the
// message stream: decoded, the bytes written are the messages sent, in order, each whole.
TEST(OutputQueueJoin, MatchesTheMessageStreamUnderRandomWrites) {
  std::mt19937 rng(777);
  OutputQueue q;
  JoinPlan plan;
  size_t account = 0;
  q.set_account(&account);
  std::string written;
  std::vector<size_t> lane_of(1, 0);  // by message id
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    const std::string payload = "m" + std::to_string(lane_of.size());
    if (op < 4) {
      const Lane lane = static_cast<Lane>(1 + rng() % kPriorities);
      PushJoinable(q, payload, lane);
      lane_of.push_back(static_cast<size_t>(lane));
    } else if (op < 5) {
      Push(q, "<" + std::to_string(payload.size()) + ">" + payload, Lane::kLow);  // not joinable
      lane_of.push_back(static_cast<size_t>(Lane::kLow));
    } else if (op < 7) {
      AppendJoinable(q, payload);
      lane_of.push_back(0);
    } else {  // a write of part of the joined output
      iovec iov[OutputQueue::kMaxIov];
      const int max_iov = 1 + static_cast<int>(rng() % 8);
      const int n = q.Gather(iov, max_iov, JoinSpec{8 + rng() % 40, &TestHeader}, plan);
      std::string out;
      for (int i = 0; i < n; ++i) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
      const size_t take = out.empty() ? 0 : rng() % (out.size() + 1);
      written += out.substr(0, take);
      q.Consume(take, plan);
      EXPECT_EQ(account, q.footprint());
    }
  }
  while (!q.empty()) {
    const std::string out = PendingJoined(q, plan, 30);
    written += out;
    q.Consume(out.size(), plan);
  }
  EXPECT_EQ(account, 0u);
  // Decoded, the bytes are every message once, whole, and FIFO within each lane.
  std::vector<bool> seen(lane_of.size(), false);
  std::array<size_t, kLanes> last{};
  size_t pos = 0;
  while (pos < written.size()) {
    ASSERT_EQ(written[pos], '<') << "at " << pos;
    const size_t close = written.find('>', pos);
    ASSERT_NE(close, std::string::npos);
    const size_t len = std::stoul(written.substr(pos + 1, close - pos - 1));
    const std::string body = written.substr(close + 1, len);
    ASSERT_EQ(body.size(), len);
    for (size_t start = 0; start <= body.size();) {
      size_t end = body.find('\n', start);
      if (end == std::string::npos) end = body.size();
      const std::string one = body.substr(start, end - start);
      ASSERT_EQ(one.substr(0, 1), "m") << one;
      const size_t id = std::stoul(one.substr(1));
      ASSERT_LT(id, lane_of.size());
      EXPECT_FALSE(seen[id]) << id;
      seen[id] = true;
      EXPECT_GT(id, last[lane_of[id]]) << "lane order";
      last[lane_of[id]] = id;
      start = end + 1;
    }
    pos = close + 1 + len;
  }
  for (size_t id = 1; id < lane_of.size(); ++id) EXPECT_TRUE(seen[id]) << id;
}

}  // namespace
}  // namespace hermod::net
