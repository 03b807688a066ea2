// `--compare old.json`: the figures of this run against an earlier report of the same
// scenario. A figure regresses when it is worse than the old one by more than the tolerance,
// as a fraction of the old value (throughputs lower, latencies and error rate higher).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace hermod::bench {

struct FigureChange {
  std::string name;
  double old_value = 0;
  double new_value = 0;
  double worse_by = 0;  // fraction of the old value; negative when better
  bool regression = false;
};

struct Comparison {
  std::vector<FigureChange> figures;
  bool regression = false;
};

Comparison CompareFigures(const std::map<std::string, double>& old_figures,
                          const std::map<std::string, double>& new_figures, double tolerance);
std::string FormatComparison(const Comparison& comparison);

}  // namespace hermod::bench
