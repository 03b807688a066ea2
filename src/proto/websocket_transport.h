// The client protocol over WebSocket (/connection/websocket): the WebSocket connection is
// the transport (proto/transport.h), and it owns the session it carries, in the same
// allocation. Its format is chosen at the handshake: JSON (text messages; a binary one is a
// protocol error, 3501), or Protobuf (subprotocol `centrifuge-protobuf`, or the query's
// `format=protobuf` / `cf_protocol=protobuf`: binary messages, proto/protobuf.h; a text one
// is 3501). JSON replies and a client's own pushes are text messages, joinable with their
// neighbours into one newline-joined message; Protobuf ones are encoded from them into one
// binary message of length-delimited Replies. The hub's pushes are the shared frames of
// PreparedPush: the JSON frame, or the Protobuf frame built once per push (kProtobufKind).
#pragma once

#include <string>
#include <string_view>

#include "proto/client_session.h"
#include "proto/prepared_push.h"
#include "proto/transport.h"
#include "ws/websocket_connection.h"

namespace hermod::proto {

// The push framing of Protobuf WebSocket subscribers.
extern const size_t kProtobufKind;

// A push's Protobuf form: one binary WebSocket message of length-delimited Replies (several
// when the push was coalesced), built once and shared like the JSON frame. Its deflated
// frame uses the defaults (level 1, 15 bits): a receiver that negotiated a smaller window
// compresses for itself (ws::WebSocketConnection::SendPrepared).
class ProtobufPush final : public FramedPush {
 public:
  explicit ProtobufPush(std::string_view bytes) : message_(ws::Opcode::kBinary, bytes, 1, 15) {}
  const ws::PreparedMessage& message() const { return message_; }

 private:
  ws::PreparedMessage message_;
};

class WebSocketTransport final : public ws::WebSocketConnection, public Transport {
 public:
  WebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                     const ws::HandshakeResult& handshake, ws::WebSocketStats& stats,
                     ClientContext& context, Format format = Format::kJson);

  ClientSession& session() { return session_; }
  ClientSession& client_session() override { return session_; }

  net::Loop& loop() const override { return ws::WebSocketConnection::loop(); }
  size_t kind() const override {
    return format() == Format::kProtobuf ? kProtobufKind : kWebSocketKind;
  }
  // Kept in ws::WebSocketConnection::subclass_byte().
  Format format() const override { return static_cast<Format>(subclass_byte()); }
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override;
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) override;
  void Close(Disconnect reason) override { CloseWith(reason.code, reason.reason); }
  size_t queued_bytes() const override { return ws::WebSocketConnection::queued_bytes(); }
  bool closing() const override { return ws::WebSocketConnection::closing(); }
  std::string PeerIp() const override { return ws::WebSocketConnection::PeerIp(); }
  net::Connection& connection() override { return *this; }
  void SetSessionTimer(uint64_t due_ms) override { SetProtocolTimer(due_ms); }

 private:
  void OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) override;
  void OnShutdown() override;
  void OnClosed() override;
  void OnProtocolTimer() override { session_.OnKeepalive(); }
  // Slow consumers (net::Connection): the queue passed its bound or its deadline: 3008.
  void OnSlowConsumer() override;

  ClientSession session_;
};

// Centrifugo's unidirectional WebSocket (/connection/uni_websocket): the client's first
// message is a bare connect request, and later messages are ignored; the server sends
// every push bare and alone in its own text message (`{"connect":...}`, then
// `{"channel":"c","pub":{...}}`, pings `{}`), never newline-joined. Subscriptions come only
// from the server (the token's `channels`, the personal channel, the API's subscribe);
// recovery where the connect request's `subs` carries positions. No permessage-deflate (the
// route negotiates none), so a push's frames are built once and shared by every subscriber.
class UniWebSocketTransport final : public ws::WebSocketConnection, public Transport {
 public:
  UniWebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                        const ws::HandshakeResult& handshake, ws::WebSocketStats& stats,
                        ClientContext& context);

  ClientSession& session() { return session_; }
  ClientSession& client_session() override { return session_; }

  net::Loop& loop() const override { return ws::WebSocketConnection::loop(); }
  size_t kind() const override;
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override;
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) override;
  void Close(Disconnect reason) override { CloseWith(reason.code, reason.reason); }
  size_t queued_bytes() const override { return ws::WebSocketConnection::queued_bytes(); }
  bool closing() const override { return ws::WebSocketConnection::closing(); }
  std::string PeerIp() const override { return ws::WebSocketConnection::PeerIp(); }
  net::Connection& connection() override { return *this; }
  void SetSessionTimer(uint64_t due_ms) override { SetProtocolTimer(due_ms); }

 private:
  void OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) override;
  void OnShutdown() override;
  void OnClosed() override;
  void OnProtocolTimer() override { session_.OnKeepalive(); }
  void OnSlowConsumer() override;

  bool got_connect_ = false;
  ClientSession session_;
};

// HTML fragments over WebSocket for htmx's `ws` extension (/connection/fragments/websocket,
// hermod's own): the session is connected and subscribed by the request's query (as
// /connection/fragments), and each publication's data is sent verbatim as one text message
// (a JSON string unquoted: the HTML that htmx swaps in). A message from the page is a form
// htmx's `ws-send` sent (a JSON object of its fields): its `channel` field names the channel,
// and the object without htmx's `HEADERS` becomes a publication there, allowed as a client's
// publish is. Anything else from the page closes with 3501. No history replay: the `ws`
// extension reconnects without a position.
class FragmentsWebSocketTransport final : public ws::WebSocketConnection, public Transport {
 public:
  FragmentsWebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                              const ws::HandshakeResult& handshake, ws::WebSocketStats& stats,
                              ClientContext& context);

  ClientSession& session() { return session_; }
  ClientSession& client_session() override { return session_; }
  // The connect and subscribes (ids 1, 2, ... in channel order), as for the SSE endpoint.
  void Start(std::string_view commands, size_t channels);

  net::Loop& loop() const override { return ws::WebSocketConnection::loop(); }
  size_t kind() const override;
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override;
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) override;
  void Close(Disconnect reason) override { CloseWith(reason.code, reason.reason); }
  size_t queued_bytes() const override { return ws::WebSocketConnection::queued_bytes(); }
  bool closing() const override { return ws::WebSocketConnection::closing(); }
  std::string PeerIp() const override { return ws::WebSocketConnection::PeerIp(); }
  net::Connection& connection() override { return *this; }
  void SetSessionTimer(uint64_t due_ms) override { SetProtocolTimer(due_ms); }

 private:
  void OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) override;
  void OnShutdown() override;
  void OnClosed() override;
  void OnProtocolTimer() override { session_.OnKeepalive(); }
  void OnSlowConsumer() override;

  uint32_t setup_ids_ = 1;  // the connect's and the subscribes' ids: errors there close
  uint32_t next_id_ = 2;
  ClientSession session_;
};

}  // namespace hermod::proto
