// Helpers for the bench's tests: a free loopback port, waiting for a server to listen, and a
// WebSocket echo server that drops and repeats messages on purpose.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

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

// Serves one WebSocket connection: message k (from 0) is dropped when k % 10 == 3 and sent
// back twice when k % 7 == 5, otherwise echoed once.
class LossyEchoServer : private ws::MessageHandler {
 public:
  LossyEchoServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(listen_fd_, 4);
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
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
    std::string head;
    char buf[65536];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) {
        close(c);
        return;
      }
      head.append(buf, static_cast<size_t>(n));
    }
    size_t k = head.find("Sec-WebSocket-Key: ") + 19;
    std::string key = head.substr(k, head.find("\r\n", k) - k);
    std::string reply =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        ws::AcceptKey(key) + "\r\n\r\n";
    fd_ = c;
    Write(reply);
    ws::ReaderLimits limits;
    ws::MessageReader reader;
    while (!closed_) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) break;
      reader.Feed(reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n), limits, *this, nullptr,
                  false);
    }
    close(c);
  }
  void Write(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = write(fd_, s.data() + off, s.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  void OnMessage(ws::Opcode opcode, std::string_view payload) override {
    uint64_t k = count_++;
    if (k % 10 == 3) return;
    std::string frame;
    ws::FrameHeaderSpec spec;
    spec.opcode = opcode;
    spec.payload_len = payload.size();
    ws::AppendFrame(frame, spec, payload);
    if (k % 7 == 5) frame += frame;
    Write(frame);
  }
  void OnPing(std::string_view) override {}
  void OnPong(std::string_view) override {}
  void OnClose(uint16_t, std::string_view) override {
    std::string frame;
    ws::FrameHeaderSpec spec;
    spec.opcode = ws::Opcode::kClose;
    std::string payload = ws::ClosePayload(1000, "");
    spec.payload_len = payload.size();
    ws::AppendFrame(frame, spec, payload);
    Write(frame);
    closed_ = true;
  }

  int listen_fd_ = -1;
  int fd_ = -1;
  uint16_t port_ = 0;
  uint64_t count_ = 0;
  bool closed_ = false;
  std::thread thread_;
};

}  // namespace hermod::bench::testing
