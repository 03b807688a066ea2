#include "client_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>

#include "clock.h"
#include "payload.h"
#include "ws/frame.h"
#include "ws/frame_encoder.h"
#include "ws/handshake.h"

namespace hermod::bench {

namespace {

constexpr size_t kReadBuffer = 256 * 1024;
constexpr size_t kMaxUpgradeResponse = 16 * 1024;
// A publisher whose unwritten bytes pass this waits: the server is not keeping up.
constexpr size_t kPacedBacklog = 1 << 20;
constexpr size_t kFullSpeedBacklog = 64 * 1024;
constexpr uint64_t kCloseWaitNs = 1'000'000'000;
constexpr uint64_t kTimeoutCheckNs = 100'000'000;
// Setup opens no more while this many connections of the loop are still connecting: on a
// busy machine a ramp faster than the server (or this loop) answers would pile handshakes up
// until the server's timeouts close them, and the run would measure its own backlog.
constexpr uint64_t kMaxPendingSetups = 512;

uint64_t XorShift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

std::string Base64(const uint8_t* data, size_t len) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16;
    if (i + 1 < len) v |= static_cast<uint32_t>(data[i + 1]) << 8;
    if (i + 2 < len) v |= data[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < len ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < len ? kAlphabet[v & 63] : '=');
  }
  return out;
}

// The value of header `name` (lower case, with the colon) in an HTTP response head.
std::string_view HeaderValue(std::string_view head, std::string_view name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    if (head.size() - pos < name.size()) break;
    bool match = true;
    for (size_t i = 0; i < name.size() && match; ++i) {
      char c = head[pos + i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      match = c == name[i];
    }
    if (!match) continue;
    size_t end = head.find("\r\n", pos);
    std::string_view v = head.substr(pos + name.size(), end - pos - name.size());
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  }
  return {};
}

}  // namespace

// ---- ClientConnection: forwards to its loop ----

ClientConnection::ClientConnection(ClientLoop& l, uint32_t id, ConnectionPlan plan)
    : loop(l), id_(id), plan_(plan) {
  if (plan.publish >= 0) publish_channel = ChannelName(l.config_.protocol, plan.publish);
  stream = StreamsSubscribers(l.config_.protocol) && plan.subscribe >= 0 && plan.publish < 0;
}

void ClientConnection::Send(std::string_view message) {
  loop.SendFrame(*this, loop.adapter_->binary() ? ws::Opcode::kBinary : ws::Opcode::kText, message);
}
void ClientConnection::Ready() { loop.Ready(*this); }
void ClientConnection::Deliver(std::string_view payload) { loop.Deliver(*this, payload); }
void ClientConnection::Fail(std::string_view reason) { loop.Fail(*this, reason); }
void ClientConnection::Told() { loop.Told(*this); }
std::string& ClientConnection::scratch() { return loop.scratch_; }

void ClientConnection::OnMessage(ws::Opcode, std::string_view payload) {
  if (fd < 0) return;  // failed earlier in this read; the reader is still unwinding
  loop.stats_.bytes_in += payload.size();
  if (loop.measuring_) loop.stats_.At(loop.SecondOf(NowNs())).bytes_in += payload.size();
  loop.adapter_->OnMessage(*this, payload);
}

void ClientConnection::OnPing(std::string_view payload) {
  loop.SendFrame(*this, ws::Opcode::kPong, payload);
}

void ClientConnection::OnPong(std::string_view) {}

void ClientConnection::OnClose(uint16_t code, std::string_view) {
  if (state == ConnState::kClosing) {
    loop.CloseSocket(*this);
    return;
  }
  loop.Fail(*this, "closed by server: " + std::to_string(code));
}

// ---- ClientLoop ----

