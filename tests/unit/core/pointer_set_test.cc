#include "core/pointer_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

namespace hermod::core {
namespace {

TEST(PointerSet, InsertsEraseAndContain) {
  int a = 0, b = 0, c = 0;
  PointerSet<int> set;
  EXPECT_TRUE(set.empty());
  EXPECT_FALSE(set.Erase(&a));
  set.Insert(&a);
  set.Insert(&b);
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.Contains(&a));
  EXPECT_FALSE(set.Contains(&c));
  EXPECT_FALSE(set.Erase(&c));
  EXPECT_TRUE(set.Erase(&a));
  EXPECT_FALSE(set.Contains(&a));
  EXPECT_TRUE(set.Contains(&b));
  EXPECT_EQ(set.Members(), std::vector<int*>{&b});
}

// Against std::set, through growth, collisions (addresses one apart and 64 KiB apart, whose
// homes cluster), erasure in random order and the shrink after a mass departure.
TEST(PointerSet, AgreesWithAnOrderedSetThroughRandomInsertsAndErases) {
  std::vector<char> arena(1 << 20);
  std::vector<char*> pool;
  for (size_t i = 0; i < 3000; ++i) pool.push_back(&arena[i]);
  for (size_t i = 0; i < 15; ++i) pool.push_back(&arena[i << 16]);
  std::mt19937 rng(7);
  PointerSet<char> set;
  std::set<char*> model;
  for (int step = 0; step < 200000; ++step) {
    char* p = pool[rng() % pool.size()];
    if (model.count(p) != 0) {
      ASSERT_TRUE(set.Erase(p));
      model.erase(p);
    } else if (rng() % 3 != 0) {
      set.Insert(p);
      model.insert(p);
    } else {
      ASSERT_FALSE(set.Erase(p));
    }
    ASSERT_EQ(set.size(), model.size());
    if (step % 997 == 0) {
      std::vector<char*> members = set.Members();
      std::sort(members.begin(), members.end());
      ASSERT_EQ(members, std::vector<char*>(model.begin(), model.end()));
      for (char* q : pool) ASSERT_EQ(set.Contains(q), model.count(q) != 0);
    }
  }
}

TEST(PointerSet, StaysWithinFourTimesItsMembersAndShrinksWhenTheyLeave) {
  std::vector<int> values(10000);
  PointerSet<int> set;
  for (int& v : values) set.Insert(&v);
  EXPECT_EQ(set.size(), values.size());
  EXPECT_LE(set.capacity(), 4 * values.size());  // 8..32 bytes an entry, like a vector's 8..16
  std::vector<int*> order;
  for (int& v : values) order.push_back(&v);
  std::shuffle(order.begin(), order.end(), std::mt19937(3));  // leave in any order
  for (size_t i = 0; i + 10 < order.size(); ++i) ASSERT_TRUE(set.Erase(order[i]));
  EXPECT_EQ(set.size(), 10u);
  EXPECT_LE(set.capacity(), 64u);
  for (size_t i = order.size() - 10; i < order.size(); ++i) EXPECT_TRUE(set.Contains(order[i]));
}

}  // namespace
}  // namespace hermod::core
