#include "core/fossil_delta.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

namespace hermod::core {
namespace {

std::string Document(std::mt19937& rng, size_t size) {
  std::string s;
  std::uniform_int_distribution<int> c('a', 'z');
  while (s.size() < size) s += static_cast<char>(c(rng));
  return s;
}

TEST(FossilDelta, ChecksumIsTheFormatsBigEndianWordSum) {
  EXPECT_EQ(FossilChecksum(""), 0u);
  EXPECT_EQ(FossilChecksum("a"), uint32_t{'a'} << 24);
  EXPECT_EQ(FossilChecksum("abcd"), 0x61626364u);
  EXPECT_EQ(FossilChecksum("abcdab"), 0x61626364u + 0x61620000u);
}

TEST(FossilDelta, ShortSourceGivesTheTargetLiterally) {
  const std::string delta = FossilDelta("abc", "abcdef");
  EXPECT_EQ(delta.substr(0, 10), "6\n6:abcdef");
  EXPECT_EQ(delta.back(), ';');
  EXPECT_EQ(ApplyFossilDelta("abc", FossilDelta("abc", "abcdef")), "abcdef");
  EXPECT_EQ(ApplyFossilDelta("x", FossilDelta("x", "")), "");
}

TEST(FossilDelta, SmallChangeInALargeDocumentIsASmallCopyDelta) {
  std::mt19937 rng(17);
  const std::string before = Document(rng, 10240);
  std::string after = before;
  after[5000] = 'X';
  after[5001] = 'Y';
  const std::string delta = FossilDelta(before, after);
  EXPECT_LT(delta.size(), 60u) << delta;
  EXPECT_EQ(ApplyFossilDelta(before, delta), after);
}

TEST(FossilDelta, RoundTripsRandomEdits) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int round = 0; round < 300; ++round) {
    std::string source = Document(rng, rng() % 3000);
    std::string target = source;
    const int edits = static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const size_t at = target.empty() ? 0 : rng() % target.size();
      switch (rng() % 3) {
        case 0:
          target.insert(at, Document(rng, rng() % 40));
          break;
        case 1:
          target.erase(at, rng() % 40);
          break;
        default:
          if (!target.empty()) target[at] = static_cast<char>(rng());
      }
    }
    const std::string delta = FossilDelta(source, target);
    ASSERT_EQ(ApplyFossilDelta(source, delta), target) << round;
  }
}

TEST(FossilDelta, RefusesMalformedDeltas) {
  const std::string source(100, 'a');
  const std::string good = FossilDelta(source, std::string(50, 'a') + "b");
  ASSERT_TRUE(ApplyFossilDelta(source, good));
  EXPECT_FALSE(ApplyFossilDelta(source, ""));
  EXPECT_FALSE(ApplyFossilDelta(source, "5\n"));         // no trailer
  EXPECT_FALSE(ApplyFossilDelta(source, "5\n5@99,0;"));  // copy past the source
  EXPECT_FALSE(ApplyFossilDelta(source, "5\n9:abc"));    // insert past the delta
  EXPECT_FALSE(ApplyFossilDelta(source, good.substr(0, good.size() - 2) + "1;"));  // checksum
  EXPECT_FALSE(ApplyFossilDelta(source, "~~~~~~~~~~~~\n"));                        // absurd length
}

}  // namespace
}  // namespace hermod::core