ClientLoop::ClientLoop(const RunConfig& config, std::vector<uint32_t> indices, LoopControl& control,
                       LoopProgress& progress, uint64_t seed)
    : config_(config),
      scenario_(Effective(config)),
      adapter_(MakeAdapter(config.protocol)),
      control_(control),
      progress_(progress),
      read_buf_(kReadBuffer),
      rng_(seed | 1) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Target> targets = config.targets;
  if (targets.empty()) targets.push_back({config.host, config.port, config.path});
  for (const Target& t : targets) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(t.port);
    inet_pton(AF_INET, t.host.c_str(), &a.sin_addr);
    targets_.push_back(a);
  }
  if (!config.source.empty()) {
    bind_source_ = true;
    source_.sin_family = AF_INET;
    inet_pton(AF_INET, config.source.c_str(), &source_.sin_addr);
  }
  limits_.expect_masked = false;
  limits_.max_message_size = 64ull << 20;
  deflate_limits_ = limits_;
  deflate_limits_.deflate = true;
  if (config.rate > 0) interval_ns_ = static_cast<uint64_t>(1e9 / config.rate);
  const double stand_rate = config.personal_rate + config.group_rate;
  if (scenario_ == Scenario::kStand && config.publishers > 0 && stand_rate > 0) {
    interval_ns_ = static_cast<uint64_t>(1e9 * config.publishers / stand_rate);
  }
  conns_.reserve(indices.size());
  for (uint32_t index : indices) {
    conns_.push_back(std::make_unique<ClientConnection>(*this, index, PlanFor(config, index)));
    if (conns_.back()->plan_.churner) {
      churners_.push_back(conns_.back().get());
    } else {
      ++setup_count_;  // indices ascend, and churners have the highest
    }
  }
}

