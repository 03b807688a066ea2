#include "proto/protobuf.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proto/encode.h"

namespace hermod::proto {
namespace {

// A minimal protobuf writer for the tests' Commands (field numbers from client.proto).
struct Pb {
  std::string bytes;
  Pb& Varint(uint32_t field, uint64_t v) {
    AppendVarint(bytes, uint64_t{field} << 3);
    AppendVarint(bytes, v);
    return *this;
  }
  Pb& Len(uint32_t field, std::string_view v) {
    AppendVarint(bytes, (uint64_t{field} << 3) | 2);
    AppendVarint(bytes, v.size());
    bytes += v;
    return *this;
  }
  Pb& Msg(uint32_t field, const Pb& m) { return Len(field, m.bytes); }
  std::string Delimited() const {
    std::string out;
    AppendVarint(out, bytes.size());
    return out + bytes;
  }
};

// A minimal reader of what the encoder wrote: field number -> values (varints as numbers,
// length-delimited as bytes), in order.
struct Fields {
  std::multimap<uint32_t, std::string> len;
  std::multimap<uint32_t, uint64_t> num;
  std::string Bytes(uint32_t f) const {
    auto it = len.find(f);
    return it == len.end() ? std::string() : it->second;
  }
  uint64_t Num(uint32_t f) const {
    auto it = num.find(f);
    return it == num.end() ? 0 : it->second;
  }
};

bool ReadVarint(std::string_view& in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    *v |= uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

Fields Read(std::string_view in) {
  Fields f;
  while (!in.empty()) {
    uint64_t tag, v;
    EXPECT_TRUE(ReadVarint(in, &tag));
    if ((tag & 7) == 0) {
      EXPECT_TRUE(ReadVarint(in, &v));
      f.num.emplace(static_cast<uint32_t>(tag >> 3), v);
    } else {
      EXPECT_EQ(tag & 7, 2u);
      EXPECT_TRUE(ReadVarint(in, &v));
      EXPECT_LE(v, in.size());
      f.len.emplace(static_cast<uint32_t>(tag >> 3), std::string(in.substr(0, v)));
      in.remove_prefix(v);
    }
  }
  return f;
}

// The delimited Replies of one message.
std::vector<std::string> Replies(std::string_view in) {
  std::vector<std::string> out;
  while (!in.empty()) {
    uint64_t n;
    EXPECT_TRUE(ReadVarint(in, &n));
    EXPECT_LE(n, in.size());
    out.emplace_back(in.substr(0, n));
    in.remove_prefix(n);
  }
  return out;
}

std::vector<Command> ParseAll(std::string_view message, ParseStatus* last) {
  static ProtobufCommandParser p;
  p.Reset(message);
  std::vector<Command> out;
  Command c;
  while ((*last = p.Next(&c)) == ParseStatus::kOk) out.push_back(c);
  return out;
}

TEST(ProtobufCommandParser, DecodesSeveralDelimitedCommandsInOrder) {
  Pb connect;
  connect.Len(1, "jwt").Msg(3,
                            Pb().Len(1, "ch").Msg(2, Pb().Varint(3, 1).Len(6, "ep").Varint(7, 9)));
  Pb subscribe;
  subscribe.Len(1, "news").Varint(3, 1).Len(6, "xyz").Varint(7, 5).Varint(10, 1).Varint(11, 1);
  Pb history;
  history.Len(1, "h").Varint(7, 10).Msg(8, Pb().Varint(1, 3).Len(2, "e")).Varint(9, 1);
  const std::string message = Pb().Varint(1, 1).Msg(4, connect).Delimited() +
                              Pb().Varint(1, 2).Msg(5, subscribe).Delimited() +
                              Pb().Varint(1, 3).Msg(10, history).Delimited() +
                              Pb().Delimited();  // an empty Command: the pong
  ParseStatus last;
  auto commands = ParseAll(message, &last);
  EXPECT_EQ(last, ParseStatus::kEnd);
  ASSERT_EQ(commands.size(), 4u);
  EXPECT_EQ(commands[0].method, Method::kConnect);
  EXPECT_EQ(commands[0].token, "jwt");
  ASSERT_EQ(commands[0].subs.size(), 1u);
  EXPECT_EQ(commands[0].subs[0].channel, "ch");
  EXPECT_TRUE(commands[0].subs[0].recover);
  EXPECT_EQ(commands[0].subs[0].epoch, "ep");
  EXPECT_EQ(commands[0].subs[0].offset, 9u);
  EXPECT_EQ(commands[1].id, 2u);
  EXPECT_EQ(commands[1].method, Method::kSubscribe);
  EXPECT_EQ(commands[1].channel, "news");
  EXPECT_TRUE(commands[1].recover && commands[1].recoverable && commands[1].join_leave);
  EXPECT_EQ(commands[1].epoch, "xyz");
  EXPECT_EQ(commands[1].offset, 5u);
  EXPECT_EQ(commands[2].method, Method::kHistory);
  EXPECT_EQ(commands[2].limit, 10);
  EXPECT_TRUE(commands[2].has_since && commands[2].reverse);
  EXPECT_EQ(commands[2].since_offset, 3u);
  EXPECT_EQ(commands[2].since_epoch, "e");
  EXPECT_EQ(commands[3].method, Method::kPong);
}

TEST(ProtobufCommandParser, KeepsJsonDataAsTextAndMarksBinaryData) {
  ParseStatus last;
  auto json =
      ParseAll(Pb().Varint(1, 1).Msg(7, Pb().Len(1, "c").Len(2, "{\"a\":1}")).Delimited(), &last);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0].data, "{\"a\":1}");
  const std::string bytes("\x00\x01\xff{", 4);
  auto bin = ParseAll(Pb().Varint(1, 1).Msg(7, Pb().Len(1, "c").Len(2, bytes)).Delimited(), &last);
  ASSERT_EQ(bin.size(), 1u);
  ASSERT_TRUE(IsBinaryData(bin[0].data));
  std::string decoded;
  ASSERT_TRUE(DecodeBase64Into(bin[0].data.substr(1), decoded));
  EXPECT_EQ(decoded, bytes);
  // JSON with a line break cannot travel in the JSON protocol's framing: binary too.
  auto newline =
      ParseAll(Pb().Varint(1, 1).Msg(7, Pb().Len(1, "c").Len(2, "{\n}")).Delimited(), &last);
  ASSERT_EQ(newline.size(), 1u);
  EXPECT_TRUE(IsBinaryData(newline[0].data));
  // Binary data is for publish only.
  ParseAll(Pb().Varint(1, 1).Msg(13, Pb().Len(1, bytes)).Delimited(), &last);
  EXPECT_EQ(last, ParseStatus::kInvalidCommand);
}

TEST(ProtobufCommandParser, AnswersUnknownRequestsAsMethodNotFound) {
  ParseStatus last;
  auto ping = ParseAll(Pb().Varint(1, 7).Msg(11, Pb()).Delimited(), &last);
  ASSERT_EQ(ping.size(), 1u);
  EXPECT_EQ(ping[0].method, Method::kUnknown);
  auto future = ParseAll(Pb().Varint(1, 8).Msg(40, Pb()).Delimited(), &last);
  ASSERT_EQ(future.size(), 1u);
  EXPECT_EQ(future[0].method, Method::kUnknown);
}

TEST(ProtobufCommandParser, RefusesMalformedInput) {
  const std::vector<std::string> bad = {
      std::string("\x05\x08", 2),      // length past the message
      std::string("\x02\x08\x80", 3),  // truncated varint
      std::string("\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 12),  // varint past 64 bits
      std::string("\x02\x0a\x00", 3),                              // id with a wrong wire type
      std::string("\x04\x08\x01\x20\x01", 5),                      // connect as a varint
      std::string("\x02\x0b\x00", 3),                              // a group (wire type 3)
      std::string("\x06\x08\x01\x22\x10\x0a\x00", 7),              // nested length past its message
      std::string("\xff\xff\xff\xff\x0f", 5),                      // a huge length
      Pb().Msg(5, Pb().Len(1, "c")).Delimited(),                   // a request without an id
      Pb().Varint(1, 1).Msg(4, Pb()).Msg(5, Pb()).Delimited(),     // two requests
      Pb().Varint(1, uint64_t{1} << 33).Msg(4, Pb()).Delimited(),  // id past uint32
  };
  for (const std::string& message : bad) {
    ParseStatus last;
    ParseAll(message, &last);
    EXPECT_EQ(last, ParseStatus::kInvalidCommand) << testing::PrintToString(message);
  }
}

TEST(ProtobufReplyEncoder, EncodesRepliesAndPushesWithClientProtoFieldNumbers) {
  ProtobufReplyEncoder encoder;
  std::string out;
  const std::string pub =
      PublicationJson("{\"x\":1}", ClientInfoJson("u", "c", "{\"ci\":1}"), 7, "{\"k\":\"v\"}");
  std::string push;
  AppendPublicationPush(push, "news", pub);
  std::string error;
  AppendError(error, 3, ErrorCode::kTooManyRequests);
  ASSERT_TRUE(encoder.Append("{}\n" + push + "\n" + error + "\n{\"id\":4,\"publish\":{}}", out));
  auto replies = Replies(out);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0], "");  // the ping: an empty Reply
  Fields reply = Read(replies[1]);
  Fields p = Read(reply.Bytes(4));
  EXPECT_EQ(p.Bytes(2), "news");
  Fields publication = Read(p.Bytes(4));
  EXPECT_EQ(publication.Bytes(4), "{\"x\":1}");
  EXPECT_EQ(publication.Num(6), 7u);
  Fields info = Read(publication.Bytes(5));
  EXPECT_EQ(info.Bytes(1), "u");
  EXPECT_EQ(info.Bytes(2), "c");
  EXPECT_EQ(info.Bytes(3), "{\"ci\":1}");
  Fields tag = Read(publication.Bytes(7));
  EXPECT_EQ(tag.Bytes(1), "k");
  EXPECT_EQ(tag.Bytes(2), "v");
  Fields err = Read(replies[2]);
  EXPECT_EQ(err.Num(1), 3u);
  Fields e = Read(err.Bytes(2));
  EXPECT_EQ(e.Num(1), 111u);
  EXPECT_EQ(e.Num(3), 1u);
  Fields published = Read(replies[3]);
  EXPECT_EQ(published.Num(1), 4u);
  EXPECT_EQ(published.len.count(8), 1u);  // an empty PublishResult, present
}

