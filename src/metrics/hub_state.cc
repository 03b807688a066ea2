#include "metrics/hub_state.h"

#include <fmt/format.h>

#include <iterator>
#include <string>

namespace hermod::metrics {

stats::HubState SumHubState(const std::vector<stats::HubState>& loops) {
  stats::HubState all;
  for (const stats::HubState& s : loops) {
    all.channels += s.channels;
    all.subscriptions += s.subscriptions;
    all.history_entries += s.history_entries;
    all.history_bytes += s.history_bytes;
    all.presence_entries += s.presence_entries;
    all.idempotency_keys += s.idempotency_keys;
    all.reclaim_queued += s.reclaim_queued;
    all.reclaim_backlog += s.reclaim_backlog;
    all.reclaimed += s.reclaimed;
  }
  return all;
}

void RenderHubState(PrometheusText& text, const std::vector<stats::HubState>& loops) {
  using Stats = stats::HubState;
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    uint64_t Stats::*field;
  };
  static constexpr Family kFamilies[] = {
      {"hermod_hub_channels", "gauge",
       "Channels the hub keeps state for (subscribed, or holding history, presence, "
       "idempotency keys or a rate bucket in debt), by the loop that sweeps their shard.",
       &Stats::channels},
      {"hermod_hub_subscriptions", "gauge", "Subscriptions to those channels (on every loop).",
       &Stats::subscriptions},
      {"hermod_hub_history_entries", "gauge", "Publications held in channel history.",
       &Stats::history_entries},
      {"hermod_hub_history_bytes", "gauge", "Bytes of the publications held in channel history.",
       &Stats::history_bytes},
      {"hermod_hub_presence_entries", "gauge", "Presence entries (one per subscribed client).",
       &Stats::presence_entries},
      {"hermod_hub_idempotency_keys", "gauge",
       "Idempotency keys remembered (idempotency_window), expired ones not yet pruned included.",
       &Stats::idempotency_keys},
      {"hermod_hub_reclaim_queued", "gauge",
       "Channels without subscribers queued for reclaim at the time they may become unused.",
       &Stats::reclaim_queued},
      {"hermod_hub_reclaim_backlog", "gauge",
       "Queued channels whose reclaim time has passed and that are not yet handled: stays "
       "near 0 unless reclaim falls behind.",
       &Stats::reclaim_backlog},
      {"hermod_hub_channels_reclaimed_total", "counter", "Idle channels erased.",
       &Stats::reclaimed},
  };
  for (const Family& f : kFamilies) {
    text.Family(f.name, f.type, f.help);
    for (size_t i = 0; i < loops.size(); ++i) {
      text.Sample(f.name, {{"loop", std::to_string(i)}}, loops[i].*f.field);
    }
  }
}

}  // namespace hermod::metrics

namespace hermod::metrics {

namespace {

void AppendState(std::string& out, const stats::HubState& s) {
  fmt::format_to(std::back_inserter(out),
                 "{{\"channels\":{},\"subscriptions\":{},\"history_entries\":{},"
                 "\"history_bytes\":{},\"presence_entries\":{},\"idempotency_keys\":{},"
                 "\"reclaim_backlog\":{}}}",
                 s.channels, s.subscriptions, s.history_entries, s.history_bytes,
                 s.presence_entries, s.idempotency_keys, s.reclaim_backlog);
}

}  // namespace

std::string HubStateJson(const std::vector<stats::HubState>& loops) {
  std::string out = "{\"total\":";
  AppendState(out, SumHubState(loops));
  out += ",\"loops\":[";
  for (size_t i = 0; i < loops.size(); ++i) {
    if (i > 0) out += ',';
    AppendState(out, loops[i]);
  }
  out += "]}";
  return out;
}

}  // namespace hermod::metrics