ClientLoop::~ClientLoop() {
  for (auto& c : conns_) {
    if (c->fd >= 0) close(c->fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint64_t ClientLoop::SecondOf(uint64_t now) const {
  return now > measure_start_ns_ ? (now - measure_start_ns_) / 1'000'000'000ull : 0;
}

void ClientLoop::Open(ClientConnection& c, uint64_t now) {
  c.started_ns = now;
  c.reader = ws::MessageReader();
  c.tracker = SequenceTracker();
  c.tell_pending = false;
  c.deflate = false;
  c.inflater.reset();
  c.chunk_left = 0;
  c.chunk_crlf = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    Fail(c, std::string("socket: ") + strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (bind_source_) {
    // Pick the port at connect() time, per destination: 127.0.0.x sources then each get the
    // full ephemeral range against one server port.
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<sockaddr*>(&source_), sizeof(source_)) != 0) {
      int err = errno;
      close(fd);
      Fail(c, std::string("bind: ") + strerror(err));
      return;
    }
  }
  c.fd = fd;
  ++open_;
  c.state = ConnState::kConnecting;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  const sockaddr_in& target = targets_[c.id_ % targets_.size()];
  if (connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0 &&
      errno != EINPROGRESS) {
    Fail(c, std::string("connect: ") + strerror(errno));
  }
}

void ClientLoop::OnConnected(ClientConnection& c) {
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    Fail(c, std::string("connect: ") + strerror(err));
    return;
  }
  std::array<uint8_t, 16> nonce;
  for (size_t i = 0; i < nonce.size(); i += 8) {
    uint64_t r = XorShift(rng_);
    std::memcpy(nonce.data() + i, &r, 8);
  }
  c.key = Base64(nonce.data(), nonce.size());
  c.state = ConnState::kHandshake;
  std::string& req = c.out;
  req.clear();
  c.out_sent = 0;
  const Target& target = config_.targets.empty() ? Target{config_.host, config_.port, config_.path}
                                                 : config_.targets[c.id_ % config_.targets.size()];
  if (c.stream) {
    StreamRequest(c, target);
    MarkDirty(c);
    return;
  }
  req += "GET " + target.path + " HTTP/1.1\r\nHost: " + target.host + ":" +
         std::to_string(target.port) +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + c.key +
         "\r\nSec-WebSocket-Version: 13\r\n";
  if (!adapter_->subprotocol().empty()) {
    req += "Sec-WebSocket-Protocol: ";
    req += adapter_->subprotocol();
    req += "\r\n";
  }
  // RFC 7692 §7.1.2.2: client_max_window_bits without a value lets the server pick ours.
  if (config_.deflate)
    req += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
  req += "\r\n";
  MarkDirty(c);
}

void ClientLoop::OnEvent(ClientConnection& c, uint32_t events) {
  if (c.fd < 0) return;
  if (c.state == ConnState::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    OnConnected(c);
    if (c.fd < 0) return;
  }
  if (events & EPOLLOUT) {
    c.write_blocked = false;
    if (c.pending_out() > 0) MarkDirty(c);
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    ReadAll(c, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  }
}

void ClientLoop::ReadAll(ClientConnection& c, bool hangup) {
  while (c.fd >= 0) {
    ssize_t n = read(c.fd, read_buf_.data(), read_buf_.size());
    if (n > 0) {
      OnBytes(c, read_buf_.data(), static_cast<size_t>(n));
      // Edge-triggered: a short read drained the socket, and new bytes raise a new edge.
      // Only a hang-up that came with the bytes needs the read that returns 0.
      if (static_cast<size_t>(n) < read_buf_.size() && !hangup) return;
    } else if (n == 0) {
      if (c.state == ConnState::kClosing) {
        CloseSocket(c);
      } else {
        Fail(c, "closed by server: EOF");
      }
      return;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else {
      if (c.state == ConnState::kClosing) {
        CloseSocket(c);
      } else {
        Fail(c, std::string("read: ") + strerror(errno));
      }
      return;
    }
  }
}

void ClientLoop::OnBytes(ClientConnection& c, uint8_t* data, size_t len) {
  if (c.state == ConnState::kHandshake) {
    OnUpgradeResponse(c, data, len);
    return;
  }
  if (c.stream) return OnStreamBytes(c, reinterpret_cast<const char*>(data), len);
  ws::Inflater* inflater = c.inflater ? c.inflater.get() : shared_inflater_.get();
  ws::MessageReader::Result r =
      c.deflate ? c.reader.Feed(data, len, deflate_limits_, c, inflater, c.inflate_reset)
                : c.reader.Feed(data, len, limits_, c, nullptr, false);
  if (!r.ok && c.fd >= 0) {
    std::string reason = "websocket: " + std::to_string(static_cast<int>(r.error.code)) + " " +
                         std::string(r.error.reason);
    Fail(c, reason);
  }
}

void ClientLoop::StreamRequest(ClientConnection& c, const Target& target) {
  const std::string channel = ChannelName(config_.protocol, c.plan_.subscribe);
  const std::string connect = "{\"token\":\"" + config_.token + "\",\"name\":\"hermod-bench\"}";
  std::string& req = c.out;
  const std::string host = "\r\nHost: " + target.host + ":" + std::to_string(target.port);
  if (config_.protocol == Protocol::kHermodHttpStream) {
    req +=
        "POST /connection/uni_http_stream HTTP/1.1" + host +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(connect.size()) +
        "\r\n\r\n" + connect;
    return;
  }
  if (config_.token.empty()) {
    req += "GET /connection/fragments?channel=" + channel;
  } else {
    req += "GET /connection/uni_sse?cf_connect=";
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char ch : connect) {
      if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.') {
        req += static_cast<char>(ch);
      } else {
        req += '%';
        req += kHex[ch >> 4];
        req += kHex[ch & 15];
      }
    }
  }
  req += " HTTP/1.1" + host + "\r\nAccept: text/event-stream\r\n\r\n";
}

void ClientLoop::OnStreamBytes(ClientConnection& c, const char* data, size_t len) {
  stats_.bytes_in += len;
  if (measuring_) stats_.At(SecondOf(NowNs())).bytes_in += len;
  // De-chunk into carry_, then take its complete lines.
  std::string& body = c.carry_;
  while (len > 0) {
    if (c.chunk_crlf > 0) {
      const size_t skip = std::min<size_t>(c.chunk_crlf, len);
      c.chunk_crlf -= static_cast<uint8_t>(skip);
      data += skip;
      len -= skip;
      continue;
    }
    if (c.chunk_left > 0) {
      const size_t take = std::min<uint64_t>(c.chunk_left, len);
      body.append(data, take);
      c.chunk_left -= take;
      data += take;
      len -= take;
      if (c.chunk_left == 0) c.chunk_crlf = 2;
      continue;
    }
    // A chunk header: hex size, CRLF.
    const size_t had = c.http.size();
    c.http.append(data, std::min<size_t>(len, 32));
    const size_t eol = c.http.find("\r\n");
    if (eol == std::string::npos) {
      if (c.http.size() >= 32) return Fail(c, "stream: bad chunk header");
      data += len;
      len = 0;
      break;
    }
    uint64_t size = 0;
    auto [end, ec] = std::from_chars(c.http.data(), c.http.data() + eol, size, 16);
    if (ec != std::errc() || end != c.http.data() + eol) return Fail(c, "stream: bad chunk");
    const size_t used = eol + 2 - had;
    data += used;
    len -= used;
    c.http.clear();
    if (size == 0) return Fail(c, "closed by server: stream ended");
    c.chunk_left = size;
  }
  size_t pos = 0;
  while (c.fd >= 0) {
    const size_t eol = body.find('\n', pos);
    if (eol == std::string::npos) break;
    StreamLine(c, std::string_view(body).substr(pos, eol - pos));
    pos = eol + 1;
  }
  if (c.fd >= 0) body.erase(0, pos);
}

void ClientLoop::StreamLine(ClientConnection& c, std::string_view line) {
  if (config_.protocol == Protocol::kHermodSse) {
    if (!line.starts_with("data: ")) return;  // event:, id:, retry:, comments, blank lines
    line.remove_prefix(6);
    if (config_.token.empty()) {  // fragments: the data is the publication's, verbatim
      Deliver(c, line);
      return;
    }
  }
  // A uni value: {"connect":{...}}, {"channel":..,"pub":{...}}, {} (ping), or an unsubscribe.
  if (line.starts_with("{\"connect\"")) {
    Ready(c);
  } else if (line.find("\"pub\"") != std::string_view::npos) {
    Deliver(c, line);
  } else if (line.find("\"unsubscribe\"") != std::string_view::npos) {
    Told(c);
  }
}

void ClientLoop::OnUpgradeResponse(ClientConnection& c, uint8_t* data, size_t len) {
  c.http.append(reinterpret_cast<const char*>(data), len);
  size_t end = c.http.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.http.size() > kMaxUpgradeResponse) Fail(c, "handshake: response too long");
    return;
  }
  std::string_view head(c.http.data(), end + 2);
  if (c.stream) {
    if (!head.starts_with("HTTP/1.1 200")) {
      Fail(c, "stream: " + std::string(head.substr(0, std::min<size_t>(head.find("\r\n"), 40))));
      return;
    }
    std::string rest = c.http.substr(end + 4);
    c.http.clear();
    c.state = ConnState::kSetup;
    // Fragments subscribe before the head leaves: streaming is being subscribed.
    if (config_.protocol == Protocol::kHermodSse && config_.token.empty()) Ready(c);
    if (!rest.empty()) OnStreamBytes(c, rest.data(), rest.size());
    return;
  }
  if (!head.starts_with("HTTP/1.1 101")) {
    std::string status(head.substr(0, std::min<size_t>(head.find("\r\n"), 40)));
    Fail(c, "handshake: " + status);
    return;
  }
  if (HeaderValue(head, "sec-websocket-accept:") != ws::AcceptKey(c.key)) {
    Fail(c, "handshake: bad Sec-WebSocket-Accept");
    return;
  }
  if (!adapter_->subprotocol().empty() &&
      HeaderValue(head, "sec-websocket-protocol:") != adapter_->subprotocol()) {
    Fail(c, "handshake: subprotocol not accepted");
    return;
  }
  if (!AcceptExtensions(c, HeaderValue(head, "sec-websocket-extensions:"))) return;
  std::string rest = c.http.substr(end + 4);
  c.http.clear();
  c.http.shrink_to_fit();
  c.state = ConnState::kSetup;
  adapter_->OnOpen(c);
  if (!rest.empty() && c.fd >= 0) {
    OnBytes(c, reinterpret_cast<uint8_t*>(rest.data()), rest.size());
  }
}

