#include "proto/encode.h"

#include <gtest/gtest.h>

namespace hermod::proto {
namespace {

TEST(Encode, ErrorsCarryCodeMessageAndTemporary) {
  std::string out;
  AppendError(out, 7, ErrorCode::kPermissionDenied);
  EXPECT_EQ(out, R"({"id":7,"error":{"code":103,"message":"permission denied"}})");
  out.clear();
  AppendError(out, 8, ErrorCode::kInternal);
  EXPECT_EQ(out,
            R"({"id":8,"error":{"code":100,"message":"internal server error","temporary":true}})");
}

TEST(Encode, ConnectReplyAdvertisesPingAndPong) {
  std::string out;
  AppendConnectReply(out, 1, {"cid", "v", 25, true});
  EXPECT_EQ(out, R"({"id":1,"connect":{"client":"cid","version":"v","ping":25,"pong":true}})");
}

TEST(Encode, SubscribeReplyWithRecovery) {
  core::Hub::SubscribeResult r;
  r.recoverable = true;
  r.position = {5, "ep"};
  r.recovered = true;
  r.publications = {R"({"data":1,"offset":5})"};
  std::string out;
  AppendSubscribeReply(out, 2, r, true);
  EXPECT_EQ(out,
            R"({"id":2,"subscribe":{"recoverable":true,"epoch":"ep","offset":5,)"
            R"("publications":[{"data":1,"offset":5}],"recovered":true,"was_recovering":true}})");
}

TEST(Encode, PublicationPushEmbedsThePublicationVerbatim) {
  std::string pub = PublicationJson(R"({"a": 1})", R"({"user":"u","client":"c"})", 3);
  EXPECT_EQ(pub, R"({"data":{"a": 1},"info":{"user":"u","client":"c"},"offset":3})");
  std::string push;
  AppendPublicationPush(push, "ch\"1", pub);
  EXPECT_EQ(push, R"({"push":{"channel":"ch\"1","pub":)" + pub + "}}");
  std::string join;
  AppendJoinLeavePush(join, "ch", true, R"({"user":"u"})");
  EXPECT_EQ(join, R"({"push":{"channel":"ch","join":{"info":{"user":"u"}}}})");
}

TEST(Encode, JsonStringsAreEscaped) {
  std::string out;
  AppendJsonString(out, "a\"b\\c\n\x01");
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
}

}  // namespace
}  // namespace hermod::proto
