#include "proto/delta.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "core/fossil_delta.h"
#include "proto/protobuf.h"

namespace hermod::proto {
namespace {

// The string value of key in a JSON object.
std::string StringField(const std::string& json, std::string_view key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  return std::string(std::string_view(doc[key]));
}

bool DeltaFlag(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  bool flag = false;
  return !doc["delta"].get(flag) && flag;
}

std::string B64(std::string_view bytes) {
  std::string out;
  AppendBase64(out, bytes);
  return out;
}

// What the JSON SDK decodes: every payload of a delta subscription is a JSON string holding
// JSON text (full), or a fossil delta against the previous one's text.
TEST(DeltaPublication, JsonFullAndDeltaCarryTheDataAsJsonText) {
  const std::string a =
      R"({"data":{"v":1,"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"offset":1})";
  const std::string b =
      R"({"data":{"v":2,"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"offset":2})";
  std::string full, delta;
  bool is_delta = true;
  ASSERT_TRUE(DeltaPublication(a, {}, Format::kJson, &full, &is_delta));
  EXPECT_FALSE(is_delta);
  EXPECT_EQ(StringField(full, "data"),
            R"({"v":1,"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})");
  ASSERT_TRUE(DeltaPublication(b, a, Format::kJson, &delta, &is_delta));
  ASSERT_TRUE(is_delta);
  EXPECT_TRUE(DeltaFlag(delta));
  EXPECT_EQ(core::ApplyFossilDelta(StringField(full, "data"), StringField(delta, "data")),
            R"({"v":2,"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})");
}

// Binary data (b64data) to a JSON delta subscriber: never the plain b64data form (the SDK
// would parse an absent payload), but the JSON text of its base64 string, full or as a delta
// against the previous payload's text, JSON or binary alike.
TEST(DeltaPublication, JsonBinaryDataIsItsBase64StringAsJsonText) {
  const std::string bytes1(std::string("\x00\xff\x80", 3) + std::string(60, '\x01'));
  std::string bytes2 = bytes1;
  bytes2[40] = '\x7f';
  const std::string a = R"({"b64data":")" + B64(bytes1) + R"(","offset":1})";
  const std::string b = R"({"b64data":")" + B64(bytes2) + R"(","offset":2})";
  const std::string c = R"({"data":")" + B64(bytes2) + R"(x","offset":3})";
  std::string full, delta, json;
  bool is_delta = true;
  ASSERT_TRUE(DeltaPublication(a, {}, Format::kJson, &full, &is_delta));
  EXPECT_FALSE(is_delta);
  EXPECT_EQ(full.find("b64data"), std::string::npos) << full;
  EXPECT_EQ(StringField(full, "data"), '"' + B64(bytes1) + '"');
  ASSERT_TRUE(DeltaPublication(b, a, Format::kJson, &delta, &is_delta));
  ASSERT_TRUE(is_delta);
  EXPECT_EQ(core::ApplyFossilDelta(StringField(full, "data"), StringField(delta, "data")),
            '"' + B64(bytes2) + '"');
  // A JSON publication after a binary one: a delta between the two texts.
  ASSERT_TRUE(DeltaPublication(c, b, Format::kJson, &json, &is_delta));
  ASSERT_TRUE(is_delta);
  EXPECT_EQ(core::ApplyFossilDelta('"' + B64(bytes2) + '"', StringField(json, "data")),
            '"' + B64(bytes2) + "x\"");
}

// Protobuf: the full form is the plain publication (raw bytes), a delta is against the
// previous one's bytes.
TEST(DeltaPublication, ProtobufDeltaIsAgainstTheRawBytes) {
  const std::string bytes1(std::string("\x00\xff\x80", 3) + std::string(60, '\x01'));
  std::string bytes2 = bytes1;
  bytes2[40] = '\x7f';
  const std::string a = R"({"b64data":")" + B64(bytes1) + R"(","offset":1})";
  const std::string b = R"({"b64data":")" + B64(bytes2) + R"(","offset":2})";
  std::string full, delta;
  bool is_delta = true;
  ASSERT_TRUE(DeltaPublication(a, {}, Format::kProtobuf, &full, &is_delta));
  EXPECT_FALSE(is_delta);
  EXPECT_EQ(full, a);
  ASSERT_TRUE(DeltaPublication(b, a, Format::kProtobuf, &delta, &is_delta));
  ASSERT_TRUE(is_delta);
  std::string patch;
  ASSERT_TRUE(DecodeBase64Into(StringField(delta, "b64data"), patch));
  EXPECT_EQ(core::ApplyFossilDelta(bytes1, patch), bytes2);
}

}  // namespace
}  // namespace hermod::proto
