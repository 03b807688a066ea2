// Outgoing frame headers (RFC 6455 §5.2): the shortest length encoding, and the mask key for
// the client role (§5.3).
#include "ws/frame_encoder.h"

#include <cstring>

#include "ws/mask.h"

namespace hermod::ws {

size_t EncodeFrameHeader(const FrameHeaderSpec& spec, uint8_t* out) {
  out[0] = static_cast<uint8_t>((spec.fin ? 0x80 : 0) | (spec.rsv1 ? 0x40 : 0) |
                                static_cast<uint8_t>(spec.opcode));
  const uint8_t mask_bit = spec.mask ? 0x80 : 0;
  size_t n = 2;
  const uint64_t len = spec.payload_len;
  if (len < 126) {
    out[1] = static_cast<uint8_t>(mask_bit | len);
  } else if (len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<uint8_t>(len >> 8);
    out[3] = static_cast<uint8_t>(len);
    n = 4;
  } else {
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(len >> (56 - 8 * i));
    n = 10;
  }
  if (spec.mask) {
    std::memcpy(out + n, spec.mask->data(), 4);
    n += 4;
  }
  return n;
}

size_t EncodeTextHeader(size_t payload_len, char* out) {
  FrameHeaderSpec spec;
  spec.payload_len = payload_len;
  return EncodeFrameHeader(spec, reinterpret_cast<uint8_t*>(out));
}

void AppendFrame(std::string& out, FrameHeaderSpec spec, std::string_view payload) {
  spec.payload_len = payload.size();
  uint8_t header[kMaxFrameHeader];
  const size_t header_len = EncodeFrameHeader(spec, header);
  const size_t start = out.size();
  out.reserve(start + header_len + payload.size());
  out.append(reinterpret_cast<const char*>(header), header_len);
  out.append(payload);
  if (spec.mask) {
    ApplyMask(reinterpret_cast<uint8_t*>(out.data() + start + header_len), payload.size(),
              *spec.mask);
  }
}

std::string ClosePayload(uint16_t code, std::string_view reason) {
  // RFC 6455 §5.5: 125 bytes in all, 2 of them the code. Cutting in front of a continuation
  // byte would leave half a code point, which the peer must refuse with 1007 (§8.1).
  constexpr size_t kMaxReason = kMaxControlPayload - 2;
  if (reason.size() > kMaxReason) {
    size_t cut = kMaxReason;
    while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  std::string payload;
  payload.reserve(2 + reason.size());
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason);
  return payload;
}

}  // namespace hermod::ws
