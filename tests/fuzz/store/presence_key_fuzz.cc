// The nats presence engine's KV keys (store/nats_presence.h): any channel or client id
// escapes into a non-empty token of the characters NATS KV keys allow, without '.', that
// parses back to the same bytes (so the mapping is injective); any token parses to nothing
// or to bytes that escape back to that very token (one spelling per string). The first
// input byte splits the rest into a channel and a client: the key they make splits back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/nats_presence.h"

namespace {

bool KeyCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '/' || c == '_' || c == '=' || c == '.';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hermod::store::ParsePresenceKeyToken;
  using hermod::store::PresenceKeyToken;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string token = PresenceKeyToken(input);
  if (token.empty() || token.find('.') != std::string::npos) __builtin_trap();
  for (char c : token) {
    if (!KeyCharacter(c)) __builtin_trap();
  }
  const auto back = ParsePresenceKeyToken(token);
  if (!back || *back != input) __builtin_trap();
  // Read as a token: nothing, or the one string that escapes to it.
  if (const auto parsed = ParsePresenceKeyToken(input);
      parsed && PresenceKeyToken(*parsed) != input) {
    __builtin_trap();
  }
  // A key of two tokens splits at its only '.'.
  const size_t split = size == 0 ? 0 : data[0] % size;
  const std::string key =
      PresenceKeyToken(input.substr(0, split)) + "." + PresenceKeyToken(input.substr(split));
  const size_t dot = key.find('.');
  if (key.find('.', dot + 1) != std::string::npos) __builtin_trap();
  const auto channel = ParsePresenceKeyToken(std::string_view(key).substr(0, dot));
  const auto client = ParsePresenceKeyToken(std::string_view(key).substr(dot + 1));
  if (!channel || !client || *channel != input.substr(0, split) || *client != input.substr(split)) {
    __builtin_trap();
  }
  // Values: user and info come back as they went in.
  const std::string value =
      hermod::store::EncodePresenceValue(input.substr(0, split), input.substr(split));
  const auto entry = hermod::store::DecodePresenceValue(value);
  if (!entry || entry->user != input.substr(0, split) || entry->info != input.substr(split)) {
    __builtin_trap();
  }
  (void)hermod::store::DecodePresenceValue(input);  // any bytes: no crash
  return 0;
}
