#include "ws/websocket_connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <string>

#include "log/fields.h"
#include "stats/loop_metrics.h"
#include "ws/frame_encoder.h"

namespace hermod::ws {

namespace {

// Deflated output, one per loop. A large message's output is freed after it is queued (the
// queue holds its own copy), as the reader frees its inflate buffer: the loop keeps what
// ordinary messages need, not its largest message.
constexpr size_t kScratchKeepBytes = 256 * 1024;

std::string& Scratch() {
  thread_local std::string scratch;
  return scratch;
}

void ReleaseScratch() {
  std::string& scratch = Scratch();
  const size_t peak = scratch.capacity();
  if (peak > kScratchKeepBytes) std::string().swap(scratch);
  stats::RecordScratch(stats::ScratchBuffer::kDeflate, peak, scratch.capacity());
}

}  // namespace

WebSocketConnection::WebSocketConnection(net::Connection& from, const WebSocketOptions& options,
                                         const HandshakeResult& handshake, WebSocketStats& stats)
    : net::Connection(from),
      options_(options),
      stats_(stats),
      opened_ms_(static_cast<uint32_t>(loop().now_ms())),
      last_read_ms_(opened_ms_),
      last_ping_ms_(opened_ms_) {
  if (handshake.deflate) {
    flags_ |= kDeflate;
    if (handshake.deflate_params.server_no_context_takeover) flags_ |= kServerNoContext;
    if (handshake.deflate_params.client_no_context_takeover) flags_ |= kClientNoContext;
    server_window_bits_ = static_cast<uint8_t>(handshake.deflate_params.server_max_window_bits);
    client_window_bits_ = static_cast<uint8_t>(handshake.deflate_params.client_max_window_bits);
  }
  ++stats_.opened;
  ScheduleTimer();
}

WebSocketConnection::~WebSocketConnection() = default;

void WebSocketConnection::OnWebSocketMessage(Opcode, std::string_view) {}

Deflater& WebSocketConnection::OutgoingDeflater() {
  int bits = std::max<int>(9, server_window_bits_);  // zlib cannot deflate with 8 bits
  if (flags_ & kServerNoContext) return ThreadDeflater(options_.deflate_level, bits);
  if (!streams_) streams_ = std::make_unique<OwnStreams>();
  if (!streams_->deflater) {
    streams_->deflater = std::make_unique<Deflater>(options_.deflate_level, bits);
  }
  return *streams_->deflater;
}

Inflater& WebSocketConnection::IncomingInflater() {
  if (flags_ & kClientNoContext) return ThreadInflater();
  if (!streams_) streams_ = std::make_unique<OwnStreams>();
  if (!streams_->inflater) {
    streams_->inflater = std::make_unique<Inflater>(std::max<int>(9, client_window_bits_));
  }
  return *streams_->inflater;
}

void WebSocketConnection::OnData(uint8_t* data, size_t len) {
  assert(loop().InThisThread());
  last_read_ms_ = static_cast<uint32_t>(loop().now_ms());
  if (reader_.closed()) return;
  ReaderLimits limits;
  limits.max_message_size = options_.max_message_bytes;
  limits.expect_masked = true;
  limits.deflate = deflate();
  Inflater* inflater = nullptr;
  bool reset = false;
  if (deflate()) {
    inflater = &IncomingInflater();
    reset = flags_ & kClientNoContext;
  }
  MessageReader::Result result = reader_.Feed(data, len, limits, *this, inflater, reset);
  if (result.ok || closed()) return;
  ++stats_.closed_by[stats::WsClose::kProtocolError];
  if (!(flags_ & kSentClose)) CountClose(static_cast<uint16_t>(result.error.code));
  if (spdlog::should_log(spdlog::level::info)) {
    const std::string remote = PeerIp();
    const int code = static_cast<int>(result.error.code);
    log::Write(spdlog::level::info,
               {{"code", code},
                {"close", stats::Row(stats::WsClose::kProtocolError).name},
                {"reason", result.error.reason},
                {"remote", remote}},
               "ws: closing fd {} with {}: {}", fd(), code, result.error.reason);
  }
  if (!(flags_ & kSentClose)) {
    flags_ |= kSentClose;
    SendFrame(Opcode::kClose, true, false,
              ClosePayload(static_cast<uint16_t>(result.error.code), result.error.reason));
  }
  // RFC 6455 §7.1.7: fail the connection; the linger lets the peer read our Close first.
  CloseAfterFlush(options_.close_timeout_ms);
}

void WebSocketConnection::OnMessage(Opcode opcode, std::string_view payload) {
  if (flags_ & kSentClose) return;  // §7.1.2: after our Close, data is discarded
  ++stats_.messages_in;
  OnWebSocketMessage(opcode, payload);
}

void WebSocketConnection::OnPing(std::string_view payload) {
  // RFC 6455 §5.5.2: answer with a Pong carrying the same payload.
  if (!(flags_ & kSentClose)) SendFrame(Opcode::kPong, true, false, payload);
}

void WebSocketConnection::OnPong(std::string_view) { flags_ &= ~kAwaitingPong; }

void WebSocketConnection::OnClose(uint16_t code, std::string_view reason) {
  if (!(flags_ & kSentClose)) {
    // §5.5.1: echo the status code; a Close without one is answered without one.
    flags_ |= kSentClose;
    CountClose(code);
    std::string payload = code == static_cast<uint16_t>(CloseCode::kNoStatus)
                              ? std::string()
                              : ClosePayload(code, reason);
    SendFrame(Opcode::kClose, true, false, payload);
  }
  // §7.1.1: the server closes the TCP connection first, once the handshake is complete.
  CloseAfterFlush(options_.close_timeout_ms);
}

void WebSocketConnection::CountClose(uint16_t code) { ++stats_.close_codes[code]; }

void WebSocketConnection::OnClosed() {
  // No Close either way: the transport ended (peer gone, write overflow, shutdown deadline).
  if (!(flags_ & kSentClose)) CountClose(static_cast<uint16_t>(CloseCode::kAbnormal));
  stats_.duration_ms.Record(static_cast<uint32_t>(loop().now_ms()) - opened_ms_);
}

void WebSocketConnection::OnShutdown() { CloseWith(1001, "server shutdown"); }

// RFC 6455 §7.4.1: 1008, the endpoint's policy (here: its read speed) was violated. The queue
// was emptied: the Close is all that is left to send (§7.1.7: fail the connection).
void WebSocketConnection::OnSlowConsumer() { FailWith(1008, "slow consumer"); }

void WebSocketConnection::FailWith(uint16_t code, std::string_view reason) {
  assert(loop().InThisThread());
  CloseWith(code, reason);
  // The peer's Close is not awaited: the connection ends once ours is written (the queue
  // holds little else), or after close_timeout_ms if the peer still reads nothing.
  CloseAfterFlush(options_.close_timeout_ms);
}

void WebSocketConnection::CloseWith(uint16_t code, std::string_view reason) {
  assert(loop().InThisThread());
  if ((flags_ & kSentClose) || closing()) return;
  flags_ |= kSentClose;
  CountClose(code);
  SendFrame(Opcode::kClose, true, false, ClosePayload(code, reason));
  ScheduleTimer();
}

net::SendStatus WebSocketConnection::SendMessage(Opcode opcode, std::string_view payload,
                                                 net::Lane lane) {
  assert(loop().InThisThread());
  if ((flags_ & kSentClose) || closing()) return net::SendStatus::kDropped;
  ++stats_.messages_out;
  bool compressed = false;
  if (deflate() && payload.size() >= options_.deflate_min_size) {
    std::string& out = Scratch();
    OutgoingDeflater().Deflate(payload, flags_ & kServerNoContext, out);
    payload = out;
    compressed = true;
    // Deflated with the connection's own context: it must leave in the order it was made.
    if (!(flags_ & kServerNoContext)) lane = net::Lane::kControl;
  }
  const size_t piece = options_.fragment_bytes;
  if (piece == 0 || payload.size() <= piece) {
    SendFrame(opcode, true, compressed, payload,
              (flags_ & kJoinText) && opcode == Opcode::kText && !compressed, lane);
  } else {
    // §5.4: the first frame carries the opcode (and RSV1), the rest are continuations.
    for (size_t offset = 0; offset < payload.size(); offset += piece) {
      // A frame that overflowed the queue ended the connection: a continuation queued now
      // would follow a dropped first frame.
      if ((flags_ & kSentClose) || closing()) break;
      bool first = offset == 0;
      bool fin = offset + piece >= payload.size();
      SendFrame(first ? opcode : Opcode::kContinuation, fin, first && compressed,
                payload.substr(offset, piece));
    }
  }
  if (compressed) ReleaseScratch();
  // An overflow runs OnSlowConsumer, which sends a Close (or closes): the message is lost.
  return (flags_ & kSentClose) || closing() ? net::SendStatus::kOverflow : net::SendStatus::kQueued;
}

net::SendStatus WebSocketConnection::SendPrepared(const PreparedMessage& message,
                                                  net::PushClass push) {
  assert(loop().InThisThread());
  if ((flags_ & kSentClose) || closing()) return net::SendStatus::kDropped;
  const bool compress = deflate() && message.payload().size() >= options_.deflate_min_size;
  if (compress && !((flags_ & kServerNoContext) && server_window_bits_ >= message.window_bits())) {
    // Our own compression context (or a smaller window): this receiver cannot share, and
    // its frames cannot be dropped either (each depends on the ones before): they queue as
    // control output, bounded by max_write_buffer_bytes alone.
    return SendMessage(message.opcode(), message.payload());
  }
  ++stats_.messages_out;
  net::Chunk* frame = compress ? message.deflated_frame() : message.frame();
  const bool joinable = (flags_ & kJoinText) && !compress && message.opcode() == Opcode::kText;
  return SendShared(frame, 0, frame->size(), push,
                    joinable ? static_cast<uint8_t>(message.header_len()) : 0);
}

decltype(net::JoinSpec::header) WebSocketConnection::JoinHeader() const {
  return (flags_ & kJoinText) ? &EncodeTextHeader : nullptr;
}

void WebSocketConnection::SendFrame(Opcode opcode, bool fin, bool rsv1, std::string_view payload,
                                    bool joinable, net::Lane lane) {
  FrameHeaderSpec spec;
  spec.opcode = opcode;
  spec.fin = fin;
  spec.rsv1 = rsv1;
  spec.payload_len = payload.size();
  uint8_t header[kMaxFrameHeader];
  size_t header_len = EncodeFrameHeader(spec, header);
  // RFC 6455 §5.5.1: nothing follows a Close, whatever priority it has.
  Send({reinterpret_cast<const char*>(header), header_len}, payload,
       opcode == Opcode::kClose ? net::Lane::kFinal : lane, joinable);
}

void WebSocketConnection::SetProtocolTimer(uint64_t due_ms) {
  if (due_ms == UINT64_MAX) {
    flags_ &= ~kProtocolTimer;
  } else {
    const uint64_t now = loop().now_ms();
    constexpr uint64_t kMaxAhead = uint64_t{1} << 30;
    if (due_ms > now + kMaxAhead) due_ms = now + kMaxAhead;
    protocol_due_ms_ = static_cast<uint32_t>(due_ms);
    flags_ |= kProtocolTimer;
  }
  ScheduleTimer();
}

uint64_t WebSocketConnection::ProtocolDue(uint64_t now) const {
  // Signed distance: a due time in the past (a late tick) reads as now.
  const auto ahead = static_cast<int32_t>(protocol_due_ms_ - static_cast<uint32_t>(now));
  return ahead > 0 ? now + static_cast<uint64_t>(ahead) : now;
}

void WebSocketConnection::ScheduleTimer() {
  if (closing()) return;
  const uint64_t now = loop().now_ms();
  uint64_t due = UINT64_MAX;
  if (flags_ & kSentClose) {
    due = now + options_.close_timeout_ms;
  } else {
    if (flags_ & kProtocolTimer) due = ProtocolDue(now);
    if (flags_ & kAwaitingPong) {
      due = std::min(due, At(last_ping_ms_, now) + options_.pong_timeout_ms);
    } else if (options_.ping_interval_ms != 0) {
      due = std::min(due, At(last_ping_ms_, now) + options_.ping_interval_ms);
    }
    if (options_.idle_timeout_ms != 0) {
      due = std::min(due, At(last_read_ms_, now) + options_.idle_timeout_ms);
    }
  }
  if (due == UINT64_MAX) {
    CancelTimeout();
  } else {
    SetTimeout(due > now ? due - now : 0);
  }
}

void WebSocketConnection::OnTimeout() {
  assert(loop().InThisThread());
  const uint64_t now = loop().now_ms();
  if (flags_ & kSentClose) {
    Close();  // the peer never answered our Close
    return;
  }
  if ((flags_ & kAwaitingPong) && now >= At(last_ping_ms_, now) + options_.pong_timeout_ms) {
    ++stats_.closed_by[stats::WsClose::kPongTimeout];
    if (spdlog::should_log(spdlog::level::debug)) {
      log::Write(spdlog::level::debug, {{"close", stats::Row(stats::WsClose::kPongTimeout).name}},
                 "ws: fd {} sent no pong in {} ms", fd(), options_.pong_timeout_ms);
    }
    Close();  // a peer that does not answer pings is gone: no handshake to wait for
    return;
  }
  if (options_.idle_timeout_ms != 0 && now >= At(last_read_ms_, now) + options_.idle_timeout_ms) {
    ++stats_.closed_by[stats::WsClose::kIdleTimeout];
    if (spdlog::should_log(spdlog::level::debug)) {
      log::Write(spdlog::level::debug, {{"close", stats::Row(stats::WsClose::kIdleTimeout).name}},
                 "ws: fd {} idle for {} ms", fd(), options_.idle_timeout_ms);
    }
    CloseWith(stats::Row(stats::WsClose::kIdleTimeout).code, "idle timeout");
    return;
  }
  if ((flags_ & kProtocolTimer) && now >= ProtocolDue(now)) {
    flags_ &= ~kProtocolTimer;
    OnProtocolTimer();  // may set it again, send, or close
    if (closing() || (flags_ & kSentClose)) return;
  }
  // One ping in flight at a time: the next goes out an interval after the previous one, and
  // only once it was answered.
  if (options_.ping_interval_ms != 0 && !(flags_ & kAwaitingPong) &&
      now >= At(last_ping_ms_, now) + options_.ping_interval_ms) {
    SendFrame(Opcode::kPing, true, false, {});
    last_ping_ms_ = static_cast<uint32_t>(now);
    flags_ |= kAwaitingPong;
  }
  ScheduleTimer();
}

}  // namespace hermod::ws
