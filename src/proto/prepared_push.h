// The hub's pushes as the client protocol sends them: a JSON push encoded once, framed once
// per transport kind (proto/transport.h). The WebSocket kind's form is built with the push:
// a ws::PreparedMessage, whose frame holds the JSON (so the JSON is held once) and which
// builds the permessage-deflate frame (no context takeover) once, on first need, by
// whichever loop needs it first. Another kind's form is built from the JSON on its first
// subscriber and shared the same way. Every subscriber's output queue references one of
// them: a publication costs one encode and at most one framing (and compression) per kind
// however many subscribers and loops it reaches. Only a WebSocket receiver with a
// compression context of its own (context takeover, or a smaller window than the shared
// frame's) compresses for itself (ws::WebSocketConnection::SendPrepared decides).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/hub.h"
#include "core/push.h"
#include "proto/transport.h"
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

  ~PreparedPush() override;

  // subscriber is a TransportSubscription (only sessions subscribe): its transport sends.
  net::SendStatus SendTo(core::Subscription& subscriber, net::PushClass push = {}) const override;
  size_t size() const override { return message_.payload().size(); }
  std::string_view json() const { return message_.payload(); }
  // The WebSocket kind's form.
  const ws::PreparedMessage& message() const { return message_; }
  // Another kind's form (kind > 0, registered), built on first call; any thread.
  const FramedPush& framed(size_t kind) const {
    const FramedPush* f = framed_[kind].load(std::memory_order_acquire);
    return f != nullptr ? *f : Frame(kind);
  }
  const Carried& carried() const { return carried_; }

  // A publication in a namespace with delta compression: what a delta subscriber gets
  // instead (proto/delta.h), built once for all of them. seq numbers the channel's
  // publications; a subscriber whose last one was base_seq gets the delta form of its
  // format, any other the full form.
  struct DeltaForms {
    uint64_t seq = 0;
    uint64_t base_seq = 0;                    // 0: no delta form
    const PreparedPush* json_full = nullptr;  // data as a JSON string
    const PreparedPush* json_delta = nullptr;
    const PreparedPush* protobuf_delta = nullptr;  // the full form is the push itself
  };
  // Takes over the forms' references.
  void set_delta(const DeltaForms& forms) { delta_ = forms; }

 private:
  const FramedPush& Frame(size_t kind) const;

  ws::PreparedMessage message_;
  Carried carried_;
  DeltaForms delta_;
  mutable std::array<std::atomic<const FramedPush*>, kMaxTransportKinds> framed_{};
};

// The hub's codec for the JSON protocol; its join makes one message of newline-joined pushes.
// deflate_level and deflate_window_bits are the server's permessage-deflate level and
// server_max_window_bits (config websocket.compression).
core::PushCodec JsonPushCodec(int deflate_level = 1, int deflate_window_bits = 15);

}  // namespace hermod::proto
