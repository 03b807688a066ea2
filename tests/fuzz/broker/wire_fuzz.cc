// The broker's wire decoder: what another node (or anything else on the NATS subject) sends.
// Any bytes either decode or are refused; a decoded message encodes again and decodes to
// the same fields. Nothing may crash or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hermod::core::BrokerMessage;
  const std::string input(reinterpret_cast<const char*>(data), size);
  uint64_t node = 0;
  BrokerMessage m;
  if (!hermod::broker::Decode(input, &node, &m)) return 0;
  const std::string again = hermod::broker::Encode(node, m);
  uint64_t node2 = 0;
  BrokerMessage m2;
  if (!hermod::broker::Decode(again, &node2, &m2)) __builtin_trap();
  if (node2 != node || m2.kind != m.kind || m2.priority != m.priority ||
      m2.skip_history != m.skip_history || m2.channel != m.channel || m2.data != m.data ||
      m2.info != m.info || m2.tags != m.tags) {
    __builtin_trap();
  }
  return 0;
}
