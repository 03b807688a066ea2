// RFC 6455 §5 receive path. Feed walks the input once: a frame header (assembled in header_
// when a read cuts it), then its payload, unmasked in place. Three destinations for payload:
//
//  - a whole unfragmented message inside this read goes to the handler as a view of the
//    caller's buffer: no copy, no allocation (the fast path, nearly every message);
//  - data frames of a message that spans reads or fragments are appended to buffer_, which
//    lives only as long as that message;
//  - a control frame cut by a read is appended behind them in the same buffer_ and trimmed
//    off once delivered (§5.4: control frames may arrive in the middle of a message).
//
// Limits are checked from the frame header, before any byte is buffered: a peer cannot make
// the reader hold more than max_message_size (plus deflate's worst-case expansion for a
// compressed message, which is then inflated with max_message_size as the bound). Text is
// validated as it arrives (fail fast, §8.1), compressed text after inflation.
//
// Choices the RFCs leave open: a deflate stream that does not inflate closes with 1007 (the
// payload is inconsistent with the message, §7.4.1), as Autobahn expects; non-minimal length
// encodings are accepted (§5.2 requires minimal ones of senders only in spirit; Autobahn does
// not test it and refusing buys nothing).
#include "ws/message_reader.h"

#include <algorithm>
#include <cstring>

#include "stats/loop_metrics.h"
#include "ws/deflate.h"
#include "ws/mask.h"

namespace hermod::ws {

namespace {

constexpr uint8_t kFinBit = 0x80;
constexpr uint8_t kRsv1Bit = 0x40;
constexpr uint8_t kRsv2And3Bits = 0x30;
constexpr uint8_t kOpcodeBits = 0x0F;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLengthBits = 0x7F;
// Inflated messages share one buffer per thread; past this size it is freed after use.
constexpr size_t kScratchKeepBytes = 256 * 1024;

bool IsControl(uint8_t opcode) { return (opcode & 0x08) != 0; }

bool IsKnownOpcode(uint8_t opcode) { return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA); }

size_t HeaderSize(uint8_t b1) {
  size_t n = (b1 & kMaskBit) ? 6 : 2;
  const uint8_t len = b1 & kLengthBits;
  if (len == 126) n += 2;
  if (len == 127) n += 8;
  return n;
}

// The most compressed bytes a message of max inflated bytes can take: incompressible data in
// stored blocks (5 bytes a block), plus the empty stored block of each sync flush of a client
// that flushes every fragment (§7.2.3.1): an eighth covers a flush every 128 bytes. The
// inflated size is bounded by max itself; this only bounds what is buffered before it.
uint64_t CompressedLimit(uint64_t max) {
  const uint64_t slack = (max >> 3) + 64;
  return max > UINT64_MAX - slack ? UINT64_MAX : max + slack;
}

// Unmasks a payload of the fast path (at most 125 bytes) eight bytes at a time and says
// whether every byte is ASCII: for most text messages that is the whole UTF-8 check, done
// in the same pass (the general path pays ApplyMask's set-up and a second pass).
bool UnmaskShortIsAscii(uint8_t* p, size_t n, uint32_t key) {
  const uint64_t k = (static_cast<uint64_t>(key) << 32) | key;
  uint64_t high = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    w ^= k;
    std::memcpy(p + i, &w, sizeof w);
    high |= w;
  }
  // i is a multiple of 8: the key is in phase for what is left. The tail (under 8 bytes)
  // in at most three steps of 4, 2 and 1 bytes, not byte by byte (~45 instructions fewer
  // for a typical short message).
  if (n - i >= 4) {
    uint32_t w;
    std::memcpy(&w, p + i, sizeof w);
    w ^= key;
    std::memcpy(p + i, &w, sizeof w);
    high |= w;
    i += 4;
  }
  if (n - i >= 2) {
    uint16_t w;
    std::memcpy(&w, p + i, sizeof w);
    w = static_cast<uint16_t>(w ^ key);  // i is a multiple of 4: the key's first two bytes
    std::memcpy(p + i, &w, sizeof w);
    high |= w;
    i += 2;
  }
  if (i < n) {
    p[i] = static_cast<uint8_t>(p[i] ^ (key >> (8 * (i & 3))));
    high |= p[i];
  }
  return (high & 0x8080808080808080ull) == 0;
}

std::string& InflateScratch() {
  thread_local std::string scratch;
  return scratch;
}

}  // namespace

bool MessageReader::mid_message() const {
  return in_frame_ || header_len_ != 0 || message_opcode_ != Opcode::kContinuation;
}

