// One WebSocket connection after the handshake (RFC 6455 §5-§7): the reader's messages go to
// the subclass (echo, or the client protocol), control frames are answered here, the close
// handshake runs both ways, and one timer covers pings, the pong deadline, the idle timeout
// and the wait for the peer's Close.
//
// permessage-deflate state is shared per loop wherever the negotiation allows it (no context
// takeover): an idle connection then holds no zlib stream at all.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string_view>

#include "net/connection.h"
#include "stats/histogram.h"
#include "stats/reasons.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/handshake.h"
#include "ws/message_reader.h"
#include "ws/prepared_message.h"

namespace hermod::ws {

struct WebSocketOptions {
  uint64_t max_message_bytes = 1 << 20;
  uint64_t ping_interval_ms = 25000;  // 0: no pings
  uint64_t pong_timeout_ms = 10000;
  uint64_t idle_timeout_ms = 0;  // 0: off
  uint64_t close_timeout_ms = 2000;
  uint64_t fragment_bytes = 0;  // split outgoing messages into frames of this size; 0: never
  int deflate_level = 1;
  size_t deflate_min_size = 64;
};

// Per-loop counters (the metrics room reads them).
struct WebSocketStats {
  uint64_t opened = 0;
  uint64_t messages_in = 0;
  uint64_t messages_out = 0;
  // The closes the WebSocket layer decides, by why (stats/reasons.h).
  stats::ByReason<stats::WsClose> closed_by;
  // Closed connections by the code of the Close that ended them: ours when we closed first,
  // the peer's when it did (1005 when its Close had none), 1006 when no Close was exchanged.
  std::map<uint16_t, uint64_t> close_codes;
  stats::DurationHistogram duration_ms;  // handshake to close
};

class WebSocketConnection : public net::Connection, private MessageHandler {
 public:
  // Takes over the transport of the HTTP connection that carried the handshake.
  WebSocketConnection(net::Connection& from, const WebSocketOptions& options,
                      const HandshakeResult& handshake, WebSocketStats& stats);
  ~WebSocketConnection() override;

  // Sends one message (compressed when negotiated and worth it; fragmented when
  // fragment_bytes is set). lane: kControl, or a push lane for a message that must leave
  // after the pushes of that priority already queued (it falls back to kControl when it is
  // fragmented or compressed with this connection's own context, whose order is fixed).
  net::SendStatus SendMessage(Opcode opcode, std::string_view payload,
                              net::Lane lane = net::Lane::kControl);
  // Sends a message encoded once for many receivers, by reference (the fan-out path).
  net::SendStatus SendPrepared(const PreparedMessage& message, net::PushClass push = {});
  // Starts the close handshake (RFC 6455 §7.1.2); reads stop delivering messages.
  void CloseWith(uint16_t code, std::string_view reason);
  // Fails the connection (RFC 6455 §7.1.7): sends our Close (unless sent), then closes once
  // it is written, without waiting for the peer's.
  void FailWith(uint16_t code, std::string_view reason);

  bool deflate() const { return flags_ & kDeflate; }

 protected:
  // For a protocol whose text messages may be joined, newline-separated, into one message
  // (the JSON client protocol): its uncompressed, unfragmented text messages are queued as
  // joinable, and the flush joins those queued together (net/output_queue.h). Never for
  // echo, nor binary, compressed or control frames.
  void EnableJoin() { flags_ |= kJoinText; }
  // One byte the subclass keeps here, in this object's padding (the client protocol's
  // format): a member of its own would cost 8 bytes in every connection.
  uint8_t subclass_byte() const { return subclass_byte_; }
  void set_subclass_byte(uint8_t b) { subclass_byte_ = b; }
  decltype(net::JoinSpec::header) JoinHeader() const override;
  // A complete text or binary message; the default drops it.
  virtual void OnWebSocketMessage(Opcode opcode, std::string_view payload);
  // A deadline of the subclass's protocol (the client session's keepalive) on this
  // connection's one timer, which then costs no timer node of its own: OnProtocolTimer is
  // called once due_ms (the loop's clock) has passed, unless the close handshake started.
  // It may be called early (a deadline more than 2^30 ms away waits in steps); UINT64_MAX
  // cancels it.
  void SetProtocolTimer(uint64_t due_ms);
  virtual void OnProtocolTimer() {}
  // Counts the close and the connection's duration; a subclass's override calls it.
  void OnClosed() override;

 private:
  enum Flags : uint8_t {
    kDeflate = 1,
    kServerNoContext = 2,
    kClientNoContext = 4,
    kSentClose = 8,
    kAwaitingPong = 16,
    kJoinText = 32,
    kProtocolTimer = 64,  // protocol_due_ms_ is set
  };

  void OnData(uint8_t* data, size_t len) override;
  void OnTimeout() override;
  void OnShutdown() override;
  void OnSlowConsumer() override;
  void OnMessage(Opcode opcode, std::string_view payload) override;
  void OnPing(std::string_view payload) override;
  void OnPong(std::string_view payload) override;
  void OnClose(uint16_t code, std::string_view reason) override;
  void CountClose(uint16_t code);

  void SendFrame(Opcode opcode, bool fin, bool rsv1, std::string_view payload,
                 bool joinable = false, net::Lane lane = net::Lane::kControl);
  void ScheduleTimer();
  uint64_t ProtocolDue(uint64_t now) const;
  Deflater& OutgoingDeflater();
  Inflater& IncomingInflater();

  const WebSocketOptions& options_;
  WebSocketStats& stats_;
  MessageReader reader_;
  uint8_t flags_ = 0;
  uint8_t server_window_bits_ = 15;
  uint8_t client_window_bits_ = 15;
  // The loop's clock mod 2^32 (4 bytes each instead of 8, paid by every connection): at the
  // handshake (durations < 49 days), at the last read, and when we last sent a ping (or
  // opened). The last two are read back with At(), which is exact while they are less than
  // 2^32 ms old; every timeout that reads them is at most 2^31 ms (config) and fires first.
  uint32_t opened_ms_;
  uint32_t last_read_ms_;
  uint32_t last_ping_ms_;
  uint32_t protocol_due_ms_ = 0;  // SetProtocolTimer's, mod 2^32 (due within 2^30 ms)
  uint8_t subclass_byte_ = 0;     // subclass_byte()
  static uint64_t At(uint32_t then, uint64_t now) {
    return now - static_cast<uint32_t>(static_cast<uint32_t>(now) - then);
  }
  // zlib streams of our own, only when context takeover was negotiated. One pointer for
  // both: every byte here is paid by every idle connection.
  struct OwnStreams {
    std::unique_ptr<Inflater> inflater;
    std::unique_ptr<Deflater> deflater;
  };
  std::unique_ptr<OwnStreams> streams_;
};

// The /connection/echo endpoint: every message returns to its sender unchanged.
class EchoConnection final : public WebSocketConnection {
 public:
  using WebSocketConnection::WebSocketConnection;

 private:
  void OnWebSocketMessage(Opcode opcode, std::string_view payload) override {
    SendMessage(opcode, payload);
  }
};

}  // namespace hermod::ws
