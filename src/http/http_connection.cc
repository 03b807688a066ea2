#include "http/http_connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "http/response.h"

namespace hermod::http {

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// At most this much of a response is queued at once: a quarter of what the loop lets one
// connection hold, so a response never counts as a slow consumer's backlog by its size.
constexpr size_t kMaxWindow = 256 * 1024;

}  // namespace

HttpConnection::HttpConnection(net::Loop& loop, int fd, SSL* ssl, const HttpOptions& options,
                               const Router& router, HttpStats& stats)
    : net::Connection(loop, fd, ssl), options_(options), router_(router), stats_(stats) {
  SetTimeout(options_.request_timeout_ms);
}

HttpConnection::~HttpConnection() {
  if (self_) *self_ = nullptr;
}

void DeferredResponse::Respond(std::string_view response, bool keep_alive) const {
  HttpConnection* c = cell_ ? *cell_ : nullptr;
  if (c != nullptr && !c->closing() && c->deferred_) c->FinishDeferred(response, keep_alive);
}

DeferredResponse HttpConnection::Defer() {
  if (!self_) self_ = std::make_shared<HttpConnection*>(this);
  deferred_ = true;
  deferred_head_ = head_request_;
  return DeferredResponse(self_);
}

void HttpConnection::FinishDeferred(std::string_view response, bool keep_alive) {
  deferred_ = false;
  head_request_ = deferred_head_;
  Respond(response, keep_alive);
  head_request_ = false;
  if (closing() || streaming_) return;  // a streamed answer resumes serving when it is out
  SetTimeout(options_.keepalive_timeout_ms);
  ServePending();  // unless paused: then once the reads resume (OnReadResumed)
}

void HttpConnection::ServePending() {
  if (busy() || closing() || pending_.empty()) return;
  std::string buffer = std::move(pending_);
  pending_.clear();
  Serve(reinterpret_cast<uint8_t*>(buffer.data()), buffer.size());
}

void HttpConnection::OnReadResumed() {
  // Still owing the answer, with a full pipeline kept: not read until it is given.
  if (deferred_ &&
      pending_.size() >= options_.limits.max_header_bytes + options_.limits.max_body_bytes) {
    PauseReading();
    return;
  }
  ServePending();
}

void HttpConnection::Respond(std::string_view response, bool keep_alive) {
  Write(nullptr, response, keep_alive);
}

void HttpConnection::Respond(std::string&& response, bool keep_alive) {
  Write(&response, response, keep_alive);
}

void HttpConnection::Write(std::string* owned, std::string_view response, bool keep_alive) {
  if (head_request_) {
    // RFC 9110 §9.3.2: HEAD gets GET's status and headers, without the body.
    size_t end = response.find("\r\n\r\n");
    if (end != std::string_view::npos) response = response.substr(0, end + 4);
    owned = nullptr;
  }
  if (response.size() > options_.max_response_bytes) {
    // Built, but more than one connection may pin while a peer reads it: refused whole,
    // never cut short (a truncated body would parse as a different answer).
    ++stats_.rejected[static_cast<size_t>(Rejection::kResponseTooLarge)];
    spdlog::warn(
        "http: fd {} answered 500: a response of {} bytes is over http.max_response_bytes ({})",
        fd(), response.size(), options_.max_response_bytes);
    Write(nullptr,
          BuildResponse(500, "text/plain; charset=utf-8", "response too large\n", keep_alive),
          keep_alive);
    return;
  }
  if (!streaming_ && queued_bytes() + response.size() <= WriteWindow()) {
    Send(response);
    if (!keep_alive) CloseAfterFlush();
    return;
  }
  if (closing()) return;
  if (streaming_) {
    // Only a late answer can land here (a deferred one, or a 408): after what streams.
    stream_.erase(0, stream_offset_);
    stream_offset_ = 0;
    stream_.append(response);
  } else if (owned != nullptr) {
    stream_ = std::move(*owned);
  } else {
    stream_.assign(response);
  }
  stream_close_ = stream_close_ || !keep_alive;
  if (!streaming_) {
    streaming_ = true;
    stream_progress_ = false;
    SetTimeout(options_.keepalive_timeout_ms);
  }
  if (Feed() && stream_offset_ == stream_.size()) FinishStream();
}

size_t HttpConnection::WriteWindow() const {
  return std::clamp<size_t>(loop().send_limits().max_bytes / 4, 1, kMaxWindow);
}

