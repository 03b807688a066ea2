#include <gtest/gtest.h>

#include <string>

#include "json/syntax.h"

namespace hermod::json {
namespace {

TEST(IsJson, AcceptsNumbersOfAnySizeAndPrecision) {
  // RFC 8259 §6: the grammar has no range; these were once refused.
  EXPECT_TRUE(IsJson(R"({"wei": 100000000000000000000})"));
  EXPECT_TRUE(IsJson("1e99999"));
  EXPECT_TRUE(IsJson("-9223372036854775809"));
  EXPECT_TRUE(IsJson("18446744073709551616"));
  EXPECT_TRUE(IsJson("[0.000000000000000000000000000000000000000000000001e-99999, -0, 0E+1]"));
  EXPECT_TRUE(IsJson(std::string(5000, '9')));
}

TEST(IsJson, RefusesNumbersOutsideTheGrammar) {
  for (const char* bad : {"01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "1.2.3", "--1", "NaN",
                          "Infinity", "[1,]", "[01]"}) {
    EXPECT_FALSE(IsJson(bad)) << bad;
  }
}

TEST(IsJson, AcceptsEveryKindOfValue) {
  for (const char* good : {"{}", "[]", " {\"a\" : [1, \"x\", true, false, null, {\"b\": {}}]} ",
                           "\"\"", "true", "null", R"("\" \\ \/ \b \f \n \r \t \u00e9")",
                           "\"h\xc3\xa9\"", "[[[[]]]]", "{\"a\":1,\"b\":[{},{\"c\":null}]}"}) {
    EXPECT_TRUE(IsJson(good)) << good;
  }
}

TEST(IsJson, RefusesBrokenSyntax) {
  for (const char* bad :
       {"",          " ",          "{",       "}",     "[",       "{\"a\"}",
        "{\"a\" 1}", "{\"a\":1,}", "{a:1}",   "[1 2]", "{} {}",   "{} x",
        "tru",       "nul",        "truex",   "\"abc", "\"\\x\"", "\"\\u12g4\"",
        "\"\\u12\"", "\"a\tb\"",   "'a'",     "[,]",   "{,}",     "{\"a\":1 \"b\":2}",
        "[1]]",      "\"\xff\"",   "\"\xc3\""}) {
    EXPECT_FALSE(IsJson(bad)) << bad;
  }
}

TEST(IsJson, BoundsNesting) {
  EXPECT_TRUE(IsJson(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
  EXPECT_FALSE(IsJson(std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']')));
  EXPECT_FALSE(IsJson(std::string(100000, '[')));
}

}  // namespace
}  // namespace hermod::json
