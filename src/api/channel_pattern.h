// The `pattern` of the API's `channels` method: Centrifugo matches channel names with
// gobwas/glob (no separators), and so does this, for the same syntax: `*` any run of
// characters, `?` one character, `[abc]`, `[a-z]` and `[!abc]` one character of (or not of) a
// class, `{alt1,alt2}` one of the alternatives (which may nest), `\x` the character x.
//
// Matching is by backtracking over the pattern with a step budget, so a hostile pattern
// (`*a*a*a*...b`) costs a bounded amount of work: past the budget it does not match.
#pragma once

#include <cstddef>
#include <string_view>

namespace hermod::api {

class ChannelPattern {
 public:
  // False when the pattern is malformed (an unclosed `[` or `{`, a trailing `\`).
  static bool Valid(std::string_view pattern);
  static bool Matches(std::string_view pattern, std::string_view name);

  static constexpr size_t kMaxSteps = 1 << 20;  // per name
};

}  // namespace hermod::api
