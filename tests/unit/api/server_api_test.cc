// The server API's body parsing and answers, without HTTP: ServerApi::Call on a hub with no
// loops (publications go to history only), and a recording stand-in for the loops' client
// lookup (the real one posts to every loop; tests/integration/api_test.py covers it).
#include "api/server_api.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/prepared_push.h"
#include "store/engines.h"

namespace hermod::api {
namespace {

class ServerApiTest : public ::testing::Test {
 protected:
  static config::Config MakeConfig() {
    config::Config c;
    c.channel.history_size = 10;
    c.channel.history_ttl.ms = 60000;
    c.channel.presence = true;
    c.namespaces.push_back({"bare", {}});
    return c;
  }

  // {status, body} of method with body.
  std::pair<int, std::string> Call(std::string_view method, std::string body) {
    std::string out;
    int status = api_.Call(method, body, out);
    return {status, out};
  }
  std::string Ok(std::string_view method, std::string body) {
    auto [status, out] = Call(method, std::move(body));
    EXPECT_EQ(status, 200) << method;
    return out;
  }

  config::Config config_ = MakeConfig();
  core::ChannelRules rules_{config_};
  core::Hub hub_{0, proto::JsonPushCodec(), store::MemoryStores()};
  struct Selection {
    std::string user, client;
  };
  std::vector<Selection> selected_;
  ServerApi api_{hub_, rules_, "key",
                 [this](std::string user, std::string client, ClientAction) {
                   selected_.push_back({user, client});
                 },
                 NodeInfo{"9.9.9", [] {
                            return std::pair<size_t, size_t>{3, 2};
                          }}};
};

constexpr std::string_view kBadRequest = R"({"error":{"code":107,"message":"bad request"}})";

TEST_F(ServerApiTest, AnswersStatusesForBodiesAndMethods) {
  EXPECT_EQ(Call("publish", "").first, 400);
  EXPECT_EQ(Call("publish", "[]").first, 400);
  EXPECT_EQ(Call("publish", R"({"channel":)").first, 400);
  EXPECT_EQ(Call("publish", R"({"channel":1,"data":1})").first, 400);
  EXPECT_EQ(Call("nosuch", "{}").first, 404);
  EXPECT_EQ(Ok("publish", R"({"channel":"a"})"), kBadRequest);
  EXPECT_EQ(Ok("publish", R"({"channel":"x:a","data":1})"),
            R"({"error":{"code":102,"message":"unknown channel"}})");
}

TEST_F(ServerApiTest, PublishesTagsAndDecodedB64Data) {
  EXPECT_EQ(Ok("publish", R"({"channel":"a","b64data":"eyJ4IjoxfQ==","tags":{"k":"v\"w"}})")
                .substr(0, 21),
            R"({"result":{"offset":1)");
  core::Hub::HistoryResult h = hub_.History("a", config_.channel, nullptr, -1, false);
  ASSERT_EQ(h.publications.size(), 1u);
  EXPECT_EQ(h.publications[0], R"({"data":{"x":1},"offset":1,"tags":{"k":"v\"w"}})");
  // Unpadded base64 too.
  EXPECT_NE(Ok("publish", R"({"channel":"a","b64data":"WzFd"})").find("\"offset\":2"),
            std::string::npos);
}

TEST_F(ServerApiTest, RefusesB64DataThatIsNotJsonAndTagsThatAreNotStrings) {
  EXPECT_EQ(Ok("publish", R"({"channel":"a","b64data":"bm90IGpzb24="})"), kBadRequest);
  EXPECT_EQ(Call("publish", R"({"channel":"a","b64data":"!!"})").first, 400);
  EXPECT_EQ(Call("publish", R"({"channel":"a","b64data":"QQ"})").first, 200);  // "A", not JSON
  EXPECT_EQ(Call("publish", R"({"channel":"a","b64data":"Q"})").first, 400);   // 6 bits: invalid
  EXPECT_EQ(Call("publish", R"({"channel":"a","data":1,"tags":{"k":1}})").first, 400);
  EXPECT_EQ(Call("publish", R"({"channel":"a","data":1,"tags":["k"]})").first, 400);
  EXPECT_TRUE(hub_.History("a", config_.channel, nullptr, -1, false).publications.empty());
}

TEST_F(ServerApiTest, BatchAnswersRepliesInOrderInCentrifugosShape) {
  EXPECT_EQ(Ok("batch", R"({"commands":[{"publish":{"channel":"bare:b","data":1}},)"
                        R"({"presence_stats":{"channel":"b"}},{"nosuch":{}},{},)"
                        R"({"publish":{"channel":"a"},"history":{"channel":"a"}},)"
                        R"({"batch":{"commands":[]}}],"parallel":true})"),
            R"({"replies":[{"publish":{}},{"presence_stats":{"num_clients":0,"num_users":0}},)"
            R"({"error":{"code":104,"message":"method not found"}},)" +
                std::string(kBadRequest) + "," + std::string(kBadRequest) + "," +
                std::string(kBadRequest) + "]}");
  EXPECT_EQ(Ok("batch", "{}"), R"({"replies":[]})");
  EXPECT_EQ(Call("batch", R"({"commands":{}})").first, 400);
  EXPECT_EQ(Call("batch", R"({"commands":["publish"]})").first, 400);
  EXPECT_EQ(Call("batch", R"({"parallel":"yes"})").first, 400);
}

