// The sqlite engine's writer alone (no hub, no network): BM_SqliteAppend/C pipelines 20,000
// 1 KiB appends spread over C channels into a store::SqliteEngine on a fresh file in /tmp and
// waits for every completion; items/s is what its writer thread commits (synchronous=FULL,
// group commit). Profile the writer with
// `perf record -g build/hermod-micro --benchmark_filter=SqliteAppend`.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "net/event_loop.h"
#include "store/sqlite_store.h"

namespace {

using namespace hermod;

std::string Encode(std::string_view data, std::string_view, uint64_t offset, std::string_view) {
  std::string out = "{\"data\":";
  out += data;
  out += ",\"offset\":" + std::to_string(offset) + "}";
  return out;
}
const core::PublicationEncoder kEncode = &Encode;

void BM_SqliteAppend(benchmark::State& state) {
  const auto channels = static_cast<size_t>(state.range(0));
  constexpr size_t kAppends = 20000;
  const std::string data = "\"" + std::string(1022, 'x') + "\"";
  for (auto _ : state) {
    state.PauseTiming();
    char dir[] = "/tmp/hermod-micro-sqlite-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      state.SkipWithError("mkdtemp");
      return;
    }
    const std::string path = std::string(dir) + "/bench.db";
    store::SqliteOptions options;
    options.path = path;
    std::string error;
    auto engine = store::SqliteEngine::Open(options, &error);
    if (!engine) {
      state.SkipWithError(error.c_str());
      return;
    }
    auto history = engine->History();
    history->SetMetaLimits(3600 * 1000, 100000);
    const uint64_t now = net::Loop::MonotonicMs();
    std::vector<std::unique_ptr<core::HistoryStore::Stream>> streams;
    for (size_t c = 0; c < channels; ++c) {
      streams.push_back(history->Open("bench:" + std::to_string(c), now));
    }
    std::mutex mutex;
    std::condition_variable all_done;
    size_t done = 0;
    state.ResumeTiming();
    for (size_t i = 0; i < kAppends; ++i) {
      core::HistoryAppend a;
      a.data = data;
      a.size = 1000;
      a.ttl_ms = 300000;
      a.now_ms = now;
      auto r = streams[i % channels]->Append(
          a, kEncode, core::Completion<core::HistoryAppended>([&](core::HistoryAppended) {
            std::lock_guard lock(mutex);
            if (++done == kAppends) all_done.notify_one();
          }));
      if (r) {
        state.SkipWithError("refused");
        return;
      }
    }
    {
      std::unique_lock lock(mutex);
      all_done.wait(lock, [&] { return done == kAppends; });
    }
    state.PauseTiming();
    streams.clear();
    history.reset();
    engine.reset();
    std::remove(path.c_str());
    std::remove((path + "-wal").c_str());
    std::remove((path + "-shm").c_str());
    rmdir(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kAppends));
}
BENCHMARK(BM_SqliteAppend)->Arg(1)->Arg(100)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
