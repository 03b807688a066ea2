// A core NATS client that lives on one event loop (net/event_loop.h): its socket is a Pollable
// on that loop's epoll, connected without blocking, read into the loop's read buffer and parsed
// there (nats_proto.h), and written from its own output buffer, coalesced per loop iteration
// (one write for everything queued during an iteration). What it receives is handed to its
// owner on the loop itself: no thread sits between the socket and the loop.
//
// Servers: a list of nats:// or tls:// URLs (user:pass@ or token@ in the URL's userinfo), tried
// in turn; after a failed attempt or a lost connection the next is tried after reconnect_wait,
// for ever.
// A host name is resolved before every attempt (getaddrinfo blocks: on a short-lived thread of
// its own, the result handed back to the loop), so a server that moves or is not there yet
// (docker compose, Kubernetes) is found once its name resolves; a name that does not resolve
// is a failed attempt.
// dial_timeout bounds the connect and the handshake (INFO, CONNECT, PING, PONG), and is the
// write deadline: output that makes no progress within it (no byte taken by the socket)
// closes the connection (then reconnected). A protocol error (a malformed line, a MSG past
// max_payload) closes and reconnects too. Keepalive: when nothing has come from the server for
// ping_interval, a PING goes out; with max_pings_out of them unanswered (nothing heard since the
// first) the connection is taken for dead (a paused server, a partition: TCP may not say so for
// minutes) and closed, then reconnected. Subscriptions are the client's state: SUB is sent at once
// when connected and again after every reconnect, before anything else the owner writes. While not
// connected (an attempt, the reconnect wait), publications are held, up to reconnect_buffer_bytes,
// and written on the connect right after the SUBs (as libnats's reconnect buffer): a node that
// reconnects after the others must not drop what it accepted once their subscribers were told.
// Past the bound, or once closed, Publish fails at once.
//
// TLS (as nats.go): the server's INFO comes in plain text; then, when the URL is tls://, the
// options ask for TLS, or the INFO says tls_required, the TLS handshake runs (non-blocking, on
// the loop, within dial_timeout) and CONNECT and everything after go through it. A failed
// handshake (an unknown CA, a wrong name, a client certificate refused) is a failed attempt.
//
// Everything here runs on the loop's thread (set-up and tear-down too, or while the loop is not
// running).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "broker/nats_proto.h"
#include "net/event_loop.h"
#include "net/tls.h"

namespace hermod::broker {

struct NatsServer {
  std::string url;  // as configured, for logs (userinfo left out)
  std::string host;
  std::string port;
  // An IP address literal's, set by ParseNatsServers; 0 for a host name (resolved at every
  // attempt, off the loop).
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string user;
  std::string pass;
  std::string token;
  bool tls = false;  // a tls:// URL
};

// Parses a comma-separated list of nats:// or tls:// URLs. Host names are not resolved here (a
// name that does not resolve yet is a failed attempt, retried, never a start-up failure).
// false with *error on a malformed one.
bool ParseNatsServers(std::string_view urls, std::vector<NatsServer>* servers, std::string* error);

class NatsClient final : public net::Pollable {
 public:
  struct Options {
    std::vector<NatsServer> servers;
    std::string name;
    uint64_t dial_timeout_ms = 1000;
    uint64_t reconnect_wait_ms = 1000;
    uint64_t max_output_bytes = 16 << 20;  // a Publish past this much unwritten fails
    uint64_t ping_interval_ms = 20000;     // silence before a keepalive PING
    uint64_t max_pings_out = 2;            // keepalive PINGs unanswered: the connection is dead
    // Publications held while not connected.
    uint64_t reconnect_buffer_bytes = 8 << 20;
    // TLS even on a nats:// URL (a tls:// URL, or a server requiring it, asks anyway).
    bool tls_wanted = false;
    // The sessions' settings (CAs, client certificate); none: a TLS connection fails.
    std::shared_ptr<net::TlsClientContext> tls;
    std::string tls_server_name;  // the name checked and sent as SNI ("": the URL's host)
  };
  // Why the client closed a connection itself.
  enum class Fault { kProtocol, kWriteDeadline, kPing, kTls };
  struct Events {
    // A MSG: the views are valid for the call only.
    std::function<void(uint64_t sid, std::string_view payload)> message;
    // The handshake is done and every subscription's SUB written.
    std::function<void()> connected;
    // A connection that was up is lost (why: for the log).
    std::function<void(std::string_view why)> disconnected;
    // The server's -ERR (the connection may close after it).
    std::function<void(std::string_view text)> error;
    // An attempt failed (why: for the log); the next follows after reconnect_wait.
    std::function<void(std::string_view url, std::string_view why)> attempt_failed;
    // The connection was closed for a protocol error, the write deadline, keepalive PINGs
    // left unanswered, or TLS (a failed handshake, a server without TLS when it was asked).
    std::function<void(Fault fault)> fault;
  };
  struct Stats {
    uint64_t connects = 0;
    uint64_t failed_attempts = 0;
    uint64_t protocol_errors = 0;
    uint64_t server_errors = 0;  // -ERR lines
    uint64_t write_deadlines = 0;
    uint64_t ping_timeouts = 0;  // closed: max_pings_out keepalive PINGs unanswered
    uint64_t tls_failures = 0;
  };

  NatsClient(net::Loop& loop, Options options, Events events);
  ~NatsClient() override;
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;

