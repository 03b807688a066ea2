// HTTP/1.1 request parsing with Boost.Beast's parser (the state machine only: no Asio, no
// Beast streams; bytes come from our loop's buffers). Beast enforces the header and body
// size limits; this class adds the header count limit and maps every failure to the status
// the client receives: 400, 413, 431, 501 or 505.
//
// Message framing is where request smuggling lives (RFC 9112 §6, §11.2): when two parsers on
// the path disagree about where a request ends, the remainder of one becomes a second request
// for the other. Beast 1.74 is lenient in exactly the places that matter, so this class holds
// the line itself, before any request is handed on:
//  - a Transfer-Encoding whose final coding is not `chunked` is refused (Beast treats such a
//    request as bodiless and parses its body as the next request; RFC 9112 §6.3 says 400);
//  - Transfer-Encoding together with Content-Length is refused (§6.1 allows refusing);
//  - Transfer-Encoding in an HTTP/1.0 request is refused (§6.1: its framing is faulty);
//  - codings other than `chunked` get 501 (§6.1: we decode none of them);
//  - obs-fold in the header is refused (§5.2: reject or unfold; Beast unfolds, and a proxy
//    that does not would read other field values);
//  - trailer fields are dropped, never merged into the header (RFC 9110 §6.5.1).
// Every refusal ends the connection: after a framing error the rest of the stream cannot be
// trusted to start a request (the caller closes; request_parser only reports).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "http/request.h"

namespace hermod::http {

struct ParserLimits {
  uint32_t max_header_bytes = 8192;
  uint32_t max_headers = 64;
  uint64_t max_body_bytes = 1 << 20;
};

// Why a request was refused; the index of HttpStats::rejected and the `reason` label of
// hermod_http_rejected_total. kResponseTooLarge and kResponseStalled are the connection's own
// (a response, not a request), kept here so that one table names every refusal.
enum class Rejection : uint8_t {
  kMalformed,          // 400: request line, field syntax, bare CR, ...
  kEmptyLines,         // 400: more empty lines before the request line than we skip
  kObsFold,            // 400: a header field value continued on the next line
  kTransferEncoding,   // 400: chunked not final, repeated, or TE in HTTP/1.0
  kTeWithLength,       // 400: Transfer-Encoding and Content-Length together
  kContentLength,      // 400: invalid or differing Content-Length values
  kChunk,              // 400: bad chunk size, extension or chunk end
  kHost,               // 400: HTTP/1.1 without Host, or more than one Host
  kUnsupportedCoding,  // 501: a transfer coding other than chunked
  kVersion,            // 505: an HTTP major version other than 1 (HTTP/2.0, HTTP/0.9, ...)
  kHeaderTooLarge,     // 431
  kTooManyHeaders,     // 431
  kBodyTooLarge,       // 413
  kResponseTooLarge,   // 500: a response over http.max_response_bytes
  kResponseStalled,    // the peer read nothing of a streamed response for a keep-alive period
  kPipelineTooLarge,   // pipelined bytes behind an unfinished answer passed their bound
  kCount
};
std::string_view RejectionName(Rejection r);

class RequestParser {
 public:
  enum class Status { kNeedMore, kDone, kError };

  explicit RequestParser(const ParserLimits& limits);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses from data; *consumed receives the bytes used. kNeedMore: call again with the
  // unconsumed bytes plus more. kDone: request() is complete; bytes after it belong to the
  // next request (pipelining) or to the upgraded protocol.
  Status Parse(const uint8_t* data, size_t len, size_t* consumed);
  // After kError: 400, 413, 431, 501 or 505, and why.
  int error_status() const { return error_status_; }
  Rejection rejection() const { return rejection_; }
  Request& request();
  // True once the request line and at least one byte of the next thing have arrived: the
  // request timeout then measures the whole request, not the idle time before it.
  bool started() const;
  // The header is complete and the body is still to come.
  bool header_done() const;
  // RFC 9110 §10.1.1: an HTTP/1.1 request with `Expect: 100-continue` whose body has not
  // arrived yet; the client may wait for `100 Continue` before sending it. Cleared by
  // ContinueSent so that it is sent once.
  bool wants_continue() const;
  void ContinueSent();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int error_status_ = 400;
  Rejection rejection_ = Rejection::kMalformed;
};

}  // namespace hermod::http
