// RFC 6455 vocabulary shared by the parser, the encoder and the connection: opcodes, close
// codes and the one table that maps a protocol failure to the close code the peer receives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hermod::ws {

// RFC 6455 §5.2.
enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// RFC 6455 §7.4.1. 1005 and 1006 are never sent on the wire.
enum class CloseCode : uint16_t {
  kNormal = 1000,
  kGoingAway = 1001,
  kProtocolError = 1002,
  kUnsupportedData = 1003,
  kNoStatus = 1005,
  kAbnormal = 1006,
  kInvalidPayload = 1007,
  kPolicyViolation = 1008,
  kMessageTooBig = 1009,
  kMandatoryExtension = 1010,
  kInternalError = 1011,
};

// Largest frame header: 2 + 8 (64-bit length) + 4 (mask).
inline constexpr size_t kMaxFrameHeader = 14;
// RFC 6455 §5.5: control frame payloads are at most 125 bytes.
inline constexpr size_t kMaxControlPayload = 125;

// RFC 6455 §7.4: may this code appear in a Close frame received from a peer?
bool IsValidReceivedCloseCode(uint16_t code);

}  // namespace hermod::ws
