// /emulation's request decoder (proto/emulation_request.h) on arbitrary bytes, as JSON and as
// Protobuf: it answers for every input, never crashes, and what it accepts has a node, a
// session and data, each within the input's size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/emulation_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hermod::proto;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const bool protobuf : {false, true}) {
    EmulationRequest request;
    std::string why;
    if (DecodeEmulationRequest(input, protobuf, &request, &why)) {
      if (request.node.empty() || request.session.empty() || request.data.empty()) std::abort();
      if (request.node.size() + request.session.size() + request.data.size() > size) std::abort();
    } else if (why.empty()) {
      std::abort();
    }
  }
  return 0;
}