TEST_F(ServerApiTest, RefreshSelectsClientsAndChecksItsFields) {
  EXPECT_EQ(Ok("refresh", R"({"user":"u","client":"c","expire_at":1900000000})"),
            R"({"result":{}})");
  EXPECT_EQ(Ok("refresh", R"({"user":"u","session":"s","expired":true})"), R"({"result":{}})");
  ASSERT_EQ(selected_.size(), 2u);
  EXPECT_EQ(selected_[0].client, "c");
  EXPECT_EQ(selected_[1].client, "s");  // a session is a client id here
  EXPECT_EQ(Ok("refresh", "{}"), kBadRequest);
  EXPECT_EQ(Ok("refresh", R"({"user":"u","expire_at":-1})"), kBadRequest);
  EXPECT_EQ(Call("refresh", R"({"user":"u","expired":1})").first, 400);
  EXPECT_EQ(Call("refresh", R"({"user":"u","expire_at":"soon"})").first, 400);
  EXPECT_EQ(selected_.size(), 2u);
}

TEST_F(ServerApiTest, BroadcastUsesTheIdempotencyKeyPerChannel) {
  const std::string body = R"({"channels":["a","b"],"data":1,"idempotency_key":"k"})";
  const std::string first = Ok("broadcast", body);
  EXPECT_EQ(Ok("broadcast", body), first);
  EXPECT_EQ(hub_.History("a", config_.channel, nullptr, -1, false).publications.size(), 1u);
  EXPECT_EQ(hub_.History("b", config_.channel, nullptr, -1, false).publications.size(), 1u);
}

TEST_F(ServerApiTest, ChannelsRefusesAMalformedPattern) {
  EXPECT_EQ(Ok("channels", R"({"pattern":"[a"})"), kBadRequest);
  EXPECT_EQ(Ok("channels", R"({"pattern":"a*"})"), R"({"result":{"channels":{}}})");
  EXPECT_EQ(Call("channels", R"({"pattern":1})").first, 400);
}

TEST_F(ServerApiTest, InfoDescribesTheNode) {
  const std::string info = Ok("info", "{}");
  EXPECT_NE(info.find(R"("name":"hermod","version":"9.9.9","num_clients":3,"num_users":2,)"
                      R"("num_channels":0,"uptime":0,"num_subs":0}]}})"),
            std::string::npos)
      << info;
  EXPECT_EQ(info.substr(0, 28), R"({"result":{"nodes":[{"uid":")");
}

// only Centrifugo's custom ranges go into a close frame; the rest is 107 naming
// the field, and no client is selected.
TEST_F(ServerApiTest, DisconnectRefusesCodesOutsideCentrifugosRanges) {
  constexpr std::string_view kRefused =
      R"({"error":{"code":107,"message":"bad request: disconnect.code must be 3000..4999"}})";
  for (std::string code : {"1005", "1006", "999", "1000", "2999", "5000", "66536", "-1",
                           "18446744073709551616", "\"4000\"", "4000.5"}) {
    EXPECT_EQ(Ok("disconnect", R"({"user":"u","disconnect":{"code":)" + code + "}}"), kRefused)
        << code;
  }
  EXPECT_TRUE(selected_.empty());
  for (std::string code : {"3000", "3999", "4000", "4999"}) {
    EXPECT_EQ(Ok("disconnect", R"({"user":"u","disconnect":{"code":)" + code + "}}"),
              R"({"result":{}})");
  }
  EXPECT_EQ(Ok("disconnect", R"({"user":"u"})"), R"({"result":{}})");  // default 3503
  EXPECT_EQ(selected_.size(), 5u);
}

// numbers of any size are JSON; the publication keeps them as they came.
TEST_F(ServerApiTest, PublishesDataWithNumbersOfAnySize) {
  for (std::string data :
       {R"({"wei": 100000000000000000000})", "1e99999", "-9223372036854775809"}) {
    EXPECT_EQ(Call("publish", R"({"channel":"big","data":)" + data + "}").first, 200) << data;
  }
  const std::string history = Ok("history", R"({"channel":"big","limit":-1})");
  EXPECT_NE(history.find(R"("data":{"wei": 100000000000000000000})"), std::string::npos);
  EXPECT_NE(history.find(R"("data":1e99999)"), std::string::npos);
  EXPECT_NE(history.find(R"("data":-9223372036854775809)"), std::string::npos);
  EXPECT_EQ(Call("publish", R"({"channel":"big","data":01})").first, 400);
}

// names past ASCII are refused, as Centrifugo does.
TEST_F(ServerApiTest, RefusesChannelNamesPastAscii) {
  EXPECT_EQ(Ok("publish", "{\"channel\":\"caf\xc3\xa9\",\"data\":{}}"), kBadRequest);
}

}  // namespace
}  // namespace hermod::api
