// The cost of one log line at the caller, the event loop's side: spdlog's synchronous stderr
// logger (a write(2) per line, as hermod logged before its log buffer) against hermod's logger
// (format, append to the bounded buffer; one writer thread writes the batches). Run with
// stderr on /dev/null (or a file), so that the output itself costs what a fast reader costs:
//   build/hermod-micro --benchmark_filter=LogLine 2>/dev/null
// The buffer is 64 MiB here so that a writer descheduled on a loaded machine drops nothing
// (a dropped line would look cheaper). `cpu_ns_per_line` is the process's CPU time (every thread:
// the writer's too) per line.
#include <benchmark/benchmark.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <chrono>
#include <memory>

#include "app/logging.h"

namespace {

double ProcessCpuNs() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto ns = [](const timeval& t) { return t.tv_sec * 1e9 + t.tv_usec * 1e3; };
  return ns(usage.ru_utime) + ns(usage.ru_stime);
}

// One info line as the data path logs one (a refused upgrade: a few fields of text).
void LogLines(benchmark::State& state) {
  const double cpu_before = ProcessCpuNs();
  int64_t n = 0;
  for (auto _ : state) {
    spdlog::info("ws: upgrade on {} refused with {}: {}", "/connection/websocket", 426,
                 "WebSocket endpoint: Upgrade: websocket required");
    ++n;
  }
  spdlog::default_logger()->flush();
  state.counters["cpu_ns_per_line"] = (ProcessCpuNs() - cpu_before) / static_cast<double>(n);
}

void UseSynchronousStderr(bool json) {
  spdlog::drop("hermod");
  auto logger = spdlog::stderr_logger_mt("hermod");
  if (json) {
    logger->set_formatter(std::make_unique<hermod::app::JsonLogFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  spdlog::set_default_logger(logger);
}

void BM_LogLineSynchronous(benchmark::State& state) {
  UseSynchronousStderr(state.range(0) == 1);
  LogLines(state);
}
BENCHMARK(BM_LogLineSynchronous)->ArgName("json")->Arg(0)->Arg(1);

void BM_LogLineBuffered(benchmark::State& state) {
  const uint64_t dropped_before = hermod::app::LogLinesDropped();
  hermod::app::SetUpLogging(state.range(0) == 1 ? "json" : "text", "info", 64 << 20,
                            std::chrono::milliseconds(60000));
  LogLines(state);
  // A writer that fell behind would make this cheaper by dropping: say so.
  state.counters["dropped"] = static_cast<double>(hermod::app::LogLinesDropped() - dropped_before);
  hermod::app::StopLogging();
}
BENCHMARK(BM_LogLineBuffered)->ArgName("json")->Arg(0)->Arg(1);

}  // namespace
