// Where a JSON text first breaks the grammar (RFC 8259 §2-§7), for error messages people act
// on: "line 3, column 14: expected ',' or '}'". hermod parses JSON with simdjson, which says
// only what kind of error it met; this second, slow pass runs only after a parse has failed
// (a config file that does not load), so it favours plain code over speed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hermod::json {

struct SyntaxError {
  bool found = false;    // false: the text is grammatical JSON (simdjson failed for another
                         // reason, e.g. invalid UTF-8 or a number out of range)
  size_t offset = 0;     // byte offset of the first byte that cannot be part of the text
  size_t line = 0;       // 1-based
  size_t column = 0;     // 1-based, in characters (UTF-8 continuation bytes not counted)
  std::string expected;  // what the grammar allows there, e.g. "',' or '}'"
};

// More arrays and objects nested than this is reported as an error (the scan is recursive).
inline constexpr int kMaxSyntaxDepth = 512;

SyntaxError FindSyntaxError(std::string_view text);

}  // namespace hermod::json
