// The admin dashboard, hermod's counterpart of Centrifugo's admin UI: GET /dashboard answers
// one self-contained HTML page (web/dashboard.html, embedded in the binary at build time: no
// files at run time, nothing from a CDN) that polls the JSON routes below.
//
// - GET /dashboard/data: this node (version, uptime, memory, CPU, clients, users, channels,
//   subscriptions), every node of the cluster (what the broker heard from the others), every
//   loop's counters gathered as a scrape is (loop_snapshot.h), latency histograms, the health
//   monitor's last result, the busiest channels, the hub's state, and the inboxes' pending
//   and dead counts.
// - GET /dashboard/history[?after=MS]: the last ten minutes of samples (dashboard_history.h),
//   taken once a second by a timer on the first loop whether or not a page is open, so that
//   a reload keeps the chart. Counters are cumulative: the page differences them into rates.
// - POST /dashboard/api/<method>: the server API (publish, disconnect, unsubscribe,
//   history_remove, channels, presence, history, ...) with the admin's credentials instead
//   of the API key, as Centrifugo's /admin/api: the page never holds the API key. Each call
//   is logged with its method and the caller's address.
//
// Access: only with config `admin` true (else every route is 404) and HTTP Basic credentials
// whose password is `admin_password` (any user name; compared in constant time); without
// them 401 with a Basic challenge, so a browser asks once and resends them on every request.
// Browsers also send Basic credentials on requests that other sites make them send, so the
// API route wants the header `X-Hermod-Admin: 1` as well: a page of another origin cannot
// set it without a CORS preflight, which hermod never grants.
//
// Metrics knows no hub, API or broker: what it shows of them comes through DashboardSources,
// filled in by app/server.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_connection.h"
#include "http/request.h"
#include "metrics/dashboard_history.h"
#include "metrics/health.h"
#include "metrics/loop_snapshot.h"

namespace hermod::metrics {

// The page's HTML (generated at build time from web/dashboard.html).
extern const std::string_view kDashboardHtml;

// True when an Authorization header carries HTTP Basic credentials with this password.
bool BasicPasswordMatches(std::string_view authorization, std::string_view password);

// The hub's totals, which the sampler reads every second: counters, no walk of the channels.
struct HubFigures {
  uint64_t channels = 0;
  uint64_t subscriptions = 0;
};

// What the dashboard reads of the rest of the server. Each function is called on a loop
// thread (a route, or the sampler on the first loop) and must not block.
struct DashboardSources {
  std::string node_id;    // the cluster's id of this node (the broker's), or "local"
  std::string node_name;  // the host name
  std::string version;
  // {connected clients, distinct users}.
  std::function<std::pair<size_t, size_t>()> clients;
  // Every channel with its subscriber count (the dashboard picks the busiest).
  std::function<std::vector<std::pair<std::string, size_t>>()> channels;
  std::function<HubFigures()> hub;
  // The hub's per-loop state as the JSON object the page shows ({"total":{...},"loops":
  // [...]}, hub_state.h): a walk of every channel, so once per poll of the page's data only.
  std::function<std::string()> hub_state;
  // The server API (api::ServerApi::Call): the HTTP status and answer (in out) for one
  // method; or 0 when a store engine answers later, and then `later` gets them on loop.
  std::function<int(std::string_view method, std::string& body, std::string& out, net::Loop& loop,
                    std::function<void(int status, std::string out)> later)>
      api;
  // The other nodes of the cluster, each as the JSON object NodeJson made there; null or
  // empty on a single node.
  std::function<std::vector<std::string>()> other_nodes;
  // The inboxes (inbox namespaces only), as the JSON object the page shows:
  // {"pending":N,"dead":N,"namespaces":[{"namespace":"..","pending":N},...]}; null without.
  std::function<std::string()> inboxes;
};

// The /dashboard/data body. nodes: this node's JSON first, then the others'.
std::string DashboardJson(const std::vector<LoopSnapshot>& loops, const std::string& health_json,
                          const std::vector<std::pair<std::string, size_t>>& channels,
                          const std::string& state_json, const std::vector<std::string>& nodes,
                          uint64_t unix_ms, const std::string& inboxes_json = {});

class Dashboard {
 public:
  // monitor outlives this.
  Dashboard(std::vector<LoopCounters> loops, const HealthMonitor& monitor, uint64_t deadline_ms,
            std::string password, DashboardSources sources);
  ~Dashboard();

  // Once the loops exist, before they run: the sampler's timer on the first loop. The loops
  // must be destroyed before this.
  void Start();

  void Page(http::HttpConnection& c, http::Request& request);
  void Data(http::HttpConnection& c, http::Request& request);
  void History(http::HttpConnection& c, http::Request& request);
  void Api(http::HttpConnection& c, http::Request& request);

  // Any thread: this node as the dashboard lists it (version, uptime, memory, CPU, clients,
  // rates), from the last samples; what the broker tells the other nodes.
  std::string NodeJson() const;

  static constexpr size_t kTopChannels = 10;

 private:
  class Sampler;

  // Answers 401 and returns false unless the request carries the password.
  bool Authorized(http::HttpConnection& c, const http::Request& request) const;
  // On the first loop, once a second.
  void TakeSample();

  const std::vector<LoopCounters> loops_;
  const HealthMonitor& monitor_;
  const uint64_t deadline_ms_;
  const std::string password_;
  const DashboardSources sources_;
  const uint64_t started_ms_;  // monotonic, for the uptime
  SampleRing history_;
  std::unique_ptr<Sampler> sampler_;
};

}  // namespace hermod::metrics
