#include "broker/wire.h"

namespace hermod::broker {

namespace {

constexpr size_t kHeader = 11;
constexpr uint8_t kPriorityMask = 3;
constexpr uint8_t kSkipHistory = 4;
constexpr uint8_t kDelta = 8;
constexpr uint8_t kKey = 16;
constexpr uint8_t kLostKind = 4;
constexpr uint8_t kLostAll = 1;

void PutNode(std::string& out, uint64_t node) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((node >> (8 * i)) & 0xff);
}

uint64_t TakeNode(std::string_view header) {
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i)
    id |= static_cast<uint64_t>(static_cast<uint8_t>(header[3 + i])) << (8 * i);
  return id;
}

void PutLength(std::string& out, uint64_t n) {
  while (n >= 0x80) {
    out += static_cast<char>((n & 0x7f) | 0x80);
    n >>= 7;
  }
  out += static_cast<char>(n);
}

void PutField(std::string& out, std::string_view field) {
  PutLength(out, field.size());
  out.append(field);
}

// Reads a length-prefixed field from the front of *in.
bool TakeField(std::string_view* in, std::string_view* field) {
  uint64_t n = 0;
  for (int shift = 0;; shift += 7) {
    if (in->empty() || shift > 28) return false;  // fields are below 2^32 bytes
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    n |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (n > in->size()) return false;
  *field = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

std::string Encode(uint64_t node, const core::BrokerMessage& m) {
  std::string out;
  out.reserve(kHeader + 16 + m.channel.size() + m.data.size() + m.info.size() + m.tags.size());
  out += static_cast<char>(kWireVersion);
  out += static_cast<char>(m.kind);
  out += static_cast<char>((static_cast<uint8_t>(m.priority) & kPriorityMask) |
                           (m.skip_history ? kSkipHistory : 0) | (m.delta ? kDelta : 0) |
                           (m.key.empty() ? 0 : kKey));
  PutNode(out, node);
  PutField(out, m.channel);
  PutField(out, m.data);
  PutField(out, m.info);
  PutField(out, m.tags);
  if (!m.key.empty()) PutField(out, m.key);
  return out;
}

size_t EncodedSize(const core::BrokerMessage& m) {
  auto field = [](std::string_view f) {
    size_t n = 1;
    for (uint64_t size = f.size(); size >= 0x80; size >>= 7) ++n;
    return n + f.size();
  };
  return kHeader + field(m.channel) + field(m.data) + field(m.info) + field(m.tags) +
         (m.key.empty() ? 0 : field(m.key));
}

bool Decode(std::string_view in, uint64_t* node, core::BrokerMessage* m) {
  if (in.size() < kHeader || static_cast<uint8_t>(in[0]) != kWireVersion) return false;
  const auto kind = static_cast<uint8_t>(in[1]);
  if (kind < 1 || kind > 3) return false;
  const auto flags = static_cast<uint8_t>(in[2]);
  if ((flags & ~(kPriorityMask | kSkipHistory | kDelta | kKey)) != 0) return false;
  const uint64_t id = TakeNode(in);
  in.remove_prefix(kHeader);
  core::BrokerMessage out;
  out.kind = static_cast<core::BrokerMessageKind>(kind);
  out.priority = static_cast<net::Priority>(flags & kPriorityMask);  // all four are valid
  out.skip_history = (flags & kSkipHistory) != 0;
  out.delta = (flags & kDelta) != 0;
  if (!TakeField(&in, &out.channel) || !TakeField(&in, &out.data) || !TakeField(&in, &out.info) ||
      !TakeField(&in, &out.tags) || ((flags & kKey) != 0 && !TakeField(&in, &out.key)) ||
      !in.empty() || out.channel.empty()) {
    return false;
  }
  *node = id;
  *m = out;
  return true;
}

std::string_view EncodedChannel(std::string_view bytes) {
  if (bytes.size() < kHeader) return {};
  bytes.remove_prefix(kHeader);
  std::string_view channel;
  return TakeField(&bytes, &channel) ? channel : std::string_view();
}

std::string EncodeLost(uint64_t node, const LostNotice& notice) {
  std::string out;
  out += static_cast<char>(kWireVersion);
  out += static_cast<char>(kLostKind);
  out += static_cast<char>(notice.all ? kLostAll : 0);
  PutNode(out, node);
  if (notice.all) return out;
  for (std::string_view channel : notice.channels) PutField(out, channel);
  return out;
}

bool DecodeLost(std::string_view in, uint64_t* node, LostNotice* notice) {
  if (in.size() < kHeader || static_cast<uint8_t>(in[0]) != kWireVersion ||
      static_cast<uint8_t>(in[1]) != kLostKind) {
    return false;
  }
  const auto flags = static_cast<uint8_t>(in[2]);
  if ((flags & ~kLostAll) != 0) return false;
  const uint64_t id = TakeNode(in);
  in.remove_prefix(kHeader);
  LostNotice out;
  out.all = (flags & kLostAll) != 0;
  while (!in.empty()) {
    std::string_view channel;
    if (out.all || !TakeField(&in, &channel) || channel.empty()) return false;
    out.channels.push_back(channel);
  }
  if (!out.all && out.channels.empty()) return false;
  *node = id;
  *notice = std::move(out);
  return true;
}

}  // namespace hermod::broker
