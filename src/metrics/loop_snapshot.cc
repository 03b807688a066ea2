#include "metrics/loop_snapshot.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "net/connection.h"

namespace hermod::metrics {

namespace {

LoopSnapshot Take(const LoopCounters& counters, bool queues) {
  LoopSnapshot s;
  s.loop = counters.loop->index();
  s.answered = true;
  s.connections = counters.loop->connection_count();
  s.send_queue_footprint = counters.loop->queued_cost();
  s.net = counters.loop->stats();
  if (counters.http != nullptr) s.http = *counters.http;
  if (counters.ws != nullptr) s.ws = *counters.ws;
  if (counters.metrics != nullptr) {
    counters.metrics->EndFanoutRun();  // between mailbox tasks: no fan-out is half done
    s.metrics = *counters.metrics;
  }
  // Queue depth is read, not kept: a walk over the loop's connections per scrape (about a
  // nanosecond each) costs the hot path nothing, where a running sum would cost every send.
  if (!queues) return s;
  counters.loop->ForEachConnection([&s](net::Connection* c) {
    size_t queued = c->queued_bytes();
    s.queued_bytes += queued;
    s.max_queued_bytes = std::max<uint64_t>(s.max_queued_bytes, queued);
    if (queued > 0) ++s.queued_connections;
  });
  return s;
}

// Lives on the origin loop. Owned by the replies in flight (every owner lets go on origin's
// thread, so it dies there), never by itself: the last reply, or the deadline, finishes it,
// and a gathering still waiting when the loops stop dies with the replies left in their
// mailboxes (owned by itself, it leaked at shutdown).
class Gathering final : public net::TimerNode {
 public:
  Gathering(net::Loop& origin, size_t count, std::function<void(std::vector<LoopSnapshot>)> done)
      : origin_(origin), snapshots_(count), missing_(count), done_(std::move(done)) {
    for (size_t i = 0; i < count; ++i) snapshots_[i].loop = static_cast<int>(i);
  }

  void Start(uint64_t deadline_ms) { origin_.timers().Schedule(this, deadline_ms); }

  void Answer(size_t index, const LoopSnapshot& snapshot) {
    if (finished_) return;
    snapshots_[index] = snapshot;
    if (--missing_ == 0) Finish();
  }

  void OnTimer() override { Finish(); }

 private:
  void Finish() {
    if (finished_) return;
    finished_ = true;
    origin_.timers().Cancel(this);
    auto done = std::move(done_);
    done(std::move(snapshots_));
  }

  net::Loop& origin_;
  std::vector<LoopSnapshot> snapshots_;
  size_t missing_;
  std::function<void(std::vector<LoopSnapshot>)> done_;
  bool finished_ = false;
};

}  // namespace

void GatherSnapshots(net::Loop& origin, const std::vector<LoopCounters>& loops,
                     uint64_t deadline_ms, std::function<void(std::vector<LoopSnapshot>)> done,
                     bool queues) {
  if (loops.empty()) return done({});  // no reply would ever own or finish a gathering
  auto gathering = std::make_shared<Gathering>(origin, loops.size(), std::move(done));
  gathering->Start(deadline_ms);  // the replies own it from here, the local until they do
  for (size_t i = 0; i < loops.size(); ++i) {
    const LoopCounters counters = loops[i];
    if (counters.loop == &origin) {
      gathering->Answer(i, Take(counters, queues));
      continue;
    }
    counters.loop->Post([gathering, counters, i, origin = &origin, queues]() mutable {
      LoopSnapshot snapshot = Take(counters, queues);
      // The reference moves into the reply, so the last owner is always on origin.
      origin->Post(
          [gathering = std::move(gathering), i, snapshot] { gathering->Answer(i, snapshot); });
    });
  }
}

}  // namespace hermod::metrics
