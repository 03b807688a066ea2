#include "proto/streamed_response.h"

#include <cassert>

#include "proto/stream_format.h"

namespace hermod::proto {

ChunkFramed::~ChunkFramed() {
  if (chunk != nullptr) chunk->Unref();
}

void SetChunk(ChunkFramed& framed, std::string_view payload) {
  if (payload.empty()) return;
  std::string bytes;
  AppendHttpChunk(bytes, payload);
  framed.chunk = net::Chunk::Create(bytes.size());
  framed.chunk->Append(bytes);
}

// The session is constructed in the base, before the subclass: it may call only what this
// class implements (its loop and timer), as its destructor does once the subclass is gone.
StreamedResponse::StreamedResponse(net::Connection& from, ClientContext& context)
    : net::Connection(from), session_(*this, context) {
  CancelTimeout();  // the HTTP request's deadline; the session keeps its own
}

StreamedResponse::~StreamedResponse() = default;

void StreamedResponse::StartResponse(std::string_view content_type, std::string_view opening) {
  if (started_) return;
  started_ = true;
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: ";
  head += content_type;
  head +=
      "\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: "
      "chunked\r\n";
  head += extra_headers_;
  head += "\r\n";
  std::string().swap(extra_headers_);
  AppendHttpChunk(head, opening);
  Send(head);
}

net::SendStatus StreamedResponse::SendChunk(std::string_view payload, net::Lane lane) {
  if (payload.empty()) return net::SendStatus::kQueued;
  std::string bytes;
  AppendHttpChunk(bytes, payload);
  return Send(bytes, {}, lane);
}

net::SendStatus StreamedResponse::SendFramed(const ChunkFramed& framed, net::PushClass push_class) {
  if (framed.chunk == nullptr) return net::SendStatus::kQueued;
  return SendShared(framed.chunk, 0, framed.chunk->size(), push_class);
}

void StreamedResponse::EndStream(std::string_view payload) {
  ended_ = true;
  std::string bytes;
  AppendHttpChunk(bytes, payload);
  bytes += kHttpLastChunk;
  Send(bytes, {}, net::Lane::kFinal);
  CloseAfterFlush();
}

void StreamedResponse::OnShutdown() { session_.Disconnect(kDisconnectShutdown); }

void StreamedResponse::OnClosed() { session_.OnTransportClosed(); }

void StreamedResponse::OnSlowConsumer() {
  session_.Disconnect(kDisconnectSlow);
  net::Connection::Close();
}

}  // namespace hermod::proto
