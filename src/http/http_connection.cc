#include "http/http_connection.h"

#include <spdlog/spdlog.h>

#include "http/response.h"

namespace hermod::http {

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
  if (closing()) return;
  SetTimeout(options_.keepalive_timeout_ms);
  if (!pending_.empty()) {
    std::string buffer = std::move(pending_);
    pending_.clear();
    Serve(reinterpret_cast<uint8_t*>(buffer.data()), buffer.size());
  }
}

void HttpConnection::Respond(std::string_view response, bool keep_alive) {
  if (head_request_) {
    // RFC 9110 §9.3.2: HEAD gets GET's status and headers, without the body.
    size_t end = response.find("\r\n\r\n");
    if (end != std::string_view::npos) response = response.substr(0, end + 4);
  }
  Send(response);
  if (!keep_alive) CloseAfterFlush();
}

void HttpConnection::OnTimeout() {
  if (parser_ || !pending_.empty()) {
    // A request started and did not finish in time.
    ++stats_.timeouts;
    spdlog::info("http: fd {} refused with 408: the request did not arrive whole in {} ms", fd(),
                 options_.request_timeout_ms);
    Respond(ErrorResponse(408), false);
  } else {
    Close();  // idle keep-alive connection
  }
}

void HttpConnection::OnData(uint8_t* data, size_t len) {
  if (closing()) return;
  if (deferred_) {
    // Pipelined requests behind one answered later: keep them, within the header bound.
    if (pending_.size() + len > options_.limits.max_header_bytes) {
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
        ++stats_.errors_4xx;
        spdlog::info("http: fd {} refused with 431: header over {} bytes", fd(),
                     options_.limits.max_header_bytes);
        Respond(ErrorResponse(431), false);
        parser_.reset();
        return false;
      }
      pending_.assign(reinterpret_cast<const char*>(data) + consumed, len - consumed);
      return true;
    }
    if (status == RequestParser::Status::kError) {
      ++stats_.errors_4xx;
      spdlog::info("http: fd {} refused with {}: malformed or over a limit", fd(),
                   parser_->error_status());
      Respond(ErrorResponse(parser_->error_status()), false);
      parser_.reset();
      return false;
    }
    std::unique_ptr<RequestParser> parser = std::move(parser_);
    data += consumed;
    len -= consumed;
    Dispatch(parser->request(), data, len);
    if (successor_ != nullptr || closing()) return false;
    if (deferred_) {
      // The request timer keeps running: a deferred answer must come before it fires.
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
