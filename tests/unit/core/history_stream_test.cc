#include "core/history_stream.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace hermod::core {
namespace {

std::vector<std::string> Fill(HistoryStream& s, int n, uint64_t now = 0, uint64_t size = 10,
                              uint64_t ttl = 1000) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string pub = "p" + std::to_string(s.next_offset());
    out.push_back(pub);
    s.Append(pub, now, size, ttl);
  }
  return out;
}

TEST(HistoryStream, OffsetsIncreaseFromOne) {
  HistoryStream s("e1");
  EXPECT_EQ(s.next_offset(), 1u);
  Fill(s, 3);
  EXPECT_EQ(s.top(), 3u);
  EXPECT_EQ(s.epoch(), "e1");
}

TEST(HistoryStream, KeepsAtMostSizeEntriesAndTheTopOffset) {
  HistoryStream s("e");
  Fill(s, 15, 0, 10);
  EXPECT_EQ(s.size(), 10u);
  EXPECT_EQ(s.top(), 15u);
  auto all = s.Read(nullptr, -1, false, 0);
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all.front(), "p6");
  EXPECT_EQ(all.back(), "p15");
}

TEST(HistoryStream, ExpiresEntriesAfterTtlButKeepsPosition) {
  HistoryStream s("e");
  Fill(s, 3, 0, 10, 100);
  EXPECT_EQ(s.Read(nullptr, -1, false, 99).size(), 3u);
  EXPECT_TRUE(s.Read(nullptr, -1, false, 100).empty());
  EXPECT_EQ(s.top(), 3u);
}

TEST(HistoryStream, ReadHonoursSinceLimitAndReverse) {
  HistoryStream s("e");
  Fill(s, 5);
  StreamPosition since{2, "e"};
  EXPECT_EQ(s.Read(&since, -1, false, 0), (std::vector<std::string>{"p3", "p4", "p5"}));
  EXPECT_EQ(s.Read(&since, 2, false, 0), (std::vector<std::string>{"p3", "p4"}));
  EXPECT_EQ(s.Read(nullptr, 2, true, 0), (std::vector<std::string>{"p5", "p4"}));
  StreamPosition before{4, "e"};
  EXPECT_EQ(s.Read(&before, -1, true, 0), (std::vector<std::string>{"p3", "p2", "p1"}));
  EXPECT_TRUE(s.Read(nullptr, 0, false, 0).empty());
}

TEST(HistoryStream, RecoversEverythingAfterTheClientsOffset) {
  HistoryStream s("e");
  Fill(s, 5);
  auto r = s.Recover({3, "e"}, 300, 0);
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.publications, (std::vector<std::string>{"p4", "p5"}));
  auto none = s.Recover({5, "e"}, 300, 0);
  EXPECT_TRUE(none.recovered);
  EXPECT_TRUE(none.publications.empty());
}

TEST(HistoryStream, DoesNotRecoverAcrossEpochsTrimmedGapsOrTooMany) {
  HistoryStream s("e");
  Fill(s, 15, 0, 10);
  EXPECT_FALSE(s.Recover({3, "other"}, 300, 0).recovered);
  EXPECT_FALSE(s.Recover({3, "e"}, 300, 0).recovered);   // 4 and 5 were trimmed
  EXPECT_TRUE(s.Recover({5, "e"}, 300, 0).recovered);    // 6.. are all kept
  EXPECT_FALSE(s.Recover({5, "e"}, 9, 0).recovered);     // 10 missed, limit 9
  EXPECT_FALSE(s.Recover({16, "e"}, 300, 0).recovered);  // ahead of the stream
}

TEST(HistoryStream, RecoversNothingMissedEvenWhenEntriesExpired) {
  HistoryStream s("e");
  Fill(s, 3, 0, 10, 100);
  EXPECT_TRUE(s.Recover({3, "e"}, 300, 500).recovered);
  EXPECT_FALSE(s.Recover({2, "e"}, 300, 500).recovered);
}

// a history read stops at its byte bound before it copies anything more.
TEST(HistoryStream, ReadStopsAtTheByteBound) {
  HistoryStream s("e");
  for (int i = 0; i < 10; ++i) s.Append(std::string(100, 'x'), 0, 100, 60000);
  bool cut = false;
  // 100 bytes and a separator each: 350 bytes hold three.
  EXPECT_EQ(s.Read(nullptr, -1, false, 0, 350, &cut).size(), 3u);
  EXPECT_TRUE(cut);
  EXPECT_EQ(s.Read(nullptr, 3, false, 0, 350, &cut).size(), 3u);
  EXPECT_FALSE(cut);
  EXPECT_EQ(s.Read(nullptr, -1, true, 0, 50, &cut).size(), 0u);
  EXPECT_TRUE(cut);
  EXPECT_EQ(s.Read(nullptr, -1, false, 0, SIZE_MAX, &cut).size(), 10u);
  EXPECT_FALSE(cut);
}

TEST(HistoryStream, RecoveryLargerThanItsByteBoundIsNotRecovered) {
  HistoryStream s("e");
  for (int i = 0; i < 10; ++i) s.Append(std::string(100, 'x'), 0, 100, 60000);
  EXPECT_FALSE(s.Recover({5, "e"}, 300, 0, 400).recovered);  // 5 x 101 bytes
  EXPECT_TRUE(s.Recover({5, "e"}, 300, 0, 505).recovered);
}

TEST(HistoryStream, ContinuesAKeptPosition) {
  HistoryStream s("e", 41);
  EXPECT_EQ(s.next_offset(), 42u);
  EXPECT_TRUE(s.Recover({41, "e"}, 300, 0).recovered);
  EXPECT_FALSE(s.Recover({40, "e"}, 300, 0).recovered);  // offset 41 is gone
}

}  // namespace
}  // namespace hermod::core
