// permessage-deflate on untrusted input: inflating arbitrary bytes stays within the limit and
// never crashes; the same bytes deflated and inflated again come back unchanged (with and
// without context takeover); the extension header parser accepts any text. Input: byte 0
// picks the limit and the options, the rest is the data.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ws/deflate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  static constexpr size_t kLimits[] = {0, 100, 4096, 1 << 20};
  const size_t limit = kLimits[flags & 3];
  const bool reset = flags & 4;
  const int window_bits = 8 + (flags >> 3) % 8;

  std::string out;
  hermod::ws::Inflater inflater(window_bits);
  const auto status = inflater.Inflate(in, limit, reset, out);
  if (status == hermod::ws::InflateStatus::kOk && out.size() > limit) __builtin_trap();
  if (out.capacity() > 2 * (limit + 1) + 2 * in.size() + 4096) __builtin_trap();

  // Round trip, twice through the same pair of streams.
  hermod::ws::Deflater deflater(1 + flags % 9, window_bits);
  hermod::ws::Inflater back(window_bits);
  std::string compressed;
  for (int i = 0; i < 2; ++i) {
    deflater.Deflate(in, reset, compressed);
    if (back.Inflate(compressed, in.size(), reset, out) != hermod::ws::InflateStatus::kOk) {
      __builtin_trap();
    }
    if (out != in) __builtin_trap();
  }

  hermod::ws::DeflateConfig config;
  config.enabled = true;
  config.server_max_window_bits = window_bits;
  if (auto n = hermod::ws::NegotiateDeflate(in, config)) {
    const auto& p = n->params;
    if (p.server_max_window_bits < 8 || p.server_max_window_bits > window_bits) __builtin_trap();
    if (p.client_max_window_bits < 8 || p.client_max_window_bits > 15) __builtin_trap();
    if (n->response.rfind("permessage-deflate", 0) != 0) __builtin_trap();
  }
  return 0;
}
