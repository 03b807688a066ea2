// The client protocol's command parser on arbitrary bytes: it must return a status for
// every input, never crash, and every view it hands out must lie inside the message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static hermod::proto::CommandParser parser;
  std::string_view message(reinterpret_cast<const char*>(data), size);
  parser.Reset(message);
  hermod::proto::Command command;
  for (int i = 0; i < 1000; ++i) {
    hermod::proto::ParseStatus status = parser.Next(&command);
    if (status != hermod::proto::ParseStatus::kOk) break;
    // data is raw JSON text: when present, it is never empty and never starts with space.
    if (!command.data.empty() && command.data.front() == ' ') std::abort();
  }
  return 0;
}
