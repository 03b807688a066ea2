// hermod-bench against the real hermod binary's echo endpoint (/connection/echo), started on a
// free loopback port for each test: the multi-process path (forked workers on 127.0.0.2, .3,
// ... whose results the parent merges) and permessage-deflate, one body with deflate off and
// on. Loads are small and bounded. CMake passes the binary as BENCH_HERMOD_BINARY (HERMOD_*
// variables are hermod's own config, which it would refuse); without it the tests skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "interrupt.h"
#include "runner.h"
#include "workers.h"

namespace hermod::bench {
namespace {

// `hermod serve --bind 127.0.0.1 --port 0 --echo -c config`, its log in a temporary file
// from which the port it reports ("listening on http://127.0.0.1:PORT") is read.
class HermodServer {
 public:
  HermodServer(const char* binary, const std::string& config_json) {
    const std::string base =
        ::testing::TempDir() + "/hermod-bench-echo-" + std::to_string(getpid());
    log_ = base + ".log";
    config_ = base + ".json";
    std::ofstream(config_) << config_json;
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, STDERR_FILENO);
      dup2(fd, STDOUT_FILENO);
      execl(binary, binary, "serve", "--bind", "127.0.0.1", "--port", "0", "--echo", "--workers",
            "1", "-c", config_.c_str(), nullptr);
      _exit(127);
    }
    const std::string listening = "listening on http://127.0.0.1:";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      const bool exited = waitpid(pid_, nullptr, WNOHANG) != 0;
      std::stringstream text;
      text << std::ifstream(log_).rdbuf();
      log_text_ = text.str();
      const size_t at = log_text_.find(listening);
      const size_t digits = at == std::string::npos ? at : at + listening.size();
      if (digits < log_text_.size() &&
          std::isdigit(static_cast<unsigned char>(log_text_[digits]))) {
        port_ = static_cast<uint16_t>(std::stoi(log_text_.substr(digits)));
      } else if (exited) {
        pid_ = -1;  // the log says why
        break;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling its log
      }
    }
  }
  ~HermodServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::remove(log_.c_str());
    std::remove(config_.c_str());
  }
  uint16_t port() const { return port_; }
  const std::string& log() const { return log_text_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_, config_, log_text_;
};

class HermodEchoTest : public ::testing::Test {
 protected:
  // hermod's default: no context takeover either way (one zlib stream per loop).
  virtual const char* ServerConfig() const { return "{}"; }

  void SetUp() override {
    const char* binary = std::getenv("BENCH_HERMOD_BINARY");
    if (binary == nullptr || access(binary, X_OK) != 0)
      GTEST_SKIP() << "BENCH_HERMOD_BINARY not set";
    server_ = std::make_unique<HermodServer>(binary, ServerConfig());
    ASSERT_NE(server_->port(), 0) << "hermod did not report listening:\n" << server_->log();
  }

  RunConfig Config(bool deflate) const {
    RunConfig c;
    c.port = server_->port();
    c.path = "/connection/echo";
    c.url = "ws://127.0.0.1:" + std::to_string(c.port) + c.path;
    c.protocol = Protocol::kEcho;
    c.scenario = Scenario::kEcho;
    c.deflate = deflate;
    c.duration_s = 20;
    c.drain_s = 3;
    c.setup_timeout_s = 10;
    c.progress = false;
    return c;
  }

  std::unique_ptr<HermodServer> server_;
};

// Context takeover both ways: the bench inflates with a stream per connection.
class HermodEchoContextTakeoverTest : public HermodEchoTest {
 protected:
  const char* ServerConfig() const override {
    return R"({"websocket":{"compression":{"server_no_context_takeover":false,)"
           R"("client_no_context_takeover":false}}})";
  }
};

