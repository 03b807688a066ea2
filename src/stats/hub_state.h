// What the hub holds, as figures for /metrics and the dashboard: filled by core::Hub::State
// (under its shard locks, once per scrape or poll), rendered by the metrics room, which gets
// them through a callback and knows nothing of the hub.
#pragma once

#include <cstdint>

namespace hermod::stats {

struct HubState {
  uint64_t channels = 0;
  uint64_t subscriptions = 0;  // subscribers of those channels, on every loop
  uint64_t history_entries = 0;
  uint64_t history_bytes = 0;  // the stored publications' bytes
  uint64_t presence_entries = 0;
  uint64_t idempotency_keys = 0;
  uint64_t reclaim_queued = 0;   // channels queued for reclaim (stale entries included)
  uint64_t reclaim_backlog = 0;  // of those, the ones whose time has passed
  uint64_t reclaimed = 0;        // channels reclaimed since start (a counter)
};

}  // namespace hermod::stats
