#include "proto/stream_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hermod::proto {
namespace {

std::vector<std::string> Values(std::string_view text) {
  std::vector<std::string> out;
  ForEachJsonValue(text, [&](std::string_view v) {
    out.emplace_back(v);
    return true;
  });
  return out;
}

TEST(StreamFormat, SplitsJoinedValuesByStructureNotNewlines) {
  // Raw newlines inside publication data (JSON whitespace) and inside strings' escapes.
  const auto v = Values("{\"push\":{\"pub\":{\"data\":{\"a\":\n1}}}}\n{\"s\":\"x\\\"}\\n\"}\n{}");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0], "{\"push\":{\"pub\":{\"data\":{\"a\":\n1}}}}");
  EXPECT_EQ(v[1], "{\"s\":\"x\\\"}\\n\"}");
  EXPECT_EQ(v[2], "{}");
  EXPECT_TRUE(Values("{\"unclosed\":").empty());
}

TEST(StreamFormat, UnidirectionalForms) {
  UniValue u = ToUni("{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}");
  EXPECT_EQ(u.kind, UniValue::kPush);
  EXPECT_EQ(u.body, "{\"channel\":\"c\",\"pub\":{\"data\":1}}");
  u = ToUni("{\"id\":1,\"connect\":{\"client\":\"x\"}}");
  EXPECT_EQ(u.kind, UniValue::kConnect);
  EXPECT_EQ(u.body, "{\"client\":\"x\"}");
  u = ToUni("{\"id\":12,\"error\":{\"code\":103,\"message\":\"permission denied\"}}");
  EXPECT_EQ(u.kind, UniValue::kError);
  EXPECT_EQ(u.error_code, 103u);
  EXPECT_EQ(ToUni("{}").kind, UniValue::kPing);
  EXPECT_EQ(ToUni("{\"id\":2,\"subscribe\":{}}").kind, UniValue::kOther);
}

TEST(StreamFormat, SseDataLinesAndJsonLines) {
  std::string out;
  AppendSseData(out, "<li>\r\n a\n</li>\n");
  EXPECT_EQ(out, "data: <li>\ndata:  a\ndata: </li>\n\n");
  out.clear();
  AppendJsonLine(out, "{\"a\":\r\n1}");
  EXPECT_EQ(out, "{\"a\":  1}\n");
  out.clear();
  AppendHttpChunk(out, std::string(26, 'x'));
  EXPECT_EQ(out.substr(0, 4), "1a\r\n");
}

TEST(StreamFormat, WrapsOnlyOneObject) {
  std::string c;
  ASSERT_TRUE(WrapConnect("", &c));
  EXPECT_EQ(c, "{\"id\":1,\"connect\":{}}");
  ASSERT_TRUE(WrapConnect(" {\"token\":\n\"t\"} ", &c));
  EXPECT_EQ(c, "{\"id\":1,\"connect\":{\"token\": \"t\"}}");
  EXPECT_FALSE(WrapConnect("{}}\n{\"id\":2,\"publish\":{}}", &c));
  EXPECT_FALSE(WrapConnect("[1]", &c));
  EXPECT_FALSE(WrapConnect("{\"token\":", &c));
}

TEST(StreamFormat, WrapsAConnectRecoveringFromLastEventId) {
  std::string c;
  const std::vector<NamedPosition> from = {NamedPosition{"news", {"E", 7, true}},
                                           NamedPosition{"a\"b", {"F", 0, true}}};
  // No subs: they are added.
  ASSERT_TRUE(WrapConnect("{\"token\":\"t\"}", from, &c));
  EXPECT_EQ(c,
            "{\"id\":1,\"connect\":{\"token\":\"t\",\"subs\":{"
            "\"news\":{\"recover\":true,\"epoch\":\"E\",\"offset\":7},"
            "\"a\\\"b\":{\"recover\":true,\"epoch\":\"F\",\"offset\":0}}}}");
  // The request's own position of a channel gives way; its others stay, raw newlines go.
  ASSERT_TRUE(WrapConnect(
      "{\"subs\":{\"news\":{\"recover\":true,\"epoch\":\"E\",\"offset\":1},\"x\":{\"a\":\n1}},"
      "\"data\":[1, 2]}",
      {from[0]}, &c));
  EXPECT_EQ(c,
            "{\"id\":1,\"connect\":{\"subs\":{\"x\":{\"a\": 1},"
            "\"news\":{\"recover\":true,\"epoch\":\"E\",\"offset\":7}},\"data\":[1, 2]}}");
  ASSERT_TRUE(WrapConnect("", from, &c));
  EXPECT_EQ(c.find("{\"id\":1,\"connect\":{\"subs\":{\"news\":"), 0u);
  // Nothing to recover: as WrapConnect.
  ASSERT_TRUE(WrapConnect(" {\"token\":\n\"t\"} ", {}, &c));
  EXPECT_EQ(c, "{\"id\":1,\"connect\":{\"token\": \"t\"}}");
  EXPECT_FALSE(WrapConnect("[1]", from, &c));
  EXPECT_FALSE(WrapConnect("{\"subs\":[1]}", from, &c));
}

