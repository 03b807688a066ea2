// The schedule stores (memory, sqlite) through core::ScheduleStore, and core::Scheduler on
// each: a scheduled publication fires once, at its time, in time order; cancel, listing and
// paging; with sqlite, what was stored is loaded again by a new engine on the same file
// (a restart), and what was fired or cancelled is not.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/scheduler.h"
#include "scheduler_waits.h"
#include "store/memory_schedule.h"
#include "store/sqlite_store.h"

namespace hermod::store {
namespace {

using core::ScheduledPublication;
using core::Scheduler;

// A temporary directory, removed with the test.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/hermod-schedule-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// What the scheduler fired, in order, with the wall time it fired at.
struct Fired {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<ScheduledPublication, int64_t>> list;

  Scheduler::FireFn Fn() {
    return [this](const ScheduledPublication& s, std::function<void(bool)> done) {
      const int64_t at = Scheduler::WallMs();
      done(false);  // first: the scheduler counts it fired before a waiter looks
      {
        std::lock_guard lock(mutex);
        list.emplace_back(s, at);
      }
      changed.notify_all();
    };
  }
  bool WaitFor(size_t n, int timeout_ms = 5000) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [&] { return list.size() >= n; });
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return list.size();
  }
};

ScheduledPublication Pub(std::string channel, int64_t at) {
  return {{}, "publish", {std::move(channel)}, R"({"channel":"c","data":{}})", at, 0};
}

std::string AddSync(Scheduler& s, ScheduledPublication p) {
  std::promise<std::string> id;
  s.Add(std::move(p), [&id](bool ok, std::string i) { id.set_value(ok ? i : ""); });
  return id.get_future().get();
}

bool CancelSync(Scheduler& s, const std::string& id) {
  std::promise<bool> ok;
  s.Cancel(id, [&ok](bool r) { ok.set_value(r); });
  return ok.get_future().get();
}

// One engine per test run: "memory", or "sqlite" on a fresh file.
class ScheduleStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<core::ScheduleStore> Make() {
    if (GetParam() == "memory") return std::make_unique<MemoryScheduleStore>();
    SqliteOptions o;
    o.path = dir_.path + "/hermod.db";
    std::string error;
    engine_ = SqliteEngine::Open(o, &error);
    EXPECT_TRUE(engine_) << error;
    return engine_->Schedules();
  }
  TempDir dir_;
  std::shared_ptr<SqliteEngine> engine_;
};

TEST_P(ScheduleStoreTest, FiresEachOnceAtItsTimeInTimeOrder) {
  Fired fired;  // outlives the scheduler's thread
  Scheduler scheduler(Make(), 3600 * 1000);
  std::string error;
  ASSERT_TRUE(scheduler.Start(fired.Fn(), &error)) << error;
  const int64_t waited_before = test::SchedulerCpuWaitMs();
  const int64_t now = Scheduler::WallMs();
  // Far enough ahead that the adds (fsynced on sqlite) are made before either time comes.
  const std::string late = AddSync(scheduler, Pub("b", now + 900));
  const std::string early = AddSync(scheduler, Pub("a", now + 600));
  const std::string past = AddSync(scheduler, Pub("p", now - 10000));
  ASSERT_FALSE(late.empty());
  ASSERT_LT(Scheduler::WallMs(), now + 600) << "the adds took longer than the test's margin";
  ASSERT_TRUE(fired.WaitFor(3));
  // What the scheduler's thread waited for a CPU is not its timer's lateness.
  const int64_t cpu_wait = test::SchedulerCpuWaitMs() - waited_before;
  std::lock_guard lock(fired.mutex);
  ASSERT_EQ(fired.list.size(), 3u);
  EXPECT_EQ(fired.list[0].first.id, past);
  EXPECT_EQ(fired.list[1].first.id, early);
  EXPECT_EQ(fired.list[2].first.id, late);
  // On time: not before, and within 50 ms after (a timer, not polling).
  for (size_t i = 1; i < 3; ++i) {
    const int64_t lateness = fired.list[i].second - fired.list[i].first.deliver_at_ms;
    EXPECT_GE(lateness, 0) << i;
    EXPECT_LE(lateness, 50 + cpu_wait) << i << ", of which waiting for a CPU: " << cpu_wait;
  }
  const Scheduler::Stats st = scheduler.stats();
  EXPECT_EQ(st.fired, 3u);
  EXPECT_EQ(st.pending, 0u);
}

