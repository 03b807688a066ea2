// Centrifugo's configuration keys, so that a Centrifugo v5 (flat) or v6 (nested) JSON config
// starts hermod. config.cc reads hermod's own keys first; a key it does not know is looked up
// here and is one of three kinds:
//   - mapped: hermod has the same setting under another name or shape (`address` is `bind`,
//     v6 `http_api.key` is `api_key`); the value is converted and applied;
//   - same: hermod always behaves as one value of the key (`prometheus`: true, `engine`:
//     "memory"); that value is accepted silently, any other is unsupported;
//   - unsupported: hermod has no such feature yet; the key is ignored with one warning line
//     naming it (hermod checkconfig --strict and serve --strict refuse it instead).
// A key that asks for nothing (false, "", 0, [], {} or null, or its Centrifugo default) needs
// no feature, so it is accepted without a warning. The lists come from Centrifugo v5.4's
// configuration defaults and namespace options and from v6's configuration types;
// docs/centrifugo.md is the reader's version of this file.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace hermod::config::centrifugo {

enum class Kind : uint8_t { kMapped, kMappedMs, kSame, kUnsupported };

struct Key {
  std::string_view path;  // v5: the flat key; v6: the dotted path ("client.token.hmac_secret_key")
  Kind kind;
  // kMapped and kMappedMs: the hermod key the value goes to (kMappedMs: a Centrifugo duration
  // into a hermod key in milliseconds). kSame: the value hermod behaves as, as compact JSON
  // text; empty: any value (the key changes nothing in hermod).
  std::string_view target;
  // v5: Centrifugo's default, as compact JSON. An unsupported key at its default asks for
  // nothing either (Centrifugo behaves as without it), so it is not reported.
  std::string_view centrifugo_default = {};
};

// A v5 key and its default, as compact JSON.
struct Default {
  std::string_view key;
  std::string_view json;
};

// A key of Centrifugo v5's flat config (or of a v6 section), or nullopt when Centrifugo has
// no such key. Unlisted v5 keys are kUnsupported; a path under a v6 section that is not in
// the v6 table is kUnsupported too (v6's tree is large and grows; hermod maps what it has).
std::optional<Key> FindV5(std::string_view key);
std::optional<Key> FindV6(std::string_view path);
// A top-level key that opens a v6 section (client, channel, http_api, engine, ...), or a v5
// key that is an object of dotted keys (nats_tls, nats_raw_mode, ...).
bool IsV6Section(std::string_view key);
bool IsV5Section(std::string_view key);
// A channel option of a Centrifugo v5 or v6 namespace (proxy_subscribe, allow_positioning...).
bool IsNamespaceKey(std::string_view key);
// Centrifugo spells some values differently: log level "none" is hermod's "off", broker ""
// (v5's default) is hermod's memory broker, address "" is bind 0.0.0.0. The hermod value for a
// Centrifugo one, or the value itself.
std::string_view TranslateValue(std::string_view hermod_key, std::string_view value);

// The tables, for tests and documentation.
std::span<const Default> V5Keys();
std::span<const std::string_view> NamespaceKeys();
std::span<const Key> V5Table();  // the v5 keys that are mapped or same (others: unsupported)
std::span<const Key> V6Table();  // the v6 paths that are mapped or same

}  // namespace hermod::config::centrifugo
