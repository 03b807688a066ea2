#include "broker/subject.h"

#include <cstdint>

namespace hermod::broker {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool Plain(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '_':
    case '-':
    case ':':
    case '=':
    case '@':
    case '+':
    case ',':
    case ';':
    case '~':
    case '!':
      return true;
    default:
      return false;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is never written, so never read: one token per name
}

// FNV-1a, 64 bits, from a given basis: two bases make the 128-bit hash of long names.
uint64_t Fnv(std::string_view s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void AppendHex64(std::string& out, uint64_t v) {
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(v >> shift) & 0xf];
}

}  // namespace

std::string SubjectToken(std::string_view channel) {
  if (channel.empty()) return "%";
  size_t size = 0;
  for (unsigned char c : channel) size += Plain(c) ? 1 : 3;
  std::string out;
  if (size > kMaxEscapedToken) {
    out.reserve(33);
    out += '#';
    AppendHex64(out, Fnv(channel, 0xcbf29ce484222325ull));
    AppendHex64(out, Fnv(channel, 0x84222325cbf29ce4ull));
    return out;
  }
  out.reserve(size);
  for (unsigned char c : channel) {
    if (Plain(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string ChannelSubject(std::string_view prefix, std::string_view channel) {
  std::string subject;
  subject.reserve(prefix.size() + 4 + channel.size());
  subject += prefix;
  subject += ".ch.";
  subject += SubjectToken(channel);
  return subject;
}

std::optional<std::string> ChannelOfToken(std::string_view token) {
  if (token == "%") return std::string();
  if (token.empty() || token.size() > kMaxEscapedToken) return std::nullopt;
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (Plain(c)) {
      out += static_cast<char>(c);
      continue;
    }
    if (c != '%' || token.size() - i < 3) return std::nullopt;
    const int hi = HexValue(token[i + 1]);
    const int lo = HexValue(token[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto byte = static_cast<unsigned char>(hi * 16 + lo);
    if (Plain(byte)) return std::nullopt;  // SubjectToken never escapes a plain byte
    out += static_cast<char>(byte);
    i += 2;
  }
  return out;
}

}  // namespace hermod::broker
