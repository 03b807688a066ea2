// The broker's wire format: one NATS message payload per publication, join or leave.
//
//   byte 0      version (1)
//   byte 1      kind: 1 publication, 2 join, 3 leave
//   byte 2      flags: bits 0-1 priority (net::Priority: 0 critical .. 3 low), bit 2 skip_history,
//               bit 3 delta (set only when asked: nodes that predate it drop such a message),
//               bit 4 key (a scheduled firing's key follows the tags; likewise)
//   bytes 3-10  the sending node's id, little endian
//   then channel, data, info, tags (and key with bit 4): each a LEB128 length and that many
//   bytes
//
// Binary and length-prefixed: nothing is escaped or parsed twice, data (JSON) rides as is, a
// small publication costs 15 bytes of framing. A receiver drops (and counts) anything that
// does not decode exactly: a peer of another version, or garbage on the subject.
//
// Kind 4, a lost notice (lost_channels.h), travels only on `<prefix>.lost`, never on a channel
// subject, so a node that predates it never sees one:
//
//   byte 0      version (1)
//   byte 1      kind: 4 lost
//   byte 2      flags: bit 0 all (every channel; no channel follows)
//   bytes 3-10  the sending node's id, little endian
//   then one or more channels (none with bit 0): each a LEB128 length and that many bytes
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/broker.h"

namespace hermod::broker {

inline constexpr uint8_t kWireVersion = 1;

std::string Encode(uint64_t node, const core::BrokerMessage& message);
// Encode(node, message).size(), without encoding.
size_t EncodedSize(const core::BrokerMessage& message);
// Views into bytes; false when bytes are not exactly one message of this version.
bool Decode(std::string_view bytes, uint64_t* node, core::BrokerMessage* message);
// The channel of a message this node encoded (its first field), without decoding the rest.
std::string_view EncodedChannel(std::string_view bytes);

// A lost notice: the channels (or all of them) whose publications this node may have failed to
// get to the other nodes.
struct LostNotice {
  bool all = false;
  std::vector<std::string_view> channels;  // empty when all
};
std::string EncodeLost(uint64_t node, const LostNotice& notice);
// Views into bytes; false unless bytes are exactly one lost notice (all, or at least one
// channel, none empty).
bool DecodeLost(std::string_view bytes, uint64_t* node, LostNotice* notice);

}  // namespace hermod::broker
