// The HTTP request path: bytes arrive in pieces (the first input byte picks the split), as
// from a socket, and requests are parsed one after another as on a keep-alive connection.
// Anything may come back as an error status; nothing may crash, hang or leak. And no request
// that completes may carry ambiguous framing (RFC 9112 §6.1, §6.3): Transfer-Encoding with
// Content-Length, or Transfer-Encoding in HTTP/1.0, is always refused, never passed on.
#include <cstddef>
#include <cstdint>
#include <string>

#include "http/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 64;
  ++data;
  --size;
  hermod::http::ParserLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 16;
  limits.max_body_bytes = 4096;
  auto parser = std::make_unique<hermod::http::RequestParser>(limits);
  std::string pending;
  for (size_t offset = 0; offset < size; offset += step) {
    pending.append(reinterpret_cast<const char*>(data) + offset, std::min(step, size - offset));
    while (!pending.empty()) {
      size_t consumed = 0;
      auto status = parser->Parse(reinterpret_cast<const uint8_t*>(pending.data()), pending.size(),
                                  &consumed);
      if (status == hermod::http::RequestParser::Status::kError) {
        int code = parser->error_status();
        if (code != 400 && code != 413 && code != 431 && code != 501 && code != 505)
          __builtin_trap();
        return 0;
      }
      pending.erase(0, consumed);
      if (status == hermod::http::RequestParser::Status::kNeedMore) {
        if (parser->wants_continue()) parser->ContinueSent();
        break;
      }
      hermod::http::Request& r = parser->request();
      (void)r.Header("host");
      (void)r.Path();
      bool has_coding = false;
      bool has_length = false;
      for (const auto& [name, value] : r.headers) {
        has_coding = has_coding || hermod::http::EqualsIgnoreCase(name, "transfer-encoding");
        has_length = has_length || hermod::http::EqualsIgnoreCase(name, "content-length");
      }
      if (has_coding && (has_length || r.version < 11)) __builtin_trap();
      parser = std::make_unique<hermod::http::RequestParser>(limits);
    }
  }
  return 0;
}
