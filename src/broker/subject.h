// A channel's NATS subject: `<prefix>.ch.<token>`, where the token is the channel's name made
// safe for NATS. Channel names may hold anything (spaces, '.', '*', '>', non-ASCII bytes, or
// be empty); a NATS subject token may not (no '.', no wildcard, no whitespace, not empty).
//
// The token keeps the bytes [A-Za-z0-9_-:=@+,;~!] as they are and writes every other byte
// as '%' and two upper-case hex digits ('%' itself too); an empty name is the token "%".
// Escaping is injective: ChannelOfToken undoes it. A name whose token would pass
// kMaxEscapedToken bytes (a channel of over 1000 bytes, past the NATS control line's room)
// is "#" and 32 hex digits of a 128-bit hash instead, which cannot be an escaped token ('#'
// is escaped): two such names may share a subject, which only costs the nodes traffic,
// never a wrong delivery (the channel travels in the payload, wire.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hermod::broker {

inline constexpr size_t kMaxEscapedToken = 3000;

// The token alone (one NATS subject token: non-empty, no '.', '*', '>' or whitespace).
std::string SubjectToken(std::string_view channel);
// `<prefix>.ch.<token>`.
std::string ChannelSubject(std::string_view prefix, std::string_view channel);
// The channel an escaped token came from; nullopt for a hashed token or one SubjectToken
// never makes.
std::optional<std::string> ChannelOfToken(std::string_view token);

}  // namespace hermod::broker
