#include "ws/frame_encoder.h"

#include <gtest/gtest.h>

#include <string>

#include "ws/utf8.h"

namespace hermod::ws {
namespace {

std::string Header(const FrameHeaderSpec& spec) {
  uint8_t out[kMaxFrameHeader];
  const size_t n = EncodeFrameHeader(spec, out);
  return std::string(reinterpret_cast<char*>(out), n);
}

TEST(EncodeFrameHeader, Uses7BitLengthUpTo125) {
  FrameHeaderSpec spec;
  spec.payload_len = 125;
  EXPECT_EQ(Header(spec), std::string("\x81\x7d", 2));
  spec.payload_len = 0;
  EXPECT_EQ(Header(spec), std::string("\x81\x00", 2));
}

TEST(EncodeFrameHeader, Uses16BitLengthFrom126To65535) {
  FrameHeaderSpec spec;
  spec.opcode = Opcode::kBinary;
  spec.payload_len = 126;
  EXPECT_EQ(Header(spec), std::string("\x82\x7e\x00\x7e", 4));
  spec.payload_len = 65535;
  EXPECT_EQ(Header(spec), std::string("\x82\x7e\xff\xff", 4));
}

TEST(EncodeFrameHeader, Uses64BitLengthFrom65536) {
  FrameHeaderSpec spec;
  spec.opcode = Opcode::kBinary;
  spec.payload_len = 65536;
  EXPECT_EQ(Header(spec), std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  spec.payload_len = 0x0123456789abcdefULL;
  EXPECT_EQ(Header(spec), std::string("\x82\x7f\x01\x23\x45\x67\x89\xab\xcd\xef", 10));
}

TEST(EncodeFrameHeader, SetsFinRsv1AndOpcodeBits) {
  FrameHeaderSpec spec;
  spec.opcode = Opcode::kContinuation;
  spec.fin = false;
  EXPECT_EQ(Header(spec)[0], '\x00');
  spec.opcode = Opcode::kText;
  spec.rsv1 = true;
  EXPECT_EQ(Header(spec)[0], '\x41');
  spec.fin = true;
  spec.opcode = Opcode::kPing;
  spec.rsv1 = false;
  EXPECT_EQ(Header(spec)[0], '\x89');
}

TEST(EncodeFrameHeader, WritesMaskBitAndKeyForClients) {
  FrameHeaderSpec spec;
  spec.payload_len = 300;
  spec.mask = std::array<uint8_t, 4>{1, 2, 3, 4};
  EXPECT_EQ(Header(spec), std::string("\x81\xfe\x01\x2c\x01\x02\x03\x04", 8));
  spec.payload_len = 1ULL << 32;
  EXPECT_EQ(Header(spec).size(), kMaxFrameHeader);
}

TEST(AppendFrame, MasksThePayloadAfterTheHeader) {
  std::string out = "prefix";
  FrameHeaderSpec spec;
  spec.mask = std::array<uint8_t, 4>{0xff, 0x00, 0xff, 0x00};
  AppendFrame(out, spec, "abcde");
  const std::string want =
      std::string("prefix\x81\x85\xff\x00\xff\x00", 12) +
      std::string{static_cast<char>('a' ^ 0xff), 'b', static_cast<char>('c' ^ 0xff), 'd',
                  static_cast<char>('e' ^ 0xff)};
  EXPECT_EQ(out, want);
}

TEST(AppendFrame, TakesThePayloadLengthFromThePayload) {
  std::string out;
  FrameHeaderSpec spec;
  spec.opcode = Opcode::kBinary;
  spec.payload_len = 999;  // ignored
  AppendFrame(out, spec, std::string(200, 'x'));
  EXPECT_EQ(out.substr(0, 4), std::string("\x82\x7e\x00\xc8", 4));
  EXPECT_EQ(out.size(), 204u);
}

TEST(ClosePayload, IsCodeInNetworkOrderThenReason) {
  EXPECT_EQ(ClosePayload(1000, "bye"), std::string("\x03\xe8"
                                                   "bye",
                                                   5));
  EXPECT_EQ(ClosePayload(4999, ""), std::string("\x13\x87", 2));
}

TEST(ClosePayload, CutsALongReasonTo123Bytes) {
  const std::string payload = ClosePayload(1001, std::string(500, 'a'));
  EXPECT_EQ(payload.size(), kMaxControlPayload);
}

TEST(ClosePayload, CutsAtACodePointBoundary) {
  // 122 ASCII bytes then a 3-byte code point: byte 123 would split it.
  std::string reason = std::string(122, 'a') + "\xe2\x82\xac" + "tail";
  std::string payload = ClosePayload(1000, reason);
  EXPECT_EQ(payload.size(), 2u + 122u);
  EXPECT_TRUE(IsValidUtf8(payload.substr(2)));
  // 41 three-byte code points = 123 bytes exactly: all kept.
  std::string euros;
  for (int i = 0; i < 45; ++i) euros += "\xe2\x82\xac";
  payload = ClosePayload(1000, euros);
  EXPECT_EQ(payload.size(), 2u + 123u);
  EXPECT_TRUE(IsValidUtf8(payload.substr(2)));
  // 4-byte code points: 30 fit (120 bytes), the 31st would pass 123.
  std::string emoji;
  for (int i = 0; i < 40; ++i) emoji += "\xf0\x9f\x98\x80";
  payload = ClosePayload(1000, emoji);
  EXPECT_EQ(payload.size(), 2u + 120u);
  EXPECT_TRUE(IsValidUtf8(payload.substr(2)));
}

}  // namespace
}  // namespace hermod::ws
