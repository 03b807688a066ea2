#include "net/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <unordered_set>

#include "net/tls.h"

namespace hermod::net {

namespace {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = 0;
  uint16_t port() const {
    return ntohs(family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&storage)->sin_port
                                   : reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
};

bool ParseAddress(const std::string& addr, uint16_t port, SocketAddress* out, std::string* error) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    out->family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->len = sizeof *v4;
  } else if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    out->family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->len = sizeof *v6;
  } else {
    *error = "bind: not an IPv4 or IPv6 address: " + addr;
    return false;
  }
  return true;
}

}  // namespace

bool ProbePortFree(const std::string& addr, uint16_t port, std::string* error) {
  SocketAddress a;
  if (!ParseAddress(addr, port, &a, error)) return false;
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return false;
  }
  // SO_REUSEADDR as our listeners have it (a port with connections in TIME_WAIT is free on
  // Linux), but no SO_REUSEPORT: a bind fails if any socket listens on the port.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool is_free = bind(fd, reinterpret_cast<sockaddr*>(&a.storage), a.len) == 0;
  const int bind_errno = errno;
  close(fd);
  if (is_free) return true;
  if (bind_errno == EADDRINUSE) {
    *error = "port " + std::to_string(port) + " is already in use on " + addr +
             " (another hermod or another server listens on it); refusing to share it";
  } else {
    *error = "bind " + addr + ":" + std::to_string(port) + ": " + strerror(bind_errno);
  }
  return false;
}

namespace {

// The listening TCP sockets of one family in this network namespace: {inode, address
// bytes (4 or 16), port}. False when the kernel cannot be asked.
struct Listening {
  uint32_t inode;
  bool wildcard;
  std::string address;  // raw bytes
};
bool ListListening(int family, uint16_t port, std::vector<Listening>* out) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return false;
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = 1u << 10;  // TCP_LISTEN
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) <
      0) {
    close(fd);
    return false;
  }
  const size_t address_bytes = family == AF_INET ? 4 : 16;
  alignas(nlmsghdr) char buffer[16384];
  bool done = false;
  bool ok = true;
  while (!done) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      ok = false;
      break;
    }
    if (n == 0) break;
    // NLMSG_OK/NLMSG_NEXT, spelled out without their mixed-sign comparisons.
    const size_t size = static_cast<size_t>(n);
    for (size_t at = 0; at + sizeof(nlmsghdr) <= size;) {
      auto* h = reinterpret_cast<nlmsghdr*>(buffer + at);
      if (h->nlmsg_len < sizeof(nlmsghdr) || at + h->nlmsg_len > size) break;
      at += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        done = true;
        ok = false;
        break;
      }
      const auto* r = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      if (ntohs(r->id.idiag_sport) != port) continue;
      std::string address(reinterpret_cast<const char*>(r->id.idiag_src), address_bytes);
      const bool wildcard = address == std::string(address_bytes, '\0');
      out->push_back({r->idiag_inode, wildcard, std::move(address)});
    }
  }
  close(fd);
  return ok;
}

}  // namespace

bool PortOwned(const std::string& addr, uint16_t port, const std::vector<int>& ours,
               std::string* error) {
  SocketAddress a;
  if (!ParseAddress(addr, port, &a, error)) return false;
  std::unordered_set<uint32_t> inodes;
  for (int fd : ours) {
    struct stat st {};
    if (fstat(fd, &st) == 0) inodes.insert(static_cast<uint32_t>(st.st_ino));
  }
  std::string mine;
  if (a.family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.storage);
    mine.assign(reinterpret_cast<const char*>(&v4->sin_addr), 4);
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    mine.assign(reinterpret_cast<const char*>(&v6->sin6_addr), 16);
  }
  const bool mine_wildcard = mine == std::string(mine.size(), '\0');
  for (int family : {AF_INET, AF_INET6}) {
    std::vector<Listening> listening;
    // Without sock_diag (a kernel built without it) the probe alone stands.
    if (!ListListening(family, port, &listening)) continue;
    for (const Listening& l : listening) {
      if (inodes.contains(l.inode)) continue;
      const bool overlaps =
          mine_wildcard || l.wildcard || (family == a.family && l.address == mine);
      if (!overlaps) continue;
      *error = "port " + std::to_string(port) + " is already in use on " + addr +
               " (another server began listening on it as hermod started); refusing to share it";
      return false;
    }
  }
  return true;
}

