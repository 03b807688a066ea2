// Why the server refused, dropped or cut, in one table (as nats-server's ClosedState): each
// reason is an enumerator, and its row gives the word that logs and metric labels use and the
// protocol code the peer sees. Counters are arrays indexed by these enums, never by a bare
// number, and the metrics room renders the rows it is given instead of restating the list.
//
// The broker link's drops (broker/link.h) are not here: they count messages other nodes sent
// that this node would not deliver (undecodable, its own, an unknown channel), a cluster
// statistic with its own family, counted from libnats's threads on the link's atomics.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hermod::stats {

// Refusals of a connection or a command, counted on the loop that refused (GuardStats).
enum class Refusal : uint8_t {
  // A connection refused: hermod_connections_rejected_total{reason}.
  kCapacity,        // 503 at the upgrade: client_connection_limit
  kNodeRate,        // 503 at the upgrade: client_connection_rate_limit
  kIpLimit,         // 429 at the upgrade: admission.ip_connection_limit
  kIpRate,          // 429 at the upgrade: admission.ip_connection_rate
  kSoftLimit,       // 111 to a connect without a recovery position in the soft band
  kUserLimit,       // disconnect 3504: client_user_connection_limit
  kBadLastEventId,  // 400 to a fragments stream whose Last-Event-ID is malformed
  // A command answered 111: hermod_client_commands_rate_limited_total{kind}, by the bucket
  // that refused it (core::CommandKind's, then the total bucket, then a namespace's
  // publish_rate_limit).
  kLimitedPublish,
  kLimitedSubscribe,
  kLimitedHistory,
  kLimitedPresence,
  kLimitedRpc,
  kLimitedTotal,
  kLimitedChannel,
  // Disconnect 3013: refused too often (hermod_client_rate_limit_disconnects_total).
  kRateLimitDisconnect,
  kCount
};

// Which metric family a refusal belongs to.
enum class RefusalFamily : uint8_t { kConnection, kCommand, kDisconnect };

struct RefusalRow {
  RefusalFamily family;
  std::string_view name;  // the log's reason and the metric's label
  uint16_t code;          // HTTP status, client protocol error or disconnect code
};

inline constexpr std::array<RefusalRow, static_cast<size_t>(Refusal::kCount)> kRefusals = {{
    {RefusalFamily::kConnection, "capacity", 503},
    {RefusalFamily::kConnection, "node_rate", 503},
    {RefusalFamily::kConnection, "ip_limit", 429},
    {RefusalFamily::kConnection, "ip_rate", 429},
    {RefusalFamily::kConnection, "soft_limit", 111},
    {RefusalFamily::kConnection, "user_limit", 3504},
    {RefusalFamily::kConnection, "bad_last_event_id", 400},
    {RefusalFamily::kCommand, "publish", 111},
    {RefusalFamily::kCommand, "subscribe", 111},
    {RefusalFamily::kCommand, "history", 111},
    {RefusalFamily::kCommand, "presence", 111},
    {RefusalFamily::kCommand, "rpc", 111},
    {RefusalFamily::kCommand, "total", 111},
    {RefusalFamily::kCommand, "channel", 111},
    {RefusalFamily::kDisconnect, "rate_limit", 3013},
}};
inline constexpr const RefusalRow& Row(Refusal r) { return kRefusals[static_cast<size_t>(r)]; }

// A shared push that did not reach its subscriber's socket (net::Connection), by why:
// hermod_send_queue_dropped_total{reason} (label). Watermark and loop budget leave out only
// droppable pushes, silently, and both count as "shed"; replaced: superseded in the queue by
// a newer push of the same key (delivery: latest); cut: still queued when the connection was
// cut as a slow consumer; told: not queued, and its subscriber told at once.
enum class DropReason : uint8_t { kWatermark, kLoopBudget, kReplaced, kCut, kTold, kCount };

struct DropRow {
  std::string_view name;   // for logs and tests
  std::string_view label;  // the metric's reason label
};

inline constexpr std::array<DropRow, static_cast<size_t>(DropReason::kCount)> kDropReasons = {{
    {"watermark", "shed"},
    {"loop_budget", "shed"},
    {"replaced", "replaced"},
    {"cut", "cut"},
    {"told", "told"},
}};

// Why a connection was cut as a slow consumer (disconnect 3008 for a client):
// hermod_slow_consumer_disconnects_total counts them all. overflow: its queue passed
// send_queue.max_bytes (also hermod_write_buffer_overflows_total); deadline: output waited
// past urgent_deadline_ms or normal_deadline_ms; missed: a push that may not be dropped
// could not be queued and the protocol could tell its subscriber only by a disconnect.
enum class SlowReason : uint8_t { kOverflow, kDeadline, kMissed, kCount };

inline constexpr std::array<std::string_view, static_cast<size_t>(SlowReason::kCount)>
    kSlowReasons = {"overflow", "deadline", "missed"};

// Why the WebSocket layer itself closed a connection (ws::WebSocketConnection), counted per
// loop in hermod_websocket_<metric>_total and named by `name` in its log line. Every close,
// whoever ends it, is also counted by its close code (hermod_websocket_closed_total{code}):
// those stay numbers, since the peer may close with any code of 1000..4999.
enum class WsClose : uint8_t {
  kProtocolError,  // an RFC 6455 violation: our Close with 1002, 1007 (bad UTF-8) or 1009
  kPongTimeout,    // no pong to our ping within pong_timeout_ms: cut, no Close (1006)
  kIdleTimeout,    // nothing read for idle_timeout_ms: our Close with 1001
  kCount
};

struct WsCloseRow {
  std::string_view name;    // the log's reason
  std::string_view metric;  // hermod_websocket_<metric>_total
  uint16_t code;            // the close code counted for it; 0: the error's (1002, 1007, 1009)
};

inline constexpr std::array<WsCloseRow, static_cast<size_t>(WsClose::kCount)> kWsCloses = {{
    {"protocol_error", "protocol_error_closes", 0},
    {"pong_timeout", "pong_timeouts", 1006},
    {"idle_timeout", "idle_timeouts", 1001},
}};
inline constexpr const WsCloseRow& Row(WsClose r) { return kWsCloses[static_cast<size_t>(r)]; }

// An array of counters indexed by one of the enums above.
template <class Enum, class T = uint64_t>
struct ByReason {
  std::array<T, static_cast<size_t>(Enum::kCount)> values{};
  T& operator[](Enum e) { return values[static_cast<size_t>(e)]; }
  const T& operator[](Enum e) const { return values[static_cast<size_t>(e)]; }
};

// Admission and rate-limit refusals, and the accept throttle, counted on the loop that
// refused (net::LoopStats::guard).
struct GuardStats {
  ByReason<Refusal> refused;
  uint64_t accept_throttled = 0;  // listener pauses for admission.accept_rate_per_loop
  void Count(Refusal r) { ++refused[r]; }
};

}  // namespace hermod::stats
