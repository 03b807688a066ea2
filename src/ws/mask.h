// XOR masking (RFC 6455 §5.3), vectorised: on the receive path every byte a client sends
// passes through here once, in place, in the loop's read buffer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace hermod::ws {

// XORs data[0..len) with key, starting at key byte `phase` (0..3), for payloads that arrive
// in pieces. Returns the phase for the byte after the last one.
size_t ApplyMask(uint8_t* data, size_t len, const std::array<uint8_t, 4>& key, size_t phase = 0);

}  // namespace hermod::ws
