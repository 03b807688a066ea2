// What /metrics and /health show of the backend proxies (proxy/proxies.h): app/ renders it,
// since the proxy room sits below metrics/ (the session calls it) and must not include it.
#pragma once

#include "metrics/health.h"
#include "metrics/prometheus_text.h"
#include "proxy/proxies.h"

namespace hermod::app {

// hermod_proxy_requests_total{kind, endpoint, outcome}, hermod_proxy_in_flight,
// hermod_proxy_duration_seconds (a histogram), hermod_proxy_circuit_breaker_state.
void RenderProxies(const proxy::Proxies& proxies, metrics::PrometheusText& text);
// Degraded while any endpoint's breaker is not closed (the clients it serves get errors).
metrics::HealthCheck ProxiesHealth(const proxy::Proxies& proxies);

}  // namespace hermod::app
