// permessage-deflate (RFC 7692): offer parsing and the answer (§5, §7.1), and the zlib raw
// streams behind Inflater and Deflater (§7.2).
//
// Window bits 8. zlib (since 1.2.9) refuses a raw deflate stream with an 8-bit window, so a
// Deflater asked for 8 uses 9. That still honours server_max_window_bits=8: zlib never emits
// a distance beyond w_size - MIN_LOOKAHEAD = 512 - 262 = 250 bytes, inside a 256-byte window.
// Inflaters are likewise built with at least 9 bits; a larger window only costs memory.
#include "ws/deflate.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "ws/header_syntax.h"

namespace hermod::ws {

namespace {

constexpr int kMinWindowBits = 8;
constexpr int kMaxWindowBits = 15;
constexpr int kMinZlibWindowBits = 9;

// RFC 7230 §3.2.6 tchar.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// Splits s at `sep` outside quoted strings (RFC 7230 §3.2.6). False on an unterminated quote.
bool SplitOutsideQuotes(std::string_view s, char sep, std::vector<std::string_view>& parts) {
  parts.clear();
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (quoted) return false;
  parts.push_back(s.substr(start));
  return true;
}

struct ExtensionParam {
  std::string_view name;
  bool has_value = false;
  std::string value;  // unquoted
};

// One `name [= value]` of RFC 6455 §9.1 (value a token or a quoted string).
bool ParseParam(std::string_view text, ExtensionParam& param) {
  const size_t eq = text.find('=');
  param.name = TrimOws(text.substr(0, eq));
  if (!IsToken(param.name)) return false;
  param.has_value = eq != std::string_view::npos;
  param.value.clear();
  if (!param.has_value) return true;
  std::string_view v = TrimOws(text.substr(eq + 1));
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    v = v.substr(1, v.size() - 2);
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '\\') {
        if (++i == v.size()) return false;
      } else if (v[i] == '"') {
        return false;
      }
      param.value.push_back(v[i]);
    }
    // RFC 6455 §9.1: a quoted value must still be a token once unquoted.
    return IsToken(param.value);
  }
  if (!IsToken(v)) return false;
  param.value.assign(v);
  return true;
}

// RFC 7692 §7.1.2: 1*DIGIT without leading zeros, 8 to 15.
bool ParseWindowBits(const std::string& value, int& bits) {
  if (value.empty() || value.size() > 2 || value[0] == '0') return false;
  int n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  if (n < kMinWindowBits || n > kMaxWindowBits) return false;
  bits = n;
  return true;
}

int ClampBits(int bits) { return std::clamp(bits, kMinWindowBits, kMaxWindowBits); }

// One permessage-deflate offer: its parameters are checked (unknown, duplicate or invalid
// ones decline the offer, §7.1) and answered within the config.
std::optional<DeflateNegotiation> AnswerOffer(const std::vector<std::string_view>& parts,
                                              const DeflateConfig& config) {
  bool server_no_context = false, client_no_context = false;
  bool has_server_bits = false, has_client_bits = false;
  int server_bits = kMaxWindowBits, client_bits = kMaxWindowBits;
  ExtensionParam param;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!ParseParam(parts[i], param)) return std::nullopt;
    if (EqualsIgnoreCase(param.name, "server_no_context_takeover")) {
      if (server_no_context || param.has_value) return std::nullopt;
      server_no_context = true;
    } else if (EqualsIgnoreCase(param.name, "client_no_context_takeover")) {
      if (client_no_context || param.has_value) return std::nullopt;
      client_no_context = true;
    } else if (EqualsIgnoreCase(param.name, "server_max_window_bits")) {
      if (has_server_bits || !param.has_value) return std::nullopt;
      if (!ParseWindowBits(param.value, server_bits)) return std::nullopt;
      has_server_bits = true;
    } else if (EqualsIgnoreCase(param.name, "client_max_window_bits")) {
      // §7.1.2.2: the value is optional; without one the client only says it supports it.
      if (has_client_bits) return std::nullopt;
      if (param.has_value && !ParseWindowBits(param.value, client_bits)) return std::nullopt;
      has_client_bits = true;
    } else {
      return std::nullopt;
    }
  }

  DeflateNegotiation n;
  DeflateParams& p = n.params;
  // §7.1.1: the server may add either no_context_takeover even when not offered.
  p.server_no_context_takeover = server_no_context || config.server_no_context_takeover;
  p.client_no_context_takeover = client_no_context || config.client_no_context_takeover;
  // §7.1.2.1: the server answers with the offered value or a smaller one, and may limit its
  // own window when the client did not ask.
  p.server_max_window_bits = std::min(server_bits, ClampBits(config.server_max_window_bits));
  // §7.1.2.2: the client window can be limited only when the client offered the parameter.
  p.client_max_window_bits = has_client_bits
                                 ? std::min(client_bits, ClampBits(config.client_max_window_bits))
                                 : kMaxWindowBits;

  n.response = "permessage-deflate";
  if (p.server_no_context_takeover) n.response += "; server_no_context_takeover";
  if (p.client_no_context_takeover) n.response += "; client_no_context_takeover";
  if (has_server_bits || p.server_max_window_bits < kMaxWindowBits) {
    n.response += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
  }
  if (has_client_bits) {
    n.response += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
  }
  return n;
}

constexpr uint8_t kSyncTail[4] = {0x00, 0x00, 0xFF, 0xFF};

}  // namespace