// The server's answer to our offer (RFC 7692 §5, §7.1): it may accept only
// permessage-deflate, and only when we offered it. Its parameters are read with the server's
// own parser: the answer is one offer-shaped list whose values are the agreed ones.
bool ClientLoop::AcceptExtensions(ClientConnection& c, std::string_view extensions) {
  if (extensions.empty()) {
    if (!config_.deflate) return true;
    Fail(c, "handshake: permessage-deflate declined");
    return false;
  }
  std::optional<ws::DeflateNegotiation> agreed;
  if (config_.deflate)
    agreed = ws::NegotiateDeflate(extensions, ws::DeflateConfig{.enabled = true});
  if (!agreed || extensions.find(',') != std::string_view::npos) {
    Fail(c, "handshake: bad Sec-WebSocket-Extensions");
    return false;
  }
  const ws::DeflateParams& p = agreed->params;
  c.deflate = true;
  c.deflate_bits = static_cast<uint8_t>(p.client_max_window_bits);
  c.inflate_reset = p.server_no_context_takeover;
  if (p.server_no_context_takeover) {
    if (!shared_inflater_) shared_inflater_ = std::make_unique<ws::Inflater>(15);
  } else {
    c.inflater = std::make_unique<ws::Inflater>(p.server_max_window_bits);
  }
  return true;
}

