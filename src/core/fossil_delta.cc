#include "core/fossil_delta.h"

#include <vector>

namespace hermod::core {

namespace {

constexpr size_t kBlock = 16;  // the hash's window and the source's block size
constexpr int kMaxCandidates = 250;
constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

void PutInt(std::string& out, uint64_t v) {
  char buf[16];
  int n = 0;
  do {
    buf[n++] = kDigits[v & 63];
    v >>= 6;
  } while (v > 0);
  while (n > 0) out += buf[--n];
}

int DigitCount(uint64_t v) {
  int n = 1;
  while (v >>= 6) ++n;
  return n;
}

// The rolling hash of the last kBlock bytes: a is their sum, b the sum weighted by position.
struct RollingHash {
  uint16_t a = 0;
  uint16_t b = 0;
  size_t i = 0;
  unsigned char window[kBlock];

  explicit RollingHash(const unsigned char* z) {
    uint32_t sa = 0;
    uint32_t sb = 0;
    for (size_t k = 0; k < kBlock; ++k) {
      sa += z[k];
      sb += static_cast<uint32_t>(kBlock - k) * z[k];
      window[k] = z[k];
    }
    a = static_cast<uint16_t>(sa);
    b = static_cast<uint16_t>(sb);
  }
  void Next(unsigned char c) {
    const unsigned char old = window[i];
    window[i] = c;
    i = (i + 1) & (kBlock - 1);
    a = static_cast<uint16_t>(a - old + c);
    b = static_cast<uint16_t>(b - kBlock * old + a);
  }
  uint32_t Value() const { return uint32_t{a} | (uint32_t{b} << 16); }
};

void PutLiteral(std::string& out, std::string_view bytes) {
  PutInt(out, bytes.size());
  out += ':';
  out += bytes;
}

// Reads a base-64 number; none when no digit is there.
std::optional<uint64_t> GetInt(std::string_view d, size_t& pos) {
  const size_t start = pos;
  uint64_t v = 0;
  while (pos < d.size()) {
    const char c = d[pos];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'Z') {
      digit = c - 'A' + 10;
    } else if (c == '_') {
      digit = 36;
    } else if (c >= 'a' && c <= 'z') {
      digit = c - 'a' + 37;
    } else if (c == '~') {
      digit = 63;
    } else {
      break;
    }
    if (v >> 58) return std::nullopt;  // past 64 bits: no sane length
    v = (v << 6) | static_cast<uint64_t>(digit);
    ++pos;
  }
  if (pos == start) return std::nullopt;
  return v;
}

}  // namespace

uint32_t FossilChecksum(std::string_view bytes) {
  const auto* z = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  while (n >= 4) {
    s0 += z[0];
    s1 += z[1];
    s2 += z[2];
    s3 += z[3];
    z += 4;
    n -= 4;
  }
  s3 += (s2 << 8) + (s1 << 16) + (s0 << 24);
  switch (n) {
    case 3:
      s3 += uint32_t{z[2]} << 8;
      [[fallthrough]];
    case 2:
      s3 += uint32_t{z[1]} << 16;
      [[fallthrough]];
    case 1:
      s3 += uint32_t{z[0]} << 24;
      break;
    default:
      break;
  }
  return s3;
}

