#include "json/syntax.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::json {
namespace {

TEST(SyntaxErrorTest, AcceptsGrammaticalJson) {
  for (const char* text :
       {"{}", " [ ] ", "{\"a\": [1, -2.5e+3, 0, true, false, null, \"x\\u00e9\\n\"]}", "\"s\"",
        "-0.0E-1", "{\"caf\xC3\xA9\": {\"b\": {}}}"}) {
    EXPECT_FALSE(FindSyntaxError(text).found) << text;
  }
}

TEST(SyntaxErrorTest, NamesLineColumnAndWhatWasExpected) {
  struct Case {
    std::string text;
    size_t line, column;
    std::string expected;
  };
  const Case cases[] = {
      {"{\n  \"port\": 8000\n  \"bind\": \"x\"\n}", 3, 3, "',' or '}'"},
      {"{\"a\": 1,}", 1, 9, "a string key in double quotes"},
      {"{\"a\" 1}", 1, 6, "':' after the key"},
      {"[1, 2", 1, 6, "',' or ']'"},
      {"{\"a\": tru}", 1, 10, "true"},
      {"{\"a\": 01}", 1, 8, "',' or '}'"},
      {"{\"a\": 1.}", 1, 9, "a digit after the decimal point"},
      {"{\"a\": \"x\ty\"}", 1, 9, "a control character escaped in a string"},
      {"{\"a\": \"\\x\"}", 1, 9, "an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX"},
      {"{\"a\": \"\\u12g4\"}", 1, 12, "four hex digits after \\u"},
      {"{\"a\": \"open", 1, 12, "the closing '\"' of the string"},
      {"{\"caf\xC3\xA9\": x}", 1, 10, "a value"},  // columns count characters
      {"{} {}", 1, 4, "the end of the text after the top-level value"},
      {"", 1, 1, "a value"},
      {"// comment\n{}", 1, 1, "a value"},
  };
  for (const Case& c : cases) {
    const SyntaxError e = FindSyntaxError(c.text);
    EXPECT_TRUE(e.found) << c.text;
    EXPECT_EQ(e.line, c.line) << c.text;
    EXPECT_EQ(e.column, c.column) << c.text;
    EXPECT_EQ(e.expected, c.expected) << c.text;
  }
}

TEST(SyntaxErrorTest, BoundsNestingInsteadOfOverflowingTheStack) {
  const std::string deep(100000, '[');
  const SyntaxError e = FindSyntaxError(deep);
  EXPECT_TRUE(e.found);
  EXPECT_EQ(e.expected, "less nesting");
  EXPECT_EQ(e.column, static_cast<size_t>(kMaxJsonDepth) + 1);
}

}  // namespace
}  // namespace hermod::json
