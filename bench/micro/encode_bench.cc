// The client protocol's encoder on its hot path: a publication push
// (`{"push":{"channel":..,"pub":..}}`, the channel escaped as a JSON string) built into a
// reused buffer, for a short channel name and a 64-byte one; and the JSON string writer alone
// on a 64-byte ASCII string. Counts pushes/s.
#include <benchmark/benchmark.h>

#include <string>

#include "proto/encode.h"

namespace {

const std::string kPublication =
    "{\"data\":{\"seq\":123456,\"t\":1795435123456789,\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"},"
    "\"offset\":42}";

void BM_PublicationPush(benchmark::State& state) {
  const std::string channel =
      state.range(0) <= 12 ? "news:sport" : std::string("chat:room-") + std::string(54, 'a');
  std::string out;
  for (auto _ : state) {
    out.clear();
    hermod::proto::AppendPublicationPush(out, channel, kPublication);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PublicationPush)->Arg(10)->Arg(64);

void BM_AppendJsonString(benchmark::State& state) {
  const std::string s = "user-7f3a9c2e-41b8-4d6a-9e0f-" + std::string(35, 'b');
  std::string out;
  for (auto _ : state) {
    out.clear();
    hermod::proto::AppendJsonString(out, s);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.size()));
}
BENCHMARK(BM_AppendJsonString);

}  // namespace
