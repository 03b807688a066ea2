// XOR masking, 64 bytes per step with SSE2 (baseline on x86-64), then 8-byte words, then
// single bytes. Loads and stores are unaligned, so any buffer offset works; the key is
// rotated by `phase` once so that every wide step uses the same pattern.
#include "ws/mask.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hermod::ws {

size_t ApplyMask(uint8_t* data, size_t len, const std::array<uint8_t, 4>& key, size_t phase) {
  phase &= 3;
  uint8_t rotated[16];
  for (size_t i = 0; i < sizeof(rotated); ++i) rotated[i] = key[(phase + i) & 3];
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i k = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rotated));
  for (; i + 64 <= len; i += 64) {
    __m128i* p = reinterpret_cast<__m128i*>(data + i);
    __m128i a = _mm_loadu_si128(p);
    __m128i b = _mm_loadu_si128(p + 1);
    __m128i c = _mm_loadu_si128(p + 2);
    __m128i d = _mm_loadu_si128(p + 3);
    _mm_storeu_si128(p, _mm_xor_si128(a, k));
    _mm_storeu_si128(p + 1, _mm_xor_si128(b, k));
    _mm_storeu_si128(p + 2, _mm_xor_si128(c, k));
    _mm_storeu_si128(p + 3, _mm_xor_si128(d, k));
  }
  for (; i + 16 <= len; i += 16) {
    __m128i* p = reinterpret_cast<__m128i*>(data + i);
    _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k));
  }
#endif
  uint64_t k64;
  std::memcpy(&k64, rotated, sizeof(k64));
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, sizeof(w));
    w ^= k64;
    std::memcpy(data + i, &w, sizeof(w));
  }
  // Every step so far was a multiple of 4 bytes, so the pattern is still in phase.
  for (; i < len; ++i) data[i] ^= rotated[i & 3];
  return (phase + len) & 3;
}

}  // namespace hermod::ws
