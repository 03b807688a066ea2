// The server API's body parsing on arbitrary bytes: the first byte picks the method (batch
// among them; one past the list is an unknown method, so nested commands are reached), the rest is
// the body. Every input must get a status (200, 400 or 404) and, for 200, a JSON object; never a
// crash. The hub has no loops, and the per-client methods are recorded, not run.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/server_api.h"
#include "proto/json_syntax.h"
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
  constexpr size_t kCount = std::size(ServerApi::kMethods);
  const size_t pick = data[0] % (kCount + 1);
  std::string_view method = pick < kCount ? ServerApi::kMethods[pick] : "nosuch";
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string out;
  const int status = api.Call(method, body, out);
  if (status != 200 && status != 400 && status != 404) std::abort();
  // A 200 answer is one JSON object. Checked by syntax alone: history answers carry
  // publication data verbatim, whose numbers may be of any size.
  if (status == 200 && (out.empty() || out.front() != '{' || !hermod::proto::IsJson(out))) {
    std::abort();
  }
  return 0;
}
