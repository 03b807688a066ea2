#include "app/proxy_metrics.h"

#include <fmt/format.h>

#include <string>

namespace hermod::app {

namespace {

using State = core::CircuitBreaker::State;

std::string_view KindName(const proxy::Endpoint& e) {
  return proxy::kKindNames[static_cast<size_t>(e.kind())];
}

}  // namespace

void RenderProxies(const proxy::Proxies& proxies, metrics::PrometheusText& t) {
  const std::vector<proxy::Endpoint*> endpoints = proxies.endpoints();
  t.Family("hermod_proxy_requests_total", "counter",
           "Backend proxy calls by kind, endpoint and outcome (ok, error and disconnect are "
           "the backend's answers; open and overloaded were not sent).");
  for (proxy::Endpoint* e : endpoints) {
    for (size_t o = 0; o < proxy::kOutcomes; ++o) {
      t.Sample("hermod_proxy_requests_total",
               {{"kind", KindName(*e)},
                {"endpoint", e->url()},
                {"name", e->name()},
                {"outcome", proxy::kOutcomeNames[o]}},
               e->count(static_cast<proxy::Outcome>(o)));
    }
  }
  t.Family("hermod_proxy_in_flight", "gauge", "Backend proxy calls sent and not yet answered.");
  for (proxy::Endpoint* e : endpoints) {
    t.Sample("hermod_proxy_in_flight",
             {{"kind", KindName(*e)}, {"endpoint", e->url()}, {"name", e->name()}}, e->in_flight());
  }
  t.Family("hermod_proxy_duration_seconds", "histogram",
           "Backend proxy call latency, from sending the request to the whole answer.");
  for (proxy::Endpoint* e : endpoints) {
    const auto buckets = e->buckets();
    for (size_t i = 0; i < proxy::kLatencyBuckets.size(); ++i) {
      const std::string le = fmt::format("{}", proxy::kLatencyBuckets[i]);
      t.Sample("hermod_proxy_duration_seconds_bucket",
               {{"kind", KindName(*e)}, {"endpoint", e->url()}, {"name", e->name()}, {"le", le}},
               buckets[i]);
    }
    t.Sample("hermod_proxy_duration_seconds_bucket",
             {{"kind", KindName(*e)}, {"endpoint", e->url()}, {"name", e->name()}, {"le", "+Inf"}},
             buckets.back());
    t.Sample("hermod_proxy_duration_seconds_sum",
             {{"kind", KindName(*e)}, {"endpoint", e->url()}, {"name", e->name()}},
             static_cast<double>(e->latency_sum_us()) / 1e6);
    t.Sample("hermod_proxy_duration_seconds_count",
             {{"kind", KindName(*e)}, {"endpoint", e->url()}, {"name", e->name()}}, buckets.back());
  }
  t.Family("hermod_proxy_circuit_breaker_state", "gauge",
           "Backend proxy endpoint circuit breaker: 0 closed, 1 open, 2 half-open.");
  for (proxy::Endpoint* e : endpoints) {
    t.Sample("hermod_proxy_circuit_breaker_state",
             {{"kind", KindName(*e)}, {"endpoint", e->url()}, {"name", e->name()}},
             static_cast<uint64_t>(e->state()));
  }
}

metrics::HealthCheck ProxiesHealth(const proxy::Proxies& proxies) {
  metrics::HealthCheck check{"proxies", metrics::HealthLevel::kHealthy, 0, 0, ""};
  std::string detail;
  double open = 0;
  for (proxy::Endpoint* e : proxies.endpoints()) {
    const State s = e->state();
    if (s == State::kClosed) continue;
    ++open;
    if (!detail.empty()) detail += "; ";
    detail += fmt::format("{} proxy {} ({}): circuit breaker {}", KindName(*e), e->name(), e->url(),
                          s == State::kOpen ? "open, calls fail fast" : "half-open");
  }
  check.value = open;
  check.limit = static_cast<double>(proxies.endpoints().size());
  if (open > 0) check.level = metrics::HealthLevel::kDegraded;
  check.detail = detail.empty() ? "every proxy endpoint's circuit breaker closed" : detail;
  return check;
}

}  // namespace hermod::app
