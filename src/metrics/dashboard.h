// The live dashboard: GET /dashboard answers one self-contained HTML page (web/dashboard.html,
// embedded in the binary at build time: no files at run time, nothing from a CDN), and
// GET /dashboard/data the JSON it polls every second. The data is gathered as a scrape is
// (loop_snapshot.h: every loop's counters through its mailbox, answered on the asking loop),
// plus the health monitor's last result and the busiest channels from the hub. Rates and
// latency percentiles are the page's work: it differences consecutive answers (counters and
// histogram buckets), so the server keeps no history for it.
//
// Access: only with config `admin` true (else both routes are 404) and HTTP Basic credentials
// whose password is `admin_password` (any user name; compared in constant time); without
// them 401 with a Basic challenge, so a browser asks once and resends them on every poll.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/http_connection.h"
#include "http/request.h"
#include "metrics/health.h"
#include "metrics/hub_state.h"
#include "metrics/loop_snapshot.h"

namespace hermod::metrics {

// The page's HTML (generated at build time from web/dashboard.html).
extern const std::string_view kDashboardHtml;

// True when an Authorization header carries HTTP Basic credentials with this password.
bool BasicPasswordMatches(std::string_view authorization, std::string_view password);

// The /dashboard/data body. state: the hub's figures per loop (hub_state.h).
std::string DashboardJson(const std::vector<LoopSnapshot>& loops, const std::string& health_json,
                          const std::vector<std::pair<std::string, size_t>>& channels,
                          const std::vector<stats::HubState>& state, uint64_t unix_ms);

class Dashboard {
 public:
  // monitor outlives this.
  Dashboard(std::vector<LoopCounters> loops, const HealthMonitor& monitor, HubSource hub,
            uint64_t deadline_ms, std::string password);

  void Page(http::HttpConnection& c, http::Request& request);
  void Data(http::HttpConnection& c, http::Request& request);

  static constexpr size_t kTopChannels = 10;

 private:
  // Answers 401 and returns false unless the request carries the password.
  bool Authorized(http::HttpConnection& c, const http::Request& request) const;

  const std::vector<LoopCounters> loops_;
  const HealthMonitor& monitor_;
  const HubSource hub_;
  const uint64_t deadline_ms_;
  const std::string password_;
};

}  // namespace hermod::metrics
