// The HTML report: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)
// with the summary, the grade, the latency percentile curve, throughput over time, the
// server's RSS and CPU over time, and errors by reason.
#pragma once

#include <string>

#include "grade.h"
#include "report.h"

namespace hermod::bench {

std::string ReportHtml(const RunConfig& config, const RunResult& result, const Summary& summary,
                       const GradeResult* grade);

}  // namespace hermod::bench
