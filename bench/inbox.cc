// The inbox scenario (inbox.h). Wire, per protocol:
//
// hermod (-p hermod), users over WebSocket, publishers over HTTP/1.1 keep-alive:
//   -> {"id":1,"connect":{"token":"<JWT, sub u<i>>"}}
//   <- {"id":1,"connect":{... "subs":{"inbox:#u<i>": ...}}}
//   POST /api/publish {"channel":"inbox:#u<i>","data":{"hb":[i,seq,t]}}
//   <- 200 {"result":{"offset":O,"epoch":..}}
//   or, --api-batch K: POST /api/batch {"commands":[{"publish":{..}} x K],"parallel":true}
//   <- 200 {"replies":[{"publish":{"offset":O,"epoch":..}} x K]}
//   <- {"push":{"channel":"inbox:#u<i>","pub":{"data":{"hb":[..]},"offset":O,
//        "tags":{"hermod-delivery":"D"}}}}
//   -> {"id":S,"rpc":{"method":"hermod.ack","data":{"channel":"inbox:#u<i>","offsets":[O]}}}
//   <- {"id":S,"rpc":{"data":{"offsets":[..]}}}
//
// NATS JetStream (-p nats), everything over nats-server's WebSocket listener:
//   control: PUB $JS.API.STREAM.DELETE/CREATE.HBINBOX (subjects inbox.>) with a reply subject
//   user i:  SUB deliver.u<i>; PUB $JS.API.CONSUMER.DURABLE.CREATE.HBINBOX.u<i> (filter
//            inbox.u<i>, push to deliver.u<i>, ack_policy explicit, or all with batched acks)
//   publisher k: PUB inbox.u<i> _P.k <payload>  <- MSG _P.k ... {"stream":"HBINBOX","seq":N}
//   <- MSG deliver.u<i> 1 $JS.ACK.HBINBOX.u<i>.<delivered>.<sseq>.<cseq>.<ts>.<pending> n
//   -> PUB $JS.ACK.... _A.u<i>.<S> 0   (an ack with a reply subject: the server confirms it)
//
// A delivery is remembered (its publish time from the payload) until an ack covering it is
// confirmed; "batch" acks once per read (hermod: the offsets read; JetStream: AckAll on the
// last message read, safe there since a consumer delivers in stream order), "each" acks every
// delivery on its own; "up_to" (hermod) acks up_to the highest offset read (inbox.h: unsafe).
#include "inbox.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "api_client.h"
#include "clock.h"
#include "histogram.h"
#include "interrupt.h"

namespace hermod::bench {

namespace {

constexpr std::string_view kStream = "HBINBOX";

// utime + stime of a process in seconds (/proc/<pid>/stat), -1 if unreadable.
double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (pid <= 0 || close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string Base64Url(const unsigned char* data, size_t len) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (i + 1 < len) v |= uint32_t{data[i + 1]} << 8;
    if (i + 2 < len) v |= data[i + 2];
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    if (i + 1 < len) out += k[(v >> 6) & 63];
    if (i + 2 < len) out += k[v & 63];
  }
  return out;
}

std::string Base64(const unsigned char* data, size_t len) {
  std::string s = Base64Url(data, len);
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4 != 0) s += '=';
  return s;
}

// An HS256 JWT with sub = user.
std::string Jwt(const std::string& secret, const std::string& user) {
  const std::string head = R"({"alg":"HS256","typ":"JWT"})";
  const std::string body = "{\"sub\":\"" + user + "\"}";
  std::string signing =
      Base64Url(reinterpret_cast<const unsigned char*>(head.data()), head.size()) + "." +
      Base64Url(reinterpret_cast<const unsigned char*>(body.data()), body.size());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &mac_len);
  return signing + "." + Base64Url(mac, mac_len);
}

// The value of a numeric field `"name":N` in text, 0 if absent.
uint64_t NumberField(std::string_view text, std::string_view key) {
  size_t p = text.find(key);
  return p == std::string_view::npos ? 0 : ParseU64(text, p + key.size());
}