void MessageReader::Release() {
  buffer_.reset();
  header_len_ = 0;
  in_frame_ = false;
  control_len_ = 0;
  message_opcode_ = Opcode::kContinuation;
  message_compressed_ = false;
  utf8_.Reset();
}

MessageReader::Result MessageReader::Fail(CloseCode code, std::string_view reason) {
  closed_ = true;
  Release();
  Result r;
  r.ok = false;
  r.error = ReadError{code, reason};
  return r;
}

// Everything the first two bytes decide (§5.2), checked as soon as they have arrived.
MessageReader::Result MessageReader::CheckHeaderStart(uint8_t b0, uint8_t b1,
                                                      const ReaderLimits& limits,
                                                      const Inflater* inflater) {
  const uint8_t opcode = b0 & kOpcodeBits;
  const bool rsv1 = (b0 & kRsv1Bit) != 0;
  // §5.2: reserved bits need an extension that defines them; only RSV1 has one (RFC 7692).
  if (b0 & kRsv2And3Bits) return Fail(CloseCode::kProtocolError, "reserved bits set");
  if (!IsKnownOpcode(opcode)) return Fail(CloseCode::kProtocolError, "unknown opcode");
  // §5.1: clients mask every frame, servers none.
  const bool masked = (b1 & kMaskBit) != 0;
  if (masked != limits.expect_masked) {
    return Fail(CloseCode::kProtocolError,
                masked ? "masked frame from server" : "unmasked frame from client");
  }
  const uint8_t len7 = b1 & kLengthBits;
  if (IsControl(opcode)) {
    // §5.5: control frames are never fragmented and carry at most 125 bytes.
    if (!(b0 & kFinBit)) return Fail(CloseCode::kProtocolError, "fragmented control frame");
    if (len7 > kMaxControlPayload) return Fail(CloseCode::kProtocolError, "control frame too long");
    // RFC 7692 §6.1: RSV1 marks data messages only.
    if (rsv1) return Fail(CloseCode::kProtocolError, "RSV1 on a control frame");
    // §5.5.1: a Close body starts with a 2-byte code.
    if (opcode == 0x8 && len7 == 1)
      return Fail(CloseCode::kProtocolError, "close payload of 1 byte");
    return {};
  }
  if (opcode == 0x0) {
    // §5.4: continuations follow a first frame; RFC 7692 §6.1: RSV1 only on the first frame.
    if (message_opcode_ == Opcode::kContinuation) {
      return Fail(CloseCode::kProtocolError, "continuation without a message");
    }
    if (rsv1) return Fail(CloseCode::kProtocolError, "RSV1 on a continuation frame");
    return {};
  }
  if (message_opcode_ != Opcode::kContinuation) {
    return Fail(CloseCode::kProtocolError, "new message inside a fragmented message");
  }
  if (rsv1 && !limits.deflate) return Fail(CloseCode::kProtocolError, "RSV1 without deflate");
  if (rsv1 && inflater == nullptr) return Fail(CloseCode::kProtocolError, "no inflater");
  return {};
}

MessageReader::Result MessageReader::StartFrame(const uint8_t* header, const ReaderLimits& limits) {
  const uint8_t b0 = header[0];
  const uint8_t b1 = header[1];
  uint64_t len = b1 & kLengthBits;
  size_t offset = 2;
  if (len == 126) {
    len = static_cast<uint64_t>(header[2]) << 8 | header[3];
    offset = 4;
  } else if (len == 127) {
    len = 0;
    for (size_t i = 0; i < 8; ++i) len = len << 8 | header[2 + i];
    offset = 10;
    // §5.2: the most significant bit of a 64-bit length must be 0.
    if (len >> 63) return Fail(CloseCode::kProtocolError, "64-bit length with the top bit set");
  }
  const uint8_t opcode = b0 & kOpcodeBits;
  if (!IsControl(opcode)) {
    const bool starts = opcode != 0x0;
    const bool compressed = starts ? (b0 & kRsv1Bit) != 0 : message_compressed_;
    const uint64_t so_far = starts || !buffer_ ? 0 : buffer_->size();
    const uint64_t limit =
        compressed ? CompressedLimit(limits.max_message_size) : limits.max_message_size;
    // so_far <= limit holds: every earlier frame of the message passed this check.
    if (len > limit - so_far) return Fail(CloseCode::kMessageTooBig, "message too big");
    if (starts) {
      message_opcode_ = static_cast<Opcode>(opcode);
      message_compressed_ = compressed;
      utf8_.Reset();
    }
  }
  if (b1 & kMaskBit) std::memcpy(mask_.data(), header + offset, 4);
  frame_opcode_ = static_cast<Opcode>(opcode);
  frame_fin_ = (b0 & kFinBit) != 0;
  frame_remaining_ = len;
  mask_phase_ = 0;
  in_frame_ = true;
  return {};
}

