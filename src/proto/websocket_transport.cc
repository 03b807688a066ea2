#include "proto/websocket_transport.h"

#include <spdlog/spdlog.h>

#include <cassert>

#include "json/string_writer.h"
#include "proto/protobuf.h"
#include "proto/stream_format.h"
#include "ws/frame_encoder.h"

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
constexpr size_t kProtobufKeepBytes = 256 * 1024;

// The one Protobuf send path of replies and pushes alike: json's Protobuf form in the
// thread's scratch, handed to use, and the scratch trimmed after. what: for the log line.
template <class Use>
auto WithProtobuf(std::string_view json, const char* what, Use&& use) {
  std::string& bytes = Buffer();
  if (!Encoder().Append(json, bytes)) {
    spdlog::error("protobuf: a {} did not encode: {}", what, json.substr(0, 128));
  }
  auto result = use(std::string_view(bytes));
  Encoder().Release(kProtobufKeepBytes);
  if (bytes.capacity() > kProtobufKeepBytes) std::string().swap(bytes);
  return result;
}

FramedPush* FrameProtobuf(std::string_view json) {
  return WithProtobuf(
      json, "push", [](std::string_view bytes) -> FramedPush* { return new ProtobufPush(bytes); });
}

}  // namespace

const size_t kProtobufKind = RegisterTransportKind(&FrameProtobuf);

WebSocketTransport::WebSocketTransport(net::Connection& from, const ws::WebSocketOptions& options,
                                       const ws::HandshakeResult& handshake,
                                       ws::WebSocketStats& stats, ClientContext& context,
                                       Format format)
    : ws::WebSocketConnection(from, options, handshake, stats), session_(*this, context) {
  set_subclass_byte(static_cast<uint8_t>(format));
  // The JSON protocol: several replies and pushes in one newline-joined message.
  if (format == Format::kJson) EnableJoin();
}

net::SendStatus WebSocketTransport::SendReply(std::string_view json, net::Lane lane) {
  if (format() == Format::kJson) return SendMessage(ws::Opcode::kText, json, lane);
  return WithProtobuf(json, "reply", [&](std::string_view bytes) {
    return SendMessage(ws::Opcode::kBinary, bytes, lane);
  });
}

net::SendStatus WebSocketTransport::SendPush(const PreparedPush& push, net::PushClass push_class) {
  // The JSON frame, or the Protobuf one built once per push by FrameProtobuf.
  const ws::PreparedMessage& message =
      format() == Format::kJson
          ? push.message()
          : static_cast<const ProtobufPush&>(push.framed(kProtobufKind)).message();
  return SendPrepared(message, push_class);
}

void WebSocketTransport::OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) {
  assert(loop().InThisThread());
  // JSON is text only, Protobuf binary only.
  const ws::Opcode expected = format() == Format::kJson ? ws::Opcode::kText : ws::Opcode::kBinary;
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

namespace {

// A push's uni form: one text frame per push it carries, built once and shared.
struct UniFrames final : FramedPush {
  ~UniFrames() override {
    if (chunk != nullptr) chunk->Unref();
  }
  net::Chunk* chunk = nullptr;  // null: nothing a uni client gets
};

void AppendTextFrame(std::string& out, std::string_view payload) {
  char header[ws::kMaxFrameHeader];
  out.append(header, ws::EncodeTextHeader(payload.size(), header));
  out.append(payload);
}

FramedPush* FrameUniWebSocket(std::string_view json) {
  std::string frames;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    if (u.kind == UniValue::kPush) AppendTextFrame(frames, u.body);
    return true;
  });
  auto* framed = new UniFrames;
  if (!frames.empty()) {
    framed->chunk = net::Chunk::Create(frames.size());
    framed->chunk->Append(frames);
  }
  return framed;
}

const size_t kUniWebSocketKind = RegisterTransportKind(&FrameUniWebSocket);

// Fragments: each publication's data verbatim, one text message each.
FramedPush* FrameFragmentsWebSocket(std::string_view json) {
  std::string frames;
  Fragment f;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    if (u.kind == UniValue::kPush && FragmentOf(u.body, &f)) AppendTextFrame(frames, f.data);
    return true;
  });
  auto* framed = new UniFrames;
  if (!frames.empty()) {
    framed->chunk = net::Chunk::Create(frames.size());
    framed->chunk->Append(frames);
  }
  return framed;
}

const size_t kFragmentsWebSocketKind = RegisterTransportKind(&FrameFragmentsWebSocket);

}  // namespace

UniWebSocketTransport::UniWebSocketTransport(net::Connection& from,
                                             const ws::WebSocketOptions& options,
                                             const ws::HandshakeResult& handshake,
                                             ws::WebSocketStats& stats, ClientContext& context)
    : ws::WebSocketConnection(from, options, handshake, stats), session_(*this, context) {
  session_.SetUnidirectional();
}

size_t UniWebSocketTransport::kind() const { return kUniWebSocketKind; }

void UniWebSocketTransport::OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) {
  assert(loop().InThisThread());
  if (got_connect_) return;  // a unidirectional client has nothing more to say
  got_connect_ = true;
  std::string command;
  if (opcode != ws::Opcode::kText || !WrapConnect(payload, &command)) {
    return session_.Disconnect(kDisconnectBadRequest);
  }
  session_.OnMessage(command);
}

