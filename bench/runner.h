// Runs a scenario in this process: starts one ClientLoop thread per --threads, moves them
// through the phases (setup, measure, drain, stop), prints the progress line, samples the
// server process, and merges the loops' results. A SIGINT (interrupt.h) ends setup or the
// measured phase at once; drain and stop run as usual, so the result holds what was measured.
//
// In a worker process (workers.h) the runner also reports "ready" to the parent after setup
// and waits for its "go", so that every worker starts measuring at the same instant.
#pragma once

#include <cstdint>
#include <functional>

#include "run_config.h"
#include "run_stats.h"

namespace hermod::bench {

struct RunResult {
  RunStats stats;
  double measured_s = 0;  // measured phase: from start to the end of publishing
  // From start to the last counted delivery: deliveries go on arriving during the drain
  // (all of a burst's, when publishers finish early), so rates divide by the longer span.
  double delivery_s = 0;
  bool interrupted = false;  // SIGINT ended the run early (interrupt.h): partial figures
  // The server's CPU seconds (--server-pid) from the measure start to the end of the drain,
  // the span every counted delivery falls in; 0 when not sampled.
  double server_cpu_s = 0;
};

// Called once setup is complete, with (ready, failed) counts; returns the measure start time
// (CLOCK_MONOTONIC ns) to use, or 0 for "now". Used by worker processes to synchronise.
using SetupBarrier = std::function<uint64_t(uint64_t ready, uint64_t failed)>;

// Runs connections [begin, end) of the scenario.
RunResult RunLocal(const RunConfig& config, uint32_t begin, uint32_t end,
                   const SetupBarrier& barrier = nullptr);

}  // namespace hermod::bench