MessageReader::Result MessageReader::Feed(uint8_t* data, size_t len, const ReaderLimits& limits,
                                          MessageHandler& handler, Inflater* inflater,
                                          bool reset_inflater) {
  size_t pos = 0;
  while (!closed_) {
    // The fast path, nearly every message a client sends: a whole frame of a short text or
    // binary message in this read (FIN, no RSV bits, masked, 7-bit length), between
    // messages. Unmasked and checked in one pass and handed over in place; nothing of the
    // general path's state (header_, frame and message fields) needs to change.
    if (!in_frame_ && header_len_ == 0 && message_opcode_ == Opcode::kContinuation &&
        limits.expect_masked && len - pos >= 6) {
      const uint8_t b0 = data[pos];
      const uint8_t b1 = data[pos + 1];
      const size_t n = b1 & kLengthBits;
      if ((b0 == (kFinBit | 0x1) || b0 == (kFinBit | 0x2)) && (b1 & kMaskBit) && n < 126 &&
          len - pos - 6 >= n && n <= limits.max_message_size) {
        uint32_t key;
        std::memcpy(&key, data + pos + 2, sizeof key);
        uint8_t* payload = data + pos + 6;
        pos += 6 + n;
        const std::string_view message(reinterpret_cast<const char*>(payload), n);
        const bool ascii = UnmaskShortIsAscii(payload, n, key);
        const Opcode opcode = static_cast<Opcode>(b0 & kOpcodeBits);
        if (opcode == Opcode::kText && !ascii && !IsValidUtf8(message)) {
          return Fail(CloseCode::kInvalidPayload, "invalid UTF-8 in text message");
        }
        handler.OnMessage(opcode, message);
        continue;
      }
    }
    bool fresh = false;
    if (!in_frame_) {
      if (pos == len) break;
      const uint8_t* header;
      if (header_len_ == 0 && len - pos >= 2 && len - pos >= HeaderSize(data[pos + 1])) {
        Result r = CheckHeaderStart(data[pos], data[pos + 1], limits, inflater);
        if (!r.ok) return r;
        header = data + pos;
        pos += HeaderSize(data[pos + 1]);
      } else {
        while (header_len_ < 2 && pos < len) {
          header_[header_len_++] = data[pos++];
          if (header_len_ == 2) {
            Result r = CheckHeaderStart(header_[0], header_[1], limits, inflater);
            if (!r.ok) return r;
          }
        }
        if (header_len_ < 2) break;
        const size_t need = HeaderSize(header_[1]);
        const size_t take = std::min(need - header_len_, len - pos);
        std::memcpy(header_.data() + header_len_, data + pos, take);
        header_len_ = static_cast<uint8_t>(header_len_ + take);
        pos += take;
        if (header_len_ < need) break;
        header = header_.data();
        header_len_ = 0;
      }
      Result r = StartFrame(header, limits);
      if (!r.ok) return r;
      fresh = true;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(frame_remaining_, len - pos));
    if (n == 0 && frame_remaining_ != 0) break;
    uint8_t* payload = data + pos;
    if (limits.expect_masked) {
      mask_phase_ = static_cast<uint8_t>(ApplyMask(payload, n, mask_, mask_phase_));
    }
    pos += n;
    frame_remaining_ -= n;
    if (frame_remaining_ == 0) in_frame_ = false;
    Result r =
        ConsumePayload(payload, n, fresh && !in_frame_, limits, handler, inflater, reset_inflater);
    if (!r.ok) return r;
  }
  return {};
}