TEST_P(ScheduleStoreTest, CancelledNeverFiresAndUnknownIdsAreRefused) {
  Fired fired;  // outlives the scheduler's thread
  Scheduler scheduler(Make(), 3600 * 1000);
  std::string error;
  ASSERT_TRUE(scheduler.Start(fired.Fn(), &error)) << error;
  const int64_t now = Scheduler::WallMs();
  const std::string cancelled = AddSync(scheduler, Pub("a", now + 1000));
  const std::string kept = AddSync(scheduler, Pub("a", now + 1200));
  EXPECT_TRUE(CancelSync(scheduler, cancelled));
  EXPECT_FALSE(CancelSync(scheduler, cancelled));
  EXPECT_FALSE(CancelSync(scheduler, "nope"));
  ASSERT_TRUE(fired.WaitFor(1));
  EXPECT_FALSE(CancelSync(scheduler, kept));  // fired: nothing to cancel
  std::lock_guard lock(fired.mutex);
  ASSERT_EQ(fired.list.size(), 1u);
  EXPECT_EQ(fired.list[0].first.id, kept);
  EXPECT_EQ(scheduler.stats().cancelled, 1u);
}

TEST_P(ScheduleStoreTest, ListsByChannelInPagesWithACursor) {
  Fired fired;  // outlives the scheduler's thread
  Scheduler scheduler(Make(), 3600 * 1000);
  std::string error;
  ASSERT_TRUE(scheduler.Start(fired.Fn(), &error)) << error;
  const int64_t base = Scheduler::WallMs() + 600000;
  std::vector<std::string> of_a;
  for (int i = 0; i < 7; ++i) {
    const std::string id = AddSync(scheduler, Pub(i % 2 ? "b" : "a", base + i));
    if (i % 2 == 0) of_a.push_back(id);
  }
  std::vector<std::string> seen;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    Scheduler::Page page = scheduler.List("a", cursor, 3);
    for (auto& p : page.items) seen.push_back(p.id);
    cursor = page.cursor;
    if (cursor.empty()) break;
  }
  EXPECT_EQ(seen, of_a);
  EXPECT_EQ(scheduler.List("", "", 100).items.size(), 7u);
  EXPECT_EQ(scheduler.stats().pending, 7u);
}

INSTANTIATE_TEST_SUITE_P(Engines, ScheduleStoreTest, ::testing::Values("memory", "sqlite"));

// A restart: a new engine on the same file loads what was pending (and fires at once those
// whose time passed while it was down), not what was fired or cancelled.
TEST(SqliteScheduleStore, PendingOnesSurviveARestartFiredAndCancelledOnesDoNot) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.path + "/hermod.db";
  std::string error;
  const int64_t now = Scheduler::WallMs();
  std::string soon, later, cancelled, fired_id;
  int64_t soon_ms = 0;
  {
    auto engine = SqliteEngine::Open(o, &error);
    ASSERT_TRUE(engine) << error;
    Fired fired;
    Scheduler scheduler(engine->Schedules(), 3600 * 1000);
    ASSERT_TRUE(scheduler.Start(fired.Fn(), &error)) << error;
    fired_id = AddSync(scheduler, Pub("a", now - 1));
    ASSERT_TRUE(fired.WaitFor(1));
    // Due after this run has surely stopped, even on a loaded machine, and passed while down.
    soon_ms = Scheduler::WallMs() + 1500;
    soon = AddSync(scheduler, Pub("a", soon_ms));
    later = AddSync(scheduler, Pub("b", now + 600000));
    cancelled = AddSync(scheduler, Pub("a", now + 600000));
    ASSERT_TRUE(CancelSync(scheduler, cancelled));
    scheduler.Stop();
    engine->Stop();
  }
  // Down past `soon`'s time.
  while (Scheduler::WallMs() < soon_ms + 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto engine = SqliteEngine::Open(o, &error);
  ASSERT_TRUE(engine) << error;
  std::vector<ScheduledPublication> loaded;
  auto store = engine->Schedules();
  ASSERT_TRUE(store->Load(&loaded, &error)) << error;
  std::vector<std::string> ids;
  for (auto& p : loaded) ids.push_back(p.id);
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> want{soon, later};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids, want);
  for (auto& p : loaded) {
    EXPECT_EQ(p.method, "publish");
    EXPECT_EQ(p.params, R"({"channel":"c","data":{}})");
    EXPECT_GT(p.created_ms, 0);
  }
  Fired fired;
  Scheduler scheduler(std::move(store), 3600 * 1000);
  ASSERT_TRUE(scheduler.Start(fired.Fn(), &error)) << error;
  ASSERT_TRUE(fired.WaitFor(1));
  std::lock_guard lock(fired.mutex);
  EXPECT_EQ(fired.list[0].first.id, soon);
}

}  // namespace
}  // namespace hermod::store
