// HTTP/1.1 request parsing with Boost.Beast's parser (the state machine only: no Asio, no
// Beast streams; bytes come from our loop's buffers). Beast enforces the header and body
// size limits; this class adds the header count limit and maps every failure to the status
// the client receives: 400, 413 or 431.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "http/request.h"

namespace hermod::http {

struct ParserLimits {
  uint32_t max_header_bytes = 8192;
  uint32_t max_headers = 64;
  uint64_t max_body_bytes = 1 << 20;
};

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
  // After kError: 400, 413 or 431.
  int error_status() const { return error_status_; }
  Request& request();
  // True once the request line and at least one byte of the next thing have arrived: the
  // request timeout then measures the whole request, not the idle time before it.
  bool started() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int error_status_ = 400;
};

}  // namespace hermod::http
