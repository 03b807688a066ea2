// The operator's HTTP routes: GET /metrics (Prometheus), GET /health (the level, its checks
// and history, as JSON), GET /health/live and GET /health/ready (for load balancers and
// Kubernetes). /metrics is answered asynchronously: the connection's loop gathers every
// loop's counters through the mailboxes (loop_snapshot.h) and answers when all are in; the
// health routes read the monitor's last result.
#pragma once

#include <functional>
#include <vector>

#include "http/http_connection.h"
#include "http/request.h"
#include "metrics/health.h"
#include "metrics/loop_snapshot.h"
#include "metrics/prometheus_text.h"

namespace hermod::metrics {

class Routes {
 public:
  // loops: one entry per loop, in loop order. monitor outlives this.
  Routes(std::vector<LoopCounters> loops, const HealthMonitor& monitor, uint64_t deadline_ms,
         BuildInfo build, MethodLabels methods);

  // Before the loops run: families another room renders (e.g. the broker's), appended to
  // every scrape; called on the scraping loop's thread, must not block.
  void AddRenderer(std::function<void(PrometheusText&)> render) {
    renderers_.push_back(std::move(render));
  }

  void Metrics(http::HttpConnection& c, http::Request& request);
  void Health(http::HttpConnection& c, http::Request& request);
  void Live(http::HttpConnection& c, http::Request& request);
  void Ready(http::HttpConnection& c, http::Request& request);

 private:
  const std::vector<LoopCounters> loops_;
  const HealthMonitor& monitor_;
  const uint64_t deadline_ms_;
  const BuildInfo build_;
  const MethodLabels methods_;
  std::vector<std::function<void(PrometheusText&)>> renderers_;
};

}  // namespace hermod::metrics