bool HttpConnection::Feed() {
  const size_t window = WriteWindow();
  while (stream_offset_ < stream_.size() && queued_bytes() < window) {
    size_t n = std::min(window - queued_bytes(), stream_.size() - stream_offset_);
    if (Send(std::string_view(stream_).substr(stream_offset_, n)) != net::SendStatus::kQueued) {
      // The connection is ending (closed, or cut for another reason): nothing more to write.
      streaming_ = false;
      stream_.clear();
      stream_.shrink_to_fit();
      return false;
    }
    stream_offset_ += n;
    stream_progress_ = true;
  }
  return true;
}

void HttpConnection::FinishStream() {
  streaming_ = false;
  stream_.clear();
  stream_.shrink_to_fit();  // the memory of a long answer goes back now
  stream_offset_ = 0;
  if (stream_close_) {
    CloseAfterFlush();
    return;
  }
  SetTimeout(options_.keepalive_timeout_ms);
  if (pending_.empty()) return;
  // Requests that arrived while the answer streamed. Not served from here: this runs inside
  // the connection's flush, and a request may upgrade the connection away from under it.
  if (!self_) self_ = std::make_shared<HttpConnection*>(this);
  loop().Post([cell = self_] {
    HttpConnection* c = *cell;
    if (c == nullptr || c->closing() || c->busy() || c->pending_.empty()) return;
    std::string buffer = std::move(c->pending_);
    c->pending_.clear();
    c->Serve(reinterpret_cast<uint8_t*>(buffer.data()), buffer.size());
  });
}

bool HttpConnection::OnDrained() {
  if (!streaming_) return false;
  const size_t before = stream_offset_;
  if (!Feed()) return false;
  const bool queued = stream_offset_ != before;
  if (stream_offset_ == stream_.size()) FinishStream();
  return queued;
}

void HttpConnection::OnShutdown() {
  if (streaming_) {
    stream_close_ = true;
    pending_.clear();
    return;
  }
  CloseAfterFlush();
}

void HttpConnection::Refuse(int status, Rejection why, std::string_view detail) {
  if (status < 500) ++stats_.errors_4xx;
  ++stats_.rejected[static_cast<size_t>(why)];
  spdlog::info("http: fd {} refused with {} ({}): {}; closing", fd(), status, RejectionName(why),
               detail);
  // Every refusal closes (RFC 9112 §6.3, §11.2): after a framing error nothing that follows
  // on this connection can be trusted to start a request.
  pending_.clear();
  parser_.reset();
  Respond(ErrorResponse(status), false);
}