void AppendFossilDelta(std::string& out, std::string_view source, std::string_view target) {
  const auto* src = reinterpret_cast<const unsigned char*>(source.data());
  const auto* tgt = reinterpret_cast<const unsigned char*>(target.data());
  const size_t len_src = source.size();
  const size_t len_tgt = target.size();
  PutInt(out, len_tgt);
  out += '\n';
  if (len_src <= kBlock) {
    // Too short to index: the whole target, literally.
    if (len_tgt > 0) PutLiteral(out, target);
    PutInt(out, FossilChecksum(target));
    out += ';';
    return;
  }
  // landmark[h]: the last source block whose hash is h; collide[block]: the one before it.
  const size_t blocks = len_src / kBlock;
  std::vector<int64_t> landmark(blocks, -1);
  std::vector<int64_t> collide(blocks, -1);
  for (size_t i = 0; i + kBlock < len_src; i += kBlock) {
    const size_t h = RollingHash(src + i).Value() % blocks;
    collide[i / kBlock] = landmark[h];
    landmark[h] = static_cast<int64_t>(i / kBlock);
  }
  size_t base = 0;  // the target's bytes before base are encoded
  while (base + kBlock < len_tgt) {
    size_t best_offset = 0;
    size_t best_literal = 0;
    size_t best_count = 0;
    RollingHash hash(tgt + base);
    size_t i = 0;  // the window is tgt[base + i, base + i + kBlock)
    while (true) {
      int limit = kMaxCandidates;
      for (int64_t block = landmark[hash.Value() % blocks]; block >= 0 && limit-- > 0;
           block = collide[static_cast<size_t>(block)]) {
        const size_t at = static_cast<size_t>(block) * kBlock;
        size_t forward = 0;  // matching bytes from src[at], tgt[base + i]
        while (at + forward < len_src && base + i + forward < len_tgt &&
               src[at + forward] == tgt[base + i + forward]) {
          ++forward;
        }
        size_t back = 0;  // matching bytes before them, not before base
        while (back < at && back < i && src[at - back - 1] == tgt[base + i - back - 1]) ++back;
        const size_t count = forward + back;
        const size_t offset = at - back;
        const size_t literal = i - back;
        // Worth a copy only when it is no longer than its own command.
        const size_t cost =
            static_cast<size_t>(DigitCount(literal) + DigitCount(count) + DigitCount(offset) + 3);
        if (count >= cost && count > best_count) {
          best_count = count;
          best_offset = offset;
          best_literal = literal;
        }
      }
      if (best_count > 0) {
        if (best_literal > 0) {
          PutLiteral(out, target.substr(base, best_literal));
          base += best_literal;
        }
        PutInt(out, best_count);
        out += '@';
        PutInt(out, best_offset);
        out += ',';
        base += best_count;
        break;
      }
      if (base + i + kBlock >= len_tgt) {
        // No match up to the end: the rest is literal.
        PutLiteral(out, target.substr(base));
        base = len_tgt;
        break;
      }
      hash.Next(tgt[base + i + kBlock]);
      ++i;
    }
  }
  if (base < len_tgt) PutLiteral(out, target.substr(base));
  PutInt(out, FossilChecksum(target));
  out += ';';
}

std::string FossilDelta(std::string_view source, std::string_view target) {
  std::string out;
  AppendFossilDelta(out, source, target);
  return out;
}

std::optional<std::string> ApplyFossilDelta(std::string_view source, std::string_view delta) {
  size_t pos = 0;
  const std::optional<uint64_t> limit = GetInt(delta, pos);
  if (!limit || pos >= delta.size() || delta[pos] != '\n') return std::nullopt;
  ++pos;
  // The declared length only bounds the output; it is never allocated up front past what
  // the delta itself can produce.
  std::string out;
  while (pos < delta.size()) {
    const std::optional<uint64_t> count = GetInt(delta, pos);
    if (!count || pos >= delta.size()) return std::nullopt;
    const char op = delta[pos++];
    if (op == '@') {
      const std::optional<uint64_t> offset = GetInt(delta, pos);
      if (!offset || pos >= delta.size() || delta[pos] != ',') return std::nullopt;
      ++pos;
      if (*count > *limit - out.size() || *offset > source.size() ||
          *count > source.size() - *offset) {
        return std::nullopt;
      }
      out.append(source.substr(*offset, *count));
    } else if (op == ':') {
      if (*count > *limit - out.size() || *count > delta.size() - pos) return std::nullopt;
      out.append(delta.substr(pos, *count));
      pos += *count;
    } else if (op == ';') {
      if (out.size() != *limit || *count != FossilChecksum(out)) return std::nullopt;
      return out;
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;  // no trailer
}

}  // namespace hermod::core
