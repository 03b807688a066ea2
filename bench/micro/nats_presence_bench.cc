// Presence reads on the nats engine (store/nats_presence.h) from many callers at once:
// BM_NatsPresenceReads/C asks `presence` of C channels (10 entries each) at once and waits for
// every answer; items/s is reads answered. Each channel's read is a NATS round trip or three,
// so the figure is how many of them the engine runs side by side. Needs a nats-server -js at
// HERMOD_NATS_URL (bench/presence_nats.sh starts one); skipped without it.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/nats_presence.h"

namespace {

using namespace hermod;

constexpr int kEntries = 10;

// One store for the process, its channels filled once (a bucket of this process's own).
struct Fixture {
  std::unique_ptr<store::NatsPresenceStore> store;
  std::vector<std::unique_ptr<core::PresenceStore::Set>> sets;
  std::string error;
};

Fixture& Shared(const char* url, size_t channels) {
  static Fixture fixture;
  if (fixture.store == nullptr) {
    store::NatsPresenceStore::Options o;
    o.url = url;
    o.bucket = "bench_presence_" + std::to_string(getpid());
    fixture.store = std::make_unique<store::NatsPresenceStore>(o);
    if (!fixture.store->Start(&fixture.error)) return fixture;
  }
  while (fixture.sets.size() < channels) {
    const std::string channel = "room" + std::to_string(fixture.sets.size());
    auto set = fixture.store->Open(channel);
    for (int i = 0; i < kEntries; ++i) {
      set->Add(channel + ".c" + std::to_string(i), "u" + std::to_string(i), "{}");
    }
    fixture.sets.push_back(std::move(set));
  }
  return fixture;
}

void BM_NatsPresenceReads(benchmark::State& state) {
  const char* url = std::getenv("HERMOD_NATS_URL");
  if (url == nullptr) {
    state.SkipWithError("HERMOD_NATS_URL is not set (bench/presence_nats.sh sets it)");
    return;
  }
  const auto channels = static_cast<size_t>(state.range(0));
  Fixture& fixture = Shared(url, channels);
  if (!fixture.error.empty()) {
    state.SkipWithError(fixture.error.c_str());
    return;
  }
  std::mutex mutex;
  std::condition_variable answered;
  size_t left = 0, wrong = 0;
  for (auto _ : state) {
    {
      std::lock_guard lock(mutex);
      left = channels;
    }
    for (size_t c = 0; c < channels; ++c) {
      fixture.sets[c]->List(core::Completion<core::PresenceList>([&](core::PresenceList list) {
        std::lock_guard lock(mutex);
        if (list.failed || list.size() != kEntries) ++wrong;
        if (--left == 0) answered.notify_one();
      }));
    }
    std::unique_lock lock(mutex);
    answered.wait(lock, [&] { return left == 0; });
  }
  if (wrong > 0) state.SkipWithError("a read answered failed or not every entry");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * channels));
}
BENCHMARK(BM_NatsPresenceReads)->Arg(1)->Arg(16)->UseRealTime();

}  // namespace
