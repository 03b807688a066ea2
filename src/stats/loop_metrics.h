// The counters that rooms above net/ (core's fan-out, proto's client protocol, the server API)
// keep for the metrics room, and the small API they record through. Like
// net's LoopStats, every LoopMetrics belongs to one loop and is touched only by that loop's
// thread: plain integers, no atomics, no locks. Each loop thread binds its LoopMetrics once
// (BindThread) and the recording calls find it through a thread_local pointer, so no room
// has to carry a pointer to it around: one TLS load and a null test per record. A thread
// with none bound (unit tests, the health monitor) records nothing.
//
// Method labels belong to their rooms: proto/command.h lists the client protocol's methods and
// the server API lists its own; the counters here are indexed by a method's position in its
// room's list (at most kMaxMethods), and the metrics room is handed the lists at start
// (metrics::MethodLabels) to name them.
//
// Header-only and dependency-free on purpose: a leaf that core/, proto/, api/ and ws/ record
// into without linking the metrics room.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "stats/histogram.h"

namespace hermod::stats {

// The most methods a room may list (proto::kMethodNames, the server API's methods).
inline constexpr size_t kMaxMethods = 24;

// Client-protocol messages out, by what they carry.
enum class SentType : uint8_t { kReply, kPush, kPing, kCount };
inline constexpr std::array<std::string_view, 3> kSentTypes = {"reply", "push", "ping"};
// Pushes (a coalesced message carries several), by push type.
enum class PushType : uint8_t { kPublication, kJoin, kLeave, kSubscribe, kUnsubscribe, kCount };
inline constexpr std::array<std::string_view, 5> kPushTypes = {"publication", "join", "leave",
                                                               "subscribe", "unsubscribe"};

// Presence join/leave events (core::Hub), by kind and what became of them: sent (alone or
// in a batch) or cancelled (a join and a leave of one client within one batch window).
enum class PresenceKind : uint8_t { kJoin, kLeave, kCount };
inline constexpr std::array<std::string_view, 2> kPresenceKinds = {"join", "leave"};
enum class PresenceOutcome : uint8_t { kSent, kCancelled, kCount };
inline constexpr std::array<std::string_view, 2> kPresenceOutcomes = {"sent", "cancelled"};

// Per-loop scratch buffers: the client protocol's reply and command copy, the
// WebSocket layer's deflate output and inflated input. Each is reused by every connection
// of its loop and released after a message that made it larger than its keep size.
enum class ScratchBuffer : uint8_t { kReply, kCommand, kDeflate, kInflate, kCount };
inline constexpr std::array<std::string_view, 4> kScratchBuffers = {"reply", "command", "deflate",
                                                                    "inflate"};
// Replies bounded by the connection's write budget: history cut short, or refused (106).
enum class ReplyLimit : uint8_t { kCut, kRefused, kCount };
inline constexpr std::array<std::string_view, 2> kReplyLimits = {"cut", "refused"};

// POSTs to /emulation (bidirectional emulation), by outcome.
// kNoSession: answered 204 (the session's loop is known only after the answer), but its
// session had ended, so its commands were not run.
enum class EmulationOutcome : uint8_t {
  kAccepted,
  kBadRequest,
  kTooLarge,
  kUnknownNode,
  kNoSession,
  kCount
};
inline constexpr std::array<std::string_view, 5> kEmulationOutcomes = {
    "accepted", "bad_request", "too_large", "unknown_node", "no_session"};

struct LoopMetrics {
  // Client protocol: commands by method and the latency of the message that carried them.
  std::array<uint64_t, kMaxMethods> commands{};
  std::array<LatencyHistogram, kMaxMethods> command_latency;
  uint64_t command_messages_in = 0;
  uint64_t command_bytes_in = 0;
  // Messages that failed to decode (disconnect 3501), by format: JSON, Protobuf.
  std::array<uint64_t, 2> malformed_messages{};
  std::array<uint64_t, static_cast<size_t>(SentType::kCount)> messages_out{};
  std::array<uint64_t, static_cast<size_t>(SentType::kCount)> bytes_out{};
  std::array<uint64_t, static_cast<size_t>(PushType::kCount)> pushes_out{};

  // Fan-out: a publication's time from Hub::Publish to being queued for a subscriber on this
  // loop (recorded once per push per loop), and how many subscribers on this loop got it.
  LatencyHistogram publish_to_queue;
  FanoutHistogram fanout;
  // The run of deliveries of one push being counted (see RecordPushQueued): its id, and
  // what each delivery adds, summed when the run ends.
  uint64_t run_id = 0;  // 0: none
  uint64_t run_count = 0;
  uint64_t run_bytes = 0;
  std::array<uint16_t, kPushTypes.size()> run_carried{};

  // Server HTTP API.
  std::array<uint64_t, kMaxMethods> api_calls{};
  std::array<LatencyHistogram, kMaxMethods> api_latency;

  // Scratch buffers: the largest capacity each reached (high-water mark) and the capacity
  // it keeps now, in bytes.
  std::array<uint64_t, kScratchBuffers.size()> scratch_high_water{};
  std::array<uint64_t, kScratchBuffers.size()> scratch_kept{};
  std::array<uint64_t, kReplyLimits.size()> replies_limited{};
  // History positions forgotten to keep history_meta_max_channels (core/history_meta.h).
  uint64_t history_meta_evicted = 0;
  std::array<uint64_t, kEmulationOutcomes.size()> emulation_requests{};

  // Presence join/leave events, [kind][outcome].
  std::array<std::array<uint64_t, kPresenceOutcomes.size()>, kPresenceKinds.size()>
      presence_events{};

