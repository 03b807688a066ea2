// Every loop counts for itself, in plain integers that only its own thread touches (net's
// LoopStats, http's HttpStats, ws's WebSocketStats): nothing on the hot path is atomic or
// locked. A reader on another loop asks for a copy through each loop's mailbox and gets the
// answers back through its own, so no loop ever waits for another. A loop that does not
// answer within the deadline is reported as such instead of holding the answer up.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "http/http_connection.h"
#include "net/event_loop.h"
#include "stats/loop_metrics.h"
#include "ws/websocket_connection.h"

namespace hermod::metrics {

// The per-loop counters are the stats room's (a leaf every room records into); this room
// reads and renders them.
using stats::Histogram;
using stats::kLatencyBoundsUs;
using stats::LatencyHistogram;
using stats::LoopMetrics;
using stats::PushType;

// Where one loop keeps its counters. Read only on that loop's thread.
struct LoopCounters {
  net::Loop* loop = nullptr;
  const http::HttpStats* http = nullptr;
  const ws::WebSocketStats* ws = nullptr;
  LoopMetrics* metrics = nullptr;  // not const: a snapshot ends the fan-out run it counts
};

// A copy of one loop's counters, taken on that loop.
struct LoopSnapshot {
  int loop = 0;
  bool answered = false;  // false: the loop missed the deadline; the figures are zero
  uint64_t connections = 0;
  uint64_t send_queue_footprint = 0;  // net::Loop::queued_cost
  net::LoopStats net;
  http::HttpStats http;
  ws::WebSocketStats ws;
  LoopMetrics metrics;
  // Send queues, read at the snapshot: bytes queued in all, the longest queue, and how many
  // connections have something queued.
  uint64_t queued_bytes = 0;
  uint64_t max_queued_bytes = 0;
  uint64_t queued_connections = 0;
};

// On origin's thread: asks every loop for a snapshot and calls done on origin's thread with
// one entry per loop, in loop order, once all have answered or deadline_ms has passed.
// queues false: the send-queue figures (a walk of every connection) are left at 0.
void GatherSnapshots(net::Loop& origin, const std::vector<LoopCounters>& loops,
                     uint64_t deadline_ms, std::function<void(std::vector<LoopSnapshot>)> done,
                     bool queues = true);

}  // namespace hermod::metrics
