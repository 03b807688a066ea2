#include "broker/subject.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace hermod::broker {
namespace {

// What nats-server accepts as one literal token of a subject.
bool ValidToken(std::string_view t) {
  if (t.empty()) return false;
  for (unsigned char c : t) {
    if (c == '.' || c == '*' || c == '>' || c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

TEST(BrokerSubject, PlainNamesStayReadable) {
  EXPECT_EQ(SubjectToken("news"), "news");
  EXPECT_EQ(SubjectToken("chat:room-1_a"), "chat:room-1_a");
  EXPECT_EQ(ChannelSubject("hermod", "news"), "hermod.ch.news");
}

TEST(BrokerSubject, UnsafeBytesAreEscaped) {
  EXPECT_EQ(SubjectToken("a.b"), "a%2Eb");
  EXPECT_EQ(SubjectToken("*"), "%2A");
  EXPECT_EQ(SubjectToken(">"), "%3E");
  EXPECT_EQ(SubjectToken("a b"), "a%20b");
  EXPECT_EQ(SubjectToken("100%"), "100%25");
  EXPECT_EQ(SubjectToken("user#42"), "user%2342");
  EXPECT_EQ(SubjectToken("\xc3\xa9"), "%C3%A9");
  EXPECT_EQ(SubjectToken(std::string("a\0b", 3)), "a%00b");
  EXPECT_EQ(SubjectToken(""), "%");
  EXPECT_EQ(SubjectToken("a..b"), "a%2E%2Eb");  // no empty token
}

TEST(BrokerSubject, TokensAreValidAndDistinctAndDecodeBack) {
  const std::vector<std::string> names = {
      "",         "%",     "%25",    "a.b",   "a%2Eb",
      ".",        "..",    "*",      ">",     "a b",
      "a\tb",     "#",     "#00",    "$priv", "news#1,2",
      "\xff\xfe", "x.*.>", "ch:a.b", "a\nb",  "é",
      "%2",       "%zz",   "A",      "a",     std::string(1, '\0'),
      "~!;,+@=:"};
  std::set<std::string> tokens;
  for (const std::string& n : names) {
    const std::string t = SubjectToken(n);
    EXPECT_TRUE(ValidToken(t)) << t;
    EXPECT_TRUE(tokens.insert(t).second) << "two names share " << t;
    const std::optional<std::string> back = ChannelOfToken(t);
    ASSERT_TRUE(back.has_value()) << t;
    EXPECT_EQ(*back, n);
  }
}

TEST(BrokerSubject, EveryByteRoundTrips) {
  std::set<std::string> tokens;
  for (int b = 0; b < 256; ++b) {
    const std::string n(1, static_cast<char>(b));
    const std::string t = SubjectToken(n);
    EXPECT_TRUE(ValidToken(t)) << b;
    EXPECT_TRUE(tokens.insert(t).second) << b;
    EXPECT_EQ(ChannelOfToken(t), n);
  }
}

TEST(BrokerSubject, TokensSubjectTokenNeverMakesAreRefused) {
  EXPECT_FALSE(ChannelOfToken(""));
  EXPECT_FALSE(ChannelOfToken("%2"));
  EXPECT_FALSE(ChannelOfToken("%2e"));  // lower case: one token per name
  EXPECT_FALSE(ChannelOfToken("%41"));  // 'A' is never escaped
  EXPECT_FALSE(ChannelOfToken("a.b"));
  EXPECT_FALSE(ChannelOfToken("#0123"));
}

TEST(BrokerSubject, LongNamesAreHashedIntoABoundedToken) {
  const std::string plain(kMaxEscapedToken, 'a');  // fits exactly
  EXPECT_EQ(SubjectToken(plain), plain);
  const std::string dots(kMaxEscapedToken / 3 + 1, '.');  // escaped, one byte too long
  const std::string t = SubjectToken(dots);
  EXPECT_EQ(t.size(), 33u);
  EXPECT_EQ(t[0], '#');
  EXPECT_TRUE(ValidToken(t));
  EXPECT_FALSE(ChannelOfToken(t));
  EXPECT_NE(SubjectToken(dots + "."), t);
  EXPECT_EQ(SubjectToken(dots), t);  // stable: every node computes the same subject
}

}  // namespace
}  // namespace hermod::broker
