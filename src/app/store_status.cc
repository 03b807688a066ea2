#include "app/store_status.h"

#include <fmt/format.h>

#include <string>

namespace hermod::app {

void RenderStoreMetrics(metrics::PrometheusText& t, const StoreStatusFn& status) {
  t.Family("hermod_store_operations_total", "counter",
           "Store engine operations done, by engine and kind (append, read, recover, remove, "
           "key, trim: one per transaction).");
  t.Family(
      "hermod_store_errors_total", "counter",
      "Store engine failures, by engine and reason (io, file_gone, breaker_open, queue_full).");
  t.Family("hermod_store_latency_seconds", "histogram",
           "Store engine operations, from queued to completed.");
  t.Family("hermod_store_queue_depth", "gauge", "Store engine operations queued for its writer.");
  if (!status) return;
  const store::StoreStatus s = status();
  const std::string_view engine = s.engine;
  for (size_t k = 0; k < store::StoreStatus::kKinds; ++k) {
    t.Sample("hermod_store_operations_total",
             {{"engine", engine}, {"kind", store::StoreStatus::kKindNames[k]}}, s.operations[k]);
  }
  for (size_t r = 0; r < store::StoreStatus::kReasons; ++r) {
    t.Sample("hermod_store_errors_total",
             {{"engine", engine}, {"reason", store::StoreStatus::kReasonNames[r]}}, s.errors[r]);
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i < s.latency_buckets.size(); ++i) {
    cumulative += s.latency_buckets[i];
    const std::string le = i < store::StoreStatus::kLatencyBounds.size()
                               ? fmt::format("{}", store::StoreStatus::kLatencyBounds[i])
                               : "+Inf";
    t.Sample("hermod_store_latency_seconds_bucket", {{"engine", engine}, {"le", le}}, cumulative);
  }
  t.Sample("hermod_store_latency_seconds_sum", {{"engine", engine}}, s.latency_sum_s);
  t.Sample("hermod_store_latency_seconds_count", {{"engine", engine}}, cumulative);
  t.Sample("hermod_store_queue_depth", {{"engine", engine}}, s.queue_depth);
}

metrics::HealthCheck StoreHealth(const store::StoreStatus& s) {
  using State = core::CircuitBreaker::State;
  metrics::HealthCheck check{"store", metrics::HealthLevel::kHealthy,
                             static_cast<double>(s.breaker),
                             static_cast<double>(s.failure_threshold), ""};
  if (s.breaker == State::kOpen) {
    check.detail = fmt::format(
        "{}: circuit breaker open: publications to channels with history "
        "are refused. {}",
        s.engine, s.last_error);
  } else if (s.breaker == State::kHalfOpen) {
    check.detail =
        fmt::format("{}: circuit breaker half-open: trying a write. {}", s.engine, s.last_error);
  } else if (!s.last_error.empty()) {
    check.detail = s.engine + ": the last write failed: " + s.last_error;
  } else {
    check.detail = s.engine + ": writes succeed";
  }
  if (s.breaker != State::kClosed || !s.last_error.empty()) {
    check.level = metrics::HealthLevel::kDegraded;
  }
  return check;
}

}  // namespace hermod::app
