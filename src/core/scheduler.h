// The pending scheduled publications (schedule_store.h) of this node, ordered by time, and
// the thread that fires each at its time: it sleeps on a condition variable until the
// earliest is due (no polling), hands it to FireFn (the app publishes it through the
// server API on a loop), and forgets it, in the store too, once FireFn reports it
// published. A publication fired but not yet forgotten when the process dies is fired
// again at the next start: FireFn publishes with an idempotency key derived from the id
// (FireKey), which a durable engine keeps with what it stored, so that second firing
// publishes nothing (schedule_store.h says how long each engine keeps it).
//
// Threads: every method may be called from any thread (one mutex); FireFn is called on
// the scheduler's thread, and the done it gets may be called from any thread.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/schedule_store.h"

namespace hermod::core {

class Scheduler {
 public:
  // done(retry): published (false), or to be fired again a second later (true: the hub
  // refused it for now: a full inbox, a rate limit, an engine that failed).
  using FireFn =
      std::function<void(const ScheduledPublication& s, std::function<void(bool retry)> done)>;

  static constexpr std::array<double, 8> kLatenessBounds = {0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25, 1,     10};
  struct Stats {
    uint64_t pending = 0;
    uint64_t fired = 0;
    uint64_t cancelled = 0;
    // Fired this long after deliver_at: counts per bound (not cumulative), then +Inf.
    std::array<uint64_t, kLatenessBounds.size() + 1> lateness_buckets{};
    double lateness_sum_s = 0;
  };
  struct Page {
    std::vector<ScheduledPublication> items;
    std::string cursor;  // empty: no more
  };

  Scheduler(std::unique_ptr<ScheduleStore> store, uint64_t max_delay_ms);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Loads what the store holds and starts the thread: those whose time passed fire at once.
  bool Start(FireFn fire, std::string* error);
  // Stops the thread; what has not fired stays in the store.
  void Stop();

  const char* engine() const { return store_->name(); }
  bool durable() const { return store_->durable(); }
  uint64_t max_delay_ms() const { return max_delay_ms_; }

  // Stores s (its id set here), then done(stored) from any thread; it fires once stored.
  void Add(ScheduledPublication s, std::function<void(bool stored, std::string id)> done);
  // done(true) once it is removed, done(false) for an id not pending (unknown, fired,
  // cancelled, or firing now).
  void Cancel(const std::string& id, std::function<void(bool)> done);
  // By deliver_at, then id; those with channel among theirs when channel is not empty;
  // after cursor (a previous page's).
  Page List(std::string_view channel, std::string_view cursor, size_t limit) const;
  Stats stats() const;

  static int64_t WallMs();

 private:
  using Key = std::pair<int64_t, std::string>;  // (deliver_at_ms, id)
  // Shared with the completions the store and FireFn call later, which may outlive this.
  struct State {
    std::mutex mutex;
    std::condition_variable wake;
    std::map<Key, ScheduledPublication> pending;  // not firing
    std::unordered_map<std::string, int64_t> at;  // id -> deliver_at_ms, pending ones
    size_t firing = 0;
    bool stopping = false;
    Stats stats;
  };
  void Run();
  static void Insert(State& s, ScheduledPublication p);

  std::shared_ptr<ScheduleStore> store_;
  const uint64_t max_delay_ms_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  FireFn fire_;
  std::thread thread_;
};

}  // namespace hermod::core