  // Ends the counted run of deliveries (on the next push, and before a scrape copies this).
  void EndFanoutRun() {
    if (run_count > 0) {
      fanout.Record(run_count);
      messages_out[static_cast<size_t>(SentType::kPush)] += run_count;
      bytes_out[static_cast<size_t>(SentType::kPush)] += run_bytes * run_count;
      for (size_t i = 0; i < run_carried.size(); ++i) pushes_out[i] += run_carried[i] * run_count;
    }
    run_id = 0;
    run_count = 0;
  }
};

namespace internal {
inline constinit thread_local LoopMetrics* bound = nullptr;
}  // namespace internal

// On a loop's thread, before it runs: where this thread's records go.
inline void BindThread(LoopMetrics* metrics) { internal::bound = metrics; }
// This thread's LoopMetrics, or null.
inline LoopMetrics* Local() { return internal::bound; }

// Core: join/leave events of one kind had this outcome (on the loop of the client that
// joined or left).
inline void RecordPresenceEvents(PresenceKind kind, PresenceOutcome outcome, uint64_t n = 1) {
  if (LoopMetrics* m = Local()) {
    m->presence_events[static_cast<size_t>(kind)][static_cast<size_t>(outcome)] += n;
  }
}

// A scratch buffer reached peak bytes of capacity while in use and keeps kept bytes now.
inline void RecordScratch(ScratchBuffer buffer, size_t peak, size_t kept) {
  if (LoopMetrics* m = Local()) {
    const size_t i = static_cast<size_t>(buffer);
    if (peak > m->scratch_high_water[i]) m->scratch_high_water[i] = peak;
    m->scratch_kept[i] = kept;
  }
}

inline void RecordReplyLimited(ReplyLimit outcome) {
  if (LoopMetrics* m = Local()) ++m->replies_limited[static_cast<size_t>(outcome)];
}

inline void RecordEmulationRequest(EmulationOutcome outcome) {
  if (LoopMetrics* m = Local()) ++m->emulation_requests[static_cast<size_t>(outcome)];
}

// Core: n history positions were forgotten to stay within history_meta_max_channels.
inline void RecordHistoryMetaEvicted(uint64_t n) {
  if (LoopMetrics* m = Local()) m->history_meta_evicted += n;
}

// Client protocol: one WebSocket message of commands was handled; counts holds how many of
// each method it carried (indexed like proto::kMethodNames), elapsed_us the time from its
// arrival to its replies being queued. Every command of the message gets that latency: the
// replies leave together.
inline void RecordCommandMessage(std::span<const uint32_t> counts, size_t bytes,
                                 uint64_t elapsed_us) {
  LoopMetrics* m = Local();
  if (!m) return;
  ++m->command_messages_in;
  m->command_bytes_in += bytes;
  for (size_t i = 0; i < counts.size() && i < kMaxMethods; ++i) {
    if (counts[i] == 0) continue;
    m->commands[i] += counts[i];
    m->command_latency[i].RecordN(elapsed_us, counts[i]);
  }
}

// Client protocol: a message of commands did not decode (format: 0 JSON, 1 Protobuf).
inline void RecordMalformedMessage(size_t format) {
  if (LoopMetrics* m = Local(); m && format < m->malformed_messages.size()) {
    ++m->malformed_messages[format];
  }
}

// Client protocol: a message other than a hub push was queued (a reply, a ping, a
// server-side subscribe or unsubscribe push).
inline void RecordSent(SentType type, size_t bytes, PushType push = PushType::kCount) {
  LoopMetrics* m = Local();
  if (!m) return;
  ++m->messages_out[static_cast<size_t>(type)];
  m->bytes_out[static_cast<size_t>(type)] += bytes;
  if (push != PushType::kCount) ++m->pushes_out[static_cast<size_t>(push)];
}

// Server HTTP API: one call of the method at this index of the API's method list took
// elapsed_us.
inline void RecordApiCall(size_t method, uint64_t elapsed_us) {
  LoopMetrics* m = Local();
  if (!m || method >= kMaxMethods) return;
  ++m->api_calls[method];
  m->api_latency[method].Record(elapsed_us);
}

// Client protocol: a hub push was queued for one subscriber. The hub hands a push to a
// loop's subscribers one after the other, so consecutive deliveries of one push (by
// push_id, unique per push) are one fan-out: the common case, a delivery that continues the
// run, costs a TLS load, a compare and an increment; messages, bytes and pushes by type are
// added when the run ends. A new run reads the clock once, for the publish-to-queue
// latency (published_us 0: not a publication). bytes and carried are asked for only then.
template <class Bytes, class Carried, class NowUs>
[[gnu::noinline]] void StartPushRun(LoopMetrics* m, uint64_t push_id, uint64_t published_us,
                                    Bytes bytes, Carried carried, NowUs now_us) {
  m->EndFanoutRun();
  m->run_id = push_id;
  m->run_count = 1;
  m->run_bytes = bytes();
  m->run_carried = carried();
  if (published_us != 0) {
    uint64_t now = now_us();
    m->publish_to_queue.Record(now > published_us ? now - published_us : 0);
  }
}

template <class Bytes, class Carried, class NowUs>
inline void RecordPushQueued(uint64_t push_id, uint64_t published_us, Bytes bytes, Carried carried,
                             NowUs now_us) {
  LoopMetrics* m = Local();
  if (!m) return;
  if (push_id == m->run_id) [[likely]] {
    ++m->run_count;
    return;
  }
  StartPushRun(m, push_id, published_us, bytes, carried, now_us);  // out of line: rare
}

}  // namespace hermod::stats
