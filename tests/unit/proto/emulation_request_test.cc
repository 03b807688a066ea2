#include "proto/emulation_request.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::proto {
namespace {

using namespace std::string_literals;

TEST(EmulationRequest, JsonWithDataAsTheSdkSendsIt) {
  EmulationRequest r;
  std::string why;
  ASSERT_TRUE(DecodeEmulationRequest(
      R"({"session":"1-ab","node":"n","data":"{\"id\":2,\"subscribe\":{\"channel\":\"c\"}}\n{}"})",
      false, &r, &why))
      << why;
  EXPECT_EQ(r.session, "1-ab");
  EXPECT_EQ(r.node, "n");
  EXPECT_EQ(r.data, "{\"id\":2,\"subscribe\":{\"channel\":\"c\"}}\n{}");
}

TEST(EmulationRequest, JsonDataObjectIsItsText) {
  EmulationRequest r;
  std::string why;
  ASSERT_TRUE(DecodeEmulationRequest(R"({"session":"s","node":"n","data":{"id":1}})", false, &r,
                                     &why));
  EXPECT_EQ(r.data, R"({"id":1})");
}

TEST(EmulationRequest, BadJsonIsRefusedWithAReason) {
  for (const char* bad : {"", "{", "[]", "1", R"({"session":1,"node":"n","data":"x"})",
                          R"({"session":"s","node":"n"})", R"({"session":"s","data":"x"})",
                          R"({"session":"s","node":"n","data":3})",
                          R"({"session":"s","node":"n","data":"x"} {})"}) {
    EmulationRequest r;
    std::string why;
    EXPECT_FALSE(DecodeEmulationRequest(bad, false, &r, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(EmulationRequest, Protobuf) {
  // node = 1, session = 2, data = 3; an unknown varint field 7 is skipped.
  const std::string body = "\x0a\x01n\x12\x02s1\x1a\x03\x02\x08\x01\x38\x05"s;
  EmulationRequest r;
  std::string why;
  ASSERT_TRUE(DecodeEmulationRequest(body, true, &r, &why)) << why;
  EXPECT_EQ(r.node, "n");
  EXPECT_EQ(r.session, "s1");
  EXPECT_EQ(r.data, "\x02\x08\x01"s);
}

TEST(EmulationRequest, MalformedProtobuf) {
  for (const std::string& bad : {"\x0a"s,                           // no length
                                 "\x0a\x80"s,                       // truncated varint
                                 "\x0a\x05n"s,                      // length past the end
                                 "\x08\x01"s,                       // node as a varint
                                 "\x0b"s,                           // a group
                                 "\x0a\x01n\x12\x01s"s,             // no data
                                 "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"s}) {
    EmulationRequest r;
    std::string why;
    EXPECT_FALSE(DecodeEmulationRequest(bad, true, &r, &why));
    EXPECT_FALSE(why.empty());
  }
}

}  // namespace
}  // namespace hermod::proto
