// The seam between the client protocol's session (client_session.h) and what carries its
// messages. A transport frames and sends; the session decides. Today's transport is the
// WebSocket one (websocket_transport.h); unit tests use a fake. A new transport (SSE,
// HTTP-streaming) is a new file: a net::Connection subclass that implements Transport, owns
// a ClientSession, feeds it each client message (OnMessage) and its end (OnTransportClosed),
// and registers a push framing of its own kind (below); plus its route in app/server.cc.
//
// Pushes are encoded once per publication (proto::PreparedPush holds the JSON) and framed
// once per transport kind: the WebSocket frame (and its deflated form) is built with the
// push, every other kind's form on first need, by whichever loop needs it first, and then
// shared by every subscriber of that kind on every loop.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/loop_channels.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "proto/codes.h"

namespace hermod::proto {

class ClientSession;
class PreparedPush;

// A push's form for one transport kind, built once from its JSON; immutable once built.
class FramedPush {
 public:
  virtual ~FramedPush() = default;
};
using FramePushFn = FramedPush* (*)(std::string_view json);

// Transport kinds: 0 is the WebSocket's (framed with the push). A transport whose pushes
// need another framing registers its kind once, at static initialization:
//   const size_t kSseKind = RegisterTransportKind(&FrameSse);
inline constexpr size_t kWebSocketKind = 0;
inline constexpr size_t kMaxTransportKinds = 12;
size_t RegisterTransportKind(FramePushFn frame);
FramePushFn TransportFraming(size_t kind);

// How a session's commands and replies are encoded: the JSON protocol (text), or Protobuf
// (binary, proto/protobuf.h). The session decodes by it; the transport encodes replies by it.
enum class Format : uint8_t { kJson, kProtobuf };
inline constexpr std::array<std::string_view, 2> kFormatNames = {"json", "protobuf"};

class Transport {
 public:
  // The loop that owns the transport and its session: every call below is on its thread.
  virtual net::Loop& loop() const = 0;
  // Which push framing its subscribers use (RegisterTransportKind).
  virtual size_t kind() const = 0;
  virtual Format format() const { return Format::kJson; }
  // One message of replies, or a push only this client gets (a ping, a server-side
  // subscribe, a told unsubscribe). lane: kControl, or kNormal to leave behind the
  // publications already queued.
  virtual net::SendStatus SendReply(std::string_view json,
                                    net::Lane lane = net::Lane::kControl) = 0;
  // A shared push, by reference, with its priority class (the fan-out path: once per push
  // per subscriber).
  virtual net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) = 0;
  // Ends the connection with the protocol's disconnect (code and reason as the client gets
  // them); the transport says it its own way (a WebSocket Close).
  virtual void Close(Disconnect reason) = 0;
  // What the transport has queued and not yet written (the session's reply budget).
  virtual size_t queued_bytes() const = 0;
  virtual bool closing() const = 0;
  virtual std::string PeerIp() const = 0;
  // The connection the hub's subscriptions point at (closing, CutSlow).
  virtual net::Connection& connection() = 0;
  // The session's one timer (keepalive.cc), kept by the transport so that a WebSocket's
  // session shares its connection's timer node (ws::WebSocketConnection::SetProtocolTimer):
  // at due_ms on the loop's clock the transport calls ClientSession::OnKeepalive. It may fire
  // early (the session checks its deadlines and sets it again); kNoSessionTimer cancels it.
  static constexpr uint64_t kNoSessionTimer = UINT64_MAX;
  virtual void SetSessionTimer(uint64_t due_ms) = 0;
  // The session it carries (a subscription finds its session here rather than keep a
  // pointer of its own).
  virtual ClientSession& client_session() = 0;

 protected:
  ~Transport() = default;
};

// A subscription the session made: the hub fans out to it, and PreparedPush::SendTo reaches
// its transport through it. Every subscription that meets a PreparedPush is one of these
// (only sessions subscribe with proto's push codec).
struct TransportSubscription : core::Subscription {
  Transport* transport = nullptr;
  // With delta (core::Subscription::delta): the sequence number of the last publication
  // this subscriber was sent, whose data its client keeps (0: none; the next is full).
  uint64_t delta_base = 0;
};

}  // namespace hermod::proto