// The stamp [user, seq, publish time] of a payload that contains "hb":[u,s,t].
bool ParseStamp(std::string_view text, uint64_t* user, uint64_t* seq, uint64_t* t) {
  size_t p = text.find("\"hb\":[");
  if (p == std::string_view::npos) return false;
  const char* c = text.data() + p + 6;
  const char* end = text.data() + text.size();
  auto r1 = std::from_chars(c, end, *user);
  if (r1.ec != std::errc() || r1.ptr >= end || *r1.ptr != ',') return false;
  auto r2 = std::from_chars(r1.ptr + 1, end, *seq);
  if (r2.ec != std::errc() || r2.ptr >= end || *r2.ptr != ',') return false;
  auto r3 = std::from_chars(r2.ptr + 1, end, *t);
  return r3.ec == std::errc();
}

enum class Kind : uint8_t { kUser, kPublisher, kControl };

struct Pending {
  uint64_t serial;
  uint64_t published_ns;
  uint32_t seq;
  bool acked = false;
};

struct Runner;

struct Conn final : public ApiConn {
  Conn(Runner& r, Kind k, uint32_t i);
  void OnMessage(ws::Opcode opcode, std::string_view payload) override;

  Runner& runner;
  const Kind kind;
  const uint32_t index;
  // user
  std::string channel;
  std::deque<Pending> pending;  // deliveries not yet confirmed acked, in receipt order
  uint64_t next_serial = 1;
  uint64_t read_top_offset = 0;  // hermod: highest offset seen in this read
  std::string read_offsets;      // hermod: the offsets of this read, comma-separated
  uint64_t top_offset = 0;       // hermod: highest offset seen so far
  uint64_t unacked_in_read = 0;  // deliveries of this read not yet covered by an ack
  std::string last_ack_subject;  // NATS: the last delivery's ack subject in this read
  std::vector<uint8_t> seen;     // per seq: 0 never, 1 delivered, 2 acked
  // publisher
  bool busy = false;
  uint32_t awaiting = 0;  // publications of the request in flight
};

struct Runner final : public ApiClient {
  const InboxOptions& o;
  const bool nats;
  std::vector<std::unique_ptr<Conn>> users;
  std::vector<std::unique_ptr<Conn>> publishers;
  std::unique_ptr<Conn> control;
  std::string padding;
  std::string scratch;

  // progress
  uint64_t total = 0;  // N × M
  uint64_t next_pub = 0;
  uint64_t published_ok = 0;
  uint64_t publish_failed = 0;
  uint64_t delivered = 0;    // every delivery, redeliveries included
  uint64_t redelivered = 0;  // deliveries whose count says > 1
  uint64_t reordered = 0;    // hermod: a push whose offset is below one received before
  uint64_t duplicates = 0;   // a seq delivered again after its first delivery
  uint64_t acked = 0;        // distinct publications whose ack was confirmed
  uint64_t ack_requests = 0;
  uint64_t ack_errors = 0;
  uint64_t users_ready = 0;
  uint64_t measure_start = 0;
  double server_cpu_start = -1;
  double server_cpu_s = -1;  // --server-pid's CPU seconds over the measure
  uint64_t last_ack_ns = 0;
  Histogram latency;          // publish sent → ack confirmed
  Histogram publish_latency;  // publish sent → stored (the API's or the PubAck's answer)
  bool failed_setup = false;

  Runner(const RunConfig& c, const InboxOptions& opt)
      : ApiClient(c, c.protocol == Protocol::kNats ? ws::Opcode::kBinary : ws::Opcode::kText,
                  opt.api_key),
        o(opt),
        nats(c.protocol == Protocol::kNats) {}

  // Opens c at addr, a WebSocket with a key of its own.
  bool Connect(Conn& c, const sockaddr_in& addr) {
    if (c.websocket) {
      std::array<unsigned char, 16> nonce;
      for (auto& b : nonce) b = static_cast<unsigned char>(rng());
      c.key = Base64(nonce.data(), nonce.size());
    }
    return Open(c, addr);
  }

  void Fail(ApiConn& c, const std::string& reason) override {
    Error(reason);
    if (!c.ready) failed_setup = true;
    Close(c);
  }

  void OnReadDone(ApiConn& conn) override {
    Conn& c = static_cast<Conn&>(conn);
    if (c.kind == Kind::kUser) AckRead(c);
  }

