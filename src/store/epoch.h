// A channel stream's epoch, shared by the history engines.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace hermod::store {

// A new stream's epoch: 8 random hex digits, so a client never mistakes a restarted or
// recreated stream for its own.
inline std::string NewEpoch() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string epoch(8, '0');
  uint64_t bits = random();
  for (char& ch : epoch) {
    ch = kHex[bits & 15];
    bits >>= 4;
  }
  return epoch;
}

}  // namespace hermod::store
