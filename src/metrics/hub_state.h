// What the hub holds (channels, subscriptions, history, presence, idempotency keys, and the
// reclaim queue of idle channels), as /metrics families and dashboard figures. The hub fills
// the figures by walking its shards under their locks (core::Hub::State), once per scrape or
// poll: the data path pays nothing, a scrape pays in proportion to the channels held. This
// room asks through HubSource's callbacks (wired in app/server.cc) and never includes the
// hub. Per loop: the loop whose timer sweeps the shard (shard % loops), so the per-loop series
// add up to the node's total and show whether one loop's shards hold more than their share.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "metrics/prometheus_text.h"
#include "stats/hub_state.h"

namespace hermod::metrics {

// How this room reads the hub; any thread, each call walks the hub's shards.
struct HubSource {
  // One entry per loop, in loop order.
  std::function<std::vector<stats::HubState>()> state;
  // Every channel with its subscriber count.
  std::function<std::vector<std::pair<std::string, size_t>>()> channels;
};

// The hermod_hub_* families (see the HELP texts).
void RenderHubState(PrometheusText& text, const std::vector<stats::HubState>& loops);
// Every loop's figures added up.
stats::HubState SumHubState(const std::vector<stats::HubState>& loops);
// The dashboard's form: {"total":{...},"loops":[{...},...]}.
std::string HubStateJson(const std::vector<stats::HubState>& loops);

}  // namespace hermod::metrics
