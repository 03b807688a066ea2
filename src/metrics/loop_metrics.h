// The counters that rooms above net/ (core's fan-out, proto's client protocol, the server API,
// the send queues) keep for the metrics room, and the small API they record through. Like
// net's LoopStats, every LoopMetrics belongs to one loop and is touched only by that loop's
// thread: plain integers, no atomics, no locks. Each loop thread binds its LoopMetrics once
// (BindThread) and the recording calls find it through a thread_local pointer, so no room
// has to carry a pointer to it around: one TLS load and a null test per record. A thread
// with none bound (unit tests, the health monitor) records nothing.
//
// Histograms have fixed buckets (Prometheus `le` bounds known at compile time): recording is
// a short linear scan and an increment, a scrape copies the arrays through the loop's mailbox
// (loop_snapshot.h) and the merge adds them up.
//
// Header-only and dependency-free on purpose: core/ and net/ may include it without linking
// the metrics room (which itself links http/ and ws/).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hermod::metrics {

// Bucket upper bounds, in the unit the histogram records; Prometheus' +Inf is implicit.
// Latencies are recorded in microseconds and exposed in seconds.
inline constexpr std::array<uint64_t, 15> kLatencyBoundsUs = {
    50,    100,   250,    500,    1000,   2500,    5000,   10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 5000000};
// Connection durations, recorded in milliseconds, exposed in seconds.
inline constexpr std::array<uint64_t, 11> kDurationBoundsMs = {
    100, 1000, 10000, 60000, 300000, 900000, 3600000, 10800000, 43200000, 86400000, 604800000};
// Subscribers reached by one push on one loop.
inline constexpr std::array<uint64_t, 12> kFanoutBounds = {1,   2,    5,    10,    50,    100,
                                                           500, 1000, 5000, 10000, 50000, 100000};

template <const auto& Bounds>
struct Histogram {
  static constexpr size_t N = Bounds.size();
  static constexpr const auto& bounds = Bounds;
  std::array<uint64_t, N + 1> counts{};  // not cumulative; the last is +Inf
  uint64_t sum = 0;                      // in the recorded unit

  void Record(uint64_t value) {
    size_t i = 0;
    while (i < N && value > Bounds[i]) ++i;
    ++counts[i];
    sum += value;
  }
  void RecordN(uint64_t value, uint64_t n) {
    size_t i = 0;
    while (i < N && value > Bounds[i]) ++i;
    counts[i] += n;
    sum += value * n;
  }
  void Add(const Histogram& other) {
    for (size_t i = 0; i <= N; ++i) counts[i] += other.counts[i];
    sum += other.sum;
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) n += c;
    return n;
  }
};
using LatencyHistogram = Histogram<kLatencyBoundsUs>;
using DurationHistogram = Histogram<kDurationBoundsMs>;
using FanoutHistogram = Histogram<kFanoutBounds>;

// proto::Method, in its order (client_session.cc static_asserts the two agree).
inline constexpr std::array<std::string_view, 13> kCommandMethods = {
    "pong",    "connect", "subscribe", "unsubscribe", "publish",     "presence", "presence_stats",
    "history", "send",    "rpc",       "refresh",     "sub_refresh", "unknown"};
// Server API methods (api/server_api.cc); anything else counts as "unknown".
inline constexpr std::array<std::string_view, 14> kApiMethods = {
    "publish",  "broadcast", "subscribe",      "unsubscribe", "disconnect",
    "refresh",  "presence",  "presence_stats", "history",     "history_remove",
    "channels", "info",      "batch",          "unknown"};

// Client-protocol messages out, by what they carry.
enum class SentType : uint8_t { kReply, kPush, kPing, kCount };
inline constexpr std::array<std::string_view, 3> kSentTypes = {"reply", "push", "ping"};
// Pushes (a coalesced message carries several), by push type.
enum class PushType : uint8_t { kPublication, kJoin, kLeave, kSubscribe, kUnsubscribe, kCount };
inline constexpr std::array<std::string_view, 5> kPushTypes = {"publication", "join", "leave",
                                                               "subscribe", "unsubscribe"};

