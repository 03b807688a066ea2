// The `nats` schedule store: scheduled publications in a NATS KV bucket shared by the
// cluster's nodes (`<prefix>_schedules`), so that every node holds every pending one (a
// KV watcher tells each node what the others add and remove) and exactly one fires each:
// at its time every node tries to create the key `<id>` in a second bucket
// (`<prefix>_schedule_claims`, whose entries expire after lease_ms; a bucket made with
// another lease is given this one); the node whose create
// succeeds fires it and then deletes the schedule (the claim expires by itself). If that node dies
// first, its claim expires and another node claims and fires it (lease_ms late); one that fired but
// died before deleting is fired again: with the schedule's id as its key (core::FireKey), the
// history engine finds the first in the channel's stream and the inbox engine in the entry's
// record, and neither stores it again; to a channel without history (a core NATS publish
// leaves nothing to look up) each node that delivered the first drops it by the key it kept
// (NatsIdempotencyStore; README, Scheduled delivery).
//
// Threads: one libnats connection; Put and Remove are queued to the store's own thread
// (they never block the loops); the watcher has its own thread; Claim is called on the
// scheduler's thread and waits for NATS (at most the request timeout).
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "core/schedule_store.h"

namespace hermod::store {

struct NatsScheduleOptions {
  std::string url = "nats://127.0.0.1:4222";
  std::string bucket = "hermod_schedules";
  std::string claims_bucket = "hermod_schedule_claims";
  uint64_t lease_ms = 5000;
  uint64_t dial_timeout_ms = 1000;
  uint64_t reconnect_wait_ms = 1000;
  config::NatsTls tls;
  uint64_t request_timeout_ms = 2000;
};

// Connects and creates (or binds) both buckets; null with *error naming NATS and the fix.
std::unique_ptr<core::ScheduleStore> MakeNatsSchedules(const NatsScheduleOptions& options,
                                                       std::string* error);

}  // namespace hermod::store
