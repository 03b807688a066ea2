// Scheduled delivery's wiring: how the scheduler fires (through the server API on a loop,
// round robin) and what /metrics shows of it (hermod_scheduled_*).
#pragma once

#include <memory>
#include <vector>

#include "api/server_api.h"
#include "core/scheduler.h"
#include "metrics/prometheus_text.h"
#include "net/event_loop.h"
#include "store/nats_history.h"

namespace hermod::app {

// Publishes each on one of loops, as its API call would have (ServerApi::Fire).
// kill_after_published (config fault_kill_at, crash tests only): SIGKILL once one is
// published, before the scheduler forgets it; before_kill (when set) runs first (the broker's
// flush, so what was published has left the node).
core::Scheduler::FireFn FireThroughApi(const api::ServerApi& api, std::vector<net::Loop*> loops,
                                       bool kill_after_published = false,
                                       std::function<void()> before_kill = {});
// fire_keys: engine nats's kept keys of firings (NatsIdempotencyStore); null: none (0).
void RenderScheduled(metrics::PrometheusText& t, const core::Scheduler& scheduler,
                     const store::NatsIdempotencyStore* fire_keys = nullptr);

}  // namespace hermod::app