std::optional<DeflateNegotiation> NegotiateDeflate(std::string_view extensions_header,
                                                   const DeflateConfig& config) {
  if (!config.enabled) return std::nullopt;
  std::vector<std::string_view> offers, parts;
  if (!SplitOutsideQuotes(extensions_header, ',', offers)) return std::nullopt;
  for (std::string_view offer : offers) {
    if (!SplitOutsideQuotes(offer, ';', parts)) continue;
    if (!EqualsIgnoreCase(TrimOws(parts[0]), "permessage-deflate")) continue;
    if (auto answer = AnswerOffer(parts, config)) return answer;
  }
  return std::nullopt;
}

Inflater::Inflater(int window_bits) {
  const int bits = std::clamp(window_bits, kMinZlibWindowBits, kMaxWindowBits);
  if (inflateInit2(&stream_, -bits) != Z_OK) throw std::bad_alloc();
}

Inflater::~Inflater() { inflateEnd(&stream_); }

InflateStatus Inflater::Inflate(std::string_view in, size_t max_size, bool reset,
                                std::string& out) {
  if (reset) inflateReset(&stream_);
  // The output never grows past max_size + 1 bytes: one byte over proves "too big".
  const size_t cap = max_size == SIZE_MAX ? max_size : max_size + 1;
  size_t used = 0;
  out.clear();
  InflateStatus status = InflateStatus::kOk;
  bool done = false;
  for (int part = 0; part < 2 && !done && status == InflateStatus::kOk; ++part) {
    // RFC 7692 §7.2.2: the sender stripped the empty stored block; put it back.
    if (part == 0 && in.size() > UINT32_MAX) return InflateStatus::kTooBig;
    stream_.next_in = part == 0 ? reinterpret_cast<Bytef*>(const_cast<char*>(in.data()))
                                : const_cast<Bytef*>(kSyncTail);
    stream_.avail_in = static_cast<uInt>(part == 0 ? in.size() : sizeof(kSyncTail));
    while (true) {
      if (used == out.size()) {
        if (out.size() >= cap) {
          status = InflateStatus::kTooBig;
          break;
        }
        const size_t grow = std::max<size_t>({out.size(), in.size() * 2, 1024});
        out.resize(std::min(cap, out.size() + std::min<size_t>(grow, UINT32_MAX)));
      }
      stream_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      stream_.avail_out = static_cast<uInt>(out.size() - used);
      const int rc = inflate(&stream_, Z_SYNC_FLUSH);
      used = out.size() - stream_.avail_out;
      if (used > max_size) {
        status = InflateStatus::kTooBig;
        break;
      }
      if (rc == Z_STREAM_END) {
        // §7.2.3.3: a final block ends this stream; the next message starts a new one.
        inflateReset(&stream_);
        done = true;
        break;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        status = InflateStatus::kCorrupt;
        break;
      }
      if (stream_.avail_in == 0 && stream_.avail_out != 0) break;
      if (rc == Z_BUF_ERROR && stream_.avail_out != 0) {
        status = InflateStatus::kCorrupt;  // no progress with input and room left
        break;
      }
    }
  }
  stream_.next_in = nullptr;
  stream_.avail_in = 0;
  if (status != InflateStatus::kOk) {
    inflateReset(&stream_);  // the connection ends; a shared stream must stay usable
    out.clear();
    return status;
  }
  out.resize(used);
  return InflateStatus::kOk;
}

Deflater::Deflater(int level, int window_bits) {
  const int bits = std::clamp(window_bits, kMinZlibWindowBits, kMaxWindowBits);
  if (deflateInit2(&stream_, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::bad_alloc();
  }
}

Deflater::~Deflater() { deflateEnd(&stream_); }

void Deflater::Deflate(std::string_view in, bool reset, std::string& out) {
  out.clear();
  out.resize(in.size() + in.size() / 1000 + 64);
  stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  stream_.avail_in = static_cast<uInt>(in.size());
  size_t used = 0;
  while (true) {
    if (used == out.size()) out.resize(out.size() * 2);
    stream_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    stream_.avail_out = static_cast<uInt>(out.size() - used);
    deflate(&stream_, Z_SYNC_FLUSH);  // Z_BUF_ERROR only means "nothing to do"
    used = out.size() - stream_.avail_out;
    // zlib: the flush is complete when deflate returns with room left in the output.
    if (stream_.avail_in == 0 && stream_.avail_out != 0) break;
  }
  stream_.next_in = nullptr;
  out.resize(used);
  // RFC 7692 §7.2.1: the payload is the compressed data ending in an empty stored block,
  // minus that block's last four bytes (00 00 ff ff).
  if (out.size() >= 4 && std::memcmp(out.data() + out.size() - 4, kSyncTail, 4) == 0) {
    out.resize(out.size() - 4);
  } else {
    // zlib emits nothing when no input came since its last flush (an empty message with
    // context takeover). Step 2 appends the empty stored block by hand (the last flush left
    // the stream on a byte boundary): what remains of it is one 00. An empty payload would
    // be inflated as the start of a stored block and corrupt the peer's next message.
    out.push_back('\0');
  }
  if (reset) deflateReset(&stream_);
}

Deflater& ThreadDeflater(int level, int window_bits) {
  thread_local std::unique_ptr<Deflater> deflaters[16];
  const int bits = window_bits < 9 ? 9 : (window_bits > 15 ? 15 : window_bits);
  std::unique_ptr<Deflater>& d = deflaters[bits];
  if (!d) d = std::make_unique<Deflater>(level, bits);
  return *d;
}

Inflater& ThreadInflater() {
  thread_local Inflater inflater(15);  // a 15-bit window inflates any smaller one
  return inflater;
}

}  // namespace hermod::ws
