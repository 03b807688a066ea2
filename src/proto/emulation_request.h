// The body of a POST to /emulation (Centrifugo's EmulationRequest): the commands a client of
// an emulated transport (http_stream, sse) sends for the session its stream belongs to.
// Pure functions, no loop (fuzzed: fuzz_emulation_request).
//
// JSON (any Content-Type but application/octet-stream): {"node":"...","session":"...",
// "data":"<commands>"}, data a JSON string holding the JSON protocol's newline-separated
// commands, as the SDK sends it (an object or array is taken as its JSON text). Protobuf:
// fields node = 1, session = 2 (strings), data = 3 (bytes: length-delimited Commands).
#pragma once

#include <string>
#include <string_view>

namespace hermod::proto {

struct EmulationRequest {
  std::string node;
  std::string session;
  std::string data;
};

// False, with why (a short phrase for the 400 and the log), when body is not one: not the
// format's syntax, a field of the wrong type, or node, session or data missing or empty.
bool DecodeEmulationRequest(std::string_view body, bool protobuf, EmulationRequest* out,
                            std::string* why);

}  // namespace hermod::proto
