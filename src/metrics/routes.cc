#include "metrics/routes.h"

#include <utility>

#include "http/response.h"
#include "metrics/process_stats.h"

namespace hermod::metrics {

Routes::Routes(std::vector<LoopCounters> loops, const HealthMonitor& monitor, uint64_t deadline_ms,
               BuildInfo build, MethodLabels methods)
    : loops_(std::move(loops)),
      monitor_(monitor),
      deadline_ms_(deadline_ms),
      build_(build),
      methods_(methods) {}

void Routes::Metrics(http::HttpConnection& c, http::Request& request) {
  http::DeferredResponse answer = c.Defer();
  bool keep_alive = request.keep_alive;
  GatherSnapshots(
      c.loop(), loops_, deadline_ms_,
      [this, answer, keep_alive](std::vector<LoopSnapshot> snapshots) {
        std::string body =
            RenderMetrics(snapshots, ReadProcessStats(), monitor_.Figures(), build_, methods_);
        if (!renderers_.empty()) {
          PrometheusText extra;
          for (const auto& render : renderers_) render(extra);
          body += extra.text();
        }
        answer.Respond(http::BuildResponse(200, kPrometheusContentType, body, keep_alive),
                       keep_alive);
      });
}

void Routes::Health(http::HttpConnection& c, http::Request& request) {
  c.Respond(http::BuildResponse(200, "application/json", monitor_.Json(), request.keep_alive),
            request.keep_alive);
}

void Routes::Live(http::HttpConnection& c, http::Request& request) {
  // Answered by a loop, so a loop runs.
  c.Respond(
      http::BuildResponse(200, "application/json", "{\"status\":\"live\"}\n", request.keep_alive),
      request.keep_alive);
}

void Routes::Ready(http::HttpConnection& c, http::Request& request) {
  bool ready = monitor_.Ready();
  c.Respond(http::BuildResponse(ready ? 200 : 503, "application/json",
                                ready ? "{\"status\":\"ready\"}\n" : "{\"status\":\"not ready\"}\n",
                                request.keep_alive),
            request.keep_alive);
}

}  // namespace hermod::metrics
