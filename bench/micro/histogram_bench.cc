// The bench's own per-delivery cost: recording a latency into the histogram and finding a
// stamp in a payload must stay far below the server's per-message cost.
#include <benchmark/benchmark.h>

#include "histogram.h"
#include "payload.h"

namespace {

void BM_HistogramRecord(benchmark::State& state) {
  hermod::bench::Histogram h;
  uint64_t v = 12345;
  for (auto _ : state) {
    h.Record(v);
    v = v * 6364136223846793005ull + 1442695040888963407ull;
    v >>= 40;
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecord);

void BM_StampRoundTrip(benchmark::State& state) {
  std::string payload;
  hermod::bench::Stamp in{123456789012345, 7, 0}, out;
  for (auto _ : state) {
    ++in.seq;
    hermod::bench::WritePayload(payload, in, static_cast<size_t>(state.range(0)));
    benchmark::DoNotOptimize(hermod::bench::ReadStamp(payload, out));
  }
}
BENCHMARK(BM_StampRoundTrip)->Arg(64)->Arg(1024);

}  // namespace
