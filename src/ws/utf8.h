// UTF-8 validation for text messages and close reasons (RFC 6455 §8.1). Whole messages go
// through simdjson's SIMD validator; fragments go through Utf8Stream, which fails as soon as
// the first invalid byte has arrived ("fail fast"), carrying an incomplete code point over
// fragment boundaries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hermod::ws {

bool IsValidUtf8(std::string_view s);

class Utf8Stream {
 public:
  // False as soon as the bytes seen so far cannot be the prefix of valid UTF-8.
  bool Feed(const uint8_t* data, size_t len);
  // True when the stream ends on a code point boundary (call at the final fragment).
  bool Complete() const { return pending_ == 0; }
  void Reset() {
    pending_ = 0;
    need_ = 0;
  }

 private:
  uint8_t tail_[4] = {};
  uint8_t pending_ = 0;  // bytes of an incomplete code point held in tail_
  uint8_t need_ = 0;     // total length of that code point
};

}  // namespace hermod::ws
