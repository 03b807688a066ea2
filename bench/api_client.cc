#include "api_client.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "ws/handshake.h"

namespace hermod::bench {

uint64_t ParseU64(std::string_view s, size_t pos) {
  uint64_t v = 0;
  if (pos < s.size()) std::from_chars(s.data() + pos, s.data() + s.size(), v);
  return v;
}

void ApiConn::OnPing(std::string_view payload) {
  ws::FrameHeaderSpec spec;
  spec.opcode = ws::Opcode::kPong;
  spec.payload_len = payload.size();
  spec.mask = std::array<uint8_t, 4>{1, 2, 3, 4};
  ws::AppendFrame(out, spec, payload);
  client.Dirty(*this);
}

void ApiConn::OnClose(uint16_t code, std::string_view reason) {
  client.Fail(*this, "closed by the server: " + std::to_string(code) + " " + std::string(reason));
}

ApiClient::ApiClient(const RunConfig& c, ws::Opcode opcode, std::string key)
    : config(c), data_opcode(opcode), api_key(std::move(key)) {}

void ApiClient::Error(const std::string& what) {
  if (first_error.empty()) first_error = what;
  ++errors[what.substr(0, 160)];
}

bool ApiClient::Resolve(const std::string& host, uint16_t port, sockaddr_in* addr) {
  addr->sin_family = AF_INET;
  addr->sin_port = htons(port);
  return inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr->sin_addr) == 1;
}

bool ApiClient::ParseApiUrl(const std::string& api_url) {
  api_addr = ws_addr;
  api_host = config.host + ":" + std::to_string(config.port);
  if (api_url.empty()) return true;
  std::string u = api_url;
  if (u.starts_with("http://")) u = u.substr(7);
  u = u.substr(0, u.find('/'));
  const size_t colon = u.find(':');
  if (colon == std::string::npos ||
      !Resolve(u.substr(0, colon), static_cast<uint16_t>(ParseU64(u, colon + 1)), &api_addr)) {
    return false;
  }
  api_host = u;
  return true;
}

bool ApiClient::Open(ApiConn& c, const sockaddr_in& addr) {
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return false;
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    Error(std::string("connect: ") + std::strerror(errno));
    close(c.fd);
    c.fd = -1;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
  ev.data.ptr = &c;
  c.want_out = true;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c.fd, &ev);
  if (c.websocket) {
    c.out = "GET " + config.path + " HTTP/1.1\r\nHost: " + config.host + ":" +
            std::to_string(config.port) +
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + c.key +
            "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  } else {
    c.upgraded = true;
    c.ready = true;
  }
  return true;
}

void ApiClient::Close(ApiConn& c) {
  if (c.fd < 0) return;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  c.fd = -1;
}

void ApiClient::Dirty(ApiConn& c) {
  if (c.out.size() > c.out_sent) dirty.push_back(&c);
}

void ApiClient::SendWs(ApiConn& c, std::string_view payload) {
  ws::FrameHeaderSpec spec;
  spec.opcode = data_opcode;
  spec.payload_len = payload.size();
  const uint64_t r = rng();
  std::array<uint8_t, 4> mask;
  std::memcpy(mask.data(), &r, 4);
  spec.mask = mask;
  ws::AppendFrame(c.out, spec, payload);
  Dirty(c);
}

void ApiClient::Post(ApiConn& c, std::string_view method, const std::string& body) {
  c.out += "POST /api/" + std::string(method) + " HTTP/1.1\r\nHost: " + api_host +
           "\r\nAuthorization: apikey " + api_key +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  Dirty(c);
}

void ApiClient::Flush(ApiConn& c) {
  while (c.fd >= 0 && c.out_sent < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Fail(c, std::string("send: ") + std::strerror(errno));
    return;
  }
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
  }
  const bool want = c.out_sent < c.out.size();
  if (c.fd >= 0 && want != c.want_out) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = &c;
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_out = want;
  }
}

void ApiClient::FlushDirty() {
  for (size_t i = 0; i < dirty.size(); ++i) Flush(*dirty[i]);
  dirty.clear();
}

void ApiClient::Loop(int timeout_ms) {
  std::array<epoll_event, 256> events;
  const int n = epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms);
  for (int i = 0; i < n; ++i) {
    ApiConn& c = *static_cast<ApiConn*>(events[i].data.ptr);
    if (c.fd < 0) continue;
    if (events[i].events & EPOLLOUT) Flush(c);
    if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) OnReadable(c);
  }
  FlushDirty();
}

