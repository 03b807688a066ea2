// Turns the bytes of one WebSocket connection into messages and control frames
// (RFC 6455 §5), for either role: a server requires masked frames, a client (hermod-bench)
// unmasked ones.
//
// The reader keeps only a few dozen bytes of state between reads, so that an idle
// connection stays small: the bytes of a frame header split across reads, the position in
// the current frame, and the message assembled so far. The fast path needs none of it: a
// whole unfragmented frame in the loop's read buffer is unmasked in place and handed to the
// handler as a span of that buffer, with no copy. Only a message that spans reads or
// fragments is copied, into a buffer the reader allocates for that message and frees after.
//
// Every protocol failure ends the reader with a close code (from frame.h): the caller sends
// the Close frame and no further bytes are parsed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ws/frame.h"
#include "ws/utf8.h"

namespace hermod::ws {

class Inflater;

struct ReaderLimits {
  uint64_t max_message_size = 1 << 20;  // after inflation; larger gets 1009
  bool expect_masked = true;            // server role: unmasked frames get 1002
  bool deflate = false;                 // permessage-deflate negotiated: RSV1 allowed
};

// Implemented by the connection. Spans are valid only during the call.
class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  // A complete, validated (and inflated) text or binary message.
  virtual void OnMessage(Opcode opcode, std::string_view payload) = 0;
  virtual void OnPing(std::string_view payload) = 0;
  virtual void OnPong(std::string_view payload) = 0;
  // A valid Close frame; code is 1005 (kNoStatus) when the frame had no payload.
  virtual void OnClose(uint16_t code, std::string_view reason) = 0;
};

struct ReadError {
  CloseCode code;
  std::string_view reason;  // static text for the Close frame and the log
};

class MessageReader {
 public:
  // Consumes all of data (mutable: unmasked in place). Stops early and returns the error at
  // the first protocol failure, and after a Close frame (returns nullopt-equivalent: ok() with
  // closed() true). inflater is used only for compressed messages; reset_inflater tells it
  // to start each message fresh (client_no_context_takeover).
  struct Result {
    bool ok = true;
    ReadError error{CloseCode::kNormal, {}};
  };
  Result Feed(uint8_t* data, size_t len, const ReaderLimits& limits, MessageHandler& handler,
              Inflater* inflater, bool reset_inflater);

  // True after a Close frame or a protocol failure: the reader parses nothing more and Feed
  // returns ok without looking at its input.
  bool closed() const { return closed_; }
  // True while a frame header, frame or fragmented message is incomplete.
  bool mid_message() const;

 private:
  Result Fail(CloseCode code, std::string_view reason);
  Result CheckHeaderStart(uint8_t b0, uint8_t b1, const ReaderLimits& limits,
                          const Inflater* inflater);
  Result StartFrame(const uint8_t* header, const ReaderLimits& limits);
  Result ConsumePayload(uint8_t* payload, size_t n, bool whole_frame, const ReaderLimits& limits,
                        MessageHandler& handler, Inflater* inflater, bool reset_inflater);
  Result OnControlFrame(std::string_view payload, MessageHandler& handler);
  Result DeliverMessage(std::string_view payload, bool utf8_checked, const ReaderLimits& limits,
                        MessageHandler& handler, Inflater* inflater, bool reset_inflater);
  void Release();

  // Frame header bytes split across reads.
  std::array<uint8_t, kMaxFrameHeader> header_{};
  uint8_t header_len_ = 0;
  // Current frame.
  bool in_frame_ = false;
  Opcode frame_opcode_ = Opcode::kContinuation;
  bool frame_fin_ = false;
  std::array<uint8_t, 4> mask_{};
  uint8_t mask_phase_ = 0;
  // Bytes of a control frame split across reads, held at the end of buffer_ (after the data
  // message being assembled, if any) until the frame is complete.
  uint8_t control_len_ = 0;
  uint64_t frame_remaining_ = 0;
  // Current (possibly fragmented) data message.
  Opcode message_opcode_ = Opcode::kContinuation;  // kContinuation: none in progress
  bool message_compressed_ = false;
  bool closed_ = false;
  Utf8Stream utf8_;
  // The message or control frame assembled across reads; null when none is. Allocated for
  // that message and freed after it, so an idle connection holds nothing here.
  std::unique_ptr<std::string> buffer_;
};

}  // namespace hermod::ws
