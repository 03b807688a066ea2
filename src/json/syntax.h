// JSON syntax (RFC 8259), by grammar alone: one walker for two callers.
//
// IsJson, on the hot path: publication `data` passes through the server verbatim to every
// subscriber, so it must be JSON their SDKs can parse; but hermod never reads a number in
// it, so no number is converted and none is refused for its size or precision:
// `{"wei": 100000000000000000000}`, `1e99999` and -2^63-1 are JSON (§6 leaves number range
// to the receiver). A converting parser refused them, and with them valid payment payloads.
//
// FindSyntaxError, for messages people act on ("line 3, column 14: expected ',' or '}'"):
// simdjson says only what kind of error it met, so after a config file fails to parse the
// same walk runs again to say where.
//
// One pass with an explicit stack (no recursion): nesting deeper than kMaxJsonDepth is
// refused.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hermod::json {

inline constexpr size_t kMaxJsonDepth = 1024;

// True when text is exactly one JSON value, with optional whitespace around it: valid
// UTF-8, strings with valid escapes and no raw control characters, numbers of the RFC's
// grammar (any length).
bool IsJson(std::string_view text);

struct SyntaxError {
  bool found = false;    // false: the text is grammatical JSON (UTF-8 is not checked here)
  size_t offset = 0;     // byte offset of the first byte that cannot be part of the text
  size_t line = 0;       // 1-based
  size_t column = 0;     // 1-based, in characters (UTF-8 continuation bytes not counted)
  std::string expected;  // what the grammar allows there, e.g. "',' or '}'"
};

SyntaxError FindSyntaxError(std::string_view text);

}  // namespace hermod::json
