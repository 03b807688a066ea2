// The core NATS parser (broker/nats_proto.h): what a server, or anything posing as one, sends
// the broker's connection. The input is fed twice: whole, and cut at a point its first two
// bytes pick; what parses whole parses cut, to the same messages. Nothing may crash or read
// out of bounds, and a failed parser stays failed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/nats_proto.h"

namespace {

class Recorder final : public hermod::broker::NatsParser::Handler {
 public:
  void OnInfo(std::string_view json) override {
    log += 'I';
    log += json;
    (void)hermod::broker::InfoMaxPayload(json);
  }
  void OnMsg(std::string_view subject, uint64_t sid, std::string_view reply,
             std::string_view payload) override {
    log += 'M';
    log += subject;
    log += std::to_string(sid);
    log += reply;
    log += payload;
  }
  void OnPing() override { log += 'P'; }
  void OnPong() override { log += 'O'; }
  void OnOk() override { log += 'K'; }
  void OnErr(std::string_view text) override {
    log += 'E';
    log += text;
  }
  std::string log;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hermod::broker::NatsParser;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Recorder whole;
  NatsParser a(whole, 256);
  a.set_max_payload(512);
  const bool a_ok = a.Feed(input);
  Recorder cut;
  NatsParser b(cut, 256);
  b.set_max_payload(512);
  // Two bytes pick the cut: one reaches only the first 256 bytes, never the end of a line of
  // the bound's length.
  const size_t pick = size < 2 ? 0 : data[0] | (size_t{data[1]} << 8);
  const size_t at = pick % (size + 1);
  bool b_ok = b.Feed(input.substr(0, at));
  if (b_ok) b_ok = b.Feed(input.substr(at));
  if (a_ok && (!b_ok || whole.log != cut.log)) __builtin_trap();
  if (!a_ok && a.Feed("PING\r\n")) __builtin_trap();
  return 0;
}
