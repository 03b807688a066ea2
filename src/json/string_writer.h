// Writing a JSON string literal from arbitrary bytes.
//
// hermod writes JSON by appending to a std::string; the strings it writes come from clients
// (channel names, user ids), from config files, from log messages that quote either, and from
// the bench's reports. Most are short and plain ASCII, and the protocol encoder calls this
// for every reply and push, so the common case is a scan that copies runs of bytes needing no
// escape in one append. Anything else takes the slow path byte by byte:
//
// - `"` and `\` are escaped, control characters U+0000..U+001F as `\b \f \n \r \t` or
//   `\u00XX` (RFC 8259 §7). DEL and the non-ASCII characters pass as they are: JSON text is
//   UTF-8 (RFC 8259 §8.1) and needs no escape for them.
// - Invalid UTF-8 (a stray continuation byte, an overlong form, a UTF-16 surrogate, a code
//   point above U+10FFFF, a sequence cut short) is replaced by U+FFFD, one per maximal
//   subpart of the ill-formed sequence (Unicode §3.9, "U+FFFD substitution of maximal
//   subparts", as the WHATWG Encoding Standard decodes). The output is therefore always
//   valid UTF-8 that any JSON parser accepts, and valid input is copied byte for byte.
#pragma once

#include <string>
#include <string_view>

namespace hermod::json {

// Appends `s` to `out` as a JSON string, quotes included.
void AppendJsonString(std::string& out, std::string_view s);

// Appends the escaped contents of `s` without the surrounding quotes.
void AppendEscaped(std::string& out, std::string_view s);

}  // namespace hermod::json
