#include "broker/wire.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::broker {
namespace {

TEST(BrokerWire, PublicationRoundTripsEveryField) {
  core::BrokerMessage m;
  m.kind = core::BrokerMessageKind::kPublication;
  m.priority = net::Priority::kLow;
  m.skip_history = true;
  m.channel = "news:sport.eu *>";    // not a NATS subject token: it travels in the payload
  const std::string data(300, 'x');  // a length past one LEB128 byte
  m.data = data;
  m.info = R"({"user":"u1","client":"c1"})";
  m.tags = R"({"k":"v"})";
  const uint64_t node = 0x0123456789abcdefULL;
  const std::string bytes = Encode(node, m);
  EXPECT_EQ(bytes.size(),
            11 + 1 + m.channel.size() + 2 + data.size() + 1 + m.info.size() + 1 + m.tags.size());

  uint64_t got_node = 0;
  core::BrokerMessage got;
  ASSERT_TRUE(Decode(bytes, &got_node, &got));
  EXPECT_EQ(got_node, node);
  EXPECT_EQ(got.kind, core::BrokerMessageKind::kPublication);
  EXPECT_EQ(got.priority, net::Priority::kLow);
  EXPECT_TRUE(got.skip_history);
  EXPECT_FALSE(got.delta);
  EXPECT_EQ(got.channel, m.channel);
  EXPECT_EQ(got.data, data);
  EXPECT_EQ(got.info, m.info);
  EXPECT_EQ(got.tags, m.tags);
  EXPECT_EQ(EncodedChannel(bytes), m.channel);  // read without decoding the rest
  EXPECT_EQ(EncodedChannel(bytes.substr(0, 5)), "");
}

TEST(BrokerWire, TheDeltaFlagRoundTrips) {
  core::BrokerMessage m;
  m.channel = "doc:1";
  m.data = R"({"v":2})";
  m.delta = true;
  const std::string bytes = Encode(3, m);
  uint64_t node = 0;
  core::BrokerMessage got;
  ASSERT_TRUE(Decode(bytes, &node, &got));
  EXPECT_TRUE(got.delta);
  EXPECT_FALSE(got.skip_history);
  EXPECT_EQ(got.priority, m.priority);
  // A flag this version does not know is still refused.
  std::string unknown = bytes;
  unknown[2] = static_cast<char>(unknown[2] | 0x20);
  EXPECT_FALSE(Decode(unknown, &node, &got));
}

TEST(BrokerWire, AFiringsKeyRoundTripsAfterTheTags) {
  core::BrokerMessage m;
  m.channel = "job";
  m.data = R"({"run":1})";
  m.tags = R"({"k":"v"})";
  m.key = "hermod-schedule:3f0c";
  const std::string bytes = Encode(3, m);
  EXPECT_EQ(bytes.size(), EncodedSize(m));
  uint64_t node = 0;
  core::BrokerMessage got;
  ASSERT_TRUE(Decode(bytes, &node, &got));
  EXPECT_EQ(got.key, m.key);
  EXPECT_EQ(got.tags, m.tags);
  // Without the flag the key is bytes past the last field: refused, as is the flag without it.
  std::string unflagged = bytes;
  unflagged[2] = static_cast<char>(unflagged[2] & ~0x10);
  EXPECT_FALSE(Decode(unflagged, &node, &got));
  m.key = {};
  std::string flagged = Encode(3, m);
  flagged[2] = static_cast<char>(flagged[2] | 0x10);
  EXPECT_FALSE(Decode(flagged, &node, &got));
  ASSERT_TRUE(Decode(Encode(3, m), &node, &got));
  EXPECT_EQ(got.key, "");
}

TEST(BrokerWire, JoinAndLeaveRoundTripWithEmptyFields) {
  for (core::BrokerMessageKind kind :
       {core::BrokerMessageKind::kJoin, core::BrokerMessageKind::kLeave}) {
    core::BrokerMessage m;
    m.kind = kind;
    m.priority = net::Priority::kCritical;
    m.channel = "c";
    m.info = "{}";
    uint64_t node = 1;
    core::BrokerMessage got;
    const std::string bytes = Encode(7, m);  // got views into it
    ASSERT_TRUE(Decode(bytes, &node, &got));
    EXPECT_EQ(node, 7u);
    EXPECT_EQ(got.kind, kind);
    EXPECT_EQ(got.priority, net::Priority::kCritical);
    EXPECT_FALSE(got.skip_history);
    EXPECT_EQ(got.channel, "c");
    EXPECT_EQ(got.data, "");
    EXPECT_EQ(got.info, "{}");
    EXPECT_EQ(got.tags, "");
  }
}

TEST(BrokerWire, RejectsEveryTruncationAndTrailingBytes) {
  core::BrokerMessage m;
  m.channel = "chat";
  m.data = R"({"text":"hi"})";
  const std::string bytes = Encode(42, m);
  uint64_t node;
  core::BrokerMessage got;
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Decode(std::string_view(bytes).substr(0, n), &node, &got)) << n;
  }
  EXPECT_FALSE(Decode(bytes + "x", &node, &got));
}

TEST(BrokerWire, RejectsOtherVersionsKindsFlagsAndEmptyChannels) {
  core::BrokerMessage m;
  m.channel = "chat";
  std::string bytes = Encode(42, m);
  uint64_t node;
  core::BrokerMessage got;
  ASSERT_TRUE(Decode(bytes, &node, &got));
  for (auto [at, value] : {std::pair{0, 2}, std::pair{1, 0}, std::pair{1, 4}, std::pair{2, 16}}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(value);
    EXPECT_FALSE(Decode(bad, &node, &got)) << at << "=" << value;
  }
  m.channel = "";
  const std::string no_channel = Encode(42, m);
  EXPECT_FALSE(Decode(no_channel, &node, &got));
  // A length that claims more than 2^32 bytes (five continuation bytes).
  std::string huge = bytes.substr(0, 11) + std::string(5, '\xff') + "\x01";
  EXPECT_FALSE(Decode(huge, &node, &got));
}

}  // namespace
}  // namespace hermod::broker