TEST(StreamFormat, LastEventId) {
  std::string epoch;
  uint64_t offset = 0;
  ASSERT_TRUE(ParseLastEventId("AbCd:17", &epoch, &offset));
  EXPECT_EQ(epoch, "AbCd");
  EXPECT_EQ(offset, 17u);
  EXPECT_FALSE(ParseLastEventId("17", &epoch, &offset));
  EXPECT_FALSE(ParseLastEventId(":17", &epoch, &offset));
  EXPECT_FALSE(ParseLastEventId("e:", &epoch, &offset));
  EXPECT_FALSE(ParseLastEventId("e:-1", &epoch, &offset));
  EXPECT_FALSE(ParseLastEventId("e:99999999999999999999", &epoch, &offset));
  EXPECT_FALSE(ParseLastEventId("a:b:1", &epoch, &offset));
  EXPECT_FALSE(ParseLastEventId(std::string(65, 'e') + ":1", &epoch, &offset));
}

TEST(StreamFormat, EventPositionsOfEveryChannel) {
  std::vector<StreamPosition> p;
  // One position without a comma: every channel's (a one-channel stream's id).
  ASSERT_TRUE(ParseEventPositions("E:4", 3, &p));
  ASSERT_EQ(p.size(), 3u);
  EXPECT_TRUE(p[2].known);
  EXPECT_EQ(p[2].epoch, "E");
  EXPECT_EQ(p[2].offset, 4u);
  ASSERT_TRUE(ParseEventPositions("A:1,,C:30", 3, &p));
  EXPECT_EQ(p[0].epoch, "A");
  EXPECT_FALSE(p[1].known);
  EXPECT_EQ(p[2].offset, 30u);
  std::string id;
  AppendEventPositions(id, p);
  EXPECT_EQ(id, "A:1,,C:30");
  EXPECT_FALSE(ParseEventPositions("A:1,B:2", 3, &p));  // another count of channels
  EXPECT_FALSE(ParseEventPositions("A:1,B:2,C:3,D:4", 3, &p));
  EXPECT_FALSE(ParseEventPositions("A:1,B:x,C:3", 3, &p));  // a malformed position
  EXPECT_FALSE(ParseEventPositions(",", 3, &p));
  EXPECT_FALSE(ParseEventPositions("", 1, &p));
  // The bound: the longest id of the most channels hermod streams fits; one byte more not.
  std::string longest;
  std::vector<StreamPosition> most(kMaxLastEventIdBytes / kMaxPositionBytes,
                                   StreamPosition{std::string(64, 'e'), UINT64_MAX, true});
  AppendEventPositions(longest, most);
  EXPECT_LE(longest.size(), kMaxLastEventIdBytes);
  ASSERT_TRUE(ParseEventPositions(longest, most.size(), &p));
  EXPECT_EQ(p.size(), most.size());
  EXPECT_FALSE(ParseEventPositions(std::string(kMaxLastEventIdBytes + 1, ','),
                                   kMaxLastEventIdBytes + 2, &p));
}

