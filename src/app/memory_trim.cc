#include "app/memory_trim.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

namespace hermod::app {

namespace {

// Resident bytes from /proc/self/statm (one small read; the second field, in pages).
uint64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Heap bytes in use: arena chunks and mmapped chunks.
uint64_t LiveHeapBytes() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

// Resident bytes not holding live heap data: free heap pages still mapped, plus code,
// stacks and the like.
uint64_t Gap(uint64_t resident) {
  const uint64_t live = LiveHeapBytes();
  return resident > live ? resident - live : 0;
}

}  // namespace

void MemoryTrim::MaybeTrim() {
  if (trimming_.exchange(true, std::memory_order_acquire)) return;  // another loop is at it
  const uint64_t before = ResidentBytes();
  if (before == 0 || Gap(before) < baseline_gap_.load(std::memory_order_relaxed) + kSlackBytes) {
    trimming_.store(false, std::memory_order_release);
    return;
  }
  malloc_trim(0);
  const uint64_t after = ResidentBytes();
  baseline_gap_.store(Gap(after), std::memory_order_relaxed);
  trims_.fetch_add(1, std::memory_order_relaxed);
  if (after < before) released_bytes_.fetch_add(before - after, std::memory_order_relaxed);
  trimming_.store(false, std::memory_order_release);
}

void MemoryTrim::Render(metrics::PrometheusText& text) const {
  text.Family("hermod_memory_trims_total", "counter",
              "Times an idle loop handed freed heap memory back to the kernel (malloc_trim; "
              "memory_trim_interval).");
  text.Sample("hermod_memory_trims_total", {}, trims_.load(std::memory_order_relaxed));
  text.Family("hermod_memory_trim_released_bytes_total", "counter",
              "Resident bytes those trims gave back (RSS before minus after).");
  text.Sample("hermod_memory_trim_released_bytes_total", {},
              released_bytes_.load(std::memory_order_relaxed));
  // Unlike RSS, it does not follow freed pages that malloc keeps mapped until a trim: a
  // leak shows in it whether or not the loops were idle enough to trim.
  text.Family("hermod_memory_heap_live_bytes", "gauge",
              "Heap bytes in use (malloc's chunks), without freed pages still mapped.");
  text.Sample("hermod_memory_heap_live_bytes", {}, LiveHeapBytes());
}

void MemoryTrim::Timer::Start() { loop_.timers().Schedule(this, interval_ms_); }

void MemoryTrim::Timer::OnTimer() {
  const net::LoopStats& stats = loop_.stats();
  const uint64_t busy = stats.busy_us - busy_us_;
  const uint64_t wait = stats.wait_us - wait_us_;
  busy_us_ = stats.busy_us;
  wait_us_ = stats.wait_us;
  if (busy * 4 < busy + wait) trim_.MaybeTrim();  // idle for most of the interval
  Start();
}

}  // namespace hermod::app