net::SendStatus UniWebSocketTransport::SendReply(std::string_view json, net::Lane lane) {
  net::SendStatus status = net::SendStatus::kQueued;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    switch (u.kind) {
      case UniValue::kConnect: {
        std::string connect = "{\"connect\":";
        connect += u.body;
        connect += '}';
        status = SendMessage(ws::Opcode::kText, connect, lane);
        break;
      }
      case UniValue::kPush:
        status = SendMessage(ws::Opcode::kText, u.body, lane);
        break;
      case UniValue::kPing:
        status = SendMessage(ws::Opcode::kText, "{}", lane);
        break;
      case UniValue::kError:
        // A refused connect: the client cannot retry it on this connection.
        session_.Disconnect(u.error_code == 109   ? kDisconnectExpired
                            : u.error_code == 101 ? kDisconnectInvalidToken
                                                  : kDisconnectBadRequest);
        return false;
      case UniValue::kOther:
        break;
    }
    return status == net::SendStatus::kQueued;
  });
  return status;
}

net::SendStatus UniWebSocketTransport::SendPush(const PreparedPush& push,
                                                net::PushClass push_class) {
  if (closing()) return net::SendStatus::kDropped;
  const auto& framed = static_cast<const UniFrames&>(push.framed(kUniWebSocketKind));
  if (framed.chunk == nullptr) return net::SendStatus::kQueued;
  return SendShared(framed.chunk, 0, framed.chunk->size(), push_class);
}

void UniWebSocketTransport::OnShutdown() { session_.Disconnect(kDisconnectShutdown); }

void UniWebSocketTransport::OnClosed() {
  ws::WebSocketConnection::OnClosed();
  session_.OnTransportClosed();
}

void UniWebSocketTransport::OnSlowConsumer() {
  session_.Disconnect(kDisconnectSlow);
  FailWith(kDisconnectSlow.code, kDisconnectSlow.reason);
}

FragmentsWebSocketTransport::FragmentsWebSocketTransport(net::Connection& from,
                                                         const ws::WebSocketOptions& options,
                                                         const ws::HandshakeResult& handshake,
                                                         ws::WebSocketStats& stats,
                                                         ClientContext& context)
    : ws::WebSocketConnection(from, options, handshake, stats), session_(*this, context) {
  session_.SetUnidirectional();  // the page never answers the protocol's pings
}

size_t FragmentsWebSocketTransport::kind() const { return kFragmentsWebSocketKind; }

void FragmentsWebSocketTransport::Start(std::string_view commands, size_t channels) {
  setup_ids_ = static_cast<uint32_t>(channels + 1);
  next_id_ = setup_ids_ + 1;
  session_.OnMessage(commands);
}

void FragmentsWebSocketTransport::OnWebSocketMessage(ws::Opcode opcode, std::string_view payload) {
  assert(loop().InThisThread());
  std::string channel;
  std::string data;
  if (opcode != ws::Opcode::kText || !FormPublication(payload, &channel, &data)) {
    return session_.Disconnect(kDisconnectBadRequest);
  }
  std::string command = "{\"id\":" + std::to_string(next_id_++) + ",\"publish\":{\"channel\":";
  json::AppendJsonString(command, channel);
  command += ",\"data\":";
  command += data;
  command += "}}";
  session_.OnMessage(command);
}

net::SendStatus FragmentsWebSocketTransport::SendReply(std::string_view json, net::Lane lane) {
  net::SendStatus status = net::SendStatus::kQueued;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    Fragment f;
    if (u.kind == UniValue::kError && u.id <= setup_ids_) {
      // The token or a channel was refused: nothing will ever reach this page.
      session_.Disconnect(u.error_code == 103 ? Disconnect{3501, "permission denied"}
                          : u.error_code == 101 || u.error_code == 109 ? kDisconnectInvalidToken
                                                                       : kDisconnectBadRequest);
      return false;
    }
    if (u.kind == UniValue::kPush) {
      if (FragmentOf(u.body, &f)) {
        status = SendMessage(ws::Opcode::kText, f.data, lane);
      } else if (u.body.find("\"unsubscribe\":") != std::string_view::npos) {
        // A missed publication (or the API's unsubscribe): the page learns by the close and
        // its `ws` extension reconnects.
        session_.Disconnect(kDisconnectInsufficientState);
        return false;
      }
    }
    // A refused form publication has no one to tell (htmx reads no replies); pings are the
    // WebSocket's own here.
    return status == net::SendStatus::kQueued;
  });
  return status;
}

net::SendStatus FragmentsWebSocketTransport::SendPush(const PreparedPush& push,
                                                      net::PushClass push_class) {
  if (closing()) return net::SendStatus::kDropped;
  const auto& framed = static_cast<const UniFrames&>(push.framed(kFragmentsWebSocketKind));
  if (framed.chunk == nullptr) return net::SendStatus::kQueued;
  return SendShared(framed.chunk, 0, framed.chunk->size(), push_class);
}

void FragmentsWebSocketTransport::OnShutdown() { session_.Disconnect(kDisconnectShutdown); }

void FragmentsWebSocketTransport::OnClosed() {
  ws::WebSocketConnection::OnClosed();
  session_.OnTransportClosed();
}

void FragmentsWebSocketTransport::OnSlowConsumer() {
  session_.Disconnect(kDisconnectSlow);
  FailWith(kDisconnectSlow.code, kDisconnectSlow.reason);
}

}  // namespace hermod::proto
