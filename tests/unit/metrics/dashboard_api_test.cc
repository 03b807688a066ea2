// The dashboard's actions over a real HttpConnection (a socketpair and a loop driven by
// hand): an answer the server API gives at once, and one a store engine gives later.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "config/config.h"
#include "http/http_connection.h"
#include "http/router.h"
#include "metrics/dashboard.h"
#include "metrics/health.h"
#include "net/event_loop.h"

namespace hermod::metrics {
namespace {

uint64_t FakeNow() { return 1'000'000; }

class DashboardApiTest : public ::testing::Test {
 protected:
  DashboardApiTest() {
    DashboardSources sources;
    sources.api = [this](std::string_view method, std::string&, std::string& out, net::Loop&,
                         std::function<void(int, std::string)> later) {
      if (method == "history") {  // as a store engine that reads later
        later_ = std::move(later);
        return 0;
      }
      out = R"({"result":{}})";
      return 200;
    };
    dashboard_ = std::make_unique<Dashboard>(std::vector<LoopCounters>{}, monitor_, 100, "pw",
                                             std::move(sources));
    router_.Add("/dashboard/api/publish", {"POST"},
                [this](http::HttpConnection& c, http::Request& r) { dashboard_->Api(c, r); });
    router_.Add("/dashboard/api/history", {"POST"},
                [this](http::HttpConnection& c, http::Request& r) { dashboard_->Api(c, r); });
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peer_ = fds[1];
    new http::HttpConnection(loop_, fds[0], nullptr, options_, router_, stats_);
  }
  ~DashboardApiTest() override { close(peer_); }

  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  void Post(std::string_view method) {
    const std::string request = "POST /dashboard/api/" + std::string(method) +
                                " HTTP/1.1\r\nHost: h\r\nAuthorization: Basic OnB3\r\n"
                                "X-Hermod-Admin: 1\r\nContent-Length: 2\r\n\r\n{}";
    ASSERT_EQ(write(peer_, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  }
  std::string Read() {
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = read(peer_, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
    return out;
  }

  config::Config::Health health_;
  HealthMonitor monitor_{health_, std::vector<LoopCounters>{}};
  std::function<void(int, std::string)> later_;
  std::unique_ptr<Dashboard> dashboard_;
  http::HttpOptions options_;
  http::HttpStats stats_;
  http::Router router_;
  net::Loop loop_{0, 65536, &FakeNow};
  int peer_ = -1;
};

TEST_F(DashboardApiTest, AnAnswerAStoreEngineGivesLaterLeavesThenAndHoldsTheNextRequest) {
  Post("history");
  Post("publish");
  RunOnce();
  EXPECT_EQ(Read(), "");  // the history answer is not in: nothing, not even the publish's
  ASSERT_TRUE(later_);
  later_(200, R"({"result":{"publications":[]}})");
  RunOnce();
  const std::string in = Read();
  const size_t history = in.find(R"({"result":{"publications":[]}})");
  const size_t publish = in.find(R"({"result":{}})");
  ASSERT_NE(history, std::string::npos) << in;
  ASSERT_NE(publish, std::string::npos) << in;
  EXPECT_LT(history, publish);
}

}  // namespace
}  // namespace hermod::metrics
