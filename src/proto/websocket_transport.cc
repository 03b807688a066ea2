#include "proto/websocket_transport.h"

#include <spdlog/spdlog.h>

#include <cassert>

#include "proto/protobuf.h"

namespace hermod::proto {

namespace {

// Replies are encoded in the loop's buffer; a push's Protobuf form in the framing thread's.
ProtobufReplyEncoder& Encoder() {
  thread_local ProtobufReplyEncoder encoder;
  return encoder;
}
std::string& Buffer() {
  thread_local std::string buffer;
  buffer.clear();
  return buffer;
}
constexpr size_t kScratchKeepBytes = 256 * 1024;

FramedPush* FrameProtobuf(std::string_view json) {
  std::string& bytes = Buffer();
  if (!Encoder().Append(json, bytes)) {
    spdlog::error("protobuf: a push did not encode: {}", json.substr(0, 128));
  }
  auto* framed = new ProtobufPush(bytes);
  Encoder().Release(kScratchKeepBytes);
  if (bytes.capacity() > kScratchKeepBytes) std::string().swap(bytes);
  return framed;
}

}  // namespace

const size_t kProtobufKind = RegisterTransportKind(&FrameProtobuf);

WebSocketTransport::WebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                                       const ws::HandshakeResult& handshake,
                                       ws::WebSocketStats& stats, ClientContext& context,
                                       Format format)
    : ws::WebSocketConnection(from, options, handshake, stats),
      format_(format),
      session_(*this, context) {
  // The JSON protocol: several replies and pushes in one newline-joined message.
  if (format_ == Format::kJson) EnableJoin();
}

net::SendStatus WebSocketTransport::SendReply(std::string_view json, net::Lane lane) {
  if (format_ == Format::kJson) return SendMessage(ws::Opcode::kText, json, lane);
  std::string& bytes = Buffer();
  if (!Encoder().Append(json, bytes)) {
    spdlog::error("protobuf: a reply did not encode: {}", json.substr(0, 128));
  }
  const net::SendStatus status = SendMessage(ws::Opcode::kBinary, bytes, lane);
  Encoder().Release(kScratchKeepBytes);
  if (bytes.capacity() > kScratchKeepBytes) std::string().swap(bytes);
  return status;
}

net::SendStatus WebSocketTransport::SendPush(const PreparedPush& push, net::PushClass push_class) {
  if (format_ == Format::kJson) return SendPrepared(push.message(), push_class);
  return SendPrepared(static_cast<const ProtobufPush&>(push.framed(kProtobufKind)).message(),
                      push_class);
}

void WebSocketTransport::OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) {
  assert(loop().InThisThread());
  // JSON is text only, Protobuf binary only.
  const ws::Opcode expected = format_ == Format::kJson ? ws::Opcode::kText : ws::Opcode::kBinary;
  if (opcode != expected) return session_.Disconnect(kDisconnectBadRequest);
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
