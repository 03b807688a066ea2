// A namespace's publish_rate_limit, node-wide: the channel's token bucket lives in the hub's
// channel state, under the shard lock every publish takes, so publishers on different loops
// share one bucket. Two real loops on their own threads publish in turn; the hub's clock is
// the test's (an atomic: both loop threads read it).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "core/hub.h"
#include "store/engines.h"

namespace hermod::core {
namespace {

// Tests publish plain data: the request with the rest left empty.
std::optional<StreamPosition> Publish(Hub& hub, std::string_view channel,
                                      const config::ChannelOptions& options, std::string_view data,
                                      std::string_view info, std::string_view key = {},
                                      std::string_view tags = {},
                                      std::optional<net::Priority> priority = std::nullopt,
                                      Hub::Refusal* refusal = nullptr) {
  Hub::PublishResult r = hub.Publish({channel, &options, data, info, key, tags, priority, {}});
  if (refusal != nullptr) *refusal = r.refusal;
  if (!r) return std::nullopt;
  return std::move(r.position);
}

std::atomic<uint64_t> now_ms{1'000'000};
uint64_t FakeNow() { return now_ms.load(); }

std::string Publication(std::string_view data, std::string_view, uint64_t, std::string_view) {
  return std::string(data);
}
Push* Unused(std::string_view, std::string_view) { return nullptr; }
Push* UnusedJoinLeave(std::string_view, bool, std::string_view) { return nullptr; }

class HubRateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    now_ms = 1'000'000;
    for (int i = 0; i < 2; ++i) {
      loops_[i] = std::make_unique<net::Loop>(i, 4096);
      hub_.AttachLoop(*loops_[i]);
    }
    for (int i = 0; i < 2; ++i) threads_[i] = std::thread([this, i] { loops_[i]->Run(); });
    options_.publish_rate_limit = 10;  // a token per 100 ms
    options_.publish_rate_burst = 5;
  }
  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      net::Loop* loop = loops_[i].get();
      loop->Post([loop] { loop->Stop(); });
      threads_[i].join();
    }
  }
  // Publishes on loop i's thread and waits; the refusal's reason in *refusal.
  bool PublishOn(int i, const std::string& channel, Hub::Refusal* refusal) {
    std::packaged_task<bool()> task([&] {
      return Publish(hub_, channel, options_, "d", "", {}, {}, std::nullopt, refusal).has_value();
    });
    auto result = task.get_future();
    loops_[i]->Post([&task] { task(); });
    return result.get();
  }
  // Publishes n times, alternating loops; returns how many were admitted.
  int Alternate(int n, const std::string& channel = "ch") {
    int admitted = 0;
    for (int k = 0; k < n; ++k) {
      Hub::Refusal refusal = Hub::Refusal::kNone;
      if (PublishOn(k % 2, channel, &refusal)) {
        ++admitted;
      } else {
        EXPECT_EQ(refusal, Hub::Refusal::kRateLimit);
      }
    }
    return admitted;
  }

  Hub hub_{2, PushCodec{&Publication, &Unused, &UnusedJoinLeave, {}}, store::MemoryStores(),
           &FakeNow};
  std::unique_ptr<net::Loop> loops_[2];
  std::thread threads_[2];
  config::ChannelOptions options_;
};

TEST_F(HubRateLimitTest, BothLoopsShareOneBucketExactlyBurstPlusRateTimesTime) {
  int admitted = Alternate(20);
  EXPECT_EQ(admitted, 5);  // the burst, not a share of it per loop
  for (int step = 0; step < 10; ++step) {
    now_ms += 100;
    const int now = Alternate(4);
    EXPECT_EQ(now, 1);  // a token per 100 ms, whichever loop asks first
    admitted += now;
  }
  now_ms += 250;
  EXPECT_EQ(Alternate(20), 2);  // 2.5 tokens: two whole ones, half a token owed
  now_ms += 50;
  EXPECT_EQ(Alternate(20), 1);  // with the half, a whole one
  admitted += 3;
  EXPECT_EQ(admitted, 5 + 10 * 13 / 10);  // burst + rate * t, t = 1.3 s
}

TEST_F(HubRateLimitTest, EachChannelHasItsOwnBucket) {
  EXPECT_EQ(Alternate(8, "a"), 5);
  EXPECT_EQ(Alternate(8, "b"), 5);
}

TEST_F(HubRateLimitTest, OffMeansUnlimited) {
  options_.publish_rate_limit = 0;
  EXPECT_EQ(Alternate(50), 50);
}

TEST_F(HubRateLimitTest, AChannelInDebtIsKeptUntilItsBucketRefills) {
  EXPECT_EQ(Alternate(6, "idle"), 5);
  EXPECT_EQ(hub_.ChannelCount(), 1u);  // nobody listens, but forgetting it would reset it
  // Publishes sweep their shard every 1024: the bucket is in debt, the channel stays.
  config::ChannelOptions unlimited;
  for (int k = 0; k < 2048; ++k) Publish(hub_, "idle", unlimited, "d", "");
  EXPECT_EQ(hub_.ChannelCount(), 1u);
  now_ms += 500;  // 5 tokens at 10/s: the bucket is full again, as good as new
  for (int k = 0; k < 2048 && hub_.ChannelCount() > 0; ++k) {
    Publish(hub_, "idle", unlimited, "d", "");
  }
  EXPECT_EQ(hub_.ChannelCount(), 0u);
}

}  // namespace
}  // namespace hermod::core
