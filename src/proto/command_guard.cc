#include "proto/command_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "log/fields.h"

namespace hermod::proto {

namespace {

struct GuardLogs {
  core::LogThrottle rate_log;
  core::LogThrottle admission_log;
};

GuardLogs& GuardScratch() {
  thread_local GuardLogs logs;
  return logs;
}

}  // namespace

void CommandGuard::SetAdmitted(std::string ip, bool must_recover) {
  Admitted& a = admitted();
  a.ip = std::move(ip);
  a.ip_counted = true;
  a.must_recover = must_recover;
}

void CommandGuard::Release(core::Admission* admission, const std::string& user) {
  if (admission == nullptr || !admitted_) return;
  if (admitted_->user_counted) admission->RemoveUser(user);
  admitted_->user_counted = false;
  if (admitted_->ip_counted) admission->Release(admitted_->ip);
  admitted_->ip_counted = false;
}

CommandGuard::Verdict CommandGuard::CheckCommand(const Command& c, net::Loop& loop,
                                                 const core::CommandRateLimits& limits,
                                                 std::string_view client, std::string_view user) {
  assert(loop.InThisThread());
  core::CommandKind kind;
  switch (c.method) {
    case Method::kPublish:
      kind = core::CommandKind::kPublish;
      break;
    case Method::kSubscribe:
    case Method::kSubRefresh:
      kind = core::CommandKind::kSubscribe;
      break;
    case Method::kHistory:
      kind = core::CommandKind::kHistory;
      break;
    case Method::kPresence:
    case Method::kPresenceStats:
      kind = core::CommandKind::kPresence;
      break;
    case Method::kRpc:
    case Method::kSend:
      kind = core::CommandKind::kRpc;
      break;
    default:
      kind = core::CommandKind::kOther;
      break;
  }
  if (!limiter_) {
    if (!limits.enabled()) return {};
    limiter_ = std::make_unique<core::CommandLimiter>();
  }
  const uint64_t now = loop.now_ms();
  bool by_total = false;
  const core::CommandLimiter::Verdict verdict = limiter_->Check(limits, kind, now, &by_total);
  if (verdict == core::CommandLimiter::Verdict::kAllow) return {};
  // Counted under the bucket that refused: the kind's own, or the total.
  const core::CommandKind refused_by = by_total ? core::CommandKind::kOther : kind;
  loop.stats().guard.Count(core::LimitedRefusal(refused_by));
  uint64_t suppressed = 0;
  const bool abuse = verdict == core::CommandLimiter::Verdict::kAbuse;
  if (GuardScratch().rate_log.Allow(now, &suppressed)) {
    log::Write(spdlog::level::info,
               {{"client", client},
                {"user", user},
                {"code", abuse ? kDisconnectTooManyRequests.code : 111},
                {"reason", core::CommandKindName(refused_by)}},
               "client {} user '{}': {} rate limit{} ({} more refusals on this loop since)", client,
               user, core::CommandKindName(refused_by),
               abuse ? " exceeded persistently: disconnect 3013" : ": error 111", suppressed);
  }
  if (abuse) {
    loop.stats().guard.Count(stats::Refusal::kRateLimitDisconnect);
    return {Verdict::kDisconnect, ErrorCode::kTooManyRequests, kDisconnectTooManyRequests};
  }
  return {Verdict::kRefuse, ErrorCode::kTooManyRequests, {}};
}

CommandGuard::Verdict CommandGuard::AdmitConnect(const Command& c, net::Loop& loop,
                                                 core::Admission* admission,
                                                 const std::string& user) {
  assert(loop.InThisThread());
  if (admission == nullptr) return {};
  uint64_t suppressed = 0;
  if (admitted_ && admitted_->must_recover) {
    const bool recovering =
        std::any_of(c.subs.begin(), c.subs.end(), [](const ConnectSub& s) { return s.recover; });
    if (!recovering) {
      loop.stats().guard.Count(stats::Refusal::kSoftLimit);
      if (GuardScratch().admission_log.Allow(loop.now_ms(), &suppressed)) {
        spdlog::info(
            "connect refused (soft connection limit, no recovery position): 111 "
            "({} more admission refusals on this loop since)",
            suppressed);
      }
      return {Verdict::kRefuse, ErrorCode::kTooManyRequests, {}};
    }
  }
  if (!user.empty() && !admission->AddUser(user)) {
    loop.stats().guard.Count(stats::Refusal::kUserLimit);
    if (GuardScratch().admission_log.Allow(loop.now_ms(), &suppressed)) {
      log::Write(spdlog::level::info,
                 {{"user", user},
                  {"code", kDisconnectConnectionLimit.code},
                  {"reason", "client_user_connection_limit"}},
                 "connect of user '{}' refused: client_user_connection_limit {} reached, "
                 "disconnect 3504 ({} more admission refusals on this loop since)",
                 user, admission->limits().user_connection_limit, suppressed);
    }
    return {Verdict::kDisconnect, ErrorCode::kTooManyRequests, kDisconnectConnectionLimit};
  }
  if (!user.empty() && admission->limits().user_connection_limit != 0) {
    admitted().user_counted = true;
  }
  return {};
}

}  // namespace hermod::proto
