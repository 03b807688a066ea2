// Streaming UTF-8 validation (RFC 3629 §4). The bulk of every piece goes through simdjson's
// SIMD validator; only the code point cut by a piece boundary is checked here, byte by byte,
// with the RFC 3629 table of second-byte ranges, so that a prefix that can no longer become
// valid (overlong form, surrogate, above U+10FFFF) is refused on the byte that proves it.
#include "ws/utf8.h"

#include <cstring>

#include <simdjson.h>

namespace hermod::ws {

namespace {

// Length of the sequence a lead byte starts: 1-4, or 0 when it cannot start one
// (continuation bytes, C0/C1 which only encode overlong forms, F5-FF beyond U+10FFFF).
size_t SequenceLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF5) return 4;
  return 0;
}

// RFC 3629 §4: the allowed range of the byte after `lead`.
bool SecondByteOk(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0:
      return b >= 0xA0 && b <= 0xBF;  // no overlong 3-byte forms
    case 0xED:
      return b >= 0x80 && b <= 0x9F;  // no surrogates
    case 0xF0:
      return b >= 0x90 && b <= 0xBF;  // no overlong 4-byte forms
    case 0xF4:
      return b >= 0x80 && b <= 0x8F;  // nothing above U+10FFFF
    default:
      return b >= 0x80 && b <= 0xBF;
  }
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  // Short messages are most often ASCII: eight bytes at a time is cheaper than simdjson's
  // dispatch for a few dozen bytes. Anything else goes to the SIMD validator.
  if (s.size() <= 256) {
    size_t i = 0;
    uint64_t high = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, sizeof(word));
      high |= word;
    }
    for (; i < s.size(); ++i) high |= static_cast<uint8_t>(s[i]);
    if ((high & 0x8080808080808080ull) == 0) return true;
  }
  return simdjson::validate_utf8(s.data(), s.size());
}

bool Utf8Stream::Feed(const uint8_t* data, size_t len) {
  size_t i = 0;
  // Finish the code point the previous piece cut.
  while (pending_ != 0 && i < len) {
    const uint8_t b = data[i++];
    const bool ok = pending_ == 1 ? SecondByteOk(tail_[0], b) : (b & 0xC0) == 0x80;
    if (!ok) return false;
    tail_[pending_++] = b;
    if (pending_ == need_) Reset();
  }
  if (i == len) return true;
  // The last code point of this piece may be incomplete: find where it starts.
  size_t end = len;
  for (size_t back = 1; back <= 4 && back <= len - i; ++back) {
    const uint8_t b = data[len - back];
    if ((b & 0xC0) == 0x80) continue;
    if (SequenceLength(b) > back) end = len - back;
    break;
  }
  if (!simdjson::validate_utf8(reinterpret_cast<const char*>(data + i), end - i)) return false;
  for (i = end; i < len; ++i) {
    const uint8_t b = data[i];
    if (pending_ == 0) {
      need_ = static_cast<uint8_t>(SequenceLength(b));
      if (need_ == 0) return false;
      tail_[pending_++] = b;
    } else {
      const bool ok = pending_ == 1 ? SecondByteOk(tail_[0], b) : (b & 0xC0) == 0x80;
      if (!ok) return false;
      tail_[pending_++] = b;
    }
  }
  return true;
}

}  // namespace hermod::ws
