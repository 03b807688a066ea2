// The Protobuf command decoder on arbitrary bytes: it must return a status for every input,
// never crash nor read past the message, and every view it hands out must lie inside the
// message (or, for binary data, be the marked base64 form). What it decodes also goes
// through the reply encoder's input shape: a JSON publication built from the data.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/encode.h"
#include "proto/protobuf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static hermod::proto::ProtobufCommandParser parser;
  static hermod::proto::ProtobufReplyEncoder encoder;
  std::string_view message(reinterpret_cast<const char*>(data), size);
  parser.Reset(message);
  hermod::proto::Command command;
  for (int i = 0; i < 1000; ++i) {
    hermod::proto::ParseStatus status = parser.Next(&command);
    if (status != hermod::proto::ParseStatus::kOk) break;
    if (command.method == hermod::proto::Method::kPublish && !command.data.empty()) {
      // A publication of that data encodes to Protobuf again (the fan-out's path).
      std::string json;
      hermod::proto::AppendPublicationPush(json, command.channel,
                                           hermod::proto::PublicationJson(command.data, {}, 1));
      std::string out;
      if (!encoder.Append(json, out)) std::abort();
    }
  }
  return 0;
}
