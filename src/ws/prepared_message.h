// A message encoded once for many receivers: the fan-out path. The complete frame is built
// once into a refcounted net::Chunk that every receiver's output queue references; for
// receivers that negotiated permessage-deflate with server_no_context_takeover, the
// compressed frame is also built once (on first need, by whichever loop needs it first) and
// shared the same way. Receivers that keep a compression context of their own cannot share
// and compress for themselves (WebSocketConnection::SendPrepared decides).
//
// Immutable once built, so any loop may send it; hold it by std::shared_ptr<const ...>.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "net/output_queue.h"
#include "ws/frame.h"

namespace hermod::ws {

class PreparedMessage {
 public:
  // window_bits: the deflate window used for the shared compressed frame (the configured
  // server_max_window_bits); receivers that negotiated less compress on their own.
  PreparedMessage(Opcode opcode, std::string_view payload, int level, int window_bits);
  ~PreparedMessage();
  PreparedMessage(const PreparedMessage&) = delete;
  PreparedMessage& operator=(const PreparedMessage&) = delete;

  Opcode opcode() const { return opcode_; }
  std::string_view payload() const;
  // The uncompressed frame (header + payload), and its header's length.
  net::Chunk* frame() const { return frame_; }
  size_t header_len() const { return header_len_; }
  // The compressed frame (RSV1 set), built on first call; thread-safe.
  net::Chunk* deflated_frame() const;
  int window_bits() const { return window_bits_; }

 private:
  Opcode opcode_;
  int level_;
  int window_bits_;
  size_t header_len_;
  net::Chunk* frame_;
  mutable std::once_flag deflate_once_;
  mutable net::Chunk* deflated_ = nullptr;
};

}  // namespace hermod::ws
