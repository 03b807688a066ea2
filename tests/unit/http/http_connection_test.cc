#include "http/http_connection.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>

#include "http/response.h"
#include "net/event_loop.h"

namespace hermod::http {
namespace {

uint64_t fake_now_ms = 1'000'000;
uint64_t FakeNow() { return fake_now_ms; }

// A response whose body names the request, so that order is visible on the wire.
std::string Answer(std::string_view body, bool keep_alive) {
  return BuildResponse(200, "text/plain", body, keep_alive);
}

class HttpConnectionTest : public ::testing::Test {
 protected:
  HttpConnectionTest() {
    router_.Add("/echo", {"GET", "POST"}, [](HttpConnection& c, Request& r) {
      c.Respond(Answer(std::string(r.method) + " " + r.target + " " + r.body, r.keep_alive),
                r.keep_alive);
    });
    router_.Add("/later", {"GET"}, [this](HttpConnection& c, Request&) { deferred_ = c.Defer(); });
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peer_ = fds[1];
    connection_ = new HttpConnection(loop_, fds[0], nullptr, options_, router_, stats_);
  }
  ~HttpConnectionTest() override { close(peer_); }

  void RunOnce() {
    loop_.Post([this] { loop_.Stop(); });
    loop_.Run();
  }
  void Write(std::string_view bytes) {
    ASSERT_EQ(write(peer_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  std::string Read(bool* eof = nullptr) {
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = read(peer_, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
    if (eof != nullptr) *eof = n == 0;
    return out;
  }

  uint64_t clock_reset_ = fake_now_ms = 1'000'000;
  // Before the loop, which frees the connection that refers to them.
  HttpOptions options_;
  HttpStats stats_;
  Router router_;
  net::Loop loop_{0, 65536, &FakeNow};
  std::optional<DeferredResponse> deferred_;
  HttpConnection* connection_ = nullptr;
  int peer_ = -1;
};

TEST_F(HttpConnectionTest, ARequestIsRoutedToItsHandler) {
  Write("POST /echo?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody");
  RunOnce();
  bool eof = false;
  EXPECT_EQ(Read(&eof), Answer("POST /echo?x=1 body", true));
  EXPECT_FALSE(eof);  // HTTP/1.1: kept alive
  EXPECT_EQ(stats_.requests, 1u);
  EXPECT_EQ(loop_.connection_count(), 1u);
}

TEST_F(HttpConnectionTest, PipelinedRequestsAreAnsweredInOrderOnOneConnection) {
  Write(
      "GET /echo?1 HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /echo?2 HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  EXPECT_EQ(Read(), Answer("GET /echo?1 ", true) + Answer("GET /echo?2 ", true));
  // A third, split across two reads, on the same connection.
  Write("GET /echo?3 HTTP/1.1\r\nHo");
  RunOnce();
  EXPECT_EQ(Read(), "");
  Write("st: h\r\n\r\n");
  RunOnce();
  EXPECT_EQ(Read(), Answer("GET /echo?3 ", true));
  EXPECT_EQ(stats_.requests, 3u);
}

TEST_F(HttpConnectionTest, ConnectionCloseIsHonouredAfterTheResponse) {
  Write("GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  RunOnce();
  bool eof = false;
  EXPECT_EQ(Read(&eof), Answer("GET /echo ", false));
  EXPECT_TRUE(eof);
}

TEST_F(HttpConnectionTest, GarbageGets400AndTheConnectionCloses) {
  Write("THIS IS NOT HTTP\r\n\r\n");
  RunOnce();
  bool eof = false;
  const std::string got = Read(&eof);
  EXPECT_EQ(got, ErrorResponse(400));
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 "));
  EXPECT_TRUE(eof);
  EXPECT_EQ(stats_.errors_4xx, 1u);
  EXPECT_EQ(stats_.requests, 0u);
}

TEST_F(HttpConnectionTest, UnknownPathsGet404AndWrongMethods405WithAllow) {
  Write(
      "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"
      "DELETE /echo HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  const std::string got = Read();
  ASSERT_TRUE(got.starts_with("HTTP/1.1 404 ")) << got;
  const size_t second = got.find("HTTP/1.1 405 ");
  ASSERT_NE(second, std::string::npos) << got;
  EXPECT_NE(got.find("Allow: GET, HEAD, POST\r\n", second), std::string::npos) << got;
  EXPECT_EQ(stats_.errors_4xx, 2u);
}

TEST_F(HttpConnectionTest, HeadGetsTheHeadersWithoutTheBody) {
  Write("HEAD /echo HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  const std::string full = Answer("HEAD /echo ", true);
  EXPECT_EQ(Read(), full.substr(0, full.find("\r\n\r\n") + 4));
}

TEST_F(HttpConnectionTest, ADeferredResponseHoldsTheRequestsBehindIt) {
  Write(
      "GET /later HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /echo?after HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  ASSERT_TRUE(deferred_.has_value());
  EXPECT_EQ(Read(), "");  // nothing, not even the second answer, before the first
  loop_.Post([this] { deferred_->Respond(Answer("late", true), true); });
  RunOnce();
  EXPECT_EQ(Read(), Answer("late", true) + Answer("GET /echo?after ", true));
  // Answering twice does nothing.
  loop_.Post([this] { deferred_->Respond(Answer("twice", true), true); });
  RunOnce();
  EXPECT_EQ(Read(), "");
}

TEST_F(HttpConnectionTest, ADeferredResponseAfterTheConnectionIsGoneDoesNothing) {
  Write("GET /later HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  ASSERT_TRUE(deferred_.has_value());
  shutdown(peer_, SHUT_WR);
  for (int i = 0; i < 10 && loop_.connection_count() > 0; ++i) RunOnce();
  EXPECT_EQ(loop_.connection_count(), 0u);  // freed
  deferred_->Respond(Answer("nobody", true), true);
  EXPECT_EQ(Read(), "");
}

TEST_F(HttpConnectionTest, ARequestThatDoesNotArriveInTimeGets408) {
  Write("GET /echo HTTP/1.1\r\nHo");
  RunOnce();
  fake_now_ms += options_.request_timeout_ms + 10;
  RunOnce();
  bool eof = false;
  EXPECT_EQ(Read(&eof), ErrorResponse(408));
  EXPECT_TRUE(eof);
  EXPECT_EQ(stats_.timeouts, 1u);
}

TEST_F(HttpConnectionTest, AnIdleKeepAliveConnectionIsClosedQuietly) {
  Write("GET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  EXPECT_EQ(Read(), Answer("GET /echo ", true));
  fake_now_ms += options_.keepalive_timeout_ms + 10;
  RunOnce();
  bool eof = false;
  EXPECT_EQ(Read(&eof), "");
  EXPECT_TRUE(eof);
  EXPECT_EQ(stats_.timeouts, 0u);
}

TEST_F(HttpConnectionTest, AConnectionThatSendsNoRequestIsClosedAndCounted) {
  RunOnce();
  fake_now_ms += options_.request_timeout_ms + 10;
  RunOnce();
  bool eof = false;
  EXPECT_EQ(Read(&eof), "");
  EXPECT_TRUE(eof);
  EXPECT_EQ(stats_.timeouts, 1u);
}

// A loop whose last iteration outlasted the timeout runs the timer before it reads the
// request that came meanwhile: the request is served, the connection not closed.
TEST_F(HttpConnectionTest, ARequestThatCameWhileTheLoopWasLateIsServed) {
  RunOnce();
  fake_now_ms += options_.request_timeout_ms + 10;
  Write("GET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  EXPECT_EQ(Read(), Answer("GET /echo ", true));
  EXPECT_EQ(stats_.timeouts, 0u);
}

TEST_F(HttpConnectionTest, AResponseOverMaxResponseBytesIsRefusedWhole) {
  options_.max_response_bytes = 1024;  // the 500 itself must fit (the config's floor is 4096)
  router_.Add("/big", {"GET"}, [](HttpConnection& c, Request& r) {
    c.Respond(Answer(std::string(2000, 'b'), r.keep_alive), r.keep_alive);
  });
  Write("GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
  RunOnce();
  const std::string got = Read();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 500 ")) << got;
  EXPECT_EQ(got.find(std::string(2000, 'b')), std::string::npos);
  EXPECT_EQ(stats_.rejected[static_cast<size_t>(Rejection::kResponseTooLarge)], 1u);
}

TEST_F(HttpConnectionTest, AResponseLargerThanTheWriteWindowStreamsWhole) {
  // A window of 1 KiB (a quarter of max_bytes): the answer leaves as the peer reads.
  loop_.set_max_write_buffer_bytes(4096);
  const int small = 4096;
  ASSERT_EQ(setsockopt(connection_->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  std::string body(200 * 1024, 'x');
  for (size_t i = 0; i < body.size(); i += 1000) body[i] = static_cast<char>('a' + i / 1000 % 26);
  router_.Add("/big", {"GET"}, [&body](HttpConnection& c, Request& r) {
    c.Respond(Answer(body, r.keep_alive), r.keep_alive);
  });
  Write(
      "GET /big HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /echo?next HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string got;
  const std::string expected = Answer(body, true) + Answer("GET /echo?next ", true);
  int rounds = 0;
  for (; rounds < 10000 && got.size() < expected.size(); ++rounds) {
    RunOnce();
    got += Read();
  }
  EXPECT_GT(rounds, 10);  // it did not leave in one write
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

}  // namespace
}  // namespace hermod::http
