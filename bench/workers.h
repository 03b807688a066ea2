// Past one process's open-file limit (20,000 here), the bench forks worker processes, each
// holding up to --per-process connections bound to its own source address (127.0.0.2,
// 127.0.0.3, ...) so that each also has its own ephemeral port range towards the server.
//
// Workers and the parent talk over two pipes each, in three steps: the worker reports
// "ready <ok> <failed>" after setup; the parent, once all are ready, sends every worker the
// same measure start time (CLOCK_MONOTONIC is shared by all processes); at the end each
// worker writes its full result as JSON (report.h) and exits. The parent merges the results;
// histograms merge exactly, bucket by bucket. A SIGINT ends every worker's run early
// (interrupt.h); each still sends what it measured.
#pragma once

#include "run_config.h"
#include "runner.h"

namespace hermod::bench {

// Runs the scenario in this process, or across worker processes when it needs more
// connections than config.per_process.
RunResult RunDistributed(const RunConfig& config);

}  // namespace hermod::bench