// Send-queue drops (docs/observability.md: nothing in src/ records these today).
enum class DropReason : uint8_t {
  kOverflow,  // the queue passed its byte limit
  kShed,      // dropped to make room for a message of higher priority
  kExpired,   // waited in the queue past its deadline
  kCount
};
inline constexpr std::array<std::string_view, 3> kDropReasons = {"overflow", "shed", "expired"};
enum class DropPriority : uint8_t { kLow, kNormal, kHigh, kCritical, kCount };
inline constexpr std::array<std::string_view, 4> kDropPriorities = {"low", "normal", "high",
                                                                    "critical"};

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

struct LoopMetrics {
  // Client protocol: commands by method and the latency of the message that carried them.
  std::array<uint64_t, kCommandMethods.size()> commands{};
  std::array<LatencyHistogram, kCommandMethods.size()> command_latency;
  uint64_t command_messages_in = 0;
  uint64_t command_bytes_in = 0;
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
  std::array<uint64_t, kApiMethods.size()> api_calls{};
  std::array<LatencyHistogram, kApiMethods.size()> api_latency;

  // Send queues.
  std::array<std::array<uint64_t, kDropPriorities.size()>, kDropReasons.size()> queue_dropped{};
  uint64_t slow_consumer_disconnects = 0;

  // Scratch buffers: the largest capacity each reached (high-water mark) and the capacity
  // it keeps now, in bytes.
  std::array<uint64_t, kScratchBuffers.size()> scratch_high_water{};
  std::array<uint64_t, kScratchBuffers.size()> scratch_kept{};
  std::array<uint64_t, kReplyLimits.size()> replies_limited{};
  // History positions forgotten to keep history_meta_max_channels (core/history_meta.h).
  uint64_t history_meta_evicted = 0;

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

// The recording API for the send queues (src/net/output_queue.*, src/core/loop_channels.*):
// call on the connection's loop. `messages` dropped at once for one reason and priority.
inline void RecordSendQueueDrop(DropReason reason, DropPriority priority, uint64_t messages = 1) {
  if (LoopMetrics* m = Local()) {
    m->queue_dropped[static_cast<size_t>(reason)][static_cast<size_t>(priority)] += messages;
  }
}
// A connection closed because it could not keep up (after its drops). Do not call it for the
// close that net::Connection::Send already counts as LoopStats::write_overflow.
inline void RecordSlowConsumerDisconnect() {
  if (LoopMetrics* m = Local()) ++m->slow_consumer_disconnects;
}

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

// Core: n history positions were forgotten to stay within history_meta_max_channels.
inline void RecordHistoryMetaEvicted(uint64_t n) {
  if (LoopMetrics* m = Local()) m->history_meta_evicted += n;
}

// Client protocol: one WebSocket message of commands was handled; counts holds how many of
// each method it carried, elapsed_us the time from its arrival to its replies being queued.
// Every command of the message gets that latency: the replies leave together.
inline void RecordCommandMessage(const std::array<uint32_t, kCommandMethods.size()>& counts,
                                 size_t bytes, uint64_t elapsed_us) {
  LoopMetrics* m = Local();
  if (!m) return;
  ++m->command_messages_in;
  m->command_bytes_in += bytes;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    m->commands[i] += counts[i];
    m->command_latency[i].RecordN(elapsed_us, counts[i]);
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

// Server HTTP API: one call of method (a name in kApiMethods; others count as "unknown")
// took elapsed_us.
inline void RecordApiCall(std::string_view method, uint64_t elapsed_us) {
  LoopMetrics* m = Local();
  if (!m) return;
  size_t i = 0;
  while (i + 1 < kApiMethods.size() && kApiMethods[i] != method) ++i;
  ++m->api_calls[i];
  m->api_latency[i].Record(elapsed_us);
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

}  // namespace hermod::metrics
