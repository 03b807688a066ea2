// The server API's method names, in the order of ServerApi's method table (server_api.cc
// pairs each name with its handler there and checks the order at compile time). Each name
// is also the method's route, `/api/<name>`, and its `method` label on
// hermod_api_calls_total: app/ hands kMethodLabels to the metrics room at start, so a new
// method is one row here and one in the table.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace hermod::api {

inline constexpr std::array<std::string_view, 19> kMethodNames = {
    "publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "refresh", "presence",
    "presence_stats", "history", "history_remove", "channels", "info", "batch",
    // Inboxes (api/inbox_api.h).
    "inbox_status", "dead_letters", "dead_letters_redrive", "dead_letters_remove",
    // Scheduled delivery (core/scheduler.h).
    "scheduled", "scheduled_cancel"};

// The label of a call that names no method of the table (a `method` the legacy `/api`
// route does not know).
inline constexpr std::string_view kUnknownMethod = "unknown";

// The `method` label values: every method, then kUnknownMethod.
inline constexpr std::array<std::string_view, kMethodNames.size() + 1> kMethodLabels = [] {
  std::array<std::string_view, kMethodNames.size() + 1> labels{};
  for (size_t i = 0; i < kMethodNames.size(); ++i) labels[i] = kMethodNames[i];
  labels.back() = kUnknownMethod;
  return labels;
}();

// method's index in kMethodLabels (kUnknownMethod's when it is none of them): the index the
// per-loop counters (stats::RecordApiCall) count it under.
constexpr size_t MethodLabelIndex(std::string_view method) {
  size_t i = 0;
  while (i + 1 < kMethodLabels.size() && kMethodLabels[i] != method) ++i;
  return i;
}

}  // namespace hermod::api