void HttpConnection::OnTimeout() {
  if (streaming_) {
    if (stream_progress_) {
      stream_progress_ = false;
      SetTimeout(options_.keepalive_timeout_ms);
      return;
    }
    ++stats_.rejected[static_cast<size_t>(Rejection::kResponseStalled)];
    spdlog::info("http: fd {} closed: the peer read none of a {}-byte response for {} ms", fd(),
                 stream_.size(), options_.keepalive_timeout_ms);
    Close();
    return;
  }
  if (reading_paused() && !deferred_) {
    // Requests held back by the read pause wait for the server, not for the peer.
    SetTimeout(options_.keepalive_timeout_ms);
    return;
  }
  if (parser_ || !pending_.empty()) {
    // A request started and did not finish in time.
    ++stats_.timeouts;
    spdlog::info("http: fd {} refused with 408: the request did not arrive whole in {} ms", fd(),
                 options_.request_timeout_ms);
    Respond(ErrorResponse(408), false);
  } else if (!requested_) {
    // The loop runs its timers before its events: after an iteration longer than the
    // timeout (a loop far behind), a request that came in time is still unread. The loop
    // was late, not the peer: it gets the request timeout again, counted from now.
    char byte;
    if (recv(fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
      SetTimeout(options_.request_timeout_ms);
      return;
    }
    // Accepted, and not a byte of a request since: counted and said, or a server too busy to
    // read its new connections in time would close them with no trace but the peer's EOF.
    ++stats_.timeouts;
    spdlog::info("http: fd {} closed: no request within {} ms of the accept", fd(),
                 options_.request_timeout_ms);
    Close();
  } else {
    Close();  // idle keep-alive connection
  }
}

void HttpConnection::OnData(uint8_t* data, size_t len) {
  if (closing()) return;
  if (busy()) {
    // Pipelined requests behind an answer still in progress: kept, up to one request of the
    // largest size we accept.
    if (pending_.size() + len > options_.limits.max_header_bytes + options_.limits.max_body_bytes) {
      // Behind an answer that comes later, on a loop with a read gate (a store writer's
      // answer): this read is kept and the peer is not read until the gate opens again.
      if (deferred_ && PauseReading()) {
        pending_.append(reinterpret_cast<const char*>(data), len);
        return;
      }
      ++stats_.rejected[static_cast<size_t>(Rejection::kPipelineTooLarge)];
      spdlog::info("http: fd {} closed: over {} bytes pipelined behind an unfinished answer", fd(),
                   options_.limits.max_header_bytes + options_.limits.max_body_bytes);
      Close();
      return;
    }
    pending_.append(reinterpret_cast<const char*>(data), len);
    return;
  }
  if (pending_.empty()) {
    Serve(data, len);
    return;
  }
  pending_.append(reinterpret_cast<const char*>(data), len);
  std::string buffer = std::move(pending_);
  pending_.clear();
  Serve(reinterpret_cast<uint8_t*>(buffer.data()), buffer.size());
}

bool HttpConnection::Serve(uint8_t* data, size_t len) {
  while (len > 0) {
    if (!parser_) {
      requested_ = true;
      parser_ = std::make_unique<RequestParser>(options_.limits);
      SetTimeout(options_.request_timeout_ms);
    }
    size_t consumed = 0;
    RequestParser::Status status = parser_->Parse(data, len, &consumed);
    if (status == RequestParser::Status::kNeedMore) {
      // Beast consumes a header only once it is whole, and body bytes as they come; what it
      // leaves is a header, a chunk-size line or a trailer. Beast bounds only the first, so
      // the cap on what we keep is ours.
      if (len - consumed > options_.limits.max_header_bytes) {
        Refuse(431, Rejection::kHeaderTooLarge,
               fmt::format("a header, chunk line or trailer over {} bytes",
                           options_.limits.max_header_bytes));
        return false;
      }
      if (parser_->wants_continue()) {
        // RFC 9110 §10.1.1: the client may hold the body back until it hears this.
        parser_->ContinueSent();
        ++stats_.continues;
        Send(kContinue);
      }
      pending_.assign(reinterpret_cast<const char*>(data) + consumed, len - consumed);
      return true;
    }
    if (status == RequestParser::Status::kError) {
      Refuse(parser_->error_status(), parser_->rejection(), "malformed, ambiguous or over a limit");
      return false;
    }
    std::unique_ptr<RequestParser> parser = std::move(parser_);
    data += consumed;
    len -= consumed;
    Dispatch(parser->request(), data, len);
    if (successor_ != nullptr || closing()) return false;
    if (busy()) {
      // A deferred answer: the request timer keeps running, the answer must come before it
      // fires. A streaming one: its own timer watches the peer read.
      pending_.assign(reinterpret_cast<const char*>(data), len);
      return false;
    }
    SetTimeout(options_.keepalive_timeout_ms);
  }
  return true;
}

void HttpConnection::Dispatch(Request& request, uint8_t* rest, size_t rest_len) {
  ++stats_.requests;
  const Route* route = router_.Find(request.Path());
  if (route == nullptr) {
    ++stats_.errors_4xx;
    Respond(BuildResponse(404, "text/plain; charset=utf-8", "Not Found\n", request.keep_alive),
            request.keep_alive);
    return;
  }
  bool allowed = false;
  std::string allow;
  head_request_ = false;
  for (const std::string& method : route->methods) {
    if (method == request.method) allowed = true;
    if (method == "GET" && request.method == "HEAD") allowed = head_request_ = true;
    if (!allow.empty()) allow += ", ";
    allow += method;
    if (method == "GET") allow += ", HEAD";
  }
  if (!allowed) {
    ++stats_.errors_4xx;
    Respond(BuildResponse(405, "text/plain; charset=utf-8", "Method Not Allowed\n",
                          request.keep_alive, "Allow: " + allow + "\r\n"),
            request.keep_alive);
    return;
  }
  route->handler(*this, request);
  head_request_ = false;
  if (successor_ != nullptr && rest_len > 0) {
    // Frames the client sent right behind its upgrade request.
    successor_->OnData(rest, rest_len);
  }
}

}  // namespace hermod::http
