// The server API with a history engine that completes later (later_history_store.h) on a real
// loop: the calls an engine answers later answer once it has (kLater, then the answer on
// the loop), a batch keeps its answers in command order, and with the memory engines
// every answer is given at once.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "../core/later_history_store.h"
#include "api/server_api.h"
#include "http/http_connection.h"
#include "proto/prepared_push.h"
#include "store/engines.h"

namespace hermod::api {
namespace {

struct Answered {
  int status = 0;
  std::string out;
  bool later = false;  // Call returned kLater, the answer came through LaterAnswer
};

class ApiOnLoop {
 public:
  explicit ApiOnLoop(core::Stores stores) : hub_(1, proto::JsonPushCodec(), std::move(stores)) {
    config_.channel.history_size = 10;
    config_.channel.history_ttl.ms = 60000;
    config_.channel.presence = true;
    rules_ = std::make_unique<core::ChannelRules>(config_);
    api_ = std::make_unique<ServerApi>(hub_, *rules_, "key",
                                       [](std::string, std::string, ClientAction) {});
    for (std::string& route : ServerApi::Routes()) {
      router_.Add(std::move(route), {"POST"},
                  [this](http::HttpConnection& c, http::Request& r) { api_->Handle(c, r); });
    }
    hub_.AttachLoop(loop_);
    thread_ = std::thread([this] { loop_.Run(); });
  }
  ~ApiOnLoop() {
    loop_.Post([this] { loop_.Stop(); });
    thread_.join();
    for (int fd : peers_) close(fd);
  }
  // An HTTP connection on the loop, served by the API's routes; returns its peer's fd.
  int Connect() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    peers_.push_back(fds[1]);
    std::promise<void> made;
    loop_.Post([&] {
      new http::HttpConnection(loop_, fds[0], nullptr, http_options_, router_, http_stats_);
      made.set_value();
    });
    made.get_future().wait();
    return fds[1];
  }
  // Calls on the loop; *called (when given) is set once Call has returned, before any
  // later answer.
  std::future<Answered> Start(std::string method, std::string body, size_t limit = SIZE_MAX) {
    auto promise = std::make_shared<std::promise<Answered>>();
    std::future<Answered> answered = promise->get_future();
    loop_.Post([this, promise, method = std::move(method), body = std::move(body),
                limit]() mutable {
      std::string out;
      LaterAnswer later;
      const int status = method == "/api" ? api_->CallLegacy(body, out, limit, &loop_, &later)
                                          : api_->Call(method, body, out, limit, &loop_, &later);
      if (status != ServerApi::kLater) {
        promise->set_value({status, std::move(out), false});
        return;
      }
      EXPECT_TRUE(out.empty());
      later.Then([promise](int status, std::string answer) {
        promise->set_value({status, std::move(answer), true});
      });
    });
    return answered;
  }
  // Requests the loop's HTTP connections have read.
  uint64_t Requests() {
    std::promise<uint64_t> read;
    loop_.Post([&] { read.set_value(http_stats_.requests); });
    return read.get_future().get();
  }
  Answered Call(std::string method, std::string body, size_t limit = SIZE_MAX) {
    return Start(std::move(method), std::move(body), limit).get();
  }
  core::Hub& hub() { return hub_; }

