#include "api/channel_pattern.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::api {
namespace {

bool M(std::string_view pattern, std::string_view name) {
  EXPECT_TRUE(ChannelPattern::Valid(pattern)) << pattern;
  return ChannelPattern::Matches(pattern, name);
}

TEST(ChannelPattern, MatchesLiteralsStarsAndQuestionMarks) {
  EXPECT_TRUE(M("news", "news"));
  EXPECT_FALSE(M("news", "news2"));
  EXPECT_TRUE(M("", ""));
  EXPECT_FALSE(M("", "a"));
  EXPECT_TRUE(M("*", ""));
  EXPECT_TRUE(M("*", "chat:room#u1,u2"));
  EXPECT_TRUE(M("chat:*", "chat:room"));
  EXPECT_FALSE(M("chat:*", "chatroom"));
  EXPECT_TRUE(M("*:room*", "chat:room42"));
  EXPECT_TRUE(M("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(M("a*b*c", "aXXbYY"));
  EXPECT_TRUE(M("n?ws", "news"));
  EXPECT_FALSE(M("n?ws", "nws"));
}

TEST(ChannelPattern, MatchesClassesRangesAndNegation) {
  EXPECT_TRUE(M("room[12]", "room1"));
  EXPECT_FALSE(M("room[12]", "room3"));
  EXPECT_TRUE(M("room[0-9]", "room7"));
  EXPECT_FALSE(M("room[0-9]", "roomx"));
  EXPECT_TRUE(M("room[!0-9]", "roomx"));
  EXPECT_FALSE(M("room[!0-9]", "room5"));
  EXPECT_FALSE(M("room[0-9]", "room"));
}

TEST(ChannelPattern, MatchesAlternativesNestedAndFollowedByMore) {
  EXPECT_TRUE(M("{news,sport}", "sport"));
  EXPECT_FALSE(M("{news,sport}", "weather"));
  EXPECT_TRUE(M("{chat,dm}:*", "dm:42"));
  EXPECT_TRUE(M("x{a,b{c,d}}y", "xbdy"));
  EXPECT_FALSE(M("x{a,b{c,d}}y", "xby"));
  EXPECT_TRUE(M("{a*,b}c", "aZZc"));
  EXPECT_TRUE(M("{,pre}fix", "fix"));
}

TEST(ChannelPattern, EscapesMetaCharacters) {
  EXPECT_TRUE(M("a\\*b", "a*b"));
  EXPECT_FALSE(M("a\\*b", "aXb"));
  EXPECT_TRUE(M("\\{x\\}", "{x}"));
}

TEST(ChannelPattern, RefusesMalformedPatterns) {
  for (std::string_view bad : {"[ab", "{a,b", "a\\", "a}", "{[a}"}) {
    EXPECT_FALSE(ChannelPattern::Valid(bad)) << bad;
    EXPECT_FALSE(ChannelPattern::Matches(bad, "a")) << bad;  // and never reads past the end
  }
}

TEST(ChannelPattern, BoundsTheWorkOfAHostilePattern) {
  // Exponential backtracking without a budget; here it stops and does not match.
  std::string pattern;
  for (int i = 0; i < 30; ++i) pattern += "*a";
  pattern += "b";
  EXPECT_FALSE(ChannelPattern::Matches(pattern, std::string(100, 'a')));
}

}  // namespace
}  // namespace hermod::api
