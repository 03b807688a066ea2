#include "json/string_writer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace hermod::json {
namespace {

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

const std::string kFffd = "\xEF\xBF\xBD";

bool ValidUtf8(const std::string& s) { return simdjson::validate_utf8(s.data(), s.size()); }

// The output parses as one JSON string (simdjson checks escapes and UTF-8).
bool ParsesAsJsonString(const std::string& json, std::string* value) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc) != simdjson::SUCCESS) return false;
  std::string_view v;
  if (doc.get_string().get(v) != simdjson::SUCCESS) return false;
  *value = std::string(v);
  return true;
}

TEST(StringWriterTest, CopiesPlainAsciiAndValidUtf8AsTheyAre) {
  EXPECT_EQ(Json(""), "\"\"");
  EXPECT_EQ(Json("news:room-1/a.b"), "\"news:room-1/a.b\"");
  const std::string utf8 = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \x7F";
  EXPECT_EQ(Json(utf8), "\"" + utf8 + "\"");
  // Longer than the 8-byte word scan, with the special byte at every position.
  for (size_t at = 0; at < 20; ++at) {
    std::string s(20, 'a');
    s[at] = '"';
    std::string expected(20, 'a');
    expected.replace(at, 1, "\\\"");
    EXPECT_EQ(Json(s), "\"" + expected + "\"") << at;
  }
}

TEST(StringWriterTest, EscapesQuoteBackslashAndEveryControlCharacter) {
  EXPECT_EQ(Json("a\"b\\c"), "\"a\\\"b\\\\c\"");
  const char* expected[32] = {
      "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
      "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
      "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
      "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f"};
  for (int c = 0; c < 32; ++c) {
    const std::string input = std::string("x") + static_cast<char>(c) + "y";
    const std::string json = Json(input);
    EXPECT_EQ(json, std::string("\"x") + expected[c] + "y\"") << c;
    std::string back;
    ASSERT_TRUE(ParsesAsJsonString(json, &back)) << c;
    EXPECT_EQ(back, input) << c;
  }
}

TEST(StringWriterTest, ReplacesInvalidUtf8WithReplacementCharacter) {
  struct Case {
    const char* name;
    std::string input;
    std::string expected;  // the string's contents, without quotes
  };
  const Case cases[] = {
      {"lone continuation", "a\x80z", "a" + kFffd + "z"},
      {"two continuations", "\x80\xBF", kFffd + kFffd},
      {"C0 overlong slash", "\xC0\xAF", kFffd + kFffd},
      {"C1 overlong", "\xC1\xBF", kFffd + kFffd},
      {"overlong 3 bytes", "\xE0\x80\xAF", kFffd + kFffd + kFffd},
      {"overlong 4 bytes", "\xF0\x80\x80\xAF", kFffd + kFffd + kFffd + kFffd},
      {"high surrogate", "\xED\xA0\x80", kFffd + kFffd + kFffd},
      {"low surrogate", "\xED\xBF\xBF", kFffd + kFffd + kFffd},
      {"above U+10FFFF", "\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},
      {"F5 lead", "\xF5\x80\x80\x80", kFffd + kFffd + kFffd + kFffd},
      {"FF byte", "a\xFF", "a" + kFffd},
      {"truncated 2 at end", "a\xC3", "a" + kFffd},
      {"truncated 3 at end", "a\xE2\x82", "a" + kFffd},
      {"truncated 4 at end", "a\xF0\x9F\x98", "a" + kFffd},
      {"truncated then ASCII", "\xE2\x82z", kFffd + "z"},
      {"truncated then quote", "\xF0\x9F\"", kFffd + "\\\""},
      {"truncated then valid", "\xE2\xC3\xA9", kFffd + "\xC3\xA9"},
  };
  for (const Case& c : cases) {
    const std::string json = Json(c.input);
    EXPECT_EQ(json, "\"" + c.expected + "\"") << c.name;
    std::string back;
    EXPECT_TRUE(ParsesAsJsonString(json, &back)) << c.name;
  }
}

// Every one- and two-byte input, and every lead byte with every second byte before a valid
// tail: the output is valid UTF-8 and JSON, and valid UTF-8 input without escapes is kept.
TEST(StringWriterTest, OutputIsValidForEveryShortInput) {
  std::string back;
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (const std::string& tail : {std::string(), std::string("\x80\x80"), std::string("zz")}) {
        std::string input = {static_cast<char>(a), static_cast<char>(b)};
        input += tail;
        const std::string json = Json(input);
        ASSERT_TRUE(ValidUtf8(json)) << a << " " << b;
        ASSERT_TRUE(ParsesAsJsonString(json, &back)) << a << " " << b;
        const bool plain = a >= 0x20 && b >= 0x20 && a != '"' && b != '"' && a != '\\' && b != '\\';
        if (plain && ValidUtf8(input)) {
          ASSERT_EQ(back, input) << a << " " << b;
        }
      }
    }
  }
}

TEST(StringWriterTest, AppendEscapedWritesNoQuotesAndAppends) {
  std::string out = "x=";
  AppendEscaped(out, "a\nb");
  EXPECT_EQ(out, "x=a\\nb");
}

}  // namespace
}  // namespace hermod::json