  void OnUpgraded(ApiConn& conn) override {
    Conn& c = static_cast<Conn&>(conn);
    if (!nats) {
      // A hermod user: connect with its JWT; the server subscribes it to its inbox.
      std::string user = "u" + std::to_string(c.index);
      SendWs(c, "{\"id\":1,\"connect\":{\"token\":\"" + Jwt(o.secret, user) +
                    "\",\"name\":\"hermod-bench\"}}");
      return;
    }
    std::string out = NatsConnect(false);
    if (c.kind == Kind::kControl) {
      const std::string create =
          "{\"name\":\"" + std::string(kStream) +
          "\",\"subjects\":[\"inbox.>\"],\"retention\":\"limits\",\"storage\":\"" + o.js_storage +
          "\",\"discard\":\"old\",\"num_replicas\":1}";
      out += NatsRecreateStream(kStream, create);
    } else if (c.kind == Kind::kPublisher) {
      out += "SUB _P." + std::to_string(c.index) + " 1\r\nPING\r\n";
    } else {
      const std::string u = "u" + std::to_string(c.index);
      const std::string consumer =
          "{\"stream_name\":\"" + std::string(kStream) + "\",\"config\":{\"durable_name\":\"" + u +
          "\",\"deliver_subject\":\"deliver." + u + "\",\"filter_subject\":\"inbox." + u +
          "\",\"deliver_policy\":\"all\",\"ack_policy\":\"" + (o.ack_each ? "explicit" : "all") +
          "\",\"ack_wait\":30000000000,\"max_ack_pending\":-1,\"max_deliver\":-1}}";
      out += "SUB deliver." + u + " 1\r\nSUB _A." + u + ".* 2\r\nSUB _C." + u + " 3\r\n";
      out += "PUB $JS.API.CONSUMER.DURABLE.CREATE." + std::string(kStream) + "." + u + " _C." + u +
             " " + std::to_string(consumer.size()) + "\r\n" + consumer + "\r\n";
    }
    SendWs(c, out);
  }

  // ---- hermod ----

  void OnHermodMessage(Conn& c, std::string_view message) {
    size_t pos = 0;
    while (pos < message.size()) {
      size_t eol = message.find('\n', pos);
      if (eol == std::string_view::npos) eol = message.size();
      OnHermodLine(c, message.substr(pos, eol - pos));
      pos = eol + 1;
    }
  }

  void OnHermodLine(Conn& c, std::string_view line) {
    if (line.empty()) return;
    if (line == "{}") return SendWs(c, "{}");
    if (line.starts_with("{\"push\"")) {
      if (line.find("\"pub\"") == std::string_view::npos) return;
      uint64_t user, seq, t;
      if (!ParseStamp(line, &user, &seq, &t)) return Error("hermod: a push without a stamp");
      // The offset after the stamp (the data could hold a key named "offset" of its own).
      const size_t data_end = line.find(']', line.find("\"hb\":["));
      const uint64_t offset = NumberField(
          data_end == std::string_view::npos ? line : line.substr(data_end), "\"offset\":");
      const size_t d = line.find("\"hermod-delivery\":\"");
      const uint64_t count = d == std::string_view::npos ? 1 : ParseU64(line, d + 19);
      OnDelivery(c, user, seq, t, count);
      if (offset < c.top_offset) ++reordered;
      c.top_offset = std::max(c.top_offset, offset);
      c.read_top_offset = std::max(c.read_top_offset, offset);
      if (!c.read_offsets.empty()) c.read_offsets += ',';
      c.read_offsets += std::to_string(offset);
      if (o.ack_each) {
        SendAck(c, "\"offsets\":[" + std::to_string(offset) + "]", c.next_serial - 1);
      }
      return;
    }
    const uint64_t id = NumberField(line, "{\"id\":");
    if (line.find("\"error\"") != std::string_view::npos) {
      if (id >= 10) ++ack_errors;
      return Fail(c, "hermod: " + std::string(line.substr(0, 160)));
    }
    if (id == 1) {
      if (line.find("\"" + c.channel + "\"") == std::string_view::npos) {
        return Fail(c,
                    "hermod: the connect reply does not subscribe the user to its inbox "
                    "(user_subscribe_to_personal, user_personal_channel_namespace)");
      }
      c.ready = true;
      ++users_ready;
    } else if (id >= 10) {
      AckConfirmed(c, id - 10);
    }
  }

  void SendAck(Conn& c, const std::string& what, uint64_t serial) {
    ++ack_requests;
    c.unacked_in_read = 0;
    if (nats) return;
    SendWs(c, "{\"id\":" + std::to_string(serial + 10) +
                  ",\"rpc\":{\"method\":\"hermod.ack\",\"data\":{\"channel\":\"" + c.channel +
                  "\"," + what + "}}}");
  }