void ClientLoop::SendFrame(ClientConnection& c, ws::Opcode opcode, std::string_view payload) {
  if (c.fd < 0) return;
  const bool data = opcode == ws::Opcode::kText || opcode == ws::Opcode::kBinary;
  const size_t app_bytes = data ? payload.size() : 0;  // as bytes_in: data messages, inflated
  ws::FrameHeaderSpec spec;
  spec.opcode = opcode;
  if (c.deflate && data) {
    // Reset after every message: no context carried, so one Deflater serves every connection
    // with this window (a client may always drop its own context, RFC 7692 §7.1.1.2).
    auto& deflater = deflaters_[c.deflate_bits];
    if (!deflater) deflater = std::make_unique<ws::Deflater>(1, c.deflate_bits);
    deflater->Deflate(payload, true, deflated_);
    payload = deflated_;
    spec.rsv1 = true;
  }
  spec.payload_len = payload.size();
  uint64_t r = XorShift(rng_);
  std::array<uint8_t, 4> mask;
  std::memcpy(mask.data(), &r, 4);
  spec.mask = mask;
  ws::AppendFrame(c.out, spec, payload);
  stats_.bytes_out += app_bytes;
  if (measuring_) stats_.At(SecondOf(NowNs())).bytes_out += app_bytes;
  MarkDirty(c);
}

void ClientLoop::MarkDirty(ClientConnection& c) {
  if (c.dirty) return;
  c.dirty = true;
  dirty_.push_back(&c);
}

void ClientLoop::FlushDirty() {
  // Flush may fail a connection, which never adds to dirty_; iterate by index all the same.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    ClientConnection& c = *dirty_[i];
    c.dirty = false;
    Flush(c);
  }
  dirty_.clear();
}

void ClientLoop::Flush(ClientConnection& c) {
  if (c.fd < 0 || c.write_blocked || c.state == ConnState::kConnecting) return;
  while (c.pending_out() > 0) {
    ssize_t n = write(c.fd, c.out.data() + c.out_sent, c.pending_out());
    if (n > 0) {
      c.out_sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c.write_blocked = true;
      break;
    } else {
      Fail(c, std::string("write: ") + strerror(errno));
      return;
    }
  }
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
  } else if (c.out_sent > (64u << 10) && c.out_sent > c.out.size() / 2) {
    c.out.erase(0, c.out_sent);
    c.out_sent = 0;
  }
}

void ClientLoop::StartClose(ClientConnection& c, uint16_t code, uint64_t now) {
  if (c.fd < 0) return;
  if (c.stream) return CloseSocket(c);  // a streamed response ends with its connection
  if (c.state == ConnState::kSetup || c.state == ConnState::kReady) {
    SendFrame(c, ws::Opcode::kClose, ws::ClosePayload(code, ""));
    c.state = ConnState::kClosing;
    c.deadline_ns = now + kCloseWaitNs;
  } else if (c.state != ConnState::kClosing) {
    CloseSocket(c);
  }
}

void ClientLoop::CloseSocket(ClientConnection& c) {
  if (c.fd >= 0) {
    close(c.fd);
    c.fd = -1;
    --open_;
  }
  c.state = ConnState::kIdle;
  c.started_ns = 0;
  c.write_blocked = false;
  c.out.clear();
  c.out_sent = 0;
  c.carry_.clear();
  c.http.clear();
  // The reader is reset in Open(), not here: this may run inside its Feed().
}

void ClientLoop::Fail(ClientConnection& c, std::string_view reason) {
  if (c.fd < 0) {
    // No socket: either a failure before it existed (socket(), bind()), counted here, or a
    // connection that already failed earlier in this read, not counted twice.
    if (c.state != ConnState::kIdle || c.started_ns == 0) return;
    c.started_ns = 0;
    stats_.AddError(std::string(reason));
    ++stats_.connects_failed;
    ++failed_;
    return;
  }
  stats_.AddError(std::string(reason));
  if (reason.starts_with(kPublishRefused)) ++refused_;
  bool measuring = measuring_ && !stopping_;
  if (measuring) ++stats_.At(SecondOf(NowNs())).errors;
  if (c.state == ConnState::kReady) {
    if (!stopping_) {
      ++stats_.disconnects;
      Told(c);  // a disconnect tells the subscriber as much as an unsubscribe push
    }
  } else if (c.state != ConnState::kClosing) {
    ++stats_.connects_failed;
    ++failed_;
  }
  CloseSocket(c);
}

void ClientLoop::Ready(ClientConnection& c) {
  if (c.state != ConnState::kSetup) return;
  uint64_t now = NowNs();
  c.state = ConnState::kReady;
  stats_.connect_latency.Record(now - c.started_ns);
  ++stats_.connects_ok;
  ++ready_;
  if (scenario_ == Scenario::kConnect || c.plan_.churner) {
    if (measuring_) ++stats_.At(SecondOf(now)).connects;
    StartClose(c, 1000, now);
  }
}

