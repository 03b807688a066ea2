#include "ws/utf8.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace hermod::ws {
namespace {

bool StreamValid(std::string_view s, size_t step) {
  Utf8Stream stream;
  for (size_t i = 0; i < s.size(); i += step) {
    const size_t n = std::min(step, s.size() - i);
    if (!stream.Feed(reinterpret_cast<const uint8_t*>(s.data() + i), n)) return false;
  }
  return stream.Complete();
}

// Index of the byte at which feeding one byte at a time first fails, or npos.
size_t FirstRejectedByte(std::string_view s) {
  Utf8Stream stream;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!stream.Feed(reinterpret_cast<const uint8_t*>(s.data() + i), 1)) return i;
  }
  return std::string_view::npos;
}

TEST(Utf8, AcceptsValidText) {
  for (std::string s :
       {"", "hello", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
        "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "κόσμε", "\xf0\x9f\x98\x80 ok"}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    for (size_t step = 1; step < 6; ++step) EXPECT_TRUE(StreamValid(s, step)) << s;
  }
}

TEST(Utf8, RejectsOverlongSurrogateAndOutOfRangeForms) {
  for (std::string s :
       {"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
        "\x80", "a\xbf", "\xc2", "\xe2\x82", "\xf0\x9f\x98", "\xc2\x41", "\xe2\x28\xa1"}) {
    EXPECT_FALSE(IsValidUtf8(s)) << testing::PrintToString(s);
    for (size_t step = 1; step < 6; ++step) {
      EXPECT_FALSE(StreamValid(s, step)) << testing::PrintToString(s) << " step " << step;
    }
  }
}

TEST(Utf8Stream, FailsOnTheFirstByteThatMakesThePrefixInvalid) {
  EXPECT_EQ(FirstRejectedByte("ab\xc0"), 2u);              // C0 can only be overlong
  EXPECT_EQ(FirstRejectedByte("\xf5"), 0u);                // beyond U+10FFFF
  EXPECT_EQ(FirstRejectedByte("\xed\xa0\x80"), 1u);        // surrogate, known at A0
  EXPECT_EQ(FirstRejectedByte("\xe0\x9f\x80"), 1u);        // overlong, known at 9F
  EXPECT_EQ(FirstRejectedByte("\xf4\x90\x80\x80"), 1u);    // > U+10FFFF, known at 90
  EXPECT_EQ(FirstRejectedByte("\xf0\x8f\x80\x80"), 1u);    // overlong, known at 8F
  EXPECT_EQ(FirstRejectedByte("\xe2\x82\x41"), 2u);        // missing continuation
  EXPECT_EQ(FirstRejectedByte("ok\xe2\x82\xac\x80"), 5u);  // stray continuation
  EXPECT_EQ(FirstRejectedByte("\xf0\x9f\x98\x80"), std::string_view::npos);
}

TEST(Utf8Stream, IncompleteCodePointAtTheEndIsNotComplete) {
  Utf8Stream stream;
  const uint8_t euro[] = {0xe2, 0x82, 0xac};
  ASSERT_TRUE(stream.Feed(euro, 2));
  EXPECT_FALSE(stream.Complete());
  ASSERT_TRUE(stream.Feed(euro + 2, 1));
  EXPECT_TRUE(stream.Complete());
  ASSERT_TRUE(stream.Feed(euro, 1));
  stream.Reset();
  EXPECT_TRUE(stream.Complete());
}

// Random text, mostly valid with some corruption, agrees with the whole-buffer validator at
// every split.
TEST(Utf8Stream, AgreesWithIsValidUtf8OnRandomTextAtEverySplit) {
  const uint32_t seed = 20240611;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const uint32_t code_points[] = {0x24,   0x7f,   0x80,   0x7ff,   0x800,   0xd7ff,
                                  0xe000, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff};
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string s;
    const int count = static_cast<int>(rng() % 12);
    for (int i = 0; i < count; ++i) {
      const uint32_t cp = code_points[rng() % std::size(code_points)];
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s += static_cast<char>(0xc0 | cp >> 6);
        s += static_cast<char>(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        s += static_cast<char>(0xe0 | cp >> 12);
        s += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
        s += static_cast<char>(0x80 | (cp & 0x3f));
      } else {
        s += static_cast<char>(0xf0 | cp >> 18);
        s += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
        s += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
        s += static_cast<char>(0x80 | (cp & 0x3f));
      }
    }
    if (!s.empty() && rng() % 3 == 0) s[rng() % s.size()] = static_cast<char>(rng());
    if (!s.empty() && rng() % 5 == 0) s.pop_back();
    const bool want = IsValidUtf8(s);
    for (size_t step = 1; step <= 5; ++step) {
      ASSERT_EQ(StreamValid(s, step), want) << testing::PrintToString(s) << " step " << step;
    }
  }
}

}  // namespace
}  // namespace hermod::ws