  // Begins connecting (the first attempt at once).
  void Start();
  // Closes the connection and stops reconnecting; pending pings are answered false.
  void Close();

  bool connected() const { return state_ == State::kConnected; }
  // An attempt is in progress (resolving, connecting or in the handshake).
  bool connecting() const {
    return state_ == State::kResolving || state_ == State::kConnecting ||
           state_ == State::kHandshake;
  }
  uint64_t max_payload() const { return parser_.max_payload(); }
  const Stats& stats() const { return stats_; }
  size_t pending_output() const { return out_.size() - out_at_; }
  // The output buffer's bytes, written ones not yet dropped included (about twice
  // max_output_bytes at most).
  size_t output_buffer() const { return out_.size(); }

  // A subscription kept across reconnects; its id is the MSG's sid.
  uint64_t Subscribe(std::string_view subject);
  void Unsubscribe(uint64_t sid);
  size_t subscriptions() const { return subs_.size(); }
  // false: closed, or max_output_bytes (reconnect_buffer_bytes while not connected) would be
  // passed (nothing queued).
  bool Publish(std::string_view subject, std::string_view payload);
  // A round trip: done(true) once the server's PONG answers a PING written after everything
  // queued before; done(false) when the connection is lost first. While an attempt is in
  // progress the PING waits for its end; while disconnected, done(false) at once.
  void Ping(std::function<void(bool)> done);

  // Writes everything queued now, blocking the loop at most timeout_ms (poll): for a kill at
  // a point (config fault_kill_at), which must not return before its publications left.
  // false: not connected, or not all written in time.
  bool WriteNow(uint64_t timeout_ms);

  void OnEvents(uint32_t events) override;

 private:
  enum class State { kIdle, kWaiting, kResolving, kConnecting, kHandshake, kConnected, kClosed };
  // Shared with the resolver threads: once gone is set (under mutex) none posts to the loop.
  struct ResolverGate {
    std::mutex mutex;
    bool gone = false;
  };
  class Timer final : public net::TimerNode {
   public:
    Timer(NatsClient& client, void (NatsClient::*fire)()) : client_(client), fire_(fire) {}
    void OnTimer() override { (client_.*fire_)(); }

   private:
    NatsClient& client_;
    void (NatsClient::*fire_)();
  };
  class Parsed;  // the parser's handler

  void Attempt();
  // A host name's attempt: resolved on a thread of its own, then OnResolved on the loop.
  void Resolve();
  void OnResolved(uint64_t attempt, const sockaddr_storage& address, socklen_t len,
                  const std::string& why);
  void Connect(const sockaddr_storage& address, socklen_t len);
  void OnStateTimer();     // the dial deadline, or the reconnect wait, is over
  void OnWriteDeadline();  // output waited dial_timeout
  void OnPingTimer();      // keepalive: ping_interval passed
  void OnConnectDone();
  void OnReadable();
  void ReadTls();
  // Feeds n bytes of the loop's read buffer to the parser.
  void Received(size_t n);
  void SendHello();  // CONNECT and PING
  void StartTls();
  void Handshake();  // one step of SSL_connect
  void TlsFailed(std::string why);
  ssize_t WriteTls(const char* data, size_t size);
  // Ends the connection (or attempt); a reconnect follows after reconnect_wait.
  void Drop(std::string_view why, bool failed_attempt);
  void Established();
  void Queue(std::string_view bytes);
  // Writes what is queued; false when the connection was dropped.
  bool Write();
  void ScheduleWrite();
  void WantWritable(bool on);

  net::Loop& loop_;
  const Options options_;
  const Events events_;
  std::unique_ptr<Parsed> handler_;
  NatsParser parser_;
  State state_ = State::kIdle;
  int fd_ = -1;
  size_t next_server_ = 0;
  const NatsServer* server_ = nullptr;  // of the attempt or connection
  uint64_t attempt_ = 0;                // a resolution for an earlier attempt is ignored
  std::shared_ptr<ResolverGate> gate_ = std::make_shared<ResolverGate>();
  std::string out_;
  size_t out_at_ = 0;
  std::string held_;  // PUBs made while not connected, written after the SUBs on the connect
  bool writable_wanted_ = false;
  bool write_posted_ = false;
  Timer state_timer_{*this, &NatsClient::OnStateTimer};
  Timer write_timer_{*this, &NatsClient::OnWriteDeadline};
  Timer ping_timer_{*this, &NatsClient::OnPingTimer};
  uint64_t heard_ms_ = 0;                 // when the server last sent something
  uint64_t pings_out_ = 0;                // keepalive PINGs written since then
  std::map<uint64_t, std::string> subs_;  // sid -> subject
  uint64_t next_sid_ = 1;
  std::deque<std::function<void(bool)>> pongs_;    // PINGs written, in order
  std::vector<std::function<void(bool)>> queued_;  // PINGs asked for during an attempt
  bool closing_ = false;                           // in Close: no disconnected event
  bool info_seen_ = false;  // the attempt's INFO came (CONNECT and PING written)
  std::string drop_why_;    // set inside Feed: the connection ends once it returns
  bool tls_start_ = false;  // set inside Feed by the INFO: the handshake follows it
  bool tls_handshaking_ = false;
  SSL* ssl_ = nullptr;  // the connection's TLS session, from its handshake on
  Stats stats_;
  // Tasks this client posted to its loop hold this; false once the client is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace hermod::broker
