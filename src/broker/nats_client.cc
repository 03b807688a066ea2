#include "broker/nats_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

namespace hermod::broker {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// getaddrinfo (blocking unless flags has AI_NUMERICHOST): the first address, or *why.
bool Lookup(const std::string& host, const std::string& port, int flags, sockaddr_storage* address,
            socklen_t* len, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *why = "cannot resolve " + host + ": " + gai_strerror(rc);
    return false;
  }
  std::memcpy(address, found->ai_addr, found->ai_addrlen);
  *len = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

bool ParseOne(std::string_view url, NatsServer* server, std::string* error) {
  std::string_view rest = url;
  if (rest.starts_with("nats://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("tls://")) {
    rest.remove_prefix(6);
    server->tls = true;
  } else if (rest.find("://") != std::string_view::npos) {
    *error = "not a nats:// or tls:// URL: " + std::string(url);
    return false;
  }
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    rest = rest.substr(0, slash);
  }
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    if (const size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
      server->user = userinfo.substr(0, colon);
      server->pass = userinfo.substr(colon + 1);
    } else {
      server->token = userinfo;
    }
  }
  std::string host;
  std::string port = "4222";
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = "bad address in " + std::string(url);
      return false;
    }
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (rest.starts_with(':')) port = rest.substr(1);
  } else if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    host = rest;
  }
  if (host.empty() || port.empty()) {
    *error = "bad address in " + std::string(url);
    return false;
  }
  char* end = nullptr;
  const unsigned long number = std::strtoul(port.c_str(), &end, 10);
  if (*end != '\0' || number == 0 || number > 65535 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    *error = "bad port in " + std::string(url);
    return false;
  }
  server->host = host;
  server->port = port;
  // An address literal is taken as it is (never blocks); a name waits for each attempt.
  std::string why;
  Lookup(host, port, AI_NUMERICHOST, &server->address, &server->address_len, &why);
  server->url = (server->tls ? "tls://" : "nats://") +
                (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  return true;
}

}  // namespace

bool ParseNatsServers(std::string_view urls, std::vector<NatsServer>* servers, std::string* error) {
  servers->clear();
  while (true) {
    const size_t comma = urls.find(',');
    const std::string_view url = Trim(urls.substr(0, comma));
    if (!url.empty()) {
      NatsServer server;
      if (!ParseOne(url, &server, error)) return false;
      servers->push_back(std::move(server));
    }
    if (comma == std::string_view::npos) break;
    urls.remove_prefix(comma + 1);
  }
  if (servers->empty()) {
    *error = "no NATS URL";
    return false;
  }
  return true;
}

// The parser's calls, back into the client (on the loop, inside Feed: nothing here may end
// the connection, which would free what the parser is reading; Drop waits for Feed's end).
class NatsClient::Parsed final : public NatsParser::Handler {
 public:
  explicit Parsed(NatsClient& c) : c_(c) {}
  void OnInfo(std::string_view json) override {
    if (const uint64_t max = InfoMaxPayload(json); max > 0) c_.parser_.set_max_payload(max);
    if (c_.state_ != State::kHandshake || c_.info_seen_) return;  // a later INFO: news only
    c_.info_seen_ = true;
    const bool wanted = c_.server_->tls || c_.options_.tls_wanted;
    if (InfoFlag(json, "tls_required") || (wanted && InfoFlag(json, "tls_available"))) {
      c_.tls_start_ = true;  // once Feed returns: the server sends nothing more in plain text
    } else if (wanted) {
      ++c_.stats_.tls_failures;
      if (c_.events_.fault) c_.events_.fault(Fault::kTls);
      if (c_.drop_why_.empty()) c_.drop_why_ = "TLS asked for, but the server offers none";
    } else {
      c_.SendHello();
    }
  }
  void OnMsg(std::string_view, uint64_t sid, std::string_view, std::string_view payload) override {
    if (c_.state_ == State::kConnected && c_.events_.message) c_.events_.message(sid, payload);
  }
  void OnPing() override { c_.Queue("PONG\r\n"); }
  void OnPong() override {
    if (c_.state_ == State::kHandshake) {
      if (c_.info_seen_) c_.Established();
      return;
    }
    if (c_.pongs_.empty()) return;
    auto done = std::move(c_.pongs_.front());
    c_.pongs_.pop_front();
    done(true);
  }
  void OnOk() override {}
  void OnErr(std::string_view text) override {
    ++c_.stats_.server_errors;
    if (c_.events_.error) c_.events_.error(text);
    // Refused in the handshake (authorization): the server closes; the next try waits
    // reconnect_wait like any failed attempt.
    if (c_.state_ == State::kHandshake && c_.drop_why_.empty()) {
      c_.drop_why_ = "refused: " + std::string(text);
    }
  }