TEST(ProtobufReplyEncoder, RoundTripsBinaryDataThroughThePublicationJson) {
  const std::string bytes("\x00\x01\xfe\xff\n", 5);
  std::string mark(1, kBinaryDataMark);
  AppendBase64(mark, bytes);
  const std::string pub = PublicationJson(mark, {}, 2);
  EXPECT_EQ(pub.find("\"data\""), std::string::npos);  // JSON clients get b64data only
  core::Hub::HistoryResult history;
  history.publications.push_back(pub);
  history.position = {2, "ep"};
  std::string json;
  AppendHistoryReply(json, 9, history);
  ProtobufReplyEncoder encoder;
  std::string out;
  ASSERT_TRUE(encoder.Append(json, out));
  auto replies = Replies(out);
  ASSERT_EQ(replies.size(), 1u);
  Fields result = Read(Read(replies[0]).Bytes(11));
  EXPECT_EQ(Read(result.Bytes(1)).Bytes(4), bytes);
  EXPECT_EQ(result.Bytes(2), "ep");
  EXPECT_EQ(result.Num(3), 2u);
}

TEST(ProtobufReplyEncoder, EncodesMapsOfSubscribeResultsAndPresence) {
  std::vector<std::pair<std::string, core::PresenceEntry>> presence(1);
  presence[0].first = "client-1";
  presence[0].second.info = ClientInfoJson("u", "client-1");
  std::string json;
  AppendPresenceReply(json, 5, presence);
  ProtobufReplyEncoder encoder;
  std::string out;
  ASSERT_TRUE(encoder.Append(json, out));
  Fields entry = Read(Read(Read(Replies(out)[0]).Bytes(9)).Bytes(1));
  EXPECT_EQ(entry.Bytes(1), "client-1");
  EXPECT_EQ(Read(entry.Bytes(2)).Bytes(1), "u");
}

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int n = 0; n < 10; ++n) {
    std::string text;
    AppendBase64(text, bytes);
    std::string back;
    ASSERT_TRUE(DecodeBase64Into(text, back));
    EXPECT_EQ(back, bytes);
    bytes += static_cast<char>(0xF0 + n);
  }
  std::string ignored;
  EXPECT_FALSE(DecodeBase64Into("a", ignored));
  EXPECT_FALSE(DecodeBase64Into("ab$c", ignored));
}

}  // namespace
}  // namespace hermod::proto
