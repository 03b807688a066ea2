// Helpers for the bench's tests: a free loopback port, waiting for a server to listen, a
// WebSocket echo server that drops and repeats messages on purpose, and a broadcast server.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ws/frame_encoder.h"
#include "ws/handshake.h"
#include "ws/message_reader.h"

namespace hermod::bench::testing {

// A port the kernel just handed out for 127.0.0.1 and released (a tiny race, acceptable on
// loopback in tests).
inline uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Polls until something accepts connections on 127.0.0.1:port (a server that was just
// started), for at most timeout.
inline bool WaitForListener(uint16_t port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A listening socket on a free loopback port (in *port).
inline int Listen(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  listen(fd, 8);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// An unmasked frame, as a server sends it.
inline std::string Frame(ws::Opcode opcode, std::string_view payload) {
  std::string frame;
  ws::FrameHeaderSpec spec;
  spec.opcode = opcode;
  spec.payload_len = payload.size();
  ws::AppendFrame(frame, spec, payload);
  return frame;
}

// Writes all of s to a blocking socket (or stops at an error).
inline void WriteAll(int fd, std::string_view s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Reads an upgrade request from a blocking socket and answers 101.
inline bool AcceptUpgrade(int fd) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return false;
    head.append(buf, static_cast<size_t>(n));
  }
  size_t k = head.find("Sec-WebSocket-Key: ") + 19;
  std::string key = head.substr(k, head.find("\r\n", k) - k);
  WriteAll(fd,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " +
               ws::AcceptKey(key) + "\r\n\r\n");
  return true;
}

// Serves one WebSocket connection: message k (from 0) is dropped when k % 10 == 3 and sent
// back twice when k % 7 == 5, otherwise echoed once.
class LossyEchoServer : private ws::MessageHandler {
 public:
  LossyEchoServer() {
    listen_fd_ = Listen(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LossyEchoServer() {
    shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Serve() {
    int c = accept(listen_fd_, nullptr, nullptr);
    if (c < 0) return;
    if (!AcceptUpgrade(c)) {
      close(c);
      return;
    }
    fd_ = c;
    ws::ReaderLimits limits;
    ws::MessageReader reader;
    char buf[65536];
    while (!closed_) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) break;
      reader.Feed(reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n), limits, *this, nullptr,
                  false);
    }
    close(c);
  }
  void Write(const std::string& s) { WriteAll(fd_, s); }
  void OnMessage(ws::Opcode opcode, std::string_view payload) override {
    uint64_t k = count_++;
    if (k % 10 == 3) return;
    std::string frame = Frame(opcode, payload);
    if (k % 7 == 5) frame += frame;
    Write(frame);
  }
  void OnPing(std::string_view) override {}
  void OnPong(std::string_view) override {}
  void OnClose(uint16_t, std::string_view) override {
    Write(Frame(ws::Opcode::kClose, ws::ClosePayload(1000, "")));
    closed_ = true;
  }

  int listen_fd_ = -1;
  int fd_ = -1;
  uint16_t port_ = 0;
  uint64_t count_ = 0;
  bool closed_ = false;
  std::thread thread_;
};

// A broadcast server: every message a connection sends goes to every connection, its
// sender's included (what the bench's `raw` adapter expects). Connections are served in
// the order they connect; the test learns each one's client port to find its socket.
class BroadcastServer {
 public:
  BroadcastServer() {
    listen_fd_ = Listen(&port_);
    acceptor_ = std::thread([this] { AcceptAll(); });
  }
  ~BroadcastServer() {
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& p : peers_) shutdown(p->fd, SHUT_RDWR);
    }
    for (auto& p : peers_) p->thread.join();
    for (auto& p : peers_) close(p->fd);
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  // Messages relayed so far (each counted once, whatever the number of receivers).
  uint64_t relayed() const { return relayed_.load(); }
  // The client-side port of the i-th connection, 0 until it has connected.
  uint16_t client_port(size_t i) const {
    std::lock_guard lock(mu_);
    return i < peers_.size() ? peers_[i]->client_port : 0;
  }

 private:
  struct Peer : ws::MessageHandler {
    BroadcastServer* server = nullptr;
    int fd = -1;
    uint16_t client_port = 0;
    std::thread thread;
    void OnMessage(ws::Opcode opcode, std::string_view payload) override {
      server->Relay(opcode, payload);
    }
    void OnPing(std::string_view) override {}
    void OnPong(std::string_view) override {}
    void OnClose(uint16_t, std::string_view) override {
      std::lock_guard lock(server->mu_);
      WriteAll(fd, Frame(ws::Opcode::kClose, ws::ClosePayload(1000, "")));
    }
  };

  void AcceptAll() {
    while (true) {
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      int c = accept(listen_fd_, reinterpret_cast<sockaddr*>(&from), &len);
      if (c < 0) return;
      if (!AcceptUpgrade(c)) {
        close(c);
        continue;
      }
      auto peer = std::make_unique<Peer>();
      peer->server = this;
      peer->fd = c;
      peer->client_port = ntohs(from.sin_port);
      Peer* p = peer.get();
      std::lock_guard lock(mu_);
      peers_.push_back(std::move(peer));
      p->thread = std::thread([p] { Read(*p); });
    }
  }
  static void Read(Peer& p) {
    ws::ReaderLimits limits;
    ws::MessageReader reader;
    char buf[65536];
    while (true) {
      ssize_t n = read(p.fd, buf, sizeof(buf));
      if (n <= 0) return;
      reader.Feed(reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n), limits, p, nullptr,
                  false);
    }
  }
  void Relay(ws::Opcode opcode, std::string_view payload) {
    const std::string frame = Frame(opcode, payload);
    std::lock_guard lock(mu_);
    for (auto& p : peers_) WriteAll(p->fd, frame);
    ++relayed_;
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::atomic<uint64_t> relayed_{0};
  std::thread acceptor_;
};

}  // namespace hermod::bench::testing
