#include "app/scheduled.h"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <string>
#include <utility>

namespace hermod::app {

core::Scheduler::FireFn FireThroughApi(const api::ServerApi& api, std::vector<net::Loop*> loops,
                                       bool kill_after_published,
                                       std::function<void()> before_kill) {
  auto next = std::make_shared<std::atomic<size_t>>(0);
  return [&api, loops = std::move(loops), next, kill_after_published, before_kill](
             const core::ScheduledPublication& s, std::function<void(bool)> done) {
    net::Loop* loop = loops[next->fetch_add(1) % loops.size()];
    if (kill_after_published) {
      done = [done = std::move(done), before_kill](bool retry) {
        if (!retry && before_kill) before_kill();
        if (!retry) raise(SIGKILL);
        done(retry);
      };
    }
    loop->Post(
        [&api, loop, s, done = std::move(done)]() mutable { api.Fire(s, *loop, std::move(done)); });
  };
}

void RenderScheduled(metrics::PrometheusText& t, const core::Scheduler& scheduler,
                     const store::NatsIdempotencyStore* fire_keys) {
  const core::Scheduler::Stats s = scheduler.stats();
  const std::string_view engine = scheduler.engine();
  const store::NatsIdempotencyStore::Counts keys =
      fire_keys != nullptr ? fire_keys->counts() : store::NatsIdempotencyStore::Counts{};
  t.Family("hermod_scheduled_repeats_dropped_total", "counter",
           "Publications of a firing this node had delivered already, dropped before fan-out "
           "(a firing repeated after a crash; engine nats, channels without history).");
  t.Sample("hermod_scheduled_repeats_dropped_total", {{"engine", engine}}, keys.repeats);
  t.Family("hermod_scheduled_fire_keys", "gauge",
           "Keys of firings delivered here, kept for idempotency_window to drop a repeat.");
  t.Sample("hermod_scheduled_fire_keys", {{"engine", engine}}, keys.kept);
  t.Family("hermod_scheduled_fire_keys_unkept_total", "counter",
           "Keys of firings not kept: nats.schedule_fire_keys were held.");
  t.Sample("hermod_scheduled_fire_keys_unkept_total", {{"engine", engine}}, keys.unkept);
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