void ClientLoop::Told(ClientConnection& c) {
  if (c.plan_.subscribe < 0 || c.plan_.churner || !measuring_) return;
  c.tell_pending = true;
  if (!c.counted_told) {
    c.counted_told = true;
    ++stats_.subscribers_told;
  }
}

void ClientLoop::Deliver(ClientConnection& c, std::string_view payload) {
  // A churner's deliveries are not counted: what it should get depends on when it was there.
  if (c.plan_.subscribe < 0 || c.plan_.churner) return;
  Stamp stamp;
  if (!ReadStamp(payload, stamp)) {
    if (measuring_) ++stats_.unstamped;
    return;
  }
  uint64_t now = NowNs();
  const uint64_t latency = now > stamp.sent_ns ? now - stamp.sent_ns : 0;
  if (latency > max_latency_ns_) {
    max_latency_ns_ = latency;
    progress_.max_latency_ns.store(latency, std::memory_order_relaxed);
  }
  // Publications are stamped only in the measure phase, which another loop or worker can
  // enter before this loop reads the phase (a worker wakes from its start sleep late on a
  // busy machine, a loop reads it only between epoll waits). Dropping the delivery would
  // make its successor look like a gap nobody announced: it says the phase has begun.
  if (!measuring_) {
    StartMeasure(now);
    ++stats_.early_starts;
  }
  stats_.latency.Record(latency);
  ++stats_.delivered;
  stats_.last_delivery_ns = now;
  Second& second = stats_.At(SecondOf(now));
  ++second.delivered;
  second.latency.Record(latency);
  SequenceTracker::Outcome o = c.tracker.Observe(stamp.publisher, stamp.seq);
  stats_.lost += o.lost;
  if (o.lost > 0) {
    // A gap after a tell is the one the server announced; any other is a silent loss.
    if (!c.counted_lost) {
      c.counted_lost = true;
      ++stats_.subscribers_lost;
    }
    if (c.tell_pending) {
      stats_.lost_told += o.lost;
      c.tell_pending = false;
    } else {
      stats_.lost_silently += o.lost;
      if (!c.counted_silent) {
        c.counted_silent = true;
        ++stats_.subscribers_lost_silently;
      }
    }
  }
  if (o.duplicate) ++stats_.duplicates;
  // Echo at full speed is a closed loop: each returning message sends the next.
  if (config_.rate == 0 && c.plan_.publish == c.plan_.subscribe &&
      stamp.publisher == c.plan_.publisher_id && !draining_) {
    PublishOne(c, now);
  }
}

void ClientLoop::PublishStand(ClientConnection& c, uint64_t now) {
  // Publisher j of P owns personal channels j, j+P, ... and groups j, j+P, ...; each is a
  // stream of its own (the stamp's publisher is the channel number).
  const uint32_t p = std::max<uint32_t>(config_.publishers, 1), j = c.plan_.publisher_id;
  const uint32_t n = config_.connections, groups = StandGroups(config_);
  const uint32_t own_personal = n > j ? (n - j + p - 1) / p : 0;
  const uint32_t own_groups = groups > j ? (groups - j + p - 1) / p : 0;
  if (own_personal + own_groups == 0) return;
  if (c.stream_seq.empty()) c.stream_seq.assign(own_personal + own_groups, 0);
  // group_rate of every (personal_rate + group_rate) publications go to groups, evenly.
  const double total = config_.personal_rate + config_.group_rate;
  c.group_credit += config_.group_rate;
  bool to_group = c.group_credit >= total;
  if (to_group) c.group_credit -= total;
  if (own_groups == 0) to_group = false;
  if (own_personal == 0) to_group = true;
  uint32_t channel, slot;
  uint64_t receivers;
  if (to_group) {
    const uint32_t k = c.group_cursor++ % own_groups;
    channel = n + j + k * p;
    slot = own_personal + k;
    receivers = StandGroupMembers(config_, j + k * p);
  } else {
    const uint32_t k = c.personal_cursor++ % own_personal;
    channel = j + k * p;
    slot = k;
    receivers = 1;
  }
  Stamp stamp{now, channel, c.stream_seq[slot]++};
  WritePayload(payload_, stamp, config_.size);
  adapter_->Publish(c, ChannelName(config_.protocol, static_cast<int32_t>(channel)), payload_);
  ++stats_.sent;
  stats_.expected += receivers;
  ++stats_.At(SecondOf(now)).sent;
}

