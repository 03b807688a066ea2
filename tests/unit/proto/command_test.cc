#include "proto/command.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::proto {
namespace {

std::vector<Command> ParseAll(CommandParser& p, std::string_view message, ParseStatus* last) {
  p.Reset(message);
  std::vector<Command> out;
  Command c;
  while ((*last = p.Next(&c)) == ParseStatus::kOk) out.push_back(c);
  return out;
}

TEST(CommandParser, ParsesSeveralNewlineSeparatedCommandsInOrder) {
  CommandParser p;
  p.Reset(
      "{\"id\":1,\"connect\":{\"name\":\"js\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"a\","
      "\"recover\":true,\"offset\":5,\"epoch\":\"xyz\",\"recoverable\":true,\"flag\":1}}\n");
  Command c;
  ASSERT_EQ(p.Next(&c), ParseStatus::kOk);
  EXPECT_EQ(c.id, 1u);
  EXPECT_EQ(c.method, Method::kConnect);
  ASSERT_EQ(p.Next(&c), ParseStatus::kOk);
  EXPECT_EQ(c.id, 2u);
  EXPECT_EQ(c.method, Method::kSubscribe);
  EXPECT_EQ(c.channel, "a");
  EXPECT_TRUE(c.recover);
  EXPECT_TRUE(c.recoverable);
  EXPECT_EQ(c.offset, 5u);
  EXPECT_EQ(c.epoch, "xyz");
  EXPECT_EQ(p.Next(&c), ParseStatus::kEnd);
}

TEST(CommandParser, KeepsPublicationDataVerbatim) {
  CommandParser p;
  ParseStatus last;
  for (std::string data :
       {"{\"a\": [1, 2 ,3], \"b\":\"\\u00e9\"}", "[1,2]", "\"text\"", "42", "null", "true"}) {
    auto cs =
        ParseAll(p, "{\"id\":3,\"publish\":{\"data\":" + data + " ,\"channel\":\"c\"}}", &last);
    ASSERT_EQ(cs.size(), 1u) << data;
    EXPECT_EQ(cs[0].data, data);
    EXPECT_EQ(cs[0].channel, "c");
    EXPECT_EQ(last, ParseStatus::kEnd);
  }
}

TEST(CommandParser, EmptyObjectIsThePong) {
  CommandParser p;
  ParseStatus last;
  auto cs = ParseAll(p, "{}", &last);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].method, Method::kPong);
  EXPECT_EQ(last, ParseStatus::kEnd);
}

TEST(CommandParser, ReadsHistoryRequest) {
  CommandParser p;
  ParseStatus last;
  auto cs = ParseAll(p,
                     "{\"id\":9,\"history\":{\"channel\":\"c\",\"limit\":-1,\"reverse\":true,"
                     "\"since\":{\"offset\":4,\"epoch\":\"e\"}}}",
                     &last);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].method, Method::kHistory);
  EXPECT_EQ(cs[0].limit, -1);
  EXPECT_TRUE(cs[0].reverse);
  EXPECT_TRUE(cs[0].has_since);
  EXPECT_EQ(cs[0].since_offset, 4u);
  EXPECT_EQ(cs[0].since_epoch, "e");
}

TEST(CommandParser, UnknownMethodsAreReportedNotRejected) {
  CommandParser p;
  ParseStatus last;
  auto cs = ParseAll(p, "{\"id\":4,\"frobnicate\":{}}", &last);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].method, Method::kUnknown);
}

TEST(CommandParser, RejectsMalformedInput) {
  CommandParser p;
  Command c;
  for (std::string bad : {"{", "[]", "{\"id\":1,\"publish\":{\"data\":{\"a\" 1}}}", "{} x",
                          "\"str\"", "{\"id\":1,\"publish\":{\"data\":[1,}}}"}) {
    p.Reset(bad);
    EXPECT_EQ(p.Next(&c), ParseStatus::kInvalidJson) << bad;
  }
  for (std::string bad :
       {"{\"id\":1}", "{\"connect\":{}}", "{\"id\":-1,\"connect\":{}}", "{\"id\":1,\"connect\":5}",
        "{\"id\":1,\"subscribe\":{\"channel\":5}}", "{\"id\":1,\"connect\":{},\"subscribe\":{}}"}) {
    p.Reset(bad);
    EXPECT_EQ(p.Next(&c), ParseStatus::kInvalidCommand) << bad;
  }
}

TEST(CommandParser, SkipsBlankLines) {
  CommandParser p;
  ParseStatus last;
  auto cs = ParseAll(p, "\n{\"id\":1,\"connect\":{}}\r\n\n{}\n", &last);
  EXPECT_EQ(cs.size(), 2u);
  EXPECT_EQ(last, ParseStatus::kEnd);
}

TEST(CommandParser, PassesNumbersOfAnySizeThroughVerbatim) {
  // valid JSON whose numbers no double or int64 holds was refused (3501).
  CommandParser p;
  ParseStatus last;
  for (std::string data : {"{\"wei\": 100000000000000000000}", "1e99999", "-9223372036854775809"}) {
    auto commands =
        ParseAll(p, "{\"id\":3,\"publish\":{\"channel\":\"c\",\"data\":" + data + "}}", &last);
    EXPECT_EQ(last, ParseStatus::kEnd) << data;
    ASSERT_EQ(commands.size(), 1u) << data;
    EXPECT_EQ(commands[0].data, data);
  }
}

TEST(CommandParser, StillRefusesMalformedNumbers) {
  CommandParser p;
  ParseStatus last;
  ParseAll(p, "{\"id\":3,\"publish\":{\"channel\":\"c\",\"data\":01}}", &last);
  EXPECT_EQ(last, ParseStatus::kInvalidJson);
}

// a large message's copy is not kept for the loop's lifetime.
TEST(CommandParser, ReleasesTheCopyOfALargeMessage) {
  CommandParser p;
  ParseStatus last;
  const std::string big =
      "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":\"" + std::string(1 << 20, 'x') + "\"}}";
  ASSERT_EQ(ParseAll(p, big, &last).size(), 1u);
  EXPECT_GE(p.Release(256 * 1024), big.size());
  EXPECT_EQ(p.held_bytes(), 0u);
  // Small messages keep their copy: no allocation per message.
  ParseAll(p, "{\"id\":2,\"presence\":{\"channel\":\"c\"}}", &last);
  const size_t small = p.held_bytes();
  EXPECT_GT(small, 0u);
  p.Release(256 * 1024);
  EXPECT_EQ(p.held_bytes(), small);
  // And parsing goes on after a release.
  EXPECT_EQ(ParseAll(p, big, &last).size(), 1u);
}

}  // namespace
}  // namespace hermod::proto