  // The end of one read on a user's connection: batch mode acks what it read.
  void AckRead(Conn& c) {
    if (o.ack_each || c.unacked_in_read == 0) return;
    const uint64_t serial = c.next_serial - 1;
    if (nats) {
      SendNatsAck(c, c.last_ack_subject, serial);
    } else {
      SendAck(c,
              o.ack_up_to ? "\"up_to\":" + std::to_string(c.read_top_offset)
                          : "\"offsets\":[" + c.read_offsets + "]",
              serial);
      c.read_offsets.clear();
    }
    c.unacked_in_read = 0;
  }

  // ---- both ----

  void OnDelivery(Conn& c, uint64_t user, uint64_t seq, uint64_t t, uint64_t count) {
    ++delivered;
    if (count > 1) ++redelivered;
    if (user != c.index || seq >= c.seen.size()) return Error("a delivery to the wrong user");
    if (c.seen[seq] != 0) ++duplicates;
    if (c.seen[seq] == 0) c.seen[seq] = 1;
    c.pending.push_back(Pending{c.next_serial++, t, static_cast<uint32_t>(seq)});
    ++c.unacked_in_read;
  }

  // The server confirmed an ack sent for the delivery numbered serial (batch: and every one
  // before it).
  void AckConfirmed(Conn& c, uint64_t serial) {
    const uint64_t now = NowNs();
    for (Pending& p : c.pending) {
      if (p.serial > serial) break;
      if (!o.ack_each || p.serial == serial) {
        if (!p.acked && c.seen[p.seq] != 2) {
          c.seen[p.seq] = 2;
          ++acked;
          latency.Record(now - p.published_ns);
          last_ack_ns = now;
        }
        p.acked = true;
      }
    }
    while (!c.pending.empty() && c.pending.front().acked) c.pending.pop_front();
  }

  // ---- NATS ----

  void SendNatsAck(Conn& c, const std::string& subject, uint64_t serial) {
    ++ack_requests;
    SendWs(c, "PUB " + subject + " _A.u" + std::to_string(c.index) + "." + std::to_string(serial) +
                  " 0\r\n\r\n");
  }

  void OnNatsPong(ApiConn& c) override {
    if (static_cast<Conn&>(c).kind == Kind::kPublisher) c.ready = true;
  }

  void OnNatsMsg(ApiConn& conn, std::string_view subject, std::string_view reply, std::string_view,
                 std::string_view payload) override {
    Conn& c = static_cast<Conn&>(conn);
    if (c.kind == Kind::kControl) return OnStreamReply(c, payload);
    if (c.kind == Kind::kPublisher) return OnPublished(c, payload);
    if (subject.starts_with("_C.")) {
      if (payload.find("\"error\"") != std::string_view::npos) {
        return Fail(c, "nats: consumer create: " + std::string(payload.substr(0, 160)));
      }
      c.ready = true;
      ++users_ready;
      return;
    }
    if (subject.starts_with("_A.")) {
      const size_t dot = subject.rfind('.');
      return AckConfirmed(c, ParseU64(subject, dot + 1));
    }
    // A delivery: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    uint64_t user, seq, t;
    if (!ParseStamp(payload, &user, &seq, &t)) return Error("nats: a message without a stamp");
    uint64_t count = 1;
    size_t p = 0;
    for (int i = 0; i < 4 && p != std::string_view::npos; ++i) p = reply.find('.', p + 1);
    if (p != std::string_view::npos) count = ParseU64(reply, p + 1);
    OnDelivery(c, user, seq, t, count);
    if (o.ack_each) {
      SendNatsAck(c, std::string(reply), c.next_serial - 1);
      c.unacked_in_read = 0;
    } else {
      c.last_ack_subject.assign(reply);
    }
  }

  // ---- publishing ----

