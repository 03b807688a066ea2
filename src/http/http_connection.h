// A connection speaking HTTP/1.1: requests parsed as they arrive (pipelining included),
// routed, answered, kept alive or closed. A route may take the connection over (a WebSocket
// upgrade): it builds the successor Connection from this one, and the bytes that followed
// the request go to the successor.
//
// Timeouts: from the first byte of a request, the whole request must arrive within
// request_timeout_ms (slowloris), and the first one must begin within it of the accept (closed,
// counted as a timeout; one already waiting unread when the timer fires, the loop having been
// late, gets the timeout again); between requests the connection may idle for
// keepalive_timeout_ms.
//
// Responses are written whole or refused, never dropped. One that fits the write window
// (a quarter of the loop's max_bytes, at most 256 KiB) is queued at once; a longer one stays
// here and is queued a window at a time as the socket drains (Connection::OnDrained), so an
// HTTP answer is bounded by http.max_response_bytes (over it: 500 and a log line), not by the
// WebSocket slow-consumer limit. While a response streams no further request is served (their
// bytes wait, bounded, as behind a deferred answer); a peer that reads none of it for
// keepalive_timeout_ms is cut with a log line.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "http/request_parser.h"
#include "http/router.h"
#include "net/connection.h"

namespace hermod::http {

struct HttpOptions {
  ParserLimits limits;
  uint64_t request_timeout_ms = 5000;
  uint64_t keepalive_timeout_ms = 30000;
  uint64_t max_response_bytes = uint64_t{64} << 20;  // http.max_response_bytes
};

// Counters shared by the loop's HTTP connections (the metrics room reads them).
struct HttpStats {
  uint64_t requests = 0;
  uint64_t errors_4xx = 0;
  uint64_t timeouts = 0;
  uint64_t continues = 0;  // 100 Continue sent (RFC 9110 §10.1.1)
  uint64_t rejected[static_cast<size_t>(Rejection::kCount)] = {};
};

class HttpConnection;

// A response that a route gives later, on the connection's loop (say, once every loop has
// answered a question through its mailbox). The connection reads no further request until
// then; if it closes meanwhile, Respond does nothing.
class DeferredResponse {
 public:
  DeferredResponse() = default;
  void Respond(std::string_view response, bool keep_alive) const;

 private:
  friend class HttpConnection;
  explicit DeferredResponse(std::shared_ptr<HttpConnection*> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<HttpConnection*> cell_;  // null once the connection is freed
};

class HttpConnection final : public net::Connection {
 public:
  HttpConnection(net::Loop& loop, int fd, SSL* ssl, const HttpOptions& options,
                 const Router& router, HttpStats& stats);
  ~HttpConnection() override;

  // Queues a complete response (written whole, however long it is, or refused with 500 when
  // over max_response_bytes); closes after it when !keep_alive.
  void Respond(std::string_view response, bool keep_alive);
  void Respond(std::string&& response, bool keep_alive);

  // Hands this connection's transport to a new T(*this, args...), which from then on owns
  // the socket; returns it. Call at most once, from a route handler.
  template <class T, class... Args>
  T* Upgrade(Args&&... args) {
    // The loop owns every Connection (freed through Loop::Bury), hence the bare new.
    T* next = new T(*this, std::forward<Args>(args)...);
    successor_ = next;
    return next;
  }

  // From a route handler: the answer comes later, through the returned handle.
  DeferredResponse Defer();
  // The largest response Respond writes (http.max_response_bytes); a route whose answer
  // reports work done sizes it to fit rather than have it refused after the work.
  uint64_t max_response_bytes() const { return options_.max_response_bytes; }

  void OnData(uint8_t* data, size_t len) override;
  void OnTimeout() override;
  bool OnDrained() override;
  void OnReadResumed() override;
  // Graceful shutdown: an answer being written is finished (within the shutdown deadline),
  // then the connection closes; an idle one closes at once.
  void OnShutdown() override;

 private:
  friend class DeferredResponse;
  void FinishDeferred(std::string_view response, bool keep_alive);
  // Respond's body: response is either moved from (owned) or copied from view.
  void Write(std::string* owned, std::string_view view, bool keep_alive);
  // Queues what the write window allows of stream_; false when the connection refused it
  // (it is ending, and the stream with it).
  bool Feed();
  size_t WriteWindow() const;
  // The streamed response is queued whole: close, or serve what waits behind it.
  void FinishStream();
  // No request is served until the answer in progress (deferred or streaming) is out, nor
  // while a route paused this connection's reads (requests behind wait in pending_).
  bool busy() const { return deferred_ || streaming_ || reading_paused(); }
  // Serves the requests kept in pending_, unless busy.
  void ServePending();
  void Refuse(int status, Rejection why, std::string_view detail);

  // Parses and serves what data holds; returns false once the connection is no longer ours.
  bool Serve(uint8_t* data, size_t len);
  void Dispatch(Request& request, uint8_t* rest, size_t rest_len);

  const HttpOptions& options_;
  const Router& router_;
  HttpStats& stats_;
  std::unique_ptr<RequestParser> parser_;
  std::string pending_;  // an incomplete request's bytes, kept across reads
  net::Connection* successor_ = nullptr;
  bool requested_ = false;     // a request has begun on this connection
  bool head_request_ = false;  // answering HEAD: responses go out without their body
  bool deferred_ = false;      // a route answers later; requests behind it wait in pending_
  bool deferred_head_ = false;
  bool streaming_ = false;        // stream_ is being queued piece by piece
  bool stream_close_ = false;     // close once stream_ is out
  bool stream_progress_ = false;  // a piece left since the timer was last armed
  std::string stream_;
  size_t stream_offset_ = 0;
  std::shared_ptr<HttpConnection*> self_;  // DeferredResponse's view of this; made on demand
};

}  // namespace hermod::http