// 120 connections at 50 per process: three workers of 40, each on its own source address.
// The parent's merged result must hold every worker's connections and messages exactly.
void ExpectMergedCounts(RunConfig c) {
  c.connections = 120;
  c.per_process = 50;
  c.rate = 50;
  c.messages = 20;
  RunResult r = RunDistributed(c);
  EXPECT_TRUE(r.stats.errors.empty()) << r.stats.errors.begin()->first;
  EXPECT_EQ(r.stats.connects_ok, 120u);
  EXPECT_EQ(r.stats.connects_failed, 0u);
  EXPECT_EQ(r.stats.sent, 120u * 20);
  EXPECT_EQ(r.stats.delivered, 120u * 20);
  EXPECT_EQ(r.stats.latency.count(), 120u * 20);
  EXPECT_EQ(r.stats.connect_latency.count(), 120u);
  EXPECT_EQ(r.stats.lost + r.stats.duplicates, 0u);
  uint64_t sent = 0, delivered = 0;
  for (const Second& s : r.stats.timeline) {
    sent += s.sent;
    delivered += s.delivered;
  }
  EXPECT_EQ(sent, 120u * 20);
  EXPECT_EQ(delivered, 120u * 20);
  EXPECT_FALSE(r.interrupted);
}

// Sizes below hermod's compression threshold (sent back plain) and above it (compressed),
// closed loop: every message comes back once, intact (the stamp parses), over either framing.
void ExpectEveryMessageAtEverySize(RunConfig base) {
  for (uint32_t size : {32u, 200u, 70000u}) {
    RunConfig c = base;
    c.connections = 4;
    c.size = size;
    c.messages = 100;
    RunResult r = RunLocal(c, 0, TotalConnections(c));
    EXPECT_TRUE(r.stats.errors.empty()) << size << ": " << r.stats.errors.begin()->first;
    EXPECT_EQ(r.stats.sent, 400u) << size;
    EXPECT_EQ(r.stats.delivered, 400u) << size;
    EXPECT_EQ(r.stats.unstamped, 0u) << size;
    EXPECT_EQ(r.stats.bytes_in, r.stats.bytes_out) << size;  // inflated: the bytes sent
  }
}

// Ctrl-C: a SIGINT (blocked, read from the signalfd) ends a 60-second run at once, and the
// result says so; across workers the parent forwards it (a `kill -INT` of the parent alone).
// In a death-test child, so that the latched interrupt does not outlive the test.
void ExpectInterruptEndsTheRun(RunConfig c) {
  c.connections = 120;
  c.rate = 50;
  c.duration_s = 60;
  EXPECT_EXIT(
      {
        CatchInterrupts();
        kill(getpid(), SIGINT);
        const auto start = std::chrono::steady_clock::now();
        RunResult r = RunDistributed(c);
        const bool quick = std::chrono::steady_clock::now() - start < std::chrono::seconds(20);
        std::fprintf(stderr, "interrupted %d quick %d measured %.3f s\n", r.interrupted, quick,
                     r.measured_s);
        std::fflush(stderr);
        _exit(r.interrupted && quick && r.measured_s < 1 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "interrupted 1 quick 1");
}

TEST_F(HermodEchoTest, InterruptEndsTheRunEarlyAndMarksTheResult) {
  RunConfig c = Config(false);
  c.per_process = 1000;
  ExpectInterruptEndsTheRun(c);
}
TEST_F(HermodEchoTest, InterruptReachesEveryWorker) {
  RunConfig c = Config(false);
  c.per_process = 50;
  ExpectInterruptEndsTheRun(c);
}

TEST_F(HermodEchoTest, MergesEveryWorkersCountsAcrossProcesses) {
  ExpectMergedCounts(Config(false));
}
TEST_F(HermodEchoTest, MergesEveryWorkersCountsAcrossProcessesWithDeflate) {
  ExpectMergedCounts(Config(true));
}
TEST_F(HermodEchoTest, EchoesEveryMessageAtEverySize) {
  ExpectEveryMessageAtEverySize(Config(false));
}
TEST_F(HermodEchoTest, EchoesEveryMessageAtEverySizeWithDeflate) {
  ExpectEveryMessageAtEverySize(Config(true));
}
TEST_F(HermodEchoContextTakeoverTest, EchoesEveryMessageAtEverySizeWithDeflate) {
  ExpectEveryMessageAtEverySize(Config(true));
}

}  // namespace
}  // namespace hermod::bench