  // One request of up to o.batch publications (fewer at the end).
  void Publish(Conn& c, uint64_t now) {
    c.busy = true;
    c.awaiting = 0;
    pub_started[c.index] = now;
    std::string body;
    std::string nats_out;
    while (c.awaiting < o.batch && next_pub < total) {
      const uint64_t p = next_pub++;
      const uint64_t user = p % config.connections;
      const uint64_t seq = p / config.connections;
      scratch = "{\"hb\":[" + std::to_string(user) + "," + std::to_string(seq) + "," +
                std::to_string(now) + "]";
      if (!padding.empty()) scratch += ",\"p\":\"" + padding + "\"";
      scratch += "}";
      ++c.awaiting;
      if (nats) {
        nats_out += "PUB inbox.u" + std::to_string(user) + " _P." + std::to_string(c.index) + " " +
                    std::to_string(scratch.size()) + "\r\n" + scratch + "\r\n";
        continue;
      }
      const std::string one =
          "{\"channel\":\"" + o.ns + ":#u" + std::to_string(user) + "\",\"data\":" + scratch + "}";
      if (o.batch == 1) {
        body = one;
      } else {
        body += body.empty() ? "{\"commands\":[" : ",";
        body += "{\"publish\":" + one + "}";
      }
    }
    if (nats) return SendWs(c, nats_out);
    if (o.batch > 1) body += "],\"parallel\":true}";
    Post(c, o.batch > 1 ? "batch" : "publish", body);
  }
  std::vector<uint64_t> pub_started;

  // An answer: a PubAck (one publication), an API publish's, or an API batch's (every
  // publication of the request, each a reply {"publish":{..}} or {"error":{..}}).
  void OnPublished(Conn& c, std::string_view body) {
    uint32_t answered = 1, ok = 0;
    if (!nats && o.batch > 1) {
      answered = c.awaiting;
      for (size_t p = body.find("{\"publish\":{\"offset\":"); p != std::string_view::npos;
           p = body.find("{\"publish\":{\"offset\":", p + 1)) {
        ++ok;
      }
    } else {
      ok = body.find("\"error\"") == std::string_view::npos ? 1 : 0;
    }
    ok = std::min(ok, answered);
    published_ok += ok;
    if (ok < answered) {
      publish_failed += answered - ok;
      Error("publish: " + std::string(body.substr(0, 160)));
    }
    c.awaiting -= std::min(c.awaiting, answered);
    if (c.awaiting > 0) return;
    c.busy = false;
    publish_latency.Record(NowNs() - pub_started[c.index]);
  }

  void OnHttpAnswer(ApiConn& conn, std::string_view head, std::string_view body) override {
    Conn& c = static_cast<Conn&>(conn);
    if (!head.starts_with("HTTP/1.1 200")) {
      c.busy = false;
      publish_failed += c.awaiting;
      c.awaiting = 0;
      Error("publish: " + std::string(head.substr(0, head.find("\r\n"))) + " " +
            std::string(body.substr(0, 120)));
    } else {
      OnPublished(c, body);
    }
  }

  // ---- the run ----

  bool Wait(uint64_t deadline, bool (Runner::*done)()) {
    while (!(this->*done)()) {
      if (failed_setup || Interrupted() || NowNs() > deadline) return false;
      Loop(10);
    }
    return true;
  }

  bool ControlReady() { return control->ready; }
  bool UsersReady() { return users_ready == users.size(); }
  bool PublishersReady() {
    for (auto& p : publishers)
      if (!p->ready) return false;
    return true;
  }

  int Run() {
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!Resolve(config.host, config.port, &ws_addr)) return Report(1, "bad -u host");
    if (!ParseApiUrl(o.api_url)) return Report(1, "bad --api-url");
    padding.assign(config.size > 40 ? config.size - 40 : 0, 'x');
    total = uint64_t{config.connections} * o.per_user;
    const uint64_t setup_deadline = NowNs() + static_cast<uint64_t>(config.setup_timeout_s * 1e9);
    if (nats) {
      control = std::make_unique<Conn>(*this, Kind::kControl, 0);
      if (!Connect(*control, ws_addr) || !Wait(setup_deadline, &Runner::ControlReady)) {
        return Report(1, "setup: the stream was not created");
      }
    }
    for (uint32_t i = 0; i < config.connections; ++i) {
      users.push_back(std::make_unique<Conn>(*this, Kind::kUser, i));
      Conn& u = *users.back();
      u.channel = o.ns + ":#u" + std::to_string(i);
      u.seen.assign(o.per_user, 0);
      if (!Connect(u, ws_addr)) return Report(1, "setup: connect failed");
      if (i % 256 == 255) {  // let the accept queue drain
        Loop(0);
      }
    }
    FlushDirty();
    if (!Wait(setup_deadline, &Runner::UsersReady)) return Report(1, "setup: users not ready");
    pub_started.assign(o.publishers, 0);
    for (uint32_t k = 0; k < o.publishers; ++k) {
      publishers.push_back(std::make_unique<Conn>(*this, Kind::kPublisher, k));
      Conn& p = *publishers.back();
      p.websocket = nats;
      if (!Connect(p, nats ? ws_addr : api_addr))
        return Report(1, "setup: publisher connect failed");
    }
    FlushDirty();
    if (!Wait(setup_deadline, &Runner::PublishersReady)) {
      return Report(1, "setup: publishers not ready");
    }