void ClientLoop::PublishOne(ClientConnection& c, uint64_t now) {
  if (c.publishing_done || c.state != ConnState::kReady) return;
  if (c.plan_.stand_publisher) return PublishStand(c, now);
  Stamp stamp{now, c.plan_.publisher_id, c.next_seq++};
  WritePayload(payload_, stamp, config_.size);
  adapter_->Publish(c, c.publish_channel, payload_);
  ++stats_.sent;
  ++stats_.At(SecondOf(now)).sent;
  if (config_.messages > 0 && c.next_seq >= config_.messages) {
    c.publishing_done = true;
    ++publishers_done_;
  }
}

void ClientLoop::OpenDue(uint64_t now) {
  if (scenario_ == Scenario::kConnect) return;
  if (setup_start_ns_ == 0) setup_start_ns_ = now;
  size_t allowed = setup_count_;
  if (config_.ramp > 0) {
    double per_loop = config_.ramp / std::max<uint32_t>(config_.threads, 1);
    allowed = std::min(allowed, 1 + static_cast<size_t>(static_cast<double>(now - setup_start_ns_) *
                                                        per_loop / 1e9));
  }
  // At most a batch per iteration so that handshakes already under way progress too.
  size_t batch = 0;
  while (next_to_open_ < allowed && batch < 256 &&
         (open_ <= ready_ || open_ - ready_ < kMaxPendingSetups)) {
    Open(*conns_[next_to_open_++], now);
    ++batch;
  }
}

void ClientLoop::StartMeasure(uint64_t now) {
  measuring_ = true;
  measure_start_ns_ = control_.measure_start_ns.load(std::memory_order_acquire);
  if (measure_start_ns_ == 0) measure_start_ns_ = now;
  churn_started_ = 0;
  for (auto& cp : conns_) {
    ClientConnection& c = *cp;
    const bool publishes = c.plan_.publish >= 0 || c.plan_.stand_publisher;
    if (!publishes || c.state != ConnState::kReady) {
      if (publishes && !c.publishing_done) {
        c.publishing_done = true;  // never became ready: counts as done so runs can end
        ++publishers_done_;
      }
      continue;
    }
    if (interval_ns_ > 0) {
      // Spread publishers over one interval so that they do not all fire together.
      timers_.push({now + XorShift(rng_) % std::max<uint64_t>(interval_ns_, 1), &c});
    } else if (c.plan_.stand_publisher) {
      continue;  // the stand at rates 0: connections held, nothing published
    } else if (c.plan_.publish == c.plan_.subscribe && !(c.plan_.subscribe < 0)) {
      for (uint32_t i = 0; i < std::max<uint32_t>(config_.inflight, 1); ++i) PublishOne(c, now);
    } else {
      full_speed_.push_back(&c);
    }
  }
}

void ClientLoop::RunTimers(uint64_t now) {
  size_t budget = 100000;
  while (!timers_.empty() && timers_.top().first <= now && budget-- > 0) {
    auto [due, c] = timers_.top();
    timers_.pop();
    if (c->state != ConnState::kReady || c->publishing_done) continue;
    if (c->pending_out() > kPacedBacklog) {
      timers_.push({now + 1'000'000, c});  // the server is behind; try again in 1 ms
      continue;
    }
    PublishOne(*c, now);
    if (!c->publishing_done) timers_.push({due + interval_ns_, c});
  }
}

bool ClientLoop::PumpFullSpeed(uint64_t now) {
  bool more = false;
  for (ClientConnection* c : full_speed_) {
    for (int i = 0; i < 64 && c->pending_out() < kFullSpeedBacklog && !c->publishing_done &&
                    c->state == ConnState::kReady;
         ++i) {
      PublishOne(*c, now);
    }
    if (c->state == ConnState::kReady && !c->publishing_done && !c->write_blocked &&
        c->pending_out() < kFullSpeedBacklog) {
      more = true;
    }
  }
  return more;
}

void ClientLoop::Churn(uint64_t now) {
  double per_loop = config_.connect_rate / std::max<uint32_t>(config_.threads, 1);
  uint64_t allowed =
      static_cast<uint64_t>(static_cast<double>(now - measure_start_ns_) * per_loop / 1e9) + 1;
  auto open_idle = [&](ClientConnection& c) {
    if (churn_started_ >= allowed) return false;
    if (c.state == ConnState::kIdle) {
      Open(c, now);
      ++churn_started_;
    }
    return true;
  };
  if (scenario_ == Scenario::kStand) {
    for (ClientConnection* c : churners_) {
      if (!open_idle(*c)) break;
    }
    return;
  }
  for (auto& cp : conns_) {
    if (!open_idle(*cp)) break;
  }
}

