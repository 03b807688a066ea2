// The channel-to-subject mapping: any channel name gives one valid NATS token (non-empty,
// printable ASCII, no '.', '*', '>'), and an escaped token decodes back to the name, so two
// names never share an escaped subject. Any bytes read as a token either decode to a name
// that maps back to exactly those bytes, or are refused.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/subject.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string token = hermod::broker::SubjectToken(input);
  if (token.empty() || token.size() > hermod::broker::kMaxEscapedToken) __builtin_trap();
  for (unsigned char c : token) {
    if (c == '.' || c == '*' || c == '>' || c <= ' ' || c >= 0x7f) __builtin_trap();
  }
  if (token[0] != '#' && hermod::broker::ChannelOfToken(token) != input) __builtin_trap();
  if (std::optional<std::string> name = hermod::broker::ChannelOfToken(input)) {
    if (hermod::broker::SubjectToken(*name) != input) __builtin_trap();
  }
  return 0;
}