// One piece of the current frame's payload (already unmasked); whole_frame when the piece is
// the entire frame.
MessageReader::Result MessageReader::ConsumePayload(uint8_t* payload, size_t n, bool whole_frame,
                                                    const ReaderLimits& limits,
                                                    MessageHandler& handler, Inflater* inflater,
                                                    bool reset_inflater) {
  const bool frame_done = !in_frame_;
  if (IsControl(static_cast<uint8_t>(frame_opcode_))) {
    if (whole_frame) {
      return OnControlFrame({reinterpret_cast<const char*>(payload), n}, handler);
    }
    if (n != 0) {
      if (!buffer_) buffer_ = std::make_unique<std::string>();
      buffer_->append(reinterpret_cast<const char*>(payload), n);
      control_len_ = static_cast<uint8_t>(control_len_ + n);
    }
    if (!frame_done) return {};
    // Non-empty: a control frame with no payload is always a whole frame.
    const std::string_view control(buffer_->data() + buffer_->size() - control_len_, control_len_);
    Result r = OnControlFrame(control, handler);
    if (!r.ok || closed_) return r;
    buffer_->resize(buffer_->size() - control_len_);
    control_len_ = 0;
    if (buffer_->empty()) buffer_.reset();
    return {};
  }

  if (whole_frame && frame_fin_ && frame_opcode_ != Opcode::kContinuation) {
    // The fast path: the whole message is in the caller's buffer.
    return DeliverMessage({reinterpret_cast<const char*>(payload), n}, false, limits, handler,
                          inflater, reset_inflater);
  }
  const bool check_text = message_opcode_ == Opcode::kText && !message_compressed_;
  if (check_text && !utf8_.Feed(payload, n)) {
    return Fail(CloseCode::kInvalidPayload, "invalid UTF-8 in text message");
  }
  if (n != 0) {
    if (!buffer_) buffer_ = std::make_unique<std::string>();
    buffer_->append(reinterpret_cast<const char*>(payload), n);
  }
  if (!frame_done || !frame_fin_) return {};
  if (check_text && !utf8_.Complete()) {
    return Fail(CloseCode::kInvalidPayload, "text message ends inside a code point");
  }
  const std::string_view message = buffer_ ? std::string_view(*buffer_) : std::string_view();
  return DeliverMessage(message, check_text, limits, handler, inflater, reset_inflater);
}

MessageReader::Result MessageReader::DeliverMessage(std::string_view payload, bool utf8_checked,
                                                    const ReaderLimits& limits,
                                                    MessageHandler& handler, Inflater* inflater,
                                                    bool reset_inflater) {
  std::string_view message = payload;
  std::string* inflated = nullptr;
  if (message_compressed_) {
    if (inflater == nullptr) return Fail(CloseCode::kProtocolError, "no inflater");
    inflated = &InflateScratch();
    switch (inflater->Inflate(payload, limits.max_message_size, reset_inflater, *inflated)) {
      case InflateStatus::kOk:
        break;
      case InflateStatus::kTooBig:
        return Fail(CloseCode::kMessageTooBig, "inflated message too big");
      case InflateStatus::kCorrupt:
        return Fail(CloseCode::kInvalidPayload, "invalid deflate data");
    }
    message = *inflated;
  }
  if (message_opcode_ == Opcode::kText && !utf8_checked && !IsValidUtf8(message)) {
    return Fail(CloseCode::kInvalidPayload, "invalid UTF-8 in text message");
  }
  const Opcode opcode = message_opcode_;
  message_opcode_ = Opcode::kContinuation;
  message_compressed_ = false;
  handler.OnMessage(opcode, message);
  buffer_.reset();
  if (inflated != nullptr) {
    const size_t peak = inflated->capacity();
    if (peak > kScratchKeepBytes) std::string().swap(*inflated);
    stats::RecordScratch(stats::ScratchBuffer::kInflate, peak, inflated->capacity());
  }
  return {};
}

// §5.5: Ping, Pong and Close. Only a Close ends the reader.
MessageReader::Result MessageReader::OnControlFrame(std::string_view payload,
                                                    MessageHandler& handler) {
  switch (frame_opcode_) {
    case Opcode::kPing:
      handler.OnPing(payload);
      return {};
    case Opcode::kPong:
      handler.OnPong(payload);
      return {};
    default:
      break;
  }
  uint16_t code = static_cast<uint16_t>(CloseCode::kNoStatus);
  std::string_view reason;
  if (payload.size() >= 2) {
    code = static_cast<uint16_t>(static_cast<uint8_t>(payload[0]) << 8 |
                                 static_cast<uint8_t>(payload[1]));
    if (!IsValidReceivedCloseCode(code))
      return Fail(CloseCode::kProtocolError, "invalid close code");
    reason = payload.substr(2);
    // §5.5.1, §8.1: the reason is UTF-8.
    if (!IsValidUtf8(reason)) return Fail(CloseCode::kInvalidPayload, "close reason not UTF-8");
  }
  closed_ = true;
  handler.OnClose(code, reason);
  Release();
  return {};
}

}  // namespace hermod::ws