 private:
  config::Config config_;
  std::unique_ptr<core::ChannelRules> rules_;
  http::Router router_;
  http::HttpOptions http_options_;
  http::HttpStats http_stats_;
  std::vector<int> peers_;
  core::Hub hub_;
  net::Loop loop_{0, 4096};
  std::unique_ptr<ServerApi> api_;
  std::thread thread_;
};

core::Stores AllLater(core::LaterHistoryStore** history) {
  core::Stores stores = core::LaterStores(history);
  stores.presence_inline = false;  // the memory engine's answers then come through the loop
  return stores;
}

class ServerApiAsyncTest : public ::testing::Test {
 protected:
  core::LaterHistoryStore* history_ = nullptr;
  ApiOnLoop api_{AllLater(&history_)};
};

TEST_F(ServerApiAsyncTest, PublishAnswersItsPositionOnceTheEngineHasStoredIt) {
  history_->worker().SetOpen(false);  // appends wait
  std::future<Answered> first = api_.Start("publish", R"({"channel":"a","data":1})");
  std::future<Answered> second = api_.Start("publish", R"({"channel":"a","data":2})");
  // Both calls returned (the loop ran a task after them), and neither is answered.
  api_.Call("info", "{}");
  EXPECT_EQ(first.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  history_->worker().SetOpen(true);
  const Answered a = first.get();
  EXPECT_TRUE(a.later);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.out, R"({"result":{"offset":1,"epoch":"later"}})");
  EXPECT_EQ(second.get().out, R"({"result":{"offset":2,"epoch":"later"}})");
}

TEST_F(ServerApiAsyncTest, BroadcastAnswersEveryChannelsPositionInOrder) {
  const Answered a = api_.Call("broadcast", R"({"channels":["a","x:nope","b"],"data":1})");
  EXPECT_TRUE(a.later);
  EXPECT_EQ(a.out, R"({"result":{"responses":[{"result":{"offset":1,"epoch":"later"}},)"
                   R"({"error":{"code":102,"message":"unknown channel"}},)"
                   R"({"result":{"offset":1,"epoch":"later"}}]}})");
}

TEST_F(ServerApiAsyncTest, HistoryAnswersOnceTheEngineHasRead) {
  api_.Call("publish", R"({"channel":"a","data":{"n":1}})");
  api_.Call("publish", R"({"channel":"a","data":{"n":2}})");
  const Answered a = api_.Call("history", R"({"channel":"a","limit":-1})");
  EXPECT_TRUE(a.later);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.out, R"({"result":{"publications":[{"data":{"n":1},"offset":1},)"
                   R"({"data":{"n":2},"offset":2}],"epoch":"later","offset":2}})");
  // A channel nobody published to is answered at once.
  const Answered none = api_.Call("history", R"({"channel":"none"})");
  EXPECT_FALSE(none.later);
  EXPECT_EQ(none.out, R"({"result":{"publications":[],"epoch":"","offset":0}})");
}

TEST_F(ServerApiAsyncTest, PresenceAnswersThroughTheLoopWhenItsEngineMayAnswerLater) {
  const Answered list = api_.Call("presence", R"({"channel":"a"})");
  EXPECT_TRUE(list.later);
  EXPECT_EQ(list.out, R"({"result":{"presence":{}}})");
  const Answered stats = api_.Call("presence_stats", R"({"channel":"a"})");
  EXPECT_TRUE(stats.later);
  EXPECT_EQ(stats.out, R"({"result":{"num_clients":0,"num_users":0}})");
}

TEST_F(ServerApiAsyncTest, ABatchWithALaterPublishAndAReadAnswersInOrder) {
  const Answered a = api_.Call(
      "batch",
      R"({"commands":[{"publish":{"channel":"a","data":1}},{"history":{"channel":"a","limit":10}},)"
      R"({"channels":{}},{"presence_stats":{"channel":"a"}},)"
      R"({"publish":{"channel":"a","data":2}}]})");
  EXPECT_TRUE(a.later);
  EXPECT_EQ(a.status, 200);
  // The read ran after the publish before it was stored: it sees it.
  EXPECT_EQ(a.out, R"({"replies":[{"publish":{"offset":1,"epoch":"later"}},)"
                   R"({"history":{"publications":[{"data":1,"offset":1}],"epoch":"later",)"
                   R"("offset":1}},{"channels":{"channels":{}}},)"
                   R"({"presence_stats":{"num_clients":0,"num_users":0}},)"
                   R"({"publish":{"offset":2,"epoch":"later"}}]})");
  const Answered legacy =
      api_.Call("/api",
                "{\"method\":\"publish\",\"params\":{\"channel\":\"b\",\"data\":1},"
                "\"id\":1}\n{\"method\":\"history\",\"params\":{\"channel\":\"b\",\"limit\":1},"
                "\"id\":2}\n{\"method\":\"info\",\"params\":{},\"id\":3}");
  EXPECT_TRUE(legacy.later);
  EXPECT_EQ(legacy.out.substr(0, legacy.out.find("\n{\"id\":3")),
            "{\"id\":1,\"result\":{\"offset\":1,\"epoch\":\"later\"}}\n"
            "{\"id\":2,\"result\":{\"publications\":[{\"data\":1,\"offset\":1}],"
            "\"epoch\":\"later\",\"offset\":1}}");
}

