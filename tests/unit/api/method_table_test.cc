// The server API's method table: every method has its route and its metric label, unknown
// methods are told apart, a batch mixes any methods, the legacy `/api` body goes through
// the same table, and an answer bounded by http.max_response_bytes never reports an error
// for work that was done.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "api/methods.h"
#include "api/server_api.h"
#include "json/syntax.h"
#include "proto/prepared_push.h"
#include "stats/loop_metrics.h"
#include "store/engines.h"
#include "store/memory_inbox.h"

namespace hermod::api {
namespace {

class MethodTableTest : public ::testing::Test {
 protected:
  static config::Config MakeConfig() {
    config::Config c;
    c.channel.history_size = 1000;
    c.channel.history_ttl.ms = 60000;
    c.channel.presence = true;
    config::Namespace inbox;
    inbox.name = "inbox";
    inbox.options.inbox = true;
    c.namespaces.push_back(inbox);
    return c;
  }
  void SetUp() override { api_.set_inbox(&inbox_); }

  size_t Published(std::string_view channel) {
    return hub_.History(channel, config_.channel, nullptr, -1, false).publications.size();
  }

  config::Config config_ = MakeConfig();
  core::ChannelRules rules_{config_};
  core::Hub hub_{0, proto::JsonPushCodec(), store::MemoryStores()};
  std::vector<std::string> selected_;  // users the per-client methods reached
  ServerApi api_{hub_, rules_, "key",
                 [this](std::string user, std::string, ClientAction) { selected_.push_back(user); },
                 NodeInfo{"1.0", nullptr}};
  store::MemoryInboxStore inbox_store_;
  core::Inbox inbox_{inbox_store_, rules_, hub_, config_};
};

// A body every method accepts as its request.
constexpr std::string_view kAnyRequest =
    R"({"channel":"c","channels":["c"],"data":1,"user":"u","commands":[]})";

TEST_F(MethodTableTest, EveryMethodHasARouteAMetricLabelAndAnAnswer) {
  const std::vector<std::string> routes = ServerApi::Routes();
  EXPECT_EQ(routes.size(), kMethodNames.size() + 1);
  EXPECT_NE(std::find(routes.begin(), routes.end(), "/api"), routes.end());
  for (std::string_view name : kMethodNames) {
    EXPECT_NE(std::find(routes.begin(), routes.end(), "/api/" + std::string(name)), routes.end())
        << name;
    EXPECT_NE(std::find(kMethodLabels.begin(), kMethodLabels.end(), name), kMethodLabels.end())
        << name;
    // The inboxes' methods on an inbox channel.
    std::string body(name.starts_with("inbox_") || name.starts_with("dead_letters")
                         ? R"({"channel":"inbox:#u"})"
                         : kAnyRequest);
    std::string out;
    EXPECT_EQ(api_.Call(name, body, out), 200) << name;
    // scheduled_cancel: no scheduler here, nothing to cancel.
    const std::string_view head = name == "batch"              ? R"({"replies":)"
                                  : name == "scheduled_cancel" ? R"({"error":{"code":108)"
                                                               : R"({"result":)";
    EXPECT_TRUE(out.starts_with(head)) << name << ": " << out;
  }
  EXPECT_EQ(kMethodLabels.back(), "unknown");
  EXPECT_EQ(kMethodLabels.size(), kMethodNames.size() + 1);
}

TEST_F(MethodTableTest, UnknownMethodsAre404AloneAnd104InABatchOrTheLegacyBody) {
  for (std::string_view name : {"nosuch", "", "Publish", "api", "batch2"}) {
    std::string body = "{}";
    std::string out;
    EXPECT_EQ(api_.Call(name, body, out), 404) << name;
    EXPECT_TRUE(out.empty());
  }
  std::string batch = R"({"commands":[{"nosuch":{}}]})";
  std::string out;
  ASSERT_EQ(api_.Call("batch", batch, out), 200);
  EXPECT_EQ(out, R"({"replies":[{"error":{"code":104,"message":"method not found"}}]})");

  stats::LoopMetrics m;
  stats::BindThread(&m);
  std::string legacy = "{\"method\":\"nosuch\",\"id\":7}\n{\"method\":\"batch\",\"params\":{}}";
  out.clear();
  EXPECT_EQ(api_.CallLegacy(legacy, out), 200);
  stats::BindThread(nullptr);
  EXPECT_EQ(out,
            "{\"id\":7,\"error\":{\"code\":104,\"message\":\"method not found\"}}\n"
            "{\"error\":{\"code\":104,\"message\":\"method not found\"}}");
  EXPECT_EQ(m.api_calls[MethodLabelIndex(kUnknownMethod)], 2u);  // both counted as "unknown"
}

TEST_F(MethodTableTest, ABatchRunsMixedMethodsInOrderThroughTheTable) {
  std::string body =
      R"({"commands":[{"publish":{"channel":"m","data":{"n":1}}},)"
      R"({"subscribe":{"user":"u1","channel":"m"}},{"history":{"channel":"m","limit":-1}},)"
      R"({"disconnect":{"user":"u2"}},{"presence_stats":{"channel":"m"}},)"
      R"({"broadcast":{"channels":["m","n"],"data":2}},{"history_remove":{"channel":"n"}},)"
      R"({"channels":{"pattern":"m*"}},{"refresh":{"user":"u3"}},{"unsubscribe":{"user":"u4","channel":"m"}}]})";
  std::string out;
  ASSERT_EQ(api_.Call("batch", body, out), 200);
  const std::string history_head =
      R"({"history":{"publications":[{"data":{"n":1},"offset":1}],"epoch":)";
  EXPECT_TRUE(out.starts_with(R"({"replies":[{"publish":{"offset":1,"epoch":)")) << out;
  EXPECT_NE(out.find(R"(},{"subscribe":{}},)" + history_head), std::string::npos) << out;
  EXPECT_NE(out.find(R"(,"offset":1}},{"disconnect":{}},{"presence_stats":{"num_clients":0,)"
                     R"("num_users":0}},{"broadcast":{"responses":[{"result":{"offset":2,)"),
            std::string::npos)
      << out;
  EXPECT_TRUE(out.ends_with(R"(]}},{"history_remove":{}},{"channels":{"channels":{}}},)"
                            R"({"refresh":{}},{"unsubscribe":{}}]})"))
      << out;
  EXPECT_TRUE(json::IsJson(out));
  EXPECT_EQ(selected_, (std::vector<std::string>{"u1", "u2", "u3", "u4"}));
  EXPECT_EQ(Published("m"), 2u);
}

TEST_F(MethodTableTest, TheLegacyBodyRunsOneCommandPerLineWithItsId) {
  std::string body =
      "{\"method\":\"publish\",\"params\":{\"channel\":\"l\",\"data\":1},\"id\":1}\n"
      "\n"
      "{\"method\":\"PRESENCE_STATS\",\"params\":{\"channel\":\"l\"}}\n"
      "{\"method\":\"publish\",\"params\":{\"channel\":1},\"id\":3}\n"
      "{\"method\":\"info\",\"id\":4}\n";
  std::string out;
  ASSERT_EQ(api_.CallLegacy(body, out), 200);
  std::vector<std::string> lines;
  for (size_t start = 0; start <= out.size();) {
    size_t end = std::min(out.find('\n', start), out.size());
    lines.push_back(out.substr(start, end - start));
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_TRUE(lines[0].starts_with(R"({"id":1,"result":{"offset":1,"epoch":)")) << lines[0];
  EXPECT_EQ(lines[1], R"({"result":{"num_clients":0,"num_users":0}})");
  EXPECT_EQ(lines[2], R"({"id":3,"error":{"code":107,"message":"bad request"}})");
  EXPECT_TRUE(lines[3].starts_with(R"({"id":4,"result":{"nodes":[{"uid":)")) << lines[3];
  for (std::string bad : {"", "\n", "[]", "{\"method\":\"info\"}\n{", "{\"id\":-1}"}) {
    out.clear();
    EXPECT_EQ(api_.CallLegacy(bad, out), 400) << bad;
  }
}

constexpr std::string_view kNotRun = R"({"error":{"code":106,"message":"limit exceeded"}})";

std::string PublishBatch(std::string_view channel, size_t count) {
  std::string body = R"({"commands":[)";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) body += ',';
    body += R"({"publish":{"channel":")" + std::string(channel) + R"(","data":)" +
            std::to_string(i) + "}}";
  }
  return body + "]}";
}

// The defect this guards: a batch whose answer was over http.max_response_bytes was refused
// whole (HTTP 500) after its publications were made. Now a batch runs while its answer,
// with a 106 for every command not yet run, fits; when not even that fits, nothing runs.
TEST_F(MethodTableTest, ABatchWhoseAnswerCannotFitPublishesNothing) {
  std::string body = PublishBatch("bound", 200);
  std::string out;
  EXPECT_EQ(api_.Call("batch", body, out, 4096), 413);
  EXPECT_EQ(out, kNotRun);
  EXPECT_EQ(Published("bound"), 0u);

  body = PublishBatch("bound", 50);
  out.clear();
  ASSERT_EQ(api_.Call("batch", body, out, 4096), 200);
  EXPECT_LE(out.size(), 4096u);
  EXPECT_EQ(out.find(kNotRun), std::string::npos);
  EXPECT_EQ(Published("bound"), 50u);
}

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// Commands run in order while they fit: a read too long for what is left is refused (it
// did nothing), and every command after it is refused without running, so that what was
// done is a prefix of what was asked and every done command is reported as done.
TEST_F(MethodTableTest, ABatchOverTheAnswerBoundRunsOnlyWhatItCanReport) {
  std::string publish = R"({"channel":"long","data":")" + std::string(1500, 'x') + "\"}";
  std::string out;
  ASSERT_EQ(api_.Call("publish", publish, out), 200);
  std::string body = R"({"commands":[{"publish":{"channel":"p","data":1}},)"
                     R"({"history":{"channel":"long","limit":-1}},)"
                     R"({"history":{"channel":"p","limit":-1}},)"
                     R"({"publish":{"channel":"p","data":2}}]})";
  out.clear();
  ASSERT_EQ(api_.Call("batch", body, out, 1024), 200);
  EXPECT_TRUE(out.starts_with(R"({"replies":[{"publish":{"offset":1,"epoch":)")) << out;
  EXPECT_TRUE(out.ends_with("}}," + std::string(kNotRun) + "," + std::string(kNotRun) + "," +
                            std::string(kNotRun) + "]}"))
      << out;
  EXPECT_EQ(Published("p"), 1u);

