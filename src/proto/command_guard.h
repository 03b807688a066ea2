// A session's guards, which decide and count but do not act: per-connection command rate
// limits (refuse with 111, or disconnect 3013 when the client keeps at it) and connect-time
// admission (the soft band admits only a connect that recovers: 111; the per-user
// connection limit: 3504). The session carries the verdict out. Each refusal is counted in
// the loop's GuardStats and logged, at most once a second per loop and kind of guard.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/admission.h"
#include "core/rate_limit.h"
#include "net/event_loop.h"
#include "proto/codes.h"
#include "proto/command.h"

namespace hermod::proto {

class CommandGuard {
 public:
  struct Verdict {
    enum Kind : uint8_t { kPass, kRefuse, kDisconnect };
    Kind kind = kPass;
    ErrorCode error = ErrorCode::kTooManyRequests;  // kRefuse: the reply's error
    Disconnect disconnect{};                        // kDisconnect
  };

  // A command of a connected client, against its rate limits.
  Verdict CheckCommand(const Command& c, net::Loop& loop, const core::CommandRateLimits& limits,
                       std::string_view client, std::string_view user);
  // A connect of user (empty: anonymous), against the admission it was let in by (null:
  // none). kPass counts the user; Release gives it back.
  Verdict AdmitConnect(const Command& c, net::Loop& loop, core::Admission* admission,
                       const std::string& user);
  // This connection was counted for ip by Admission::Admit (before the WebSocket opened).
  void SetAdmitted(std::string ip, bool must_recover);
  // The connection is gone: what it holds of the admission is released (once).
  void Release(core::Admission* admission, const std::string& user);

 private:
  core::CommandLimiter limiter_;
  // Set while counted by the admission; a pointer, as most servers run without admission
  // limits and every connection would carry the string's 32 bytes.
  std::unique_ptr<std::string> admitted_ip_;
  bool admitted_ = false;
  bool must_recover_ = false;
  bool user_counted_ = false;
};

}  // namespace hermod::proto
