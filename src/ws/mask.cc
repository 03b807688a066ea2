// XOR masking, 64 bytes per step with SSE2 (baseline on x86-64), then 8-byte words, then
// single bytes. Loads and stores are unaligned, so any buffer offset works; the key is
// rotated by `phase` once so that every wide step uses the same pattern.
#include "ws/mask.h"

#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hermod::ws {

static_assert(std::endian::native == std::endian::little, "the key rotation assumes it");

size_t ApplyMask(uint8_t* data, size_t len, const std::array<uint8_t, 4>& key, size_t phase) {
  phase &= 3;
  // The key rotated so that byte 0 of every word lines up with data[0]; built with word
  // operations, since most payloads are a few dozen bytes and a byte loop here would cost
  // more than the XOR itself.
  uint32_t k32;
  std::memcpy(&k32, key.data(), sizeof(k32));
  if (phase != 0) k32 = (k32 >> (8 * phase)) | (k32 << (32 - 8 * phase));
  uint8_t rotated[4];
  std::memcpy(rotated, &k32, sizeof(rotated));
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i k = _mm_set1_epi32(static_cast<int>(k32));
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
  const uint64_t k64 = (static_cast<uint64_t>(k32) << 32) | k32;
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
