// The store engine on /metrics (hermod_store_*) and /health (the `store` check), from the
// engine's status (store/sqlite_store.h). The memory engine has no status: its families
// are exposed with no samples and its check is not added.
#pragma once

#include <functional>

#include "metrics/health.h"
#include "metrics/prometheus_text.h"
#include "store/sqlite_store.h"

namespace hermod::app {

using StoreStatusFn = std::function<store::StoreStatus()>;

void RenderStoreMetrics(metrics::PrometheusText& text, const StoreStatusFn& status);
metrics::HealthCheck StoreHealth(const store::StoreStatus& status);

}  // namespace hermod::app
