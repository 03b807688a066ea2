#include "ws/mask.h"

#include <gtest/gtest.h>

#include <vector>

namespace hermod::ws {
namespace {

constexpr std::array<uint8_t, 4> kKey = {0x37, 0xfa, 0x21, 0x3d};

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + 7);
  return v;
}

TEST(ApplyMask, MatchesBytewiseXorForEveryLengthOffsetAndPhase) {
  for (size_t offset = 0; offset < 16; ++offset) {
    for (size_t len = 0; len < 300; ++len) {
      for (size_t phase = 0; phase < 4; ++phase) {
        std::vector<uint8_t> buf = Pattern(offset + len + 8);
        std::vector<uint8_t> want = buf;
        for (size_t i = 0; i < len; ++i) want[offset + i] ^= kKey[(phase + i) % 4];
        const size_t next = ApplyMask(buf.data() + offset, len, kKey, phase);
        ASSERT_EQ(buf, want) << "offset " << offset << " len " << len << " phase " << phase;
        ASSERT_EQ(next, (phase + len) % 4);
      }
    }
  }
}

TEST(ApplyMask, PiecesWithCarriedPhaseEqualOneCall) {
  std::vector<uint8_t> whole = Pattern(1000);
  std::vector<uint8_t> pieces = whole;
  ApplyMask(whole.data(), whole.size(), kKey);
  size_t phase = 0;
  size_t pos = 0;
  for (size_t step : {1, 3, 64, 5, 17, 200, 2, 100}) {
    phase = ApplyMask(pieces.data() + pos, step, kKey, phase);
    pos += step;
  }
  ApplyMask(pieces.data() + pos, pieces.size() - pos, kKey, phase);
  EXPECT_EQ(whole, pieces);
}

TEST(ApplyMask, TwiceRestoresTheInput) {
  std::vector<uint8_t> buf = Pattern(4096 + 3);
  const std::vector<uint8_t> original = buf;
  ApplyMask(buf.data() + 1, buf.size() - 1, kKey, 2);
  EXPECT_NE(buf, original);
  ApplyMask(buf.data() + 1, buf.size() - 1, kKey, 2);
  EXPECT_EQ(buf, original);
}

}  // namespace
}  // namespace hermod::ws
