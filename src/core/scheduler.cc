#include "core/scheduler.h"

#include <pthread.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>

namespace hermod::core {

namespace {

std::string NewId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (size_t half = 0; half < 2; ++half) {
    uint64_t bits = random();
    for (size_t i = 0; i < 16; ++i, bits >>= 4) id[half * 16 + i] = kHex[bits & 15];
  }
  return id;
}

// "<time>:<id>" of the last entry of a page.
std::string Cursor(int64_t at, const std::string& id) { return std::to_string(at) + ":" + id; }

bool ParseCursor(std::string_view cursor, int64_t* at, std::string* id) {
  const size_t colon = cursor.find(':');
  if (colon == std::string_view::npos) return false;
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + colon, *at);
  if (ec != std::errc() || end != cursor.data() + colon) return false;
  *id = std::string(cursor.substr(colon + 1));
  return true;
}

}  // namespace

int64_t Scheduler::WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Scheduler::Scheduler(std::unique_ptr<ScheduleStore> store, uint64_t max_delay_ms)
    : store_(std::move(store)), max_delay_ms_(max_delay_ms) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Insert(State& s, ScheduledPublication p) {
  // Keyed by when it fires next: deliver_at, or a retry's later time.
  const int64_t at = std::max(p.deliver_at_ms, s.at.count(p.id) ? s.at[p.id] : INT64_MIN);
  s.at[p.id] = at;
  std::string id = p.id;
  s.pending.emplace(Key{at, std::move(id)}, std::move(p));
  s.stats.pending = s.pending.size() + s.firing;
}

bool Scheduler::Start(FireFn fire, std::string* error) {
  store_->Watch({[state = state_](ScheduledPublication p) {
                   {
                     std::lock_guard lock(state->mutex);
                     if (state->at.count(p.id) != 0) return;  // ours, or told twice
                     Insert(*state, std::move(p));
                   }
                   state->wake.notify_all();
                 },
                 [state = state_](const std::string& id) {
                   std::lock_guard lock(state->mutex);
                   auto at = state->at.find(id);
                   if (at == state->at.end()) return;
                   state->pending.erase(Key{at->second, id});
                   state->at.erase(at);
                   state->stats.pending = state->pending.size() + state->firing;
                 }});
  std::vector<ScheduledPublication> loaded;
  if (!store_->Load(&loaded, error)) return false;
  {
    std::lock_guard lock(state_->mutex);
    for (ScheduledPublication& p : loaded) Insert(*state_, std::move(p));
  }
  fire_ = std::move(fire);
  thread_ = std::thread([this] { Run(); });
  // Named, so its CPU waits can be told apart (top -H; /proc/<pid>/task/<tid>/schedstat: how
  // late a firing was for want of a CPU rather than of the timer).
  pthread_setname_np(thread_.native_handle(), "hermod-sched");
  return true;
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Add(ScheduledPublication s, std::function<void(bool stored, std::string id)> done) {
  s.id = NewId();
  s.created_ms = WallMs();
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping) {
      done(false, {});
      return;
    }
  }
  store_->Put(s, [state = state_, s, done = std::move(done)](bool stored) mutable {
    std::string id = s.id;
    if (stored) {
      {
        std::lock_guard lock(state->mutex);
        Insert(*state, std::move(s));
      }
      state->wake.notify_all();
    }
    done(stored, std::move(id));
  });
}

void Scheduler::Cancel(const std::string& id, std::function<void(bool)> done) {
  {
    std::lock_guard lock(state_->mutex);
    auto at = state_->at.find(id);
    if (at == state_->at.end()) {
      done(false);
      return;
    }
    state_->pending.erase(Key{at->second, id});
    state_->at.erase(at);
    ++state_->stats.cancelled;
    state_->stats.pending = state_->pending.size() + state_->firing;
  }
  store_->Remove(id, [done = std::move(done)](bool) { done(true); });
}

Scheduler::Page Scheduler::List(std::string_view channel, std::string_view cursor,
                                size_t limit) const {
  Page page;
  std::lock_guard lock(state_->mutex);
  auto it = state_->pending.begin();
  if (Key after; ParseCursor(cursor, &after.first, &after.second)) {
    it = state_->pending.upper_bound(after);
  }
  for (; it != state_->pending.end(); ++it) {
    const ScheduledPublication& p = it->second;
    if (!channel.empty() &&
        std::find(p.channels.begin(), p.channels.end(), channel) == p.channels.end()) {
      continue;
    }
    if (page.items.size() == limit) {
      page.cursor = Cursor(state_->at.at(page.items.back().id), page.items.back().id);
      break;
    }
    page.items.push_back(p);
  }
  return page;
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

void Scheduler::Run() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  while (!s.stopping) {
    if (s.pending.empty()) {
      s.wake.wait(lock);
      continue;
    }
    auto first = s.pending.begin();
    const int64_t at = first->first.first;
    const auto now = std::chrono::system_clock::now();
    const auto due = std::chrono::system_clock::time_point(std::chrono::milliseconds(at));
    if (due > now) {
      s.wake.wait_until(lock, due);
      continue;
    }
    ScheduledPublication p = std::move(first->second);
    s.pending.erase(first);
    s.at.erase(p.id);
    if (store_->lease_ms() > 0) {
      // Another node may fire it: only the one whose claim succeeds does.
      lock.unlock();
      const ScheduleStore::Claimed claimed = store_->Claim(p.id);
      lock.lock();
      if (claimed == ScheduleStore::Claimed::kGone) {
        s.stats.pending = s.pending.size() + s.firing;
        continue;
      }
      if (claimed == ScheduleStore::Claimed::kTaken) {
        s.at[p.id] = WallMs() + static_cast<int64_t>(store_->lease_ms());
        Insert(s, std::move(p));
        continue;
      }
    }
    ++s.firing;
    const double late_s = std::max(
        0.0, std::chrono::duration<double>(now - std::chrono::system_clock::time_point(
                                                     std::chrono::milliseconds(p.deliver_at_ms)))
                 .count());
    size_t bucket = 0;
    while (bucket < kLatenessBounds.size() && late_s > kLatenessBounds[bucket]) ++bucket;
    ++s.stats.lateness_buckets[bucket];
    s.stats.lateness_sum_s += late_s;
    lock.unlock();
    fire_(p, [state = state_, store = store_, p](bool retry) mutable {
      if (retry) {
        {
          std::lock_guard l(state->mutex);
          --state->firing;
          state->at[p.id] = WallMs() + 1000;
          Insert(*state, std::move(p));
        }
        state->wake.notify_all();
        return;
      }
      store->Remove(p.id, {});
      std::lock_guard l(state->mutex);
      --state->firing;
      ++state->stats.fired;
      state->stats.pending = state->pending.size() + state->firing;
    });
    lock.lock();
  }
}

}  // namespace hermod::core
