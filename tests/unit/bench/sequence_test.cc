#include <gtest/gtest.h>

#include "payload.h"
#include "sequence_tracker.h"

namespace hermod::bench {
namespace {

TEST(SequenceTrackerTest, InOrderMessagesAreNeitherLostNorDuplicated) {
  SequenceTracker t;
  for (uint64_t s = 0; s < 100; ++s) {
    auto o = t.Observe(3, s);
    EXPECT_EQ(o.lost, 0u);
    EXPECT_FALSE(o.duplicate);
  }
}

TEST(SequenceTrackerTest, GapsCountAsLostAndRepeatsAsDuplicates) {
  SequenceTracker t;
  EXPECT_EQ(t.Observe(1, 0).lost, 0u);
  EXPECT_EQ(t.Observe(1, 4).lost, 3u);  // 1, 2, 3 skipped
  EXPECT_TRUE(t.Observe(1, 4).duplicate);
  EXPECT_TRUE(t.Observe(1, 2).duplicate);  // a skipped one arriving late: out of order
  EXPECT_EQ(t.Observe(1, 5).lost, 0u);
}

TEST(SequenceTrackerTest, PublishersAreTrackedApart) {
  SequenceTracker t;
  EXPECT_EQ(t.Observe(1, 0).lost, 0u);
  EXPECT_EQ(t.Observe(2, 0).lost, 0u);
  EXPECT_EQ(t.Observe(1, 1).lost, 0u);
  EXPECT_EQ(t.Observe(2, 2).lost, 1u);
  EXPECT_EQ(t.Observe(3, 2).lost, 2u);  // first message from 3 is its #2: 0 and 1 lost
}

TEST(PayloadTest, StampRoundTripsAndPadsToSize) {
  std::string p;
  Stamp in{987654321012345ull, 42, 7};
  WritePayload(p, in, 200);
  EXPECT_EQ(p.size(), 200u);
  EXPECT_EQ(p.front(), '{');
  EXPECT_EQ(p.back(), '}');
  Stamp out;
  ASSERT_TRUE(ReadStamp(p, out));
  EXPECT_EQ(out.sent_ns, in.sent_ns);
  EXPECT_EQ(out.publisher, in.publisher);
  EXPECT_EQ(out.seq, in.seq);
}

TEST(PayloadTest, StampIsFoundInsideAProtocolEnvelope) {
  std::string p;
  WritePayload(p, Stamp{1, 2, 3}, 10);  // smaller than the stamp: no padding
  std::string push = "{\"push\":{\"channel\":\"hb0\",\"pub\":{\"data\":" + p + "}}}";
  Stamp out;
  ASSERT_TRUE(ReadStamp(push, out));
  EXPECT_EQ(out.seq, 3u);
  EXPECT_FALSE(ReadStamp("{\"hb\":[1,2", out));
  EXPECT_FALSE(ReadStamp("hello", out));
}

}  // namespace
}  // namespace hermod::bench
