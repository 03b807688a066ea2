// What the hub holds (channels, subscriptions, history, presence, idempotency keys, and the
// reclaim queue of idle channels), as /metrics families and dashboard figures. Read by
// walking the hub's shards under their locks (core::Hub::State), once per scrape or poll: the
// data path pays nothing, a scrape pays in proportion to the channels held. Per loop: the
// loop whose timer sweeps the shard (shard % loops), so the per-loop series add up to the
// node's total and show whether one loop's shards hold more than their share.
#pragma once

#include <string>
#include <vector>

#include "core/hub.h"
#include "metrics/prometheus_text.h"

namespace hermod::metrics {

// One entry per loop, in loop order.
std::vector<core::Hub::StateStats> ReadHubState(core::Hub& hub);
// The hermod_hub_* families (see the HELP texts).
void RenderHubState(PrometheusText& text, const std::vector<core::Hub::StateStats>& loops);
// Every loop's figures added up.
core::Hub::StateStats SumHubState(const std::vector<core::Hub::StateStats>& loops);
// The dashboard's form: {"total":{...},"loops":[{...},...]}.
std::string HubStateJson(const std::vector<core::Hub::StateStats>& loops);

}  // namespace hermod::metrics
