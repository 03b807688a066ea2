#include "broker/lost_channels.h"

#include <gtest/gtest.h>

#include <string>

#include "broker/wire.h"

namespace hermod::broker {
namespace {

TEST(LostChannels, KeepsEachChannelOnceUpToTheBound) {
  LostChannels lost(3);
  EXPECT_TRUE(lost.empty());
  lost.Add("a");
  lost.Add("b");
  lost.Add("a");
  lost.Add("c");
  EXPECT_FALSE(lost.all());
  EXPECT_EQ(lost.channels(), (LostChannels::Set{"a", "b", "c"}));
}

TEST(LostChannels, PastTheBoundItIsAll) {
  LostChannels lost(2);
  lost.Add("a");
  lost.Add("b");
  lost.Add("c");
  EXPECT_TRUE(lost.all());
  EXPECT_FALSE(lost.empty());
  EXPECT_TRUE(lost.channels().empty());
  lost.Add("d");  // all stays all
  EXPECT_TRUE(lost.all());
  EXPECT_TRUE(lost.channels().empty());
}

TEST(LostChannels, MergeMovesEverythingAndKeepsTheBound) {
  LostChannels into(3);
  into.Add("a");
  LostChannels other(3);
  other.Add("b");
  other.Add("a");
  into.Merge(other);
  EXPECT_TRUE(other.empty());
  EXPECT_EQ(into.channels(), (LostChannels::Set{"a", "b"}));
  other.Add("c");
  other.Add("d");
  into.Merge(other);  // a, b, c, d: past 3
  EXPECT_TRUE(into.all());
  LostChannels all(3);
  all.AddAll();
  LostChannels some(3);
  some.Add("x");
  some.Merge(all);
  EXPECT_TRUE(some.all());
  EXPECT_TRUE(all.empty());
}

TEST(LostChannels, TakeLeavesItEmpty) {
  LostChannels lost(4);
  lost.Add("a");
  LostChannels taken = lost.Take();
  EXPECT_TRUE(lost.empty());
  EXPECT_EQ(taken.channels(), (LostChannels::Set{"a"}));
  lost.AddAll();
  taken = lost.Take();
  EXPECT_TRUE(taken.all());
  EXPECT_TRUE(lost.empty());
  EXPECT_FALSE(lost.all());
}

TEST(LostNotice, ChannelsRoundTrip) {
  const std::string long_name(300, 'n');  // a length past one LEB128 byte
  LostNotice notice;
  notice.channels = {"news", "chat:a.b *>", long_name};
  const uint64_t node = 0x0123456789abcdefULL;
  const std::string bytes = EncodeLost(node, notice);
  EXPECT_EQ(bytes.size(), 11 + 1 + 4 + 1 + 11 + 2 + 300);
  uint64_t got_node = 0;
  LostNotice got;
  ASSERT_TRUE(DecodeLost(bytes, &got_node, &got));
  EXPECT_EQ(got_node, node);
  EXPECT_FALSE(got.all);
  EXPECT_EQ(got.channels, notice.channels);
}

TEST(LostNotice, AllRoundTripsWithNoChannel) {
  LostNotice notice;
  notice.all = true;
  const std::string bytes = EncodeLost(7, notice);
  EXPECT_EQ(bytes.size(), 11u);
  uint64_t node = 0;
  LostNotice got;
  ASSERT_TRUE(DecodeLost(bytes, &node, &got));
  EXPECT_EQ(node, 7u);
  EXPECT_TRUE(got.all);
  EXPECT_TRUE(got.channels.empty());
}

TEST(LostNotice, AnythingElseDoesNotDecode) {
  LostNotice notice;
  notice.channels = {"news"};
  const std::string good = EncodeLost(1, notice);
  uint64_t node = 0;
  LostNotice got;
  EXPECT_FALSE(DecodeLost(good.substr(0, good.size() - 1), &node, &got));  // truncated
  EXPECT_FALSE(DecodeLost(good + "x", &node, &got));                       // trailing
  std::string bad = good;
  bad[0] = 2;  // another version
  EXPECT_FALSE(DecodeLost(bad, &node, &got));
  bad = good;
  bad[2] = 2;  // an unknown flag
  EXPECT_FALSE(DecodeLost(bad, &node, &got));
  bad = good;
  bad[2] = 1;  // all, yet a channel follows
  EXPECT_FALSE(DecodeLost(bad, &node, &got));
  EXPECT_FALSE(DecodeLost(good.substr(0, 11), &node, &got));  // neither all nor a channel
  EXPECT_FALSE(DecodeLost(good.substr(0, 11) + std::string(1, '\0'), &node, &got));  // empty
  // A publication is not a notice, and a notice is not a publication.
  core::BrokerMessage m;
  m.kind = core::BrokerMessageKind::kPublication;
  m.channel = "news";
  EXPECT_FALSE(DecodeLost(Encode(1, m), &node, &got));
  core::BrokerMessage message;
  EXPECT_FALSE(Decode(good, &node, &message));
}

}  // namespace
}  // namespace hermod::broker
