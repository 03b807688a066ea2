// A backend's answer to a proxy call (proxy/codec.h's ParseReply) on arbitrary bytes: the first
// byte picks the event (connect, refresh, subscribe, publish, sub_refresh, rpc), the rest is
// the answer body. Every input must end as a result, an error with a code in 400..1999, a
// disconnect with a code in 4000..4999 and a reason of at most 32 bytes, or an invalid answer;
// what a result carries through to a client (data, info) must be JSON; never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "json/syntax.h"
#include "proxy/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hermod::proxy::Outcome;
  if (size == 0) return 0;
  const auto kind = static_cast<hermod::proxy::Kind>(data[0] % hermod::proxy::kKinds);
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  hermod::proxy::Reply reply;
  hermod::proxy::ParseReply(kind, body, &reply);
  switch (reply.outcome) {
    case Outcome::kOk:
      if (!reply.data.empty() && !hermod::json::IsJson(reply.data)) std::abort();
      if (!reply.claims.info.empty() && !hermod::json::IsJson(reply.claims.info)) std::abort();
      break;
    case Outcome::kError:
      if (reply.error_code < 400 || reply.error_code > 1999) std::abort();
      break;
    case Outcome::kDisconnect:
      if (reply.disconnect_code < 4000 || reply.disconnect_code > 4999) std::abort();
      if (reply.disconnect_reason.size() > 32) std::abort();
      break;
    case Outcome::kInvalid:
      break;
    default:
      std::abort();  // the parser decides only between these four
  }
  return 0;
}
