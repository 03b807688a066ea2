// A loop's index of its anonymous sessions (proto/client_registry.h): n sessions leave in
// random order (a mass disconnect). A vector's erase scans and shifts (O(n) each, O(n^2) in
// all); core::PointerSet's is O(1). Time per departure.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/pointer_set.h"

namespace {

struct Session {
  char bytes[368];  // a WebSocket client's block: addresses spaced as the server's are
};

std::vector<Session*> Order(std::vector<Session>& sessions) {
  std::vector<Session*> order;
  for (Session& s : sessions) order.push_back(&s);
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  return order;
}

void BM_RegistryDepartures_Vector(benchmark::State& state) {
  std::vector<Session> sessions(static_cast<size_t>(state.range(0)));
  const std::vector<Session*> order = Order(sessions);
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<Session*> index;
    for (Session& s : sessions) index.push_back(&s);
    state.ResumeTiming();
    for (Session* s : order) std::erase(index, s);
    benchmark::DoNotOptimize(index.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_RegistryDepartures_PointerSet(benchmark::State& state) {
  std::vector<Session> sessions(static_cast<size_t>(state.range(0)));
  const std::vector<Session*> order = Order(sessions);
  for (auto _ : state) {
    state.PauseTiming();
    hermod::core::PointerSet<Session> index;
    for (Session& s : sessions) index.Insert(&s);
    state.ResumeTiming();
    for (Session* s : order) index.Erase(s);
    benchmark::DoNotOptimize(index.size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_RegistryDepartures_Vector)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(50000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RegistryDepartures_PointerSet)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(50000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
