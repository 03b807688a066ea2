// The server API's methods, as the `method` label of hermod_api_calls_total and
// hermod_api_call_duration_seconds; anything else counts as "unknown". The metrics room is
// handed this list at start (app/server.cc) and knows no method names itself.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "stats/loop_metrics.h"

namespace hermod::api {

inline constexpr std::array<std::string_view, 14> kMethodLabels = {
    "publish",  "broadcast", "subscribe",      "unsubscribe", "disconnect",
    "refresh",  "presence",  "presence_stats", "history",     "history_remove",
    "channels", "info",      "batch",          "unknown"};
static_assert(kMethodLabels.size() <= stats::kMaxMethods);

// method's index in kMethodLabels ("unknown"'s when it is none of them).
constexpr size_t MethodLabelIndex(std::string_view method) {
  size_t i = 0;
  while (i + 1 < kMethodLabels.size() && kMethodLabels[i] != method) ++i;
  return i;
}

}  // namespace hermod::api
