#include "core/history_meta.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::core {
namespace {

TEST(HistoryMeta, KeepsAPositionUntilItsTtl) {
  HistoryMeta meta(1000, 10);
  meta.Put("a", {7, "e"}, 100);
  ASSERT_NE(meta.Find("a", 1099), nullptr);
  EXPECT_EQ(meta.Find("a", 1100), nullptr);
  std::optional<StreamPosition> kept = meta.Take("a", 1099);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->offset, 7u);
  EXPECT_EQ(kept->epoch, "e");
  EXPECT_FALSE(meta.Take("a", 1099));  // taken: the channel lives again
  EXPECT_EQ(meta.size(), 0u);
}

TEST(HistoryMeta, ExpiredPositionIsNotReturned) {
  HistoryMeta meta(1000, 10);
  meta.Put("a", {7, "e"}, 100);
  EXPECT_FALSE(meta.Take("a", 1100));
  EXPECT_EQ(meta.size(), 0u);
}

TEST(HistoryMeta, ForgetsTheOldestPastTheCap) {
  HistoryMeta meta(1000, 3);
  size_t forgotten = 0;
  for (int i = 0; i < 10; ++i) forgotten += meta.Put("c" + std::to_string(i), {1, "e"}, i);
  EXPECT_EQ(forgotten, 7u);
  EXPECT_EQ(meta.size(), 3u);
  EXPECT_EQ(meta.Find("c6", 10), nullptr);
  EXPECT_NE(meta.Find("c7", 10), nullptr);
  EXPECT_NE(meta.Find("c9", 10), nullptr);
}

TEST(HistoryMeta, PuttingAgainRenewsWithoutGrowing) {
  HistoryMeta meta(1000, 3);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(meta.Put("same", {uint64_t(i), "e"}, i), 0u);
  EXPECT_EQ(meta.size(), 1u);
  EXPECT_EQ(meta.Find("same", 1050)->offset, 99u);  // renewed at 99: expires at 1099
}

TEST(HistoryMeta, ExpireDropsEveryPositionPastItsTtl) {
  HistoryMeta meta(1000, 100);
  for (int i = 0; i < 50; ++i) meta.Put("c" + std::to_string(i), {1, "e"}, uint64_t(i) * 10);
  meta.Expire(1245);  // 0..240 expired: 25 entries
  EXPECT_EQ(meta.size(), 25u);
}

TEST(HistoryMeta, OffKeepsNothing) {
  HistoryMeta off;
  EXPECT_EQ(off.Put("a", {1, "e"}, 0), 0u);
  EXPECT_EQ(off.size(), 0u);
}

}  // namespace
}  // namespace hermod::core
