// The state of one bench connection: its socket, where it is in its life (TCP connect, HTTP
// upgrade, protocol setup, ready, closing), its outgoing bytes and its WebSocket reader.
// A plain record that its ClientLoop owns and acts on (client_loop.cc); the Session and
// MessageHandler overrides only forward to the loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapter.h"
#include "run_config.h"
#include "sequence_tracker.h"
#include "ws/deflate.h"
#include "ws/message_reader.h"

namespace hermod::bench {

class ClientLoop;

enum class ConnState : uint8_t {
  kIdle,        // no socket
  kConnecting,  // non-blocking connect() in progress
  kHandshake,   // upgrade request sent, waiting for 101
  kSetup,       // WebSocket open, protocol setup (connect, subscribe) in progress
  kReady,       // counted as a connection of the scenario
  kClosing,     // our Close frame sent, waiting for the server's Close or EOF
};

struct ClientConnection final : public Session, public ws::MessageHandler {
  ClientConnection(ClientLoop& loop, uint32_t id, ConnectionPlan plan);

  // Session (adapter side).
  void Send(std::string_view message) override;
  void Ready() override;
  void Deliver(std::string_view payload) override;
  void Fail(std::string_view reason) override;
  void Told() override;
  std::string& carry() override { return carry_; }
  std::string& scratch() override;
  uint32_t id() const override { return id_; }
  const ConnectionPlan& plan() const override { return plan_; }
  bool is_ready() const override { return state == ConnState::kReady; }

  // ws::MessageHandler (reader side).
  void OnMessage(ws::Opcode opcode, std::string_view payload) override;
  void OnPing(std::string_view payload) override;
  void OnPong(std::string_view payload) override;
  void OnClose(uint16_t code, std::string_view reason) override;

  size_t pending_out() const { return out.size() - out_sent; }

  ClientLoop& loop;
  const uint32_t id_;
  const ConnectionPlan plan_;
  std::string publish_channel;  // ChannelName(plan.publish), when publishing
  int fd = -1;
  ConnState state = ConnState::kIdle;
  bool dirty = false;          // in the loop's flush list
  bool write_blocked = false;  // the last write hit EAGAIN: wait for EPOLLOUT
  bool publishing_done = false;
  uint64_t started_ns = 0;   // connect() time, for connect latency and setup timeout
  uint64_t deadline_ns = 0;  // closing: give up waiting for the server's Close
  uint64_t next_seq = 0;
  // stand publisher: the next stamp of each channel it owns (personal ones, then groups),
  // where it is in each round robin, and the credit deciding which kind comes next.
  std::vector<uint64_t> stream_seq;
  uint32_t personal_cursor = 0;
  uint32_t group_cursor = 0;
  double group_credit = 0;
  std::string key;      // Sec-WebSocket-Key
  std::string http;     // the upgrade response, until its end
  std::string out;      // frames not yet written
  size_t out_sent = 0;  // bytes of out already written
  std::string carry_;
  ws::MessageReader reader;
  SequenceTracker tracker;
  // Loss accounting per subscriber: a tell not yet matched by a gap, and what
  // this subscriber already counted (each subscriber once per kind).
  bool tell_pending = false;
  bool counted_told = false;
  bool counted_lost = false;
  bool counted_silent = false;
  // permessage-deflate (RFC 7692), when --deflate and the server agreed. What we send is
  // compressed by the loop's Deflater for the agreed window; what we receive needs a stream
  // of our own unless the server agreed server_no_context_takeover (then the loop's serves).
  bool deflate = false;
  bool inflate_reset = false;  // server_no_context_takeover: each message starts fresh
  uint8_t deflate_bits = 15;   // client_max_window_bits agreed
  std::unique_ptr<ws::Inflater> inflater;
  // A subscriber on a streamed HTTP response (-p sse, http_stream): no WebSocket; the body is
  // chunked (http holds an unfinished chunk header), its text lines wait in carry_.
  bool stream = false;
  uint64_t chunk_left = 0;  // payload bytes of the current chunk still to come
  uint8_t chunk_crlf = 0;   // bytes of the CRLF after it still to skip
};

}  // namespace hermod::bench
