// The fossil delta codec (core/fossil_delta.h) on arbitrary bytes: the input split in two is
// a source and a target, whose delta must rebuild the target exactly; the input as a delta
// against its first half must be refused or applied, never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/fossil_delta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hermod::core;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.empty()) return 0;
  const size_t split = static_cast<uint8_t>(input[0]) * (input.size() - 1) / 255 + 1;
  const std::string_view source = input.substr(1, split - 1);
  const std::string_view target = input.substr(split);
  const std::string delta = FossilDelta(source, target);
  const auto rebuilt = ApplyFossilDelta(source, delta);
  if (!rebuilt || *rebuilt != target) std::abort();
  // Source doubled: copies become likely, and must still be exact.
  const std::string doubled = std::string(source) + std::string(source);
  const auto again = ApplyFossilDelta(doubled, FossilDelta(doubled, target));
  if (!again || *again != target) std::abort();
  (void)ApplyFossilDelta(source, input.substr(1));
  return 0;
}