 private:
  NatsClient& c_;
};

NatsClient::NatsClient(net::Loop& loop, Options options, Events events)
    : loop_(loop),
      options_(std::move(options)),
      events_(std::move(events)),
      handler_(std::make_unique<Parsed>(*this)),
      parser_(*handler_) {}

NatsClient::~NatsClient() {
  Close();
  {
    std::lock_guard lock(gate_->mutex);
    gate_->gone = true;
  }
  *alive_ = false;
}

void NatsClient::Start() {
  if (state_ != State::kIdle) return;
  Attempt();
}

void NatsClient::Close() {
  if (state_ == State::kClosed) return;
  closing_ = true;
  Drop("closed", false);
  closing_ = false;
  loop_.timers().Cancel(&state_timer_);
  state_ = State::kClosed;
  held_.clear();
}

void NatsClient::Attempt() {
  if (options_.servers.empty()) return;
  server_ = &options_.servers[next_server_++ % options_.servers.size()];
  info_seen_ = false;
  tls_start_ = false;
  drop_why_.clear();
  parser_.Reset();
  parser_.set_max_payload(NatsParser::kDefaultMaxPayload);
  ++attempt_;
  // dial_timeout bounds the resolution too: a resolver that hangs is a failed attempt.
  loop_.timers().Schedule(&state_timer_, options_.dial_timeout_ms);
  if (server_->address_len == 0) {
    Resolve();
    return;
  }
  Connect(server_->address, server_->address_len);
}

void NatsClient::Resolve() {
  state_ = State::kResolving;
  auto resolve = [gate = gate_, alive = alive_, loop = &loop_, client = this, attempt = attempt_,
                  host = server_->host, port = server_->port] {
    sockaddr_storage address{};
    socklen_t len = 0;
    std::string why;
    Lookup(host, port, 0, &address, &len, &why);
    std::lock_guard lock(gate->mutex);
    if (gate->gone) return;  // the client (and maybe its loop) is gone
    loop->Post([alive, client, attempt, address, len, why] {
      if (*alive) client->OnResolved(attempt, address, len, why);
    });
  };
  try {
    std::thread(std::move(resolve)).detach();
  } catch (const std::system_error& e) {  // no thread now: a failed attempt, tried again
    Drop(std::string("no thread to resolve the host name: ") + e.what(), true);
  }
}

void NatsClient::OnResolved(uint64_t attempt, const sockaddr_storage& address, socklen_t len,
                            const std::string& why) {
  if (attempt != attempt_ || state_ != State::kResolving) return;  // that attempt is over
  if (len == 0) {
    Drop(why, true);
    return;
  }
  Connect(address, len);
}

void NatsClient::Connect(const sockaddr_storage& address, socklen_t len) {
  state_ = State::kConnecting;
  fd_ = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    Drop(std::string("socket: ") + std::strerror(errno), true);
    return;
  }
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&address), len) != 0 && errno != EINPROGRESS) {
    Drop(std::string("connect: ") + std::strerror(errno), true);
    return;
  }
  if (!loop_.Add(fd_, EPOLLOUT, this)) {
    Drop("epoll refused the socket", true);
    return;
  }
  writable_wanted_ = true;
}

void NatsClient::OnStateTimer() {
  if (state_ == State::kWaiting) {
    Attempt();
  } else if (connecting()) {
    Drop("no connection within nats.dial_timeout", true);
  }
}