TEST_F(ServerApiAsyncTest, ABatchReadAnsweredLaterThatDoesNotFitStopsTheRest) {
  for (int i = 0; i < 5; ++i) api_.Call("publish", R"({"channel":"a","data":"0123456789"})");
  // Room for the replies' refusals and a publish, not for five publications.
  const std::string body =
      R"({"commands":[{"publish":{"channel":"b","data":1}},{"history":{"channel":"a","limit":5}},)"
      R"({"publish":{"channel":"b","data":2}}]})";
  const Answered a = api_.Call("batch", body, 300);
  EXPECT_TRUE(a.later);
  EXPECT_EQ(a.out, R"({"replies":[{"publish":{"offset":1,"epoch":"later"}},)"
                   R"({"error":{"code":106,"message":"limit exceeded"}},)"
                   R"({"error":{"code":106,"message":"limit exceeded"}}]})");
  EXPECT_EQ(api_.Call("history", R"({"channel":"b"})").out.find("\"offset\":2"),
            std::string::npos);  // the publish after the read was not run
}

std::string Post(std::string_view path, std::string_view body) {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: h\r\nX-API-Key: key\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// What fd reads until it holds `responses` complete responses (or 10 s pass).
std::string ReadResponses(int fd, size_t responses) {
  std::string in;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto complete = [&] {
    size_t n = 0;
    for (size_t at = in.find("HTTP/1.1"); at != std::string::npos;
         at = in.find("HTTP/1.1", at + 1)) {
      ++n;
    }
    return n >= responses && in.ends_with("}\n");
  };
  while (!complete() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    in.append(buffer, static_cast<size_t>(n));
  }
  return in;
}

TEST_F(ServerApiAsyncTest, OverHttpALaterAnswerHoldsTheRequestsBehindIt) {
  const int peer = api_.Connect();
  history_->worker().SetOpen(false);
  const std::string requests = Post("/api/publish", R"({"channel":"a","data":1})") +
                               Post("/api/presence_stats", R"({"channel":"a"})");
  ASSERT_EQ(write(peer, requests.data(), requests.size()), static_cast<ssize_t>(requests.size()));
  history_->worker().SetOpen(true);
  const std::string in = ReadResponses(peer, 2);
  const size_t publish = in.find(R"({"result":{"offset":1,"epoch":"later"}})");
  const size_t stats = in.find(R"({"result":{"num_clients":0,"num_users":0}})");
  ASSERT_NE(publish, std::string::npos) << in;
  ASSERT_NE(stats, std::string::npos) << in;
  EXPECT_LT(publish, stats);
  EXPECT_EQ(in.substr(0, 15), "HTTP/1.1 200 OK");
}

TEST_F(ServerApiAsyncTest, OverHttpAConnectionClosedBeforeItsAnswerIsAnsweredByNobody) {
  const int peer = api_.Connect();
  history_->worker().SetOpen(false);
  const std::string request = Post("/api/publish", R"({"channel":"a","data":1})") +
                              Post("/api/history", R"({"channel":"a","limit":1})");
  ASSERT_EQ(write(peer, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  // Closed once the publish waits for the engine (asked through the loop, no sleep).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (api_.Requests() < 1 && std::chrono::steady_clock::now() < deadline) {
  }
  shutdown(peer, SHUT_RDWR);
  history_->worker().SetOpen(true);
  // The publication is stored all the same; the API serves on.
  const Answered a = api_.Call("publish", R"({"channel":"a","data":2})");
  EXPECT_EQ(a.out, R"({"result":{"offset":2,"epoch":"later"}})");
  const int next = api_.Connect();
  const std::string again = Post("/api/history", R"({"channel":"a","limit":-1})");
  ASSERT_EQ(write(next, again.data(), again.size()), static_cast<ssize_t>(again.size()));
  EXPECT_NE(ReadResponses(next, 1).find(R"("offset":2}})"), std::string::npos);
}

TEST(ServerApiMemoryTest, TheMemoryEnginesAnswerAtOnce) {
  ApiOnLoop api(store::MemoryStores());
  for (const auto& [method, body] : std::vector<std::pair<std::string, std::string>>{
           {"publish", R"({"channel":"a","data":1})"},
           {"broadcast", R"({"channels":["a","b"],"data":1})"},
           {"history", R"({"channel":"a"})"},
           {"presence", R"({"channel":"a"})"},
           {"presence_stats", R"({"channel":"a"})"},
           {"batch",
            R"({"commands":[{"publish":{"channel":"a","data":1}},{"history":{"channel":"a"}}]})"},
           {"/api", R"({"method":"publish","params":{"channel":"a","data":1}})"}}) {
    const Answered a = api.Call(method, body);
    EXPECT_FALSE(a.later) << method;
    EXPECT_EQ(a.status, 200) << method;
    EXPECT_EQ(a.out.find("error"), std::string::npos) << method << ": " << a.out;
  }
}

}  // namespace
}  // namespace hermod::api
