#include "json/string_writer.h"

#include <array>
#include <cstdint>
#include <cstring>

namespace hermod::json {

namespace {

// Bytes that end a plain run: what must be escaped, and every non-ASCII byte (checked as
// UTF-8 on the slow path).
constexpr std::array<bool, 256> kStopsRun = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) table[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  return table;
}();

// True when one of the 8 bytes of `word` stops a run (SWAR: Hacker's Delight's "has a byte
// less than n" and "has a zero byte"; exact as a yes/no for the whole word).
inline bool WordStopsRun(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  const uint64_t below_space = (word - 0x20 * kOnes) & ~word & kHigh;
  return ((word & kHigh) | below_space | has_zero(word ^ ('"' * kOnes)) |
          has_zero(word ^ ('\\' * kOnes))) != 0;
}

// The index of the first byte at or after `i` that stops a run, or s.size().
inline size_t SkipPlain(std::string_view s, size_t i) {
  while (i + 8 <= s.size()) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (WordStopsRun(word)) break;
    i += 8;
  }
  while (i < s.size() && !kStopsRun[static_cast<unsigned char>(s[i])]) ++i;
  return i;
}

// The length of the well-formed UTF-8 sequence at s[i] (a byte >= 0x80), or 0 when it is
// ill-formed; then *bad is the length of its maximal subpart, the bytes one U+FFFD replaces.
// Ranges of the second byte per lead byte: Unicode §3.9, Table 3-7.
inline size_t Utf8Sequence(std::string_view s, size_t i, size_t* bad) {
  const auto lead = static_cast<unsigned char>(s[i]);
  size_t length;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong below U+0800
    if (lead == 0xED) high = 0x9F;  // UTF-16 surrogates U+D800..U+DFFF
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong below U+10000
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    *bad = 1;  // a continuation byte alone, C0/C1 (always overlong), F5..FF
    return 0;
  }
  size_t n = 1;
  for (; n < length && i + n < s.size(); ++n) {
    const auto byte = static_cast<unsigned char>(s[i + n]);
    if (n == 1 ? (byte < low || byte > high) : (byte < 0x80 || byte > 0xBF)) break;
  }
  if (n == length) return length;
  *bad = n;  // cut short, by a wrong byte or by the end of the input
  return 0;
}

}  // namespace

void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;  // start of the bytes copied as they are
  size_t i = 0;
  while (true) {
    i = SkipPlain(s, i);
    if (i == s.size()) break;
    const auto byte = static_cast<unsigned char>(s[i]);
    size_t bad = 0;
    if (byte >= 0x80) {
      const size_t length = Utf8Sequence(s, i, &bad);
      if (length != 0) {  // valid: stays in the run
        i += length;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    if (bad != 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      i += bad;
    } else {
      switch (byte) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default: {
          const char escape[] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 15]};
          out.append(escape, sizeof escape);
        }
      }
      ++i;
    }
    run = i;
  }
  out.append(s.data() + run, s.size() - run);
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  AppendEscaped(out, s);
  out += '"';
}

}  // namespace hermod::json
