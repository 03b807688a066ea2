#include "app/scheduled.h"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <string>
#include <utility>

namespace hermod::app {

core::Scheduler::FireFn FireThroughApi(const api::ServerApi& api, std::vector<net::Loop*> loops,
                                       bool kill_after_published) {
  auto next = std::make_shared<std::atomic<size_t>>(0);
  return [&api, loops = std::move(loops), next, kill_after_published](
             const core::ScheduledPublication& s, std::function<void(bool)> done) {
    net::Loop* loop = loops[next->fetch_add(1) % loops.size()];
    if (kill_after_published) {
      done = [done = std::move(done)](bool retry) {
        if (!retry) raise(SIGKILL);
        done(retry);
      };
    }
    loop->Post(
        [&api, loop, s, done = std::move(done)]() mutable { api.Fire(s, *loop, std::move(done)); });
  };
}

void RenderScheduled(metrics::PrometheusText& t, const core::Scheduler& scheduler) {
  const core::Scheduler::Stats s = scheduler.stats();
  const std::string_view engine = scheduler.engine();
  t.Family("hermod_scheduled_pending", "gauge",
           "Scheduled publications not yet published (this node's), by engine.");
  t.Sample("hermod_scheduled_pending", {{"engine", engine}}, s.pending);
  t.Family("hermod_scheduled_fired_total", "counter",
           "Scheduled publications published at their time.");
  t.Sample("hermod_scheduled_fired_total", {{"engine", engine}}, s.fired);
  t.Family("hermod_scheduled_cancelled_total", "counter",
           "Scheduled publications cancelled (scheduled_cancel).");
  t.Sample("hermod_scheduled_cancelled_total", {{"engine", engine}}, s.cancelled);
  t.Family("hermod_scheduled_lateness_seconds", "histogram",
           "How long after its deliver_at a scheduled publication was fired.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < s.lateness_buckets.size(); ++i) {
    cumulative += s.lateness_buckets[i];
    const std::string le = i < core::Scheduler::kLatenessBounds.size()
                               ? fmt::format("{}", core::Scheduler::kLatenessBounds[i])
                               : "+Inf";
    t.Sample("hermod_scheduled_lateness_seconds_bucket", {{"engine", engine}, {"le", le}},
             cumulative);
  }
  t.Sample("hermod_scheduled_lateness_seconds_sum", {{"engine", engine}}, s.lateness_sum_s);
  t.Sample("hermod_scheduled_lateness_seconds_count", {{"engine", engine}}, cumulative);
}

}  // namespace hermod::app