void NatsClient::OnWriteDeadline() {
  if (fd_ < 0 || pending_output() == 0) return;
  ++stats_.write_deadlines;
  if (events_.fault) events_.fault(Fault::kWriteDeadline);
  Drop("no output taken for nats.dial_timeout (the write deadline)", state_ != State::kConnected);
}

void NatsClient::OnPingTimer() {
  if (state_ != State::kConnected) return;
  const uint64_t silent = net::Loop::MonotonicMs() - heard_ms_;
  if (silent < options_.ping_interval_ms) {
    loop_.timers().Schedule(&ping_timer_, options_.ping_interval_ms - silent);
    return;
  }
  if (pings_out_ >= options_.max_pings_out) {
    ++stats_.ping_timeouts;
    if (events_.fault) events_.fault(Fault::kPing);
    Drop("nothing heard for " + std::to_string(silent) + " ms, " + std::to_string(pings_out_) +
             " PINGs unanswered (nats.max_pings_out)",
         false);
    return;
  }
  // Its PONG is matched in order like any other; nobody waits for it.
  Queue("PING\r\n");
  pongs_.push_back([](bool) {});
  ++pings_out_;
  loop_.timers().Schedule(&ping_timer_, options_.ping_interval_ms);
}

void NatsClient::OnEvents(uint32_t events) {
  if (state_ == State::kConnecting) {
    OnConnectDone();
    return;
  }
  if (fd_ < 0) return;
  if (tls_handshaking_) {
    Handshake();
    return;
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) OnReadable();
  if (fd_ >= 0 && (events & EPOLLOUT) != 0) Write();
}

void NatsClient::OnConnectDone() {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    Drop(std::string("connect: ") + std::strerror(err), true);
    return;
  }
  state_ = State::kHandshake;
  writable_wanted_ = false;
  loop_.Modify(fd_, EPOLLIN, this);
}

void NatsClient::OnReadable() {
  if (ssl_ != nullptr) {
    ReadTls();
    return;
  }
  const ssize_t n = read(fd_, loop_.read_buffer(), loop_.read_buffer_size());
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    Drop(n == 0 ? "closed by the server" : std::string("read: ") + std::strerror(errno),
         state_ != State::kConnected);
    return;
  }
  if (n < 0) return;
  Received(static_cast<size_t>(n));
}

void NatsClient::ReadTls() {
  // A record larger than the read buffer leaves the rest decrypted inside OpenSSL, where
  // epoll does not see it: read until none is left there.
  do {
    ERR_clear_error();
    errno = 0;  // SSL_ERROR_SYSCALL with errno 0 is an end of file
    const int n = SSL_read(ssl_, loop_.read_buffer(), static_cast<int>(loop_.read_buffer_size()));
    if (n > 0) {
      Received(static_cast<size_t>(n));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
      Drop("closed by the server", state_ != State::kConnected);
    } else if (e == SSL_ERROR_SYSCALL) {
      Drop(std::string("read: ") + std::strerror(errno), state_ != State::kConnected);
    } else {
      // An alert: a client certificate refused after the handshake (TLS 1.3), a bad record.
      ++stats_.tls_failures;
      if (events_.fault) events_.fault(Fault::kTls);
      Drop("TLS: " + net::TlsFailure(ssl_), state_ != State::kConnected);
    }
    return;
  } while (ssl_ != nullptr && SSL_pending(ssl_) > 0);
}

void NatsClient::Received(size_t n) {
  heard_ms_ = net::Loop::MonotonicMs();
  pings_out_ = 0;
  loop_.stats().bytes_read += static_cast<uint64_t>(n);
  if (!parser_.Feed(std::string_view(reinterpret_cast<const char*>(loop_.read_buffer()), n))) {
    ++stats_.protocol_errors;
    if (events_.fault) events_.fault(Fault::kProtocol);
    spdlog::warn("broker: NATS protocol error from {}: {}", server_->url, parser_.error());
    Drop("protocol error: " + parser_.error(), state_ != State::kConnected);
    return;
  }
  if (!drop_why_.empty()) {
    Drop(drop_why_, true);
  } else if (tls_start_) {
    StartTls();
  }
}

