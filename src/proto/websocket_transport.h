// The client protocol over WebSocket (/connection/websocket): the WebSocket connection is
// the transport (proto/transport.h), and it owns the session it carries, in the same
// allocation. Text messages go to the session; a binary message is a protocol error (3501).
// Replies and a client's own pushes are text messages, joinable with their neighbours into
// one newline-joined message; the hub's pushes are the shared frames of PreparedPush.
#pragma once

#include <string>
#include <string_view>

#include "proto/client_session.h"
#include "proto/prepared_push.h"
#include "proto/transport.h"
#include "ws/websocket_connection.h"

namespace hermod::proto {

class WebSocketTransport final : public ws::WebSocketConnection, public Transport {
 public:
  WebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                     const ws::HandshakeResult& handshake, ws::WebSocketStats& stats,
                     ClientContext& context);

  ClientSession& session() { return session_; }

  net::Loop& loop() const override { return ws::WebSocketConnection::loop(); }
  size_t kind() const override { return kWebSocketKind; }
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override {
    return SendMessage(ws::Opcode::kText, json, lane);
  }
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) override {
    return SendPrepared(push.message(), push_class);
  }
  void Close(Disconnect reason) override { CloseWith(reason.code, reason.reason); }
  size_t queued_bytes() const override { return ws::WebSocketConnection::queued_bytes(); }
  bool closing() const override { return ws::WebSocketConnection::closing(); }
  std::string PeerIp() const override { return ws::WebSocketConnection::PeerIp(); }
  net::Connection& connection() override { return *this; }

 private:
  void OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) override;
  void OnShutdown() override;
  void OnClosed() override;
  // Slow consumers (net::Connection): the queue passed its bound or its deadline: 3008.
  void OnSlowConsumer() override;

  ClientSession session_;
};

}  // namespace hermod::proto
