#include "net/output_queue.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <deque>
#include <random>
#include <string>
#include <string_view>

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

}  // namespace
}  // namespace hermod::net
