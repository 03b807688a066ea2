// A real nats-server with JetStream for tests: a free port chosen at run time, a temporary
// store directory, started and stopped (and restarted on the same port and directory) by the
// test. Ready means a TCP connect succeeds.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace hermod::test {

class NatsServer {
 public:
  NatsServer() {
    char tmpl[] = "/tmp/hermod-js-XXXXXX";
    dir_ = mkdtemp(tmpl);
    port_ = FreePort();
  }
  ~NatsServer() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  static const char* Binary() {
    const char* env = std::getenv("NATS_SERVER");
    return env != nullptr ? env : "/usr/sbin/nats-server";
  }
  static bool Available() { return access(Binary(), X_OK) == 0; }
  // More arguments for the next Start (e.g. --user, --pass).
  void set_args(std::vector<std::string> args) { args_ = std::move(args); }

  // Starts the server and waits until it accepts connections (at most 10 s).
  bool Start() {
    const std::string port = std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      // Its log goes to a file in its directory, not into the test's output.
      const std::string log = dir_ + "/nats-server.log";
      freopen(log.c_str(), "a", stdout);
      freopen(log.c_str(), "a", stderr);
      std::vector<const char*> argv = {Binary(), "-js",       "-sd", dir_.c_str(),
                                       "-a",     "127.0.0.1", "-p",  port.c_str()};
      for (const std::string& a : args_) argv.push_back(a.c_str());
      argv.push_back(nullptr);
      execv(Binary(), const_cast<char* const*>(argv.data()));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Accepts()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // kill: SIGKILL, else SIGTERM (JetStream flushes). Waits for the process.
  void Stop(bool kill = false) {
    if (pid_ <= 0) return;
    ::kill(pid_, kill ? SIGKILL : SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // SIGSTOP / SIGCONT: a server that stops reading (and answering) and comes back.
  void Pause(bool on) {
    if (pid_ > 0) ::kill(pid_, on ? SIGSTOP : SIGCONT);
  }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }
  bool Accepts() const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return ok;
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::vector<std::string> args_;
};

}  // namespace hermod::test
