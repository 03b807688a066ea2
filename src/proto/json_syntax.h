// Whether bytes are one JSON text (RFC 8259), by syntax alone. Publication `data` passes
// through the server verbatim to every subscriber, so it must be JSON their SDKs can parse;
// but hermod never reads a number in it, so no number is converted and none is refused for
// its size or precision: `{"wei": 100000000000000000000}`, `1e99999` and -2^63-1 are JSON
// (RFC 8259 §6 leaves number range to the receiver). A converting parser (simdjson's DOM)
// refused them, and with them valid payment payloads.
//
// One pass over the bytes with an explicit stack (no recursion): nesting deeper than
// kMaxJsonDepth is refused, as simdjson's default limit did before.
#pragma once

#include <cstddef>
#include <string_view>

namespace hermod::proto {

inline constexpr size_t kMaxJsonDepth = 1024;

// True when text is exactly one JSON value, with optional whitespace around it: valid
// UTF-8, strings with valid escapes and no raw control characters, numbers of the RFC's
// grammar (any length).
bool IsJson(std::string_view text);

}  // namespace hermod::proto