TEST(StreamFormat, NamedEventPositions) {
  std::vector<StreamPosition> p;
  std::vector<NamedPosition> named;
  // After the positional ones, the channels the request did not name, by name (escaped).
  ASSERT_TRUE(ParseEventPositions("A:1,,x%2Cy%3D=B:7,ns:c%25=C:0", 2, &p, &named));
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].epoch, "A");
  EXPECT_FALSE(p[1].known);
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].channel, "x,y=");
  EXPECT_EQ(named[0].position.epoch, "B");
  EXPECT_EQ(named[0].position.offset, 7u);
  EXPECT_EQ(named[1].channel, "ns:c%");
  std::string id;
  AppendEventPositions(id, p, named);
  EXPECT_EQ(id, "A:1,,x%2Cy%3D=B:7,ns:c%25=C:0");
  ASSERT_TRUE(ParseEventPositions("6e0a2d41:1,chat=3b5142d1:1", 1, &p, &named));
  EXPECT_EQ(named.at(0).channel, "chat");
  // No positional ones (uni_sse): named only, a single one without a comma too.
  ASSERT_TRUE(ParseEventPositions("news=E:3", 0, &p, &named));
  EXPECT_TRUE(p.empty());
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].channel, "news");
  id.clear();
  AppendEventPositions(
      id, {}, {NamedPosition{"a b", {"E", 1, true}}, NamedPosition{"skip", {"", 0, false}}});
  EXPECT_EQ(id, "a%20b=E:1");
  // The positional parser takes no named ones; malformed names, a repeated channel refused.
  EXPECT_FALSE(ParseEventPositions("A:1,n=B:2", 1, &p));
  EXPECT_FALSE(ParseEventPositions("A:1,B:2", 1, &p, &named));
  EXPECT_FALSE(ParseEventPositions("n=B:2,n=C:3", 0, &p, &named));
  EXPECT_FALSE(ParseEventPositions("=B:2", 0, &p, &named));
  EXPECT_FALSE(ParseEventPositions("a%2=B:2", 0, &p, &named));
  EXPECT_FALSE(ParseEventPositions("a%zz=B:2", 0, &p, &named));
  EXPECT_FALSE(ParseEventPositions("a,b=B:2", 0, &p, &named));
  EXPECT_FALSE(ParseEventPositions("", 0, &p, &named));
  // Named ones that do not fit the bound are left out of the id, never past it.
  std::vector<NamedPosition> many(200, NamedPosition{std::string(60, 'c'), {"E", 1, true}});
  for (size_t i = 0; i < many.size(); ++i) many[i].channel += std::to_string(i);
  id.clear();
  AppendEventPositions(id, {}, many);
  EXPECT_LE(id.size(), kMaxLastEventIdBytes);
  ASSERT_TRUE(ParseEventPositions(id, 0, &p, &named));
  EXPECT_GT(named.size(), 100u);
  EXPECT_LT(named.size(), many.size());
}

TEST(StreamFormat, FragmentEventsSendDataVerbatim) {
  Fragment f;
  ASSERT_TRUE(FragmentOf(
      "{\"channel\":\"news\",\"pub\":{\"data\":\"<li>\\\"hi\\\"\\n</li>\",\"offset\":7}}", &f));
  std::string out;
  AppendFragmentEvent(out, f, "ep");
  EXPECT_EQ(out, "event: news\nid: ep:7\ndata: <li>\"hi\"\ndata: </li>\n\n");
  ASSERT_TRUE(FragmentOf("{\"channel\":\"n\",\"pub\":{\"data\":{\"a\":1}}}", &f));
  EXPECT_EQ(f.data, "{\"a\":1}");
  EXPECT_FALSE(FragmentOf("{\"channel\":\"n\",\"join\":{\"info\":{}}}", &f));
  SubscribeReplyView reply;
  ASSERT_TRUE(ParseSubscribeReply(
      "{\"id\":3,\"subscribe\":{\"recoverable\":true,\"epoch\":\"E\",\"offset\":9,"
      "\"publications\":[{\"data\":\"x\",\"offset\":8},{\"data\":\"y\",\"offset\":9}]}}",
      &reply));
  EXPECT_EQ(reply.id, 3u);
  EXPECT_EQ(reply.epoch, "E");
  EXPECT_EQ(reply.offset, 9u);
  EXPECT_FALSE(reply.recovered);
  ASSERT_EQ(reply.publications.size(), 2u);
  ASSERT_TRUE(FragmentOfPublication(reply.publications[1], "c", &f));
  EXPECT_EQ(f.data, "y");
  EXPECT_EQ(f.offset, 9u);
}

TEST(StreamFormat, HtmxFormBecomesPublication) {
  std::string channel;
  std::string data;
  ASSERT_TRUE(
      FormPublication("{\"message\":\"hi \\\"you\\\"\",\"channel\":\"chat\",\"n\": 1 ,"
                      "\"HEADERS\":{\"HX-Request\":\"true\",\"HX-Trigger\":null}}",
                      &channel, &data));
  EXPECT_EQ(channel, "chat");
  EXPECT_EQ(data, "{\"message\":\"hi \\\"you\\\"\",\"channel\":\"chat\",\"n\":1}");
  EXPECT_FALSE(FormPublication("{\"message\":\"no channel\"}", &channel, &data));
  EXPECT_FALSE(FormPublication("{\"channel\":1}", &channel, &data));
  EXPECT_FALSE(FormPublication("{\"channel\":\"\"}", &channel, &data));
  EXPECT_FALSE(FormPublication("[]", &channel, &data));
  EXPECT_FALSE(FormPublication("{\"channel\":\"a\"} {}", &channel, &data));
}

}  // namespace
}  // namespace hermod::proto
