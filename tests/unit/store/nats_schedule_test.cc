// The `nats` schedule store against a real nats-server -js (a free port, a temporary store
// directory; skipped without the binary): two schedulers on one bucket are two nodes. Each
// scheduled publication fires exactly once in the pair, at its time; the other node lists
// what one added and forgets what it cancelled; a node started later loads what is pending.
#include "store/nats_schedule.h"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/scheduler.h"
#include "tests/unit/store/nats_server.h"
#include "tests/unit/store/scheduler_waits.h"

namespace hermod::store {
namespace {

using core::ScheduledPublication;
using core::Scheduler;

// What both nodes fired: id -> (times, lateness of the first).
struct Fired {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, std::pair<int, int64_t>> by_id;
  size_t total = 0;

  Scheduler::FireFn Fn() {
    return [this](const ScheduledPublication& s, std::function<void(bool)> done) {
      const int64_t late = Scheduler::WallMs() - s.deliver_at_ms;
      done(false);
      {
        std::lock_guard lock(mutex);
        auto& e = by_id[s.id];
        if (e.first++ == 0) e.second = late;
        ++total;
      }
      changed.notify_all();
    };
  }
  bool WaitFor(size_t n, int timeout_ms) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [&] { return total >= n; });
  }
};

class NatsScheduleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
    ASSERT_TRUE(nats_.Start());
  }
  std::unique_ptr<Scheduler> Node(Fired& fired) {
    NatsScheduleOptions o;
    o.url = nats_.url();
    o.lease_ms = 1000;
    std::string error;
    auto store = MakeNatsSchedules(o, &error);
    EXPECT_TRUE(store) << error;
    if (!store) return nullptr;
    auto s = std::make_unique<Scheduler>(std::move(store), 3600 * 1000);
    EXPECT_TRUE(s->Start(fired.Fn(), &error)) << error;
    return s;
  }
  test::NatsServer nats_;
};

std::string AddSync(Scheduler& s, std::string channel, int64_t at) {
  std::promise<std::string> id;
  s.Add({{}, "publish", {std::move(channel)}, "{\"data\":{}}", at, 0},
        [&id](bool ok, std::string i) { id.set_value(ok ? i : ""); });
  return id.get_future().get();
}

TEST_F(NatsScheduleTest, TwoNodesFireEachExactlyOnceOnTime) {
  Fired fired;  // outlives both schedulers
  auto a = Node(fired);
  auto b = Node(fired);
  ASSERT_TRUE(a && b);
  const int64_t waited_before = test::SchedulerCpuWaitMs();
  // Far enough ahead that the 20 adds (a KV write each) are made before the first time comes.
  const int64_t base = Scheduler::WallMs() + 1500;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(AddSync(i % 2 ? *a : *b, "ch", base + i * 20));
    ASSERT_FALSE(ids.back().empty());
  }
  ASSERT_LT(Scheduler::WallMs(), base) << "the adds took longer than the test's margin";
  ASSERT_TRUE(fired.WaitFor(20, 10000));
  // What the two schedulers' threads waited for a CPU is not their timers' lateness.
  const int64_t cpu_wait = test::SchedulerCpuWaitMs() - waited_before;
  // Longer than a claim's lease: a second firing would have happened by now.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::lock_guard lock(fired.mutex);
  EXPECT_EQ(fired.total, 20u);
  for (const std::string& id : ids) {
    ASSERT_EQ(fired.by_id.count(id), 1u) << id;
    EXPECT_EQ(fired.by_id[id].first, 1) << id;
    EXPECT_GE(fired.by_id[id].second, 0) << id;
    EXPECT_LE(fired.by_id[id].second, 100 + cpu_wait) << id << ", CPU wait " << cpu_wait;
  }
}

TEST_F(NatsScheduleTest, OtherNodesListLoadAndForgetCancelled) {
  Fired fired;
  auto a = Node(fired);
  auto b = Node(fired);
  ASSERT_TRUE(a && b);
  const int64_t far = Scheduler::WallMs() + 600000;
  const std::string kept = AddSync(*a, "x", far);
  const std::string cancelled = AddSync(*a, "x", far + 1);
  auto listed = [](Scheduler& s) { return s.List("", "", 100).items.size(); };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (listed(*b) < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(listed(*b), 2u);
  std::promise<bool> ok;
  b->Cancel(cancelled, [&ok](bool r) { ok.set_value(r); });
  ASSERT_TRUE(ok.get_future().get());
  while (listed(*a) > 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(listed(*a), 1u);
  EXPECT_EQ(a->List("", "", 100).items[0].id, kept);
  // A node started now loads the one pending.
  auto c = Node(fired);
  ASSERT_TRUE(c);
  ASSERT_EQ(listed(*c), 1u);
  EXPECT_EQ(c->List("", "", 100).items[0].id, kept);
}

// The claims' lease is configurable: a node started with another lease than the bucket was
// made with gives the bucket its own (the claims' TTL), so a changed config takes effect.
TEST_F(NatsScheduleTest, ALaterNodeWithAnotherLeaseRetimesTheClaims) {
  for (const uint64_t lease : {1000u, 2500u}) {
    NatsScheduleOptions o;
    o.url = nats_.url();
    o.lease_ms = lease;
    std::string error;
    auto store = MakeNatsSchedules(o, &error);
    ASSERT_TRUE(store) << error;
    EXPECT_EQ(store->lease_ms(), lease);
  }
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_.url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  kvStore* kv = nullptr;
  ASSERT_EQ(js_KeyValue(&kv, js, NatsScheduleOptions().claims_bucket.c_str()), NATS_OK);
  kvStatus* status = nullptr;
  ASSERT_EQ(kvStore_Status(&status, kv), NATS_OK);
  EXPECT_EQ(kvStatus_TTL(status), 2500 * 1000000LL);
  kvStatus_Destroy(status);
  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

}  // namespace
}  // namespace hermod::store
