// Frame headers for outgoing frames (RFC 6455 §5.2). The payload is never copied here: the
// caller writes the header in front of bytes it already owns (or shares, for fan-out).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ws/frame.h"

namespace hermod::ws {

struct FrameHeaderSpec {
  Opcode opcode = Opcode::kText;
  bool fin = true;
  bool rsv1 = false;  // permessage-deflate: set on the first frame of a compressed message
  uint64_t payload_len = 0;
  std::optional<std::array<uint8_t, 4>> mask;  // clients mask (hermod-bench), servers do not
};

// Writes the header into out (at least kMaxFrameHeader bytes); returns its length.
size_t EncodeFrameHeader(const FrameHeaderSpec& spec, uint8_t* out);

// The header of an unmasked, unfragmented, uncompressed text frame of payload_len bytes:
// how net::OutputQueue frames a joined message (net::JoinSpec::header).
size_t EncodeTextHeader(size_t payload_len, char* out);

// Appends a whole frame (header + payload, masked when spec.mask is set) to out.
void AppendFrame(std::string& out, FrameHeaderSpec spec, std::string_view payload);

// The payload of a Close frame: 2-byte code then reason; reason is cut at a UTF-8 boundary
// so the payload stays within 125 bytes.
std::string ClosePayload(uint16_t code, std::string_view reason);

}  // namespace hermod::ws
