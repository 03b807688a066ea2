// A protocol adapter: what a bench connection says after the WebSocket handshake to become a
// subscriber or a publisher on a given server, and how it finds publications in what the
// server sends back. One stateless adapter object per run serves every connection; the
// little per-connection state a protocol needs (bytes of a protocol message split across
// WebSocket frames) lives in the Session.
//
// The adapters measure the same thing on every server: a subscriber's receipt of a payload
// that a publisher's connection sent (see payload.h). Everything else a protocol does
// (acks, pings, info lines) is answered or skipped here and never counted as a delivery.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "run_config.h"

namespace hermod::bench {

// The connection as an adapter sees it.
class Session {
 public:
  virtual ~Session() = default;
  // Sends one WebSocket data message (text or binary, per the adapter's opcode()).
  virtual void Send(std::string_view message) = 0;
  // Setup (protocol connect, subscribe) is complete: the connection is ready.
  virtual void Ready() = 0;
  // A publication's payload arrived.
  virtual void Deliver(std::string_view payload) = 0;
  // The server answered with a protocol error: counted by reason, connection closed.
  virtual void Fail(std::string_view reason) = 0;
  // The server told this subscriber that its stream has a gap (an unsubscribe push): a loss
  // seen after it is a told loss, not a silent one (a disconnect tells too).
  virtual void Told() = 0;
  // Protocol bytes carried over from the previous WebSocket message (NATS, MQTT).
  virtual std::string& carry() = 0;
  // Scratch space for building outgoing protocol messages.
  virtual std::string& scratch() = 0;
  virtual uint32_t id() const = 0;
  virtual const ConnectionPlan& plan() const = 0;
  virtual bool is_ready() const = 0;
};

class Adapter {
 public:
  virtual ~Adapter() = default;
  virtual std::string_view subprotocol() const { return {}; }
  virtual bool binary() const { return false; }
  // False for servers without channels (raw broadcast): only one channel can be simulated.
  virtual bool has_channels() const { return true; }
  // The WebSocket handshake is done: start the protocol's own setup (or call Ready()).
  virtual void OnOpen(Session& session) = 0;
  // One complete WebSocket data message from the server.
  virtual void OnMessage(Session& session, std::string_view message) = 0;
  // Publishes payload on channel (already named by ChannelName()).
  virtual void Publish(Session& session, std::string_view channel, std::string_view payload) = 0;
};

std::unique_ptr<Adapter> MakeAdapter(Protocol protocol);

// Session::Fail reasons that start with this: the server refused a publication outright (no
// permission, no such channel), which every later one would meet too, so the run stops at
// once and hermod-bench exits with the server's error (main.cc) instead of measuring nothing.
inline constexpr std::string_view kPublishRefused = "publish refused: ";

// For byte-stream protocols carried over WebSocket (NATS, MQTT): a message may end inside a
// protocol frame, so the unparsed tail waits in the session's carry buffer for the next one.
// parse(bytes) returns how many bytes it consumed.
template <class Parse>
void ParseStream(Session& session, std::string_view message, Parse parse) {
  std::string& carry = session.carry();
  if (carry.empty()) {
    size_t used = parse(message);
    if (used < message.size()) carry.assign(message.substr(used));
    return;
  }
  carry.append(message);
  size_t used = parse(std::string_view(carry));
  carry.erase(0, used);
}

}  // namespace hermod::bench
