// The server API's body parsing on arbitrary bytes: the first byte picks the method (batch
// among them; one past the list is the legacy `/api` body, two past an unknown method), the
// rest is the body. Every input must get a status (200, 400 or 404) and, for 200, a JSON
// object (one per line for the legacy body); never a crash. The hub has no loops, and the
// per-client methods are recorded, not run.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/methods.h"
#include "api/server_api.h"
#include "json/syntax.h"
#include "proto/prepared_push.h"
#include "store/engines.h"

namespace {

hermod::config::Config MakeConfig() {
  hermod::config::Config c;
  c.channel.history_size = 4;
  c.channel.history_ttl.ms = 1000;
  c.channel.presence = true;
  c.namespaces.push_back({"ns", {}});
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hermod::api::ServerApi;
  static const hermod::config::Config config = MakeConfig();
  static const hermod::core::ChannelRules rules(config);
  if (size == 0) return 0;
  // A hub per input: idempotency keys and streams from one input never pile up.
  hermod::core::Hub hub(0, hermod::proto::JsonPushCodec(), hermod::store::MemoryStores());
  ServerApi api(hub, rules, "key", [](std::string, std::string, hermod::api::ClientAction) {});
  constexpr size_t kCount = hermod::api::kMethodNames.size();
  const size_t pick = data[0] % (kCount + 2);
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string out;
  const int status = pick == kCount ? api.CallLegacy(body, out)
                                    : api.Call(pick < kCount ? hermod::api::kMethodNames[pick]
                                                             : std::string_view("nosuch"),
                                               body, out);
  if (status != 200 && status != 400 && status != 404) std::abort();
  // A 200 answer is JSON objects, one per line. Checked by syntax alone: history answers
  // carry publication data verbatim, whose numbers may be of any size.
  if (status != 200) return 0;
  if (out.empty()) std::abort();
  for (size_t start = 0; start <= out.size();) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    std::string_view line(out.data() + start, end - start);
    if (line.empty() || line.front() != '{' || !hermod::json::IsJson(line)) std::abort();
    start = end + 1;
  }
  return 0;
}