void ApiClient::OnReadable(ApiConn& c) {
  while (c.fd >= 0) {
    ssize_t n = recv(c.fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      OnBytes(c, buf.data(), static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return Fail(c, "the server closed a connection");
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return Fail(c, std::string("recv: ") + std::strerror(errno));
  }
  if (c.fd >= 0) OnReadDone(c);
}

void ApiClient::OnBytes(ApiConn& c, uint8_t* data, size_t len) {
  if (!c.websocket) return OnHttp(c, reinterpret_cast<char*>(data), len);
  if (!c.upgraded) {
    c.in.append(reinterpret_cast<char*>(data), len);
    const size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return;
    if (!c.in.starts_with("HTTP/1.1 101") || c.in.find(ws::AcceptKey(c.key)) == std::string::npos) {
      return Fail(c, "handshake: " + c.in.substr(0, c.in.find("\r\n")));
    }
    std::string rest = c.in.substr(end + 4);
    c.in.clear();
    c.upgraded = true;
    OnUpgraded(c);
    if (!rest.empty()) OnBytes(c, reinterpret_cast<uint8_t*>(rest.data()), rest.size());
    return;
  }
  ws::ReaderLimits limits;
  limits.expect_masked = false;
  limits.max_message_size = 64 << 20;
  auto r = c.reader.Feed(data, len, limits, c, nullptr, false);
  if (!r.ok && c.fd >= 0) Fail(c, "websocket: " + std::string(r.error.reason));
}

// Each whole answer (head, then Content-Length bytes of body) goes to the scenario, in order.
void ApiClient::OnHttp(ApiConn& c, const char* data, size_t len) {
  c.in.append(data, len);
  while (c.fd >= 0) {
    const size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return;
    const std::string_view head(c.in.data(), end);
    size_t cl = head.find("Content-Length: ");
    if (cl == std::string_view::npos) cl = head.find("content-length: ");
    const uint64_t body_len = cl == std::string_view::npos ? 0 : ParseU64(head, cl + 16);
    if (c.in.size() < end + 4 + body_len) return;
    OnHttpAnswer(c, head, std::string_view(c.in.data() + end + 4, body_len));
    c.in.erase(0, end + 4 + body_len);
  }
}

void ApiClient::OnNatsMessage(ApiConn& c, std::string_view message) {
  std::string_view bytes = message;
  if (!c.in.empty()) {
    c.in.append(message);
    bytes = c.in;
  }
  const size_t used = ParseNats(c, bytes);
  if (c.fd < 0) return;
  if (c.in.empty()) {
    if (used < bytes.size()) c.in.assign(bytes.substr(used));
  } else {
    c.in.erase(0, used);
  }
}

std::string ApiClient::NatsConnect(bool headers) {
  return std::string("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":") +
         (headers ? "true" : "false") +
         ",\"no_responders\":false,\"lang\":\"c++\",\"version\":\"0.1\","
         "\"name\":\"hermod-bench\"}\r\n";
}

std::string ApiClient::NatsRecreateStream(std::string_view stream, const std::string& create_json) {
  return "SUB _S 1\r\nPUB $JS.API.STREAM.DELETE." + std::string(stream) + " _S 0\r\n\r\n" +
         "PUB $JS.API.STREAM.CREATE." + std::string(stream) + " _S " +
         std::to_string(create_json.size()) + "\r\n" + create_json + "\r\n";
}

void ApiClient::OnStreamReply(ApiConn& c, std::string_view payload) {
  // The delete's answer may be an error (no such stream); the create's may not.
  if (++c.stream_replies != 2) return;
  if (payload.find("\"error\"") != std::string_view::npos) {
    return Fail(c, "nats: stream create: " + std::string(payload.substr(0, 160)));
  }
  c.ready = true;
}

// What of b was whole (the rest waits for the next message).
size_t ApiClient::ParseNats(ApiConn& c, std::string_view b) {
  size_t pos = 0;
  while (pos < b.size() && c.fd >= 0) {
    const size_t eol = b.find("\r\n", pos);
    if (eol == std::string_view::npos) return pos;
    const std::string_view line = b.substr(pos, eol - pos);
    size_t next = eol + 2;
    const bool hmsg = line.starts_with("HMSG ");
    if (hmsg || line.starts_with("MSG ")) {
      // [H]MSG <subject> <sid> [reply] [<header size>] <size>
      std::array<std::string_view, 6> f;
      size_t n = 0;
      for (size_t p = hmsg ? 5 : 4; p <= line.size() && n < f.size();) {
        size_t sp = line.find(' ', p);
        if (sp == std::string_view::npos) sp = line.size();
        f[n++] = line.substr(p, sp - p);
        p = sp + 1;
      }
      const uint64_t size = ParseU64(f[n - 1], 0);
      const uint64_t header = hmsg ? ParseU64(f[n - 2], 0) : 0;
      if (b.size() - next < size + 2) return pos;
      const std::string_view reply = n == (hmsg ? 5u : 4u) ? f[2] : std::string_view();
      const std::string_view all = b.substr(next, size);
      OnNatsMsg(c, f[0], reply, all.substr(0, header), all.substr(header));
      next += size + 2;
    } else if (line.starts_with("PING")) {
      SendWs(c, "PONG\r\n");
    } else if (line.starts_with("PONG")) {
      OnNatsPong(c);
    } else if (line.starts_with("-ERR")) {
      Fail(c, "nats: " + std::string(line.substr(0, 120)));
      return b.size();
    }
    pos = next;
  }
  return pos;
}

}  // namespace hermod::bench