void NatsClient::SendHello() {
  std::string hello;
  AppendConnect(hello, {options_.name, server_->user, server_->pass, server_->token});
  hello += "PING\r\n";
  Queue(hello);
}

void NatsClient::StartTls() {
  tls_start_ = false;
  if (!options_.tls) {
    TlsFailed("the server requires TLS, and no TLS context was given");
    return;
  }
  const std::string& name =
      options_.tls_server_name.empty() ? server_->host : options_.tls_server_name;
  ssl_ = options_.tls->NewSession(fd_, name);
  if (ssl_ == nullptr) {
    TlsFailed("no TLS session for " + name);
    return;
  }
  tls_handshaking_ = true;
  Handshake();
}

void NatsClient::Handshake() {
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_do_handshake(ssl_);
  const int err = errno;  // for SSL_ERROR_SYSCALL, before anything else sets it
  if (rc == 1) {
    tls_handshaking_ = false;
    writable_wanted_ = false;
    loop_.Modify(fd_, EPOLLIN, this);
    SendHello();
    return;
  }
  const int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    writable_wanted_ = e == SSL_ERROR_WANT_WRITE;
    loop_.Modify(fd_, writable_wanted_ ? EPOLLIN | EPOLLOUT : EPOLLIN, this);
    return;
  }
  std::string why = net::TlsFailure(ssl_);
  if (e == SSL_ERROR_SYSCALL && err != 0) why += std::string(" (") + std::strerror(err) + ")";
  TlsFailed("TLS handshake with " + server_->url + ": " + why);
}

void NatsClient::TlsFailed(std::string why) {
  ++stats_.tls_failures;
  if (events_.fault) events_.fault(Fault::kTls);
  Drop(why, true);
}

void NatsClient::Established() {
  state_ = State::kConnected;
  loop_.timers().Cancel(&state_timer_);
  ++stats_.connects;
  heard_ms_ = net::Loop::MonotonicMs();
  pings_out_ = 0;
  loop_.timers().Schedule(&ping_timer_, options_.ping_interval_ms);
  std::string subs;
  for (const auto& [sid, subject] : subs_) AppendSub(subs, subject, sid);
  subs += held_;
  std::string().swap(held_);
  std::vector<std::function<void(bool)>> queued;
  queued.swap(queued_);
  for (size_t i = 0; i < queued.size(); ++i) subs += "PING\r\n";
  Queue(subs);
  for (auto& done : queued) pongs_.push_back(std::move(done));
  if (events_.connected) events_.connected();
}

void NatsClient::Drop(std::string_view why, bool failed_attempt) {
  const bool was_connected = state_ == State::kConnected;
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  tls_handshaking_ = false;
  tls_start_ = false;
  if (fd_ >= 0) {
    loop_.Remove(fd_);
    close(fd_);
    fd_ = -1;
  }
  writable_wanted_ = false;
  out_.clear();
  out_at_ = 0;
  loop_.timers().Cancel(&write_timer_);
  loop_.timers().Cancel(&ping_timer_);
  if (failed_attempt) ++stats_.failed_attempts;
  state_ = State::kWaiting;
  loop_.timers().Schedule(&state_timer_, options_.reconnect_wait_ms);
  std::deque<std::function<void(bool)>> pongs;
  pongs.swap(pongs_);
  std::vector<std::function<void(bool)>> queued;
  queued.swap(queued_);
  if (was_connected && !closing_ && events_.disconnected) events_.disconnected(why);
  if (failed_attempt && events_.attempt_failed) {
    events_.attempt_failed(server_ != nullptr ? server_->url : "", why);
  }
  for (auto& done : pongs) done(false);
  for (auto& done : queued) done(false);
}

uint64_t NatsClient::Subscribe(std::string_view subject) {
  const uint64_t sid = next_sid_++;
  subs_.emplace(sid, std::string(subject));
  if (connected()) {
    std::string line;
    AppendSub(line, subject, sid);
    Queue(line);
  }
  return sid;
}

void NatsClient::Unsubscribe(uint64_t sid) {
  if (subs_.erase(sid) == 0 || !connected()) return;
  std::string line;
  AppendUnsub(line, sid);
  Queue(line);
}

