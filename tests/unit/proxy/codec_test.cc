#include "proxy/codec.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace hermod::proxy {
namespace {

ClientFields Alice() { return {"c1", "alice"}; }

TEST(ProxyCodec, ConnectRequestDescribesTheClientAndPassesDataVerbatim) {
  EXPECT_EQ(ConnectRequest({"c1", ""}, "", "", R"({"a": [1, 2]})"),
            R"({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",)"
            R"("data":{"a": [1, 2]}})");
  EXPECT_EQ(ConnectRequest({"c1", ""}, "web", "1.0", ""),
            R"({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",)"
            R"("name":"web","version":"1.0"})");
}

TEST(ProxyCodec, EventRequestsCarryTheUserAndTheirFields) {
  EXPECT_EQ(RpcRequest(Alice(), "echo", "7"),
            R"({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",)"
            R"("user":"alice","method":"echo","data":7})");
  EXPECT_EQ(SubscribeRequest(Alice(), "news:\"x\"", ""),
            R"({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",)"
            R"("user":"alice","channel":"news:\"x\""})");
  EXPECT_EQ(RefreshRequest(Alice()),
            R"({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",)"
            R"("user":"alice"})");
  // Every request is valid JSON.
  simdjson::dom::parser parser;
  for (const std::string& r :
       {PublishRequest(Alice(), "c", R"({"t":"\u00e9"})"), SubRefreshRequest(Alice(), "c")}) {
    simdjson::dom::element e;
    EXPECT_EQ(parser.parse(r).get(e), simdjson::SUCCESS) << r;
  }
}

TEST(ProxyCodec, ConnectResultBecomesClaims) {
  Reply r;
  ParseReply(Kind::kConnect, R"({"result": {"user": "56", "expire_at": 1700000000,
      "info": {"name": "Bob"}, "data": {"hello": 1}, "channels": ["news", "chat:1"],
      "subs": {"inbox#56": {"info": {"x": 1}, "data": {"y": 2},
                            "override": {"presence": {"value": true}}}}}})",
             &r);
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_EQ(r.claims.user, "56");
  EXPECT_EQ(r.claims.expires_at, 1700000000);
  EXPECT_EQ(r.claims.info, R"({"name":"Bob"})");
  EXPECT_EQ(r.data, R"({"hello":1})");
  ASSERT_EQ(r.claims.channels.size(), 2u);
  EXPECT_EQ(r.claims.channels[1], "chat:1");
  ASSERT_EQ(r.claims.subs.size(), 1u);
  EXPECT_EQ(r.claims.subs[0].channel, "inbox#56");
  EXPECT_EQ(r.claims.subs[0].info, R"({"x":1})");
  EXPECT_TRUE(r.claims.subs[0].presence.set);
  EXPECT_TRUE(r.claims.subs[0].presence.value);
}

TEST(ProxyCodec, ConnectionMetaIsReadFromAConnectResultAndSentWhenAsked) {
  Reply r;
  ParseReply(Kind::kConnect, R"({"result": {"user": "5", "meta": {"tier": "gold"}}})", &r);
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_EQ(r.claims.meta, R"({"tier":"gold"})");
  ParseReply(Kind::kConnect, R"({"result": {"user": "5", "meta": [1]}})", &r);
  EXPECT_EQ(r.outcome, Outcome::kInvalid);  // meta is an object
  ClientFields with_meta = Alice();
  with_meta.meta = R"({"tier":"gold"})";
  EXPECT_EQ(RpcRequest(with_meta, "m", ""),
            R"({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",)"
            R"("meta":{"tier":"gold"},"user":"alice","method":"m"})");
}

TEST(ProxyCodec, Base64InfoAndDataAreDecoded) {
  Reply r;
  // {"a":1} and {"b":2}
  ParseReply(Kind::kConnect, R"({"result": {"user": "", "b64info": "eyJhIjoxfQ==",
      "b64data": "eyJiIjoyfQ"}})",
             &r);
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_EQ(r.claims.user, "");
  EXPECT_EQ(r.claims.info, R"({"a":1})");
  EXPECT_EQ(r.data, R"({"b":2})");
}

TEST(ProxyCodec, ErrorAndDisconnectAnswers) {
  Reply e;
  ParseReply(Kind::kRpc, R"({"error": {"code": 1000, "message": "nope", "temporary": true}})", &e);
  ASSERT_EQ(e.outcome, Outcome::kError);
  EXPECT_EQ(e.error_code, 1000u);
  EXPECT_EQ(e.error_message, "nope");
  EXPECT_TRUE(e.error_temporary);
  Reply d;
  ParseReply(Kind::kSubscribe,
             R"({"disconnect": {"code": 4501, "reason": "a reason longer than thirty-two bytes"}})",
             &d);
  ASSERT_EQ(d.outcome, Outcome::kDisconnect);
  EXPECT_EQ(d.disconnect_code, 4501);
  EXPECT_EQ(d.disconnect_reason, "a reason longer than thirty-two ");
  EXPECT_EQ(d.disconnect_reason.size(), 32u);
}

TEST(ProxyCodec, ResultFieldsOfEachKind) {
  Reply p;
  ParseReply(Kind::kPublish, R"({"result": {"data": {"t": "X"}, "skip_history": true}})", &p);
  ASSERT_EQ(p.outcome, Outcome::kOk);
  EXPECT_EQ(p.data, R"({"t":"X"})");
  EXPECT_TRUE(p.skip_history);
  Reply f;
  ParseReply(Kind::kRefresh, R"({"result": {"expired": true}})", &f);
  ASSERT_EQ(f.outcome, Outcome::kOk);
  EXPECT_TRUE(f.expired);
  Reply s;
  ParseReply(Kind::kSubscribe,
             R"({"result": {"info": {"r": 1}, "override": {"join_leave": {"value": false}}}})", &s);
  ASSERT_EQ(s.outcome, Outcome::kOk);
  EXPECT_EQ(s.claims.info, R"({"r":1})");
  EXPECT_TRUE(s.overrides.join_leave.set);
  EXPECT_FALSE(s.overrides.join_leave.value);
  Reply empty;  // an rpc with no result: an empty answer
  ParseReply(Kind::kRpc, "{}", &empty);
  EXPECT_EQ(empty.outcome, Outcome::kOk);
  EXPECT_TRUE(empty.data.empty());
}

TEST(ProxyCodec, AnswersNotOfCentrifugosShapeAreInvalid) {
  for (const char* body : {
           "not json", "[]", "{}",                              // a connect needs a result
           R"({"result": {"info": {}}})",                       // ... with a user
           R"({"result": {"user": 5}})",                        // a string user
           R"({"result": {"user": "u", "channels": "news"}})",  // channels: an array
           R"({"result": {"user": "u", "b64info": "%%%"}})",    // not base64
           R"({"error": {"code": 100, "message": "x"}})",       // backend codes: 400..1999
           R"({"error": {"code": 2000}})",                      //
           R"({"disconnect": {"code": 3000, "reason": "x"}})",  // 4000..4999
           R"({"disconnect": {"code": 4000, "reason": 1}})",    //
       }) {
    Reply r;
    ParseReply(Kind::kConnect, body, &r);
    EXPECT_EQ(r.outcome, Outcome::kInvalid) << body;
    EXPECT_TRUE(r.failed());
  }
}

}  // namespace
}  // namespace hermod::proxy
