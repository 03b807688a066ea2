#include "proto/websocket_transport.h"

#include <cassert>

namespace hermod::proto {

WebSocketTransport::WebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                                       const ws::HandshakeResult& handshake,
                                       ws::WebSocketStats& stats, ClientContext& context)
    : ws::WebSocketConnection(from, options, handshake, stats), session_(*this, context) {
  EnableJoin();  // the JSON protocol: several replies and pushes in one newline-joined message
}

void WebSocketTransport::OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) {
  assert(loop().InThisThread());
  // The JSON protocol is text only.
  if (opcode != ws::Opcode::kText) return session_.Disconnect(kDisconnectBadRequest);
  session_.OnMessage(payload);
}

void WebSocketTransport::OnShutdown() { session_.Disconnect(kDisconnectShutdown); }

void WebSocketTransport::OnClosed() {
  ws::WebSocketConnection::OnClosed();  // counts the close
  session_.OnTransportClosed();
}

void WebSocketTransport::OnSlowConsumer() {
  session_.Disconnect(kDisconnectSlow);
  FailWith(kDisconnectSlow.code, kDisconnectSlow.reason);  // no wait for the client's Close
}

}  // namespace hermod::proto