  // The same with room: everything runs.
  body = R"({"commands":[{"publish":{"channel":"p","data":1}},)"
         R"({"history":{"channel":"long","limit":-1}},{"publish":{"channel":"p","data":2}}]})";
  out.clear();
  ASSERT_EQ(api_.Call("batch", body, out, 4096), 200);
  EXPECT_EQ(Count(out, kNotRun), 0u) << out;
  EXPECT_EQ(Published("p"), 3u);

  // The legacy body is bounded the same way, one line per command.
  body =
      "{\"method\":\"publish\",\"params\":{\"channel\":\"q\",\"data\":1},\"id\":1}\n"
      "{\"method\":\"history\",\"params\":{\"channel\":\"long\",\"limit\":-1},\"id\":2}\n"
      "{\"method\":\"publish\",\"params\":{\"channel\":\"q\",\"data\":2},\"id\":3}";
  out.clear();
  ASSERT_EQ(api_.CallLegacy(body, out, 1024), 200);
  EXPECT_TRUE(out.starts_with(R"({"id":1,"result":{"offset":1,)")) << out;
  EXPECT_TRUE(
      out.ends_with("}\n{\"id\":2,\"error\":{\"code\":106,\"message\":\"limit exceeded\"}}\n"
                    "{\"id\":3,\"error\":{\"code\":106,\"message\":\"limit exceeded\"}}"))
      << out;
  EXPECT_EQ(Published("q"), 1u);
}

TEST_F(MethodTableTest, ABroadcastWhoseAnswerWouldNotFitPublishesNothing) {
  std::string body = R"({"data":1,"channels":[)";
  for (int i = 0; i < 100; ++i) body += (i ? ",\"b" : "\"b") + std::to_string(i) + "\"";
  body += "]}";
  std::string copy = body;
  std::string out;
  EXPECT_EQ(api_.Call("broadcast", copy, out, 4096), 413);
  EXPECT_EQ(out, kNotRun);
  EXPECT_EQ(Published("b0"), 0u);
  out.clear();
  EXPECT_EQ(api_.Call("broadcast", body, out, 64 << 10), 200);
  EXPECT_EQ(Published("b0"), 1u);
  EXPECT_EQ(Published("b99"), 1u);
}

}  // namespace
}  // namespace hermod::api
