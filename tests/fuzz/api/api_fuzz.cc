// The server HTTP API's bodies (src/api) on arbitrary bytes, through ServerApi::Call with a
// real hub on a real (never run) loop: every input gets a 400 or a JSON answer, never a
// crash, a leak or a sanitizer report. The first byte picks the method, the rest is the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/server_api.h"
#include "config/config.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "net/event_loop.h"
#include "proto/prepared_push.h"

namespace {

struct World {
  hermod::config::Config config = [] {
    hermod::config::Config c;
    c.channel.history_size = 10;
    c.channel.history_ttl.ms = 60000;
    c.channel.presence = true;
    hermod::config::Namespace ns;
    ns.name = "ns";
    ns.options = c.channel;
    c.namespaces.push_back(ns);
    return c;
  }();
  hermod::net::Loop loop{0};
  hermod::core::ChannelRules rules{config};
  hermod::core::Hub hub{1, hermod::proto::JsonPushCodec()};
  hermod::api::ServerApi api{hub, rules, "k",
                             [](std::string, std::string, hermod::api::ClientAction) {}};
  World() { hub.AttachLoop(loop); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // lives for the process: the hub keeps history
  if (size == 0) return 0;
  // Every method, and one that does not exist (404).
  constexpr size_t kCount = std::size(hermod::api::ServerApi::kMethods);
  const size_t pick = data[0] % (kCount + 1);
  std::string_view method = pick < kCount ? hermod::api::ServerApi::kMethods[pick] : "nonexistent";
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string out;
  const int status = world->api.Call(method, body, out);
  if (status != 200 && status != 400 && status != 404) std::abort();
  // A 200 always answers with a JSON object (a result, an error, or batch replies).
  if (status == 200 && !out.starts_with("{")) std::abort();
  return 0;
}