int BindListener(const std::string& addr, uint16_t port, int backlog, uint16_t* bound_port,
                 std::string* error) {
  SocketAddress a;
  if (!ParseAddress(addr, port, &a, error)) return -1;
  int fd = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a.storage), a.len) != 0 || listen(fd, backlog) != 0) {
    *error = "bind " + addr + ":" + std::to_string(port) + ": " + strerror(errno);
    close(fd);
    return -1;
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.len);
  *bound_port = a.port();
  return fd;
}

Listener::Listener(Loop& loop, int fd, TlsContext* tls, Accept accept)
    : loop_(loop),
      fd_(fd),
      spare_fd_(open("/dev/null", O_RDONLY | O_CLOEXEC)),
      tls_(tls),
      accept_(std::move(accept)) {
  if (!loop_.Add(fd_, EPOLLIN, this)) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl add (listener)");
  }
}

Listener::~Listener() {
  Stop();
  if (spare_fd_ >= 0) close(spare_fd_);
}

void Listener::Stop() {
  loop_.timers().Cancel(this);
  if (fd_ < 0) return;
  loop_.Remove(fd_);
  close(fd_);
  fd_ = -1;
}

bool Listener::ShedOne() {
  if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (spare_fd_ < 0) return false;
  close(spare_fd_);
  spare_fd_ = -1;
  int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    ++loop_.stats().accept_emfile;
  }
  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

void Listener::Pause(uint64_t ms) {
  paused_ = true;
  loop_.Modify(fd_, 0, this);
  loop_.timers().Schedule(this, ms);
}

bool Listener::TakeAcceptToken() {
  if (accept_rate_ == 0) return true;
  const uint64_t now = loop_.now_ms();
  const uint64_t repaid = (now - accept_last_ms_) * accept_rate_;
  accept_last_ms_ = now;
  accept_debt_ = repaid >= accept_debt_ ? 0 : accept_debt_ - repaid;
  const uint64_t cap = std::max<uint64_t>(1, accept_rate_ / 10) * 1000;
  if (accept_debt_ + 1000 <= cap) {
    accept_debt_ += 1000;
    return true;
  }
  ++loop_.stats().guard.accept_throttled;
  const uint64_t wait = (accept_debt_ + 1000 - cap + accept_rate_ - 1) / accept_rate_;
  Pause(std::max<uint64_t>(1, wait));
  return false;
}

void Listener::OnTimer() {
  if (fd_ < 0 || !paused_) return;
  paused_ = false;
  loop_.Modify(fd_, EPOLLIN, this);
}

void Listener::OnEvents(uint32_t) {
  // Bounded per wake-up so one busy listener cannot starve the loop's connections.
  for (int i = 0; i < 128 && fd_ >= 0; ++i) {
    if (!TakeAcceptToken()) return;
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        if (!ShedOne()) {
          Pause(100);
          return;
        }
        continue;
      }
      if (accept_rate_ != 0 && accept_debt_ >= 1000) accept_debt_ -= 1000;  // nothing taken
      return;  // EAGAIN, or a transient error (ECONNABORTED): wait for the next event
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL* ssl = nullptr;
    if (tls_ != nullptr) {
      ssl = tls_->NewSession(fd);
      if (ssl == nullptr) {
        close(fd);
        continue;
      }
    }
    ++loop_.stats().accepted;
    accept_(loop_, fd, ssl);
  }
}

}  // namespace hermod::net
