// The nats and mqtt adapters against the real servers on loopback: nats-server's websocket
// listener and mosquitto's websockets listener, each started on free ports from a temporary
// config (skipped when the server is not installed). Loads are small and bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "runner.h"
#include "test_servers.h"

namespace hermod::bench {
namespace {

class Peer {
 public:
  // Writes config to a temporary file and runs `binary -c file`, output to /dev/null.
  Peer(const std::string& binary, const std::string& config) {
    path_ = ::testing::TempDir() + "/peer-" + std::to_string(getpid()) + "-" +
            std::to_string(counter_++) + ".conf";
    std::ofstream(path_) << config;
    pid_ = fork();
    if (pid_ == 0) {
      std::freopen("/dev/null", "w", stdout);
      std::freopen("/dev/null", "w", stderr);
      execlp(binary.c_str(), binary.c_str(), "-c", path_.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Peer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::remove(path_.c_str());
  }

 private:
  static inline int counter_ = 0;
  pid_t pid_ = -1;
  std::string path_;
};

bool Installed(const char* binary) {
  std::string cmd = std::string("command -v ") + binary + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

RunConfig Config(Protocol protocol, uint16_t port) {
  RunConfig c;
  c.url = "ws://127.0.0.1:" + std::to_string(port) + "/";
  c.port = port;
  c.protocol = protocol;
  c.duration_s = 10;
  c.drain_s = 3;
  c.setup_timeout_s = 10;
  c.progress = false;
  return c;
}

// One body for both brokers: fan-out, channels and echo must deliver every message exactly
// once, in order, and the connect storm must complete its handshakes.
void ExpectExactDelivery(Protocol protocol, uint16_t port) {
  {
    RunConfig c = Config(protocol, port);
    c.scenario = Scenario::kFanout;
    c.connections = 20;
    c.rate = 1000;
    c.messages = 100;
    RunResult r = RunLocal(c, 0, TotalConnections(c));
    EXPECT_EQ(r.stats.connects_ok, 21u);
    EXPECT_EQ(r.stats.sent, 100u);
    EXPECT_EQ(r.stats.delivered, 2000u);
    EXPECT_EQ(r.stats.lost, 0u);
    EXPECT_EQ(r.stats.duplicates, 0u);
    EXPECT_TRUE(r.stats.errors.empty()) << r.stats.errors.begin()->first;
  }
  {
    RunConfig c = Config(protocol, port);
    c.scenario = Scenario::kChannels;
    c.channels = 4;
    c.subscribers = 3;
    c.rate = 500;
    c.messages = 50;
    c.threads = 2;
    RunResult r = RunLocal(c, 0, TotalConnections(c));
    EXPECT_EQ(r.stats.sent, 200u);
    EXPECT_EQ(r.stats.delivered, 600u);  // 4 channels x 50 x 3 subscribers
    EXPECT_EQ(r.stats.lost + r.stats.duplicates, 0u);
  }
  {
    RunConfig c = Config(protocol, port);
    c.scenario = Scenario::kEcho;
    c.connections = 5;
    c.rate = 0;  // closed loop
    c.messages = 200;
    RunResult r = RunLocal(c, 0, TotalConnections(c));
    EXPECT_EQ(r.stats.sent, 1000u);
    EXPECT_EQ(r.stats.delivered, 1000u);
    EXPECT_EQ(r.stats.latency.count(), 1000u);
  }
  {
    RunConfig c = Config(protocol, port);
    c.scenario = Scenario::kConnect;
    c.connections = 10;
    c.connect_rate = 100;
    c.duration_s = 1;
    RunResult r = RunLocal(c, 0, TotalConnections(c));
    EXPECT_GE(r.stats.connects_ok, 50u);
    EXPECT_EQ(r.stats.connects_failed, 0u);
  }
}

TEST(PeerAdapterTest, NatsOverWebSocketDeliversEveryMessageOnce) {
  if (!Installed("nats-server")) GTEST_SKIP() << "nats-server not installed";
  uint16_t port = testing::FreePort(), ws_port = testing::FreePort();
  Peer nats("nats-server", "listen: 127.0.0.1:" + std::to_string(port) +
                               "\nwebsocket {\n  host: 127.0.0.1\n  port: " +
                               std::to_string(ws_port) + "\n  no_tls: true\n}\n");
  ASSERT_TRUE(testing::WaitForListener(ws_port, std::chrono::seconds(5)));
  ExpectExactDelivery(Protocol::kNats, ws_port);
}

TEST(PeerAdapterTest, MqttOverWebSocketDeliversEveryMessageOnce) {
  if (!Installed("mosquitto")) GTEST_SKIP() << "mosquitto not installed";
  uint16_t port = testing::FreePort(), ws_port = testing::FreePort();
  // mosquitto 2.0 refuses to start with a websockets listener alone: keep the MQTT one.
  Peer mosquitto("mosquitto",
                 "per_listener_settings false\nallow_anonymous true\n"
                 "persistence false\nlistener " +
                     std::to_string(port) + " 127.0.0.1\nprotocol mqtt\nlistener " +
                     std::to_string(ws_port) +
                     " 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n");
  ASSERT_TRUE(testing::WaitForListener(ws_port, std::chrono::seconds(5)));
  ExpectExactDelivery(Protocol::kMqtt, ws_port);
}

}  // namespace
}  // namespace hermod::bench