bool NatsClient::Publish(std::string_view subject, std::string_view payload) {
  if (!connected()) {
    if (state_ == State::kClosed ||
        held_.size() + payload.size() > options_.reconnect_buffer_bytes) {
      return false;
    }
    AppendPub(held_, subject, payload);
    return true;
  }
  if (pending_output() + payload.size() > options_.max_output_bytes) return false;
  AppendPub(out_, subject, payload);
  ScheduleWrite();
  return true;
}

void NatsClient::Ping(std::function<void(bool)> done) {
  if (connected()) {
    Queue("PING\r\n");
    pongs_.push_back(std::move(done));
  } else if (connecting()) {
    queued_.push_back(std::move(done));
  } else {
    done(false);
  }
}

void NatsClient::Queue(std::string_view bytes) {
  out_.append(bytes);
  ScheduleWrite();
}

void NatsClient::ScheduleWrite() {
  if (write_posted_ || writable_wanted_) return;
  write_posted_ = true;
  // Written at the start of the next iteration: everything queued during this one leaves in
  // one write (a loop posting to itself wakes nothing).
  loop_.Post([this, alive = alive_] {
    if (!*alive) return;
    write_posted_ = false;
    if (fd_ >= 0 && state_ != State::kConnecting) Write();
  });
}

bool NatsClient::Write() {
  if (tls_handshaking_) return true;  // nothing is queued before the handshake's end
  bool progressed = false;
  while (out_at_ < out_.size()) {
    const ssize_t n = ssl_ != nullptr ? WriteTls(out_.data() + out_at_, out_.size() - out_at_)
                                      : send(fd_, out_.data() + out_at_, out_.size() - out_at_,
                                             MSG_NOSIGNAL | MSG_DONTWAIT);
    ++loop_.stats().writes;
    if (n > 0) {
      out_at_ += static_cast<size_t>(n);
      loop_.stats().bytes_written += static_cast<uint64_t>(n);
      progressed = true;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (errno == EINTR) continue;
      // A socket that stays behind never drains the buffer: what it took is dropped here
      // (moving no more than that), so the buffer stays within about twice max_output_bytes.
      if (out_at_ >= out_.size() - out_at_) {
        out_.erase(0, out_at_);
        out_at_ = 0;
      }
      WantWritable(true);
      // The deadline is for a server that takes nothing, not for a busy one that takes it
      // slower than it is queued: it counts from the last write that moved bytes.
      if (progressed || !write_timer_.scheduled()) {
        loop_.timers().Schedule(&write_timer_, options_.dial_timeout_ms);
      }
      return true;
    }
    Drop(std::string("write: ") + std::strerror(errno), state_ != State::kConnected);
    return false;
  }
  out_.clear();
  out_at_ = 0;
  WantWritable(false);
  loop_.timers().Cancel(&write_timer_);
  return true;
}

// As send: bytes taken, or -1 with errno (EAGAIN: try again with the same bytes or more).
ssize_t NatsClient::WriteTls(const char* data, size_t size) {
  ERR_clear_error();
  const int n = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(size, 1 << 30)));
  if (n > 0) return n;
  const int e = SSL_get_error(ssl_, n);
  if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
    errno = EAGAIN;
  } else if (e != SSL_ERROR_SYSCALL || errno == 0) {
    ERR_clear_error();
    errno = EPROTO;
  }
  return -1;
}

bool NatsClient::WriteNow(uint64_t timeout_ms) {
  const uint64_t deadline = net::Loop::MonotonicMs() + timeout_ms;
  while (connected()) {
    if (!Write()) return false;
    if (pending_output() == 0) return true;
    const uint64_t now = net::Loop::MonotonicMs();
    if (now >= deadline) return false;
    pollfd p{fd_, POLLOUT, 0};
    poll(&p, 1, static_cast<int>(deadline - now));
  }
  return false;
}

void NatsClient::WantWritable(bool on) {
  if (writable_wanted_ == on || fd_ < 0) return;
  writable_wanted_ = on;
  loop_.Modify(fd_, on ? EPOLLIN | EPOLLOUT : EPOLLIN, this);
}

}  // namespace hermod::broker
