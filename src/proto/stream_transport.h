// The client protocol over one streamed HTTP response (proto/transport.h): the HTTP
// connection hands its socket over once the request is read, and this object writes the
// response head and then the session's output as HTTP/1.1 chunks, until either side ends.
// One class carries every streamed form (Format): the unidirectional SSE and HTTP-streaming
// transports (Centrifugo's uni_sse and uni_http_stream) and hermod's HTML fragments for
// htmx. The bidirectional emulation (http_stream, sse) would be a further Format whose
// session also takes commands from another request.
//
// The session is the WebSocket's (client_session.h): the same send queue, priorities,
// slow-consumer cut and missed-push rules, since this is a net::Connection like a
// WebSocket. Hub pushes are framed once per publication per Format (a registered transport
// kind) and shared by every subscriber.
//
// Event ids (fragments, uni_sse): each event's `id:` is the stream's position in every channel
// with history (stream_format.h: the URL's channels by position, the others by name), so a
// browser's reconnect with Last-Event-ID recovers each from its own.
//
// The response head waits for the session's first output: a connect or subscribe that fails
// before it is answered with an HTTP status (401 bad or missing token, 403 refused channel,
// 400 bad request, 429 too many requests, 503 shutting down) instead of an empty stream.
// Once streaming, a disconnect ends the chunked body and the connection.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/prepared_push.h"
#include "proto/stream_format.h"
#include "proto/streamed_response.h"

namespace hermod::proto {

class StreamTransport final : public StreamedResponse {
 public:
  enum class Format : uint8_t {
    kUniSse,        // text/event-stream, `data: <push>` per push
    kUniJsonLines,  // application/json, one push per line
    kFragments,     // text/event-stream, `event: <channel>`, `id:`, data verbatim
  };

  StreamTransport(net::Connection& from, Format format, ClientContext& context);
  ~StreamTransport() override;

  // Feeds the session the commands the request carried (the wrapped connect, and for
  // fragments the subscribes, ids 2, 3, ... in the order of channels); the response starts
  // with their answers.
  // extra_headers: complete "Name: value\r\n" lines for the response head (CORS).
  // from (fragments): each channel's position from Last-Event-ID (empty, or one per channel);
  // a channel given one that its subscribe does not recover gets an `unrecovered` event.
  // named_from (fragments, uni_sse): the Last-Event-ID's positions of channels the request did
  // not name (server-side subscriptions: a token's `channels`), which the connect's `subs`
  // recover; for fragments, one that does not recover gets an `unrecovered` event too.
  void Start(std::string_view commands, std::vector<std::string> channels = {},
             std::string extra_headers = {}, std::vector<StreamPosition> from = {},
             std::vector<NamedPosition> named_from = {});
  // Fragments, uni_sse: a channel's epoch once its subscribe is answered; null before.
  const std::string* EpochOf(std::string_view channel) const;

  // Transport.
  size_t kind() const override;
  net::SendStatus SendReply(std::string_view json, net::Lane lane) override;
  net::SendStatus SendPush(const PreparedPush& push, net::PushClass push_class) override;
  void Close(Disconnect reason) override;
  using net::Connection::Close;

 private:
  // Sends the response head once.
  void StartResponse();
  // Ends the stream before the head: an HTTP error status.
  void Refuse(int status);
  // Fragments, uni_sse: channel was subscribed (a subscribe reply, the connect's server-side
  // subscription, a server-side subscribe push): its position starts at the reply's. For
  // fragments, its recovered publications and, when it was asked to recover and could not,
  // the `unrecovered` event, into out.
  void Subscribed(const std::string& channel, const SubscribeReplyView& reply, bool recovering,
                  std::string& out);
  // The channel's slot in the event id: an asked channel's, or a named one's; null if none.
  StreamPosition* PositionOf(std::string_view channel);
  // A publication of channel at offset is being sent (its position moves).
  void Advance(std::string_view channel, uint64_t offset);
  // The id of the next event: the positions of every channel asked for, then the named ones.
  std::string EventId() const;
  // uni_sse: a push only this client gets as an event into out; a publication's and a
  // server-side subscribe's with the id of the positions after it.
  void UniSsePush(std::string_view body, std::string& out);

  Format format_;
  std::vector<std::string> channels_;  // fragments: the channels asked for
  // Fragments: each asked channel's position as of the last event sent, and whether the
  // request gave one (the channel recovers from it).
  std::vector<StreamPosition> positions_;
  std::vector<bool> recovering_;
  // Fragments, uni_sse: the channels the request did not name that have a position (history),
  // in the order they were subscribed, and those Last-Event-ID gave one (they recover from it).
  std::vector<NamedPosition> named_;
  std::vector<std::string> named_recovering_;
  // Fragments, uni_sse: each channel's epoch, from its subscribe reply (the `id:` of its
  // events).
  std::vector<std::pair<std::string, std::string>> epochs_;
};

// The HTTP status a stream that has not started answers for a disconnect or an error code.
int StreamStatusOf(uint32_t code);

}  // namespace hermod::proto
