#include "net/output_queue.h"

#include <gtest/gtest.h>

#include <string>

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
    a.AppendShared(frame, 0, frame->size());
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

}  // namespace
}  // namespace hermod::net
