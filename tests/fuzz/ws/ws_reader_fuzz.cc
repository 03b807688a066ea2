// The WebSocket receive path: frames from an untrusted peer, in pieces, in either role, with
// or without permessage-deflate. Input: byte 0 picks the piece size, byte 1 the options, the
// rest is the byte stream. Checked: only 1002/1007/1009 come out as errors; what reaches the
// handler respects the limits and UTF-8; feeding in pieces gives exactly what feeding the
// whole stream gives.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ws/deflate.h"
#include "ws/message_reader.h"
#include "ws/utf8.h"

namespace {

using hermod::ws::CloseCode;
using hermod::ws::Opcode;

class CheckingHandler : public hermod::ws::MessageHandler {
 public:
  explicit CheckingHandler(uint64_t max) : max_(max) {}
  void OnMessage(Opcode opcode, std::string_view payload) override {
    if (opcode != Opcode::kText && opcode != Opcode::kBinary) __builtin_trap();
    if (payload.size() > max_) __builtin_trap();
    if (opcode == Opcode::kText && !hermod::ws::IsValidUtf8(payload)) __builtin_trap();
    log.push_back(static_cast<char>(opcode));
    log.append(payload);
  }
  void OnPing(std::string_view payload) override { Control('P', payload); }
  void OnPong(std::string_view payload) override { Control('O', payload); }
  void OnClose(uint16_t code, std::string_view reason) override {
    if (code != 1005 && !hermod::ws::IsValidReceivedCloseCode(code)) __builtin_trap();
    if (!hermod::ws::IsValidUtf8(reason)) __builtin_trap();
    Control('C', reason);
    log += std::to_string(code);
  }
  std::string log;

 private:
  void Control(char kind, std::string_view payload) {
    if (payload.size() > hermod::ws::kMaxControlPayload) __builtin_trap();
    log.push_back(kind);
    log.append(payload);
  }
  uint64_t max_;
};

struct Run {
  std::string log;
  int error = 0;
};

Run FeedAll(const uint8_t* data, size_t size, size_t step, const hermod::ws::ReaderLimits& limits,
            bool reset) {
  hermod::ws::MessageReader reader;
  hermod::ws::Inflater inflater;
  CheckingHandler handler(limits.max_message_size);
  Run run;
  std::vector<uint8_t> piece;
  for (size_t offset = 0; offset < size; offset += step) {
    piece.assign(data + offset, data + std::min(size, offset + step));
    auto result = reader.Feed(piece.data(), piece.size(), limits, handler,
                              limits.deflate ? &inflater : nullptr, reset);
    if (!result.ok) {
      const auto code = result.error.code;
      if (code != CloseCode::kProtocolError && code != CloseCode::kInvalidPayload &&
          code != CloseCode::kMessageTooBig) {
        __builtin_trap();
      }
      if (!reader.closed() || reader.mid_message()) __builtin_trap();
      run.error = static_cast<int>(code);
      break;
    }
  }
  run.log = std::move(handler.log);
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t step = 1 + data[0] % 32;
  const uint8_t flags = data[1];
  data += 2;
  size -= 2;
  static constexpr uint64_t kMaxSizes[] = {64, 1000, 65536, 1 << 20};
  hermod::ws::ReaderLimits limits;
  limits.expect_masked = !(flags & 1);
  limits.deflate = flags & 2;
  const bool reset = flags & 4;
  limits.max_message_size = kMaxSizes[(flags >> 3) & 3];
  const Run whole = FeedAll(data, size, size == 0 ? 1 : size, limits, reset);
  const Run pieces = FeedAll(data, size, step, limits, reset);
  if (whole.error != pieces.error || whole.log != pieces.log) __builtin_trap();
  return 0;
}
