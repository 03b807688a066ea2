// The proxies' HTTP client and endpoints against a real HTTP server on a free port (a small
// blocking one in this test, a thread per connection): answers, keep-alive reuse, forwarded
// headers, timeouts, refused connections, oversized and non-2xx answers, the in-flight bound
// and the circuit breaker.
#include "proxy/proxies.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hermod::proxy {
namespace {

struct Answer {
  int status = 200;
  std::string body;
};

// A keep-alive HTTP/1.1 server: each request is handed to `handler` (path, headers, body).
class Backend {
 public:
  using Handler = std::function<Answer(const std::string& path, const std::string& head,
                                       const std::string& body)>;
  explicit Backend(Handler handler) : handler_(std::move(handler)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 64);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~Backend() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    acceptor_.join();
    {
      std::lock_guard lock(mutex_);
      for (int c : clients_) shutdown(c, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void Accept() {
    while (true) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      std::lock_guard lock(mutex_);
      clients_.push_back(c);
      threads_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    std::string in;
    char buf[4096];
    while (true) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) return close(c), void();
        in.append(buf, static_cast<size_t>(n));
      }
      std::string head = in.substr(0, end);
      size_t length = 0;
      if (size_t at = head.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(head.substr(at + 16));
      }
      while (in.size() < end + 4 + length) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) return close(c), void();
        in.append(buf, static_cast<size_t>(n));
      }
      std::string body = in.substr(end + 4, length);
      in.erase(0, end + 4 + length);
      const std::string path = head.substr(5, head.find(' ', 5) - 5);
      ++requests_;
      Answer a = handler_(path, head, body);
      std::string out = "HTTP/1.1 " + std::to_string(a.status) +
                        " X\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(a.body.size()) + "\r\n\r\n" + a.body;
      if (send(c, out.data(), out.size(), MSG_NOSIGNAL) < 0) return close(c), void();
    }
  }

  Handler handler_;
  int fd_;
  uint16_t port_;
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> clients_;
  std::vector<std::thread> threads_;
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
};

std::atomic<uint64_t> g_now_ms{1000};
uint64_t Now() { return g_now_ms.load(); }

// Calls and waits for the answer (the completion runs on the client's thread).
Reply CallAndWait(Proxies& p, Kind kind, std::string body,
                  const std::vector<std::string>& headers = {}) {
  std::promise<Reply> promise;
  auto future = promise.get_future();
  p.Call(kind, std::move(body), headers,
         core::Completion<Reply>([&promise](Reply r) { promise.set_value(std::move(r)); }));
  return future.get();
}

config::Config WithRpc(const std::string& url) {
  config::Config c;
  c.proxy_rpc_endpoint = url;
  c.proxy_rpc_timeout.ms = 300;
  return c;
}

TEST(Proxies, AnswersAreParsedAndConnectionsKeptAlive) {
  std::string seen_head;
  std::mutex m;
  Backend backend([&](const std::string&, const std::string& head, const std::string& body) {
    std::lock_guard lock(m);
    seen_head = head;
    return Answer{200, R"({"result": {"data": )" + body + "}}"};
  });
  auto proxies = Proxies::FromConfig(WithRpc(backend.url("/rpc")), &Now);
  ASSERT_NE(proxies, nullptr);
  EXPECT_TRUE(proxies->has(Kind::kRpc));
  EXPECT_FALSE(proxies->has(Kind::kConnect));
  for (int i = 0; i < 5; ++i) {
    Reply r = CallAndWait(*proxies, Kind::kRpc, std::to_string(i), {"Cookie: a=b"});
    ASSERT_EQ(r.outcome, Outcome::kOk);
    EXPECT_EQ(r.data, std::to_string(i));
  }
  EXPECT_EQ(backend.connections(), 1);  // one keep-alive connection for every call
  {
    std::lock_guard lock(m);
    EXPECT_NE(seen_head.find("POST /rpc HTTP/1.1"), std::string::npos) << seen_head;
    EXPECT_NE(seen_head.find("Content-Type: application/json"), std::string::npos);
    EXPECT_NE(seen_head.find("Cookie: a=b"), std::string::npos);
  }
  Endpoint* e = proxies->endpoint(Kind::kRpc);
  EXPECT_EQ(e->count(Outcome::kOk), 5u);
  EXPECT_EQ(e->buckets().back(), 5u);
  EXPECT_EQ(e->in_flight(), 0u);
}

