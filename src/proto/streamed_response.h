// What every transport over one streamed HTTP/1.1 response shares (stream_transport.h: the
// unidirectional ones and fragments; emulation.h: the bidirectional emulation): the HTTP
// connection hands its socket over once the request is read, and this object owns the
// session (client_session.h) and writes the response head and then the session's output as
// HTTP chunks, until either side ends. A subclass says only what differs: its transport
// kind, how a reply or push is framed, how it ends.
#pragma once

#include <string>
#include <string_view>

#include "proto/client_session.h"
#include "proto/transport.h"

namespace hermod::proto {

// A push's bytes for one streamed form: an HTTP chunk, built once and shared by every
// subscriber of that form. A form may extend it with what its transports need to read back.
struct ChunkFramed : FramedPush {
  ~ChunkFramed() override;
  net::Chunk* chunk = nullptr;  // null: nothing to send (a push this form does not carry)
};
// framed's chunk: payload as one HTTP chunk (none when empty).
void SetChunk(ChunkFramed& framed, std::string_view payload);
template <class Framed = ChunkFramed>
Framed* ToChunk(std::string_view payload) {
  auto* framed = new Framed;
  SetChunk(*framed, payload);
  return framed;
}

class StreamedResponse : public net::Connection, public Transport {
 public:
  ClientSession& session() { return session_; }

  // Transport: the connection's own.
  ClientSession& client_session() override { return session_; }
  net::Loop& loop() const override { return net::Connection::loop(); }
  size_t queued_bytes() const override { return net::Connection::queued_bytes(); }
  bool closing() const override { return net::Connection::closing(); }
  std::string PeerIp() const override { return net::Connection::PeerIp(); }
  net::Connection& connection() override { return *this; }
  void SetSessionTimer(uint64_t due_ms) override { session_timer_.Set(due_ms); }
  using net::Connection::Close;

  // net::Connection.
  // The request is read; the stream reads nothing more (bytes after it are dropped).
  void OnData(uint8_t*, size_t) override {}
  void OnShutdown() override;
  void OnClosed() override;
  void OnSlowConsumer() override;

 protected:
  StreamedResponse(net::Connection& from, ClientContext& context);
  ~StreamedResponse() override;

  // The stream takes no more output: it ended, or its connection is closing.
  bool done() const { return ended_ || closing(); }
  // Sends the 200 response head once: content_type, the extra headers, and opening (a first
  // chunk of the body, when not empty).
  void StartResponse(std::string_view content_type, std::string_view opening = {});
  // payload as one chunk (nothing to send when empty: kQueued).
  net::SendStatus SendChunk(std::string_view payload, net::Lane lane);
  // A shared push's chunk (nothing to send when it has none: kQueued).
  net::SendStatus SendFramed(const ChunkFramed& framed, net::PushClass push_class);
  // Ends the body: payload (when not empty) as its last chunk, then the terminating chunk;
  // the connection closes once they are written.
  void EndStream(std::string_view payload = {});

  bool started_ = false;
  bool ended_ = false;
  // Complete "Name: value\r\n" lines for the response head (CORS); sent with it.
  std::string extra_headers_;

 private:
  SessionTimer session_timer_{net::Connection::loop(), session_};  // before session_
  ClientSession session_;
};

}  // namespace hermod::proto
