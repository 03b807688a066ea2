// The WebSocket codec's hot paths, per byte: frame header encoding (the fan-out path writes
// one per publication), masking (every byte a client sends), the message reader in both roles
// and UTF-8 validation of text messages; and the opening handshake's accept key (one per
// connect: SHA-1 and base64).
#include <benchmark/benchmark.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "ws/frame_encoder.h"
#include "ws/handshake.h"
#include "ws/mask.h"
#include "ws/message_reader.h"
#include "ws/utf8.h"

namespace {

using hermod::ws::Opcode;

constexpr std::array<uint8_t, 4> kMask = {0x12, 0x34, 0x56, 0x78};

class CountingHandler final : public hermod::ws::MessageHandler {
 public:
  void OnMessage(Opcode, std::string_view payload) override { bytes += payload.size(); }
  void OnPing(std::string_view) override {}
  void OnPong(std::string_view) override {}
  void OnClose(uint16_t, std::string_view) override {}
  size_t bytes = 0;
};

void BM_EncodeFrameHeader(benchmark::State& state) {
  hermod::ws::FrameHeaderSpec spec;
  spec.payload_len = static_cast<uint64_t>(state.range(0));
  uint8_t out[hermod::ws::kMaxFrameHeader];
  for (auto _ : state) {
    benchmark::DoNotOptimize(hermod::ws::EncodeFrameHeader(spec, out));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodeFrameHeader)->Arg(20)->Arg(1000)->Arg(70000);

void BM_AppendMaskedFrame(benchmark::State& state) {
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  std::string out;
  hermod::ws::FrameHeaderSpec spec;
  spec.payload_len = payload.size();
  spec.mask = kMask;
  for (auto _ : state) {
    out.clear();
    hermod::ws::AppendFrame(out, spec, payload);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_AppendMaskedFrame)->Arg(20)->Arg(1024)->Arg(65536);

void BM_ApplyMask(benchmark::State& state) {
  std::vector<uint8_t> data(static_cast<size_t>(state.range(0)), 'a');
  for (auto _ : state) {
    hermod::ws::ApplyMask(data.data(), data.size(), kMask, 0);
    benchmark::DoNotOptimize(data.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ApplyMask)->Arg(20)->Arg(1024)->Arg(65536);

// 64 frames of range(0) bytes each, fed at once; masked (server role) or not (client role).
void ReaderBench(benchmark::State& state, bool masked) {
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  std::string wire;
  hermod::ws::FrameHeaderSpec spec;
  spec.opcode = Opcode::kBinary;
  spec.payload_len = payload.size();
  if (masked) spec.mask = kMask;
  for (int i = 0; i < 64; ++i) hermod::ws::AppendFrame(wire, spec, payload);
  std::vector<uint8_t> buf(wire.size());
  hermod::ws::ReaderLimits limits;
  limits.expect_masked = masked;
  CountingHandler handler;
  hermod::ws::MessageReader reader;
  for (auto _ : state) {
    std::memcpy(buf.data(), wire.data(), wire.size());  // Feed unmasks in place
    reader.Feed(buf.data(), buf.size(), limits, handler, nullptr, false);
  }
  benchmark::DoNotOptimize(handler.bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(wire.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 64);
}
void BM_ReadFramesServerRole(benchmark::State& state) { ReaderBench(state, true); }
void BM_ReadFramesClientRole(benchmark::State& state) { ReaderBench(state, false); }
BENCHMARK(BM_ReadFramesServerRole)->Arg(20)->Arg(1024)->Arg(16384);
BENCHMARK(BM_ReadFramesClientRole)->Arg(20)->Arg(1024)->Arg(16384);

void Utf8Bench(benchmark::State& state, const std::string& unit) {
  std::string text;
  while (text.size() < static_cast<size_t>(state.range(0))) text += unit;
  for (auto _ : state) benchmark::DoNotOptimize(hermod::ws::IsValidUtf8(text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
}
void BM_Utf8Ascii(benchmark::State& state) { Utf8Bench(state, "{\"channel\":\"news\"}"); }
void BM_Utf8Mixed(benchmark::State& state) {
  Utf8Bench(state, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 ");
}
BENCHMARK(BM_Utf8Ascii)->Arg(64)->Arg(4096)->Arg(65536);
BENCHMARK(BM_Utf8Mixed)->Arg(64)->Arg(4096)->Arg(65536);

void BM_Utf8Stream(benchmark::State& state) {
  std::string text;
  while (text.size() < static_cast<size_t>(state.range(0))) text += "h\xc3\xa9llo \xe2\x82\xac ";
  for (auto _ : state) {
    hermod::ws::Utf8Stream s;
    benchmark::DoNotOptimize(s.Feed(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_Utf8Stream)->Arg(4096);

void BM_AcceptKey(benchmark::State& state) {
  std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  for (auto _ : state) {
    key[0] = static_cast<char>('A' + (state.iterations() % 26));
    benchmark::DoNotOptimize(hermod::ws::AcceptKey(key));
  }
}
BENCHMARK(BM_AcceptKey);

}  // namespace
