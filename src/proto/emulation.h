// Bidirectional emulation (Centrifugo's http_stream and sse transports): the session's
// replies and pushes go down one streamed HTTP response, and the client's commands come in
// separate POSTs to /emulation, each naming the session by the `session` and `node` its
// connect reply carried.
//
// EmulationTransport is the stream: a net::Connection the HTTP request handed its socket to,
// and a Transport (proto/transport.h) in front of the same ClientSession a WebSocket has
// (send queue, priorities, slow-consumer cut, keepalive: the session's pings are answered
// by pongs through /emulation, and a client that vanished is disconnected with 3012 as on a
// WebSocket). Forms:
//   http_stream JSON: one reply or push per line (application/json);
//   http_stream Protobuf (request Content-Type application/octet-stream): varint-length-
//     delimited Replies (application/octet-stream);
//   sse: one `data:` line per reply or push (text/event-stream).
// A disconnect is sent as a `disconnect` push, then the response ends.
//
// EmulationRegistry routes /emulation's commands: it names every stream with a session id
// that carries its loop's index, and posts the commands to that loop, which finds the
// stream in its own table (touched by that loop only). The node id is random per process,
// so a client whose node restarted learns it from the 404 and reconnects at once. A stream
// that closed is out of the table before its session goes: it runs no more commands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/emulation_request.h"
#include "proto/streamed_response.h"

namespace hermod::proto {

class EmulationTransport;

class EmulationRegistry {
 public:
  explicit EmulationRegistry(size_t loops);
  // Before the loops run.
  void SetLoop(size_t index, net::Loop* loop);
  const std::string& node() const { return node_; }

  // On transport's loop: its new session id.
  std::string Add(EmulationTransport* transport);
  void Remove(net::Loop& loop, const std::string& session);

  enum class Route : uint8_t { kAccepted, kUnknownNode, kNoSession };
  // Any loop: the commands go to the session's loop. A session that is no longer there is
  // kAccepted too (its loop finds that out, and counts it as no_session): its stream ended,
  // and the client learns it from the stream. kNoSession: an id no loop could own.
  Route Dispatch(EmulationRequest request);

 private:
  std::string node_;
  std::vector<net::Loop*> loops_;
  // Per loop, touched only on that loop's thread.
  std::vector<std::unordered_map<std::string, EmulationTransport*>> sessions_;
};

class EmulationTransport final : public StreamedResponse {
 public:
  enum class Kind : uint8_t { kHttpStream, kSse };

  EmulationTransport(net::Connection& from, Kind kind, Format format, ClientContext& context,
                     EmulationRegistry& registry);
  ~EmulationTransport() override;

  // The commands the request carried (the connect); extra_headers: complete "Name: value\r\n"
  // lines for the response head (CORS).
  void Start(std::string_view commands, std::string extra_headers);
  // Commands POSTed to /emulation for this session.
  void OnEmulation(std::string_view commands);

  // Transport.
  size_t kind() const override;
  Format format() const override { return format_; }
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override;
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) override;
  void Close(Disconnect reason) override;
  using net::Connection::Close;

  // net::Connection.
  void OnClosed() override;
  void OnSlowConsumer() override;

 private:
  void StartResponse();
  // The session's JSON output in this transport's form (without the HTTP chunk).
  std::string Frame(std::string_view json);
  void Leave();  // out of the registry: no more commands

  Kind kind_;
  Format format_;
  bool told_session_ = false;  // the connect reply carried session and node
  std::string id_;             // the session id; empty once out of the registry
  EmulationRegistry& registry_;
};

}  // namespace hermod::proto