    // Measure: publish N × M (paced when a rate is given), until every stored one is acked.
    measure_start = NowNs();
    server_cpu_start = CpuSeconds(config.server_pid);
    const uint64_t deadline = measure_start + static_cast<uint64_t>(config.duration_s * 1e9);
    uint64_t publish_end = 0, last_progress = measure_start;
    while (!Interrupted() && !failed_setup) {
      const uint64_t now = NowNs();
      // The time bound stops publishing; what was published still drains.
      const bool stop_publishing = next_pub >= total || now > deadline;
      for (auto& p : publishers) {
        if (stop_publishing || next_pub >= total) break;
        if (p->busy || p->fd < 0) continue;
        if (o.rate > 0 && static_cast<double>(next_pub) > (now - measure_start) * 1e-9 * o.rate) {
          break;
        }
        Publish(*p, now);
      }
      FlushDirty();
      const bool all_answered = stop_publishing && published_ok + publish_failed == next_pub;
      if (all_answered && publish_end == 0) publish_end = now;
      if (all_answered && acked == published_ok) break;
      if (publish_end != 0 && now > publish_end + static_cast<uint64_t>(config.drain_s * 1e9)) {
        break;
      }
      if (config.progress && now - last_progress > 1'000'000'000ull) {
        last_progress = now;
        std::fprintf(stderr, "\r%.0f s: published %llu acked %llu", (now - measure_start) * 1e-9,
                     static_cast<unsigned long long>(published_ok),
                     static_cast<unsigned long long>(acked));
      }
      Loop(o.rate > 0 ? 1 : 10);
    }
    if (config.progress) std::fprintf(stderr, "\n");
    if (server_cpu_start >= 0) server_cpu_s = CpuSeconds(config.server_pid) - server_cpu_start;
    return Report(0, "");
  }

  int Report(int setup_rc, const std::string& what) {
    if (setup_rc != 0 && first_error.empty()) first_error = what;
    const uint64_t end = last_ack_ns != 0 ? last_ack_ns : NowNs();
    const double secs = measure_start != 0 ? std::max(1e-9, (end - measure_start) * 1e-9) : 0;
    uint64_t delivered_unacked = 0;
    for (auto& u : users) {
      for (uint8_t s : u->seen) delivered_unacked += s == 1;
    }
    // Stored (answered) publications that no delivery brought.
    const uint64_t never_delivered =
        published_ok > acked + delivered_unacked ? published_ok - acked - delivered_unacked : 0;
    // Only publications the server confirmed can be expected; the rest were refused.
    const uint64_t expected_missing =
        published_ok > acked ? published_ok - acked : 0;  // stored but not acked
    const double acked_per_s = secs > 0 ? acked / secs : 0;
    const auto ms = [](const Histogram& h, double q) { return h.ValueAt(q) / 1e6; };
    const bool ok = setup_rc == 0 && published_ok == total && acked == published_ok &&
                    duplicates == 0 && publish_failed == 0 && ack_errors == 0;
    if (!o.quiet) {
      std::printf(
          "scenario inbox protocol %s url %s: %u users x %llu publications, %u publishers "
          "x %u per request, acks %s, %.2f s measured\n",
          ProtocolName(config.protocol), config.url.c_str(), config.connections,
          static_cast<unsigned long long>(o.per_user), o.publishers, o.batch,
          o.ack_each    ? "each"
          : o.ack_up_to ? "up_to"
                        : "batch",
          secs);
      std::printf(
          "  published %llu of %llu (failed %llu)  acked %llu (%.0f/s)  ack requests %llu\n",
          static_cast<unsigned long long>(published_ok), static_cast<unsigned long long>(total),
          static_cast<unsigned long long>(publish_failed), static_cast<unsigned long long>(acked),
          acked_per_s, static_cast<unsigned long long>(ack_requests));
      std::printf("  publish->ack ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", ms(latency, 0.5),
                  ms(latency, 0.9), ms(latency, 0.99), latency.max() / 1e6);
      std::printf("  publish->stored ms: p50 %.3f  p99 %.3f\n", ms(publish_latency, 0.5),
                  ms(publish_latency, 0.99));
      std::printf(
          "  deliveries %llu  out of offset order %llu  redelivered %llu  duplicates %llu  "
          "never delivered %llu  delivered unacked %llu  lost (stored, not acked) %llu\n",
          static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(reordered),
          static_cast<unsigned long long>(redelivered), static_cast<unsigned long long>(duplicates),
          static_cast<unsigned long long>(never_delivered),
          static_cast<unsigned long long>(delivered_unacked),
          static_cast<unsigned long long>(expected_missing));
      if (server_cpu_s >= 0 && acked > 0) {
        std::printf("  server cpu %.2f s: %.1f us per acked publication\n", server_cpu_s,
                    server_cpu_s * 1e6 / static_cast<double>(acked));
      }
      std::printf("  errors %llu\n", static_cast<unsigned long long>(errors.empty() ? 0 : [&] {
                    uint64_t n = 0;
                    for (auto& [k, v] : errors) n += v;
                    return n;
                  }()));
      for (auto& [reason, n] : errors) {
        std::printf("  error: %s x%llu\n", reason.c_str(), static_cast<unsigned long long>(n));
      }
    }
    if (!o.json_path.empty()) {
      char line[1024];
      std::snprintf(
          line, sizeof(line),
          "{\"scenario\":\"inbox\",\"protocol\":\"%s\",\"users\":%u,\"per_user\":%llu,"
          "\"publishers\":%u,\"per_request\":%u,\"acks\":\"%s\",\"summary\":{\"measured_s\":%.3f,"
          "\"total\":%llu,"
          "\"published\":%llu,\"publish_failed\":%llu,\"acked\":%llu,\"acked_per_s\":%.1f,"
          "\"ack_requests\":%llu,\"latency_p50_ms\":%.3f,\"latency_p90_ms\":%.3f,"
          "\"latency_p99_ms\":%.3f,\"latency_max_ms\":%.3f,\"publish_p50_ms\":%.3f,"
          "\"publish_p99_ms\":%.3f,\"deliveries\":%llu,\"reordered\":%llu,\"redelivered\":%llu,"
          "\"duplicates\":%llu,"
          "\"never_delivered\":%llu,\"delivered_unacked\":%llu,\"lost\":%llu,\"errors\":%zu,"
          "\"server_cpu_s\":%.3f}}\n",
          ProtocolName(config.protocol), config.connections,
          static_cast<unsigned long long>(o.per_user), o.publishers, o.batch,
          o.ack_each    ? "each"
          : o.ack_up_to ? "up_to"
                        : "batch",
          secs, static_cast<unsigned long long>(total),
          static_cast<unsigned long long>(published_ok),
          static_cast<unsigned long long>(publish_failed), static_cast<unsigned long long>(acked),
          acked_per_s, static_cast<unsigned long long>(ack_requests), ms(latency, 0.5),
          ms(latency, 0.9), ms(latency, 0.99), latency.max() / 1e6, ms(publish_latency, 0.5),
          ms(publish_latency, 0.99), static_cast<unsigned long long>(delivered),
          static_cast<unsigned long long>(reordered), static_cast<unsigned long long>(redelivered),
          static_cast<unsigned long long>(duplicates),
          static_cast<unsigned long long>(never_delivered),
          static_cast<unsigned long long>(delivered_unacked),
          static_cast<unsigned long long>(expected_missing), errors.size(), server_cpu_s);
      std::ofstream(o.json_path) << line;
    }
    for (auto& u : users) Close(*u);
    for (auto& p : publishers) Close(*p);
    if (control) Close(*control);
    if (epoll_fd >= 0) close(epoll_fd);
    if (setup_rc != 0) {
      std::fprintf(stderr, "hermod-bench: inbox: %s\n", first_error.c_str());
      return 1;
    }
    return ok ? 0 : 6;
  }
};

void Conn::OnMessage(ws::Opcode, std::string_view payload) {
  if (runner.nats) {
    runner.OnNatsMessage(*this, payload);
  } else {
    runner.OnHermodMessage(*this, payload);
  }
}

Conn::Conn(Runner& r, Kind k, uint32_t i) : ApiConn(r), runner(r), kind(k), index(i) {
  websocket = true;  // hermod's publishers speak plain HTTP
}

}  // namespace

int RunInbox(const RunConfig& config, const InboxOptions& options) {
  Runner runner(config, options);
  return runner.Run();
}

}  // namespace hermod::bench