void ClientLoop::CheckTimeouts(uint64_t now) {
  uint64_t setup_ns = static_cast<uint64_t>(config_.setup_timeout_s * 1e9);
  for (auto& cp : conns_) {
    ClientConnection& c = *cp;
    switch (c.state) {
      case ConnState::kConnecting:
      case ConnState::kHandshake:
      case ConnState::kSetup:
        if (now - c.started_ns > setup_ns) Fail(c, "timeout: setup");
        break;
      case ConnState::kClosing:
        if (now > c.deadline_ns) CloseSocket(c);
        break;
      default:
        break;
    }
  }
}

void ClientLoop::CloseAll(uint64_t now) {
  for (auto& cp : conns_) StartClose(*cp, 1000, now);
}

void ClientLoop::PublishProgress() {
  progress_.ready.store(ready_, std::memory_order_relaxed);
  progress_.failed.store(failed_, std::memory_order_relaxed);
  progress_.open.store(open_, std::memory_order_relaxed);
  progress_.sent.store(stats_.sent, std::memory_order_relaxed);
  progress_.delivered.store(stats_.delivered, std::memory_order_relaxed);
  progress_.accounted.store(stats_.delivered - stats_.duplicates + stats_.lost,
                            std::memory_order_relaxed);
  progress_.lost_silently.store(stats_.lost_silently, std::memory_order_relaxed);
  progress_.errors.store(stats_.error_count(), std::memory_order_relaxed);
  progress_.connects.store(stats_.connects_ok, std::memory_order_relaxed);
  progress_.publishers_done.store(publishers_done_, std::memory_order_relaxed);
  progress_.refused.store(refused_, std::memory_order_relaxed);
}

void ClientLoop::Run() {
  std::array<epoll_event, 512> events;
  bool pwait2 = true;
  while (true) {
    uint64_t now = NowNs();
    Phase phase = control_.phase.load(std::memory_order_acquire);
    if (phase == Phase::kSetup) OpenDue(now);
    if (phase >= Phase::kMeasure && !measuring_) StartMeasure(now);
    bool spin = false;
    if (phase == Phase::kMeasure) {
      RunTimers(now);
      spin = PumpFullSpeed(now);
      if (scenario_ == Scenario::kConnect || !churners_.empty()) Churn(now);
    }
    if (phase >= Phase::kDrain && !draining_) {
      draining_ = true;
      timers_ = {};
      full_speed_.clear();
    }
    if (phase == Phase::kStop && !stopping_) {
      stopping_ = true;
      stop_deadline_ns_ = now + kCloseWaitNs;
      CloseAll(now);
    }
    FlushDirty();
    if (now >= next_timeout_check_ns_) {
      CheckTimeouts(now);
      next_timeout_check_ns_ = now + kTimeoutCheckNs;
      // The error count walks a map: once per check rather than per iteration.
      PublishProgress();
    } else {
      progress_.sent.store(stats_.sent, std::memory_order_relaxed);
      progress_.delivered.store(stats_.delivered, std::memory_order_relaxed);
      progress_.accounted.store(stats_.delivered - stats_.duplicates + stats_.lost,
                                std::memory_order_relaxed);
      progress_.lost_silently.store(stats_.lost_silently, std::memory_order_relaxed);
      progress_.ready.store(ready_, std::memory_order_relaxed);
      progress_.failed.store(failed_, std::memory_order_relaxed);
      progress_.publishers_done.store(publishers_done_, std::memory_order_relaxed);
    }
    if (stopping_ && (open_ == 0 || now > stop_deadline_ns_)) break;

    uint64_t wait_ns = 10'000'000;
    if (spin) wait_ns = 0;
    if (!timers_.empty()) {
      uint64_t due = timers_.top().first;
      wait_ns = std::min(wait_ns, due > now ? due - now : 0);
    }
    int n;
    if (pwait2) {
      timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000),
                  static_cast<long>(wait_ns % 1'000'000'000)};
      n = epoll_pwait2(epoll_fd_, events.data(), static_cast<int>(events.size()), &ts, nullptr);
      if (n < 0 && errno == ENOSYS) {
        pwait2 = false;
        continue;
      }
    } else {
      n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                     static_cast<int>((wait_ns + 999'999) / 1'000'000));
    }
    for (int i = 0; i < n; ++i) {
      OnEvent(*static_cast<ClientConnection*>(events[i].data.ptr), events[i].events);
    }
  }
  for (auto& cp : conns_) CloseSocket(*cp);
  PublishProgress();
  progress_.finished.store(true, std::memory_order_release);
}

}  // namespace hermod::bench
