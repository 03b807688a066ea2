// Fossil delta encoding (the format of the Fossil SCM's delta_format.wiki), the one
// Centrifugo's delta compression and its SDKs use: a subscriber that asked for deltas gets a
// publication's data as a patch against the previous publication's data, which it applies
// to the copy it kept.
//
// A reimplementation from the published format and encoder algorithm, no code taken: a
// delta is `<target length>\n`, then segments `<n>@<offset>,` (copy n bytes of the source
// from offset) and `<n>:<n bytes>` (insert literally), then `<checksum>;`; numbers in a
// base-64 alphabet, most significant digit first. The encoder hashes the source in blocks
// of 16 bytes and walks the target with a rolling hash, extending each candidate match
// both ways; every copy is checked byte by byte, so a hash collision only costs size, never
// correctness. Linear in the inputs' sizes (at most 250 candidates per position).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hermod::core {

// The delta that turns source into target (appended to out).
void AppendFossilDelta(std::string& out, std::string_view source, std::string_view target);
std::string FossilDelta(std::string_view source, std::string_view target);

// The target rebuilt from source and delta; none when the delta is malformed, does not fit
// source, or its checksum or length is wrong. Untrusted input never crashes it (fuzzed).
std::optional<std::string> ApplyFossilDelta(std::string_view source, std::string_view delta);

// The format's checksum of bytes (the delta's trailer).
uint32_t FossilChecksum(std::string_view bytes);

}  // namespace hermod::core
