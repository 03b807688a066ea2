// The one parser of the inbox requests, for the client's RPCs (`hermod.ack`, `hermod.reject`,
// proto/inbox_rpc.cc) and the server API's inbox methods (`inbox_status`, `dead_letters*`,
// api/inbox_api.cc): `{channel?, user?, offsets?, up_to?, reason?, cursor?, limit?}`, each
// caller reading the fields it uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hermod::proto {

struct InboxRequest {
  std::string channel;
  std::string user;
  std::vector<uint64_t> offsets;
  std::optional<uint64_t> up_to;
  std::string reason;   // at most 256 bytes (longer is cut)
  uint64_t cursor = 0;  // a string (as Centrifugo's cursors) or a number
  uint64_t limit = 100;
};

// False when json is not an object of those fields with those types, or has more than
// max_offsets offsets. Uses this thread's parser (no allocation per call once warm).
bool ParseInboxRequest(std::string_view json, InboxRequest* r, size_t max_offsets);

}  // namespace hermod::proto