TEST(Proxies, FailuresHaveTheirOutcome) {
  std::atomic<bool> release{false};
  Backend backend([&](const std::string& path, const std::string&, const std::string&) {
    if (path == "/500") return Answer{500, "oops"};
    if (path == "/invalid") return Answer{200, "nope"};
    if (path == "/big") return Answer{200, "[" + std::string(8192, ' ') + "]"};
    if (path == "/slow") {
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return Answer{200, R"({"result": {}})"};
  });
  struct Case {
    std::string url;
    Outcome want;
  };
  // A port nothing listens on.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  close(probe);
  const std::string down = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/";
  for (const Case& c :
       {Case{backend.url("/500"), Outcome::kHttpStatus},
        Case{backend.url("/invalid"), Outcome::kInvalid},
        Case{backend.url("/big"), Outcome::kTooLarge},
        Case{backend.url("/slow"), Outcome::kTimeout}, Case{down, Outcome::kUnavailable}}) {
    config::Config config = WithRpc(c.url);
    config.proxy_client.max_response_bytes = 4096;
    auto proxies = Proxies::FromConfig(config, &Now);
    Reply r = CallAndWait(*proxies, Kind::kRpc, "{}");
    EXPECT_EQ(r.outcome, c.want) << c.url;
    EXPECT_TRUE(r.failed());
    EXPECT_EQ(proxies->endpoint(Kind::kRpc)->count(c.want), 1u);
  }
  release = true;
}

TEST(Proxies, OpenBreakerFailsFastUntilTheTrialSucceeds) {
  std::atomic<bool> healthy{false};
  Backend backend([&](const std::string&, const std::string&, const std::string&) {
    return healthy ? Answer{200, R"({"result": {}})"} : Answer{503, ""};
  });
  config::Config config = WithRpc(backend.url("/rpc"));
  config.proxy_breaker.failure_threshold = 2;
  config.proxy_breaker.open_timeout.ms = 1000;
  auto proxies = Proxies::FromConfig(config, &Now);
  EXPECT_EQ(CallAndWait(*proxies, Kind::kRpc, "{}").outcome, Outcome::kHttpStatus);
  EXPECT_EQ(CallAndWait(*proxies, Kind::kRpc, "{}").outcome, Outcome::kHttpStatus);
  const int sent = backend.requests();
  EXPECT_EQ(CallAndWait(*proxies, Kind::kRpc, "{}").outcome, Outcome::kOpen);
  EXPECT_EQ(backend.requests(), sent);  // nothing left for the backend
  Endpoint* e = proxies->endpoint(Kind::kRpc);
  EXPECT_EQ(e->state(), core::CircuitBreaker::State::kOpen);
  healthy = true;
  g_now_ms += 1000;  // open_timeout passed: one trial goes out, succeeds, closes
  EXPECT_EQ(CallAndWait(*proxies, Kind::kRpc, "{}").outcome, Outcome::kOk);
  EXPECT_EQ(e->state(), core::CircuitBreaker::State::kClosed);
  EXPECT_EQ(e->count(Outcome::kOpen), 1u);
}

TEST(Proxies, CallsPastTheInFlightBoundAreNotSent) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  Backend backend([&](const std::string&, const std::string&, const std::string&) {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return release; });
    return Answer{200, R"({"result": {}})"};
  });
  config::Config config = WithRpc(backend.url("/rpc"));
  config.proxy_rpc_timeout.ms = 10000;
  config.proxy_client.max_in_flight = 2;
  auto proxies = Proxies::FromConfig(config, &Now);
  std::vector<std::promise<Reply>> promises(3);
  for (auto& p : promises) {
    proxies->Call(Kind::kRpc, "{}", {},
                  core::Completion<Reply>([&p](Reply r) { p.set_value(std::move(r)); }));
  }
  EXPECT_EQ(promises[2].get_future().get().outcome, Outcome::kOverloaded);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(promises[0].get_future().get().outcome, Outcome::kOk);
  EXPECT_EQ(promises[1].get_future().get().outcome, Outcome::kOk);
}

TEST(Proxies, StopAnswersWhatIsInFlight) {
  std::atomic<bool> release{false};
  Backend backend([&](const std::string&, const std::string&, const std::string&) {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return Answer{200, "{}"};
  });
  config::Config config = WithRpc(backend.url("/rpc"));
  config.proxy_rpc_timeout.ms = 10000;
  auto proxies = Proxies::FromConfig(config, &Now);
  std::promise<Reply> promise;
  proxies->Call(Kind::kRpc, "{}", {},
                core::Completion<Reply>([&](Reply r) { promise.set_value(std::move(r)); }));
  while (backend.requests() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  proxies->Stop();
  EXPECT_EQ(promise.get_future().get().outcome, Outcome::kStopped);
  release = true;
}

}  // namespace
}  // namespace hermod::proxy
