// The hub's pushes as the WebSocket client protocol sends them: a JSON push encoded once into
// a ws::PreparedMessage, which holds the plain frame and, built once on first need by
// whichever loop needs it first, the permessage-deflate frame (no context takeover). Every
// subscriber's output queue references one of the two: a publication costs one encode and at
// most one compression however many subscribers and loops it reaches. Only a receiver with a
// compression context of its own (context takeover, or a smaller window than the shared
// frame's) compresses for itself (ws::WebSocketConnection::SendPrepared decides).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/hub.h"
#include "core/push.h"
#include "stats/loop_metrics.h"
#include "ws/prepared_message.h"

namespace hermod::proto {

class PreparedPush final : public core::Push {
 public:
  // What a push carries, by type, for the metrics (a coalesced push carries several).
  using Carried = std::array<uint16_t, stats::kPushTypes.size()>;

  PreparedPush(std::string_view json, int deflate_level, int deflate_window_bits,
               const Carried& carried)
      : message_(ws::Opcode::kText, json, deflate_level, deflate_window_bits), carried_(carried) {}

  // The connection must be a ws::WebSocketConnection: only proto's clients subscribe.
  net::SendStatus SendTo(net::Connection& connection, net::PushClass push = {}) const override;
  size_t size() const override { return message_.payload().size(); }
  const ws::PreparedMessage& message() const { return message_; }
  const Carried& carried() const { return carried_; }

 private:
  ws::PreparedMessage message_;
  Carried carried_;
};

// The hub's codec for the JSON protocol; its join makes one message of newline-joined pushes.
// deflate_level and deflate_window_bits are the server's permessage-deflate level and
// server_max_window_bits (config websocket.compression).
core::PushCodec JsonPushCodec(int deflate_level = 1, int deflate_window_bits = 15);

}  // namespace hermod::proto
