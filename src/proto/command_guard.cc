// The session's guards: per-connection command rate limits (111, or 3013 when abused) and
// connect-time admission (the soft band's recovery rule, the per-user limit: 3504).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "log/fields.h"
#include "proto/client_session.h"

namespace hermod::proto {

namespace {

struct GuardLogs {
  core::LogThrottle rate_log;
  core::LogThrottle admission_log;
};

GuardLogs& Scratch() {
  thread_local GuardLogs logs;
  return logs;
}

}  // namespace

void ClientSession::SetAdmitted(std::string ip, bool must_recover) {
  admitted_ip_ = std::move(ip);
  admitted_ = true;
  must_recover_ = must_recover;
}

void ClientSession::ReleaseAdmission() {
  core::Admission* admission = context_.admission;
  if (admission == nullptr) return;
  if (user_counted_) admission->RemoveUser(user_);
  user_counted_ = false;
  if (admitted_) admission->Release(admitted_ip_);
  admitted_ = false;
}

bool ClientSession::RateLimited(const Command& c) {
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
  const uint64_t now = loop().now_ms();
  const core::CommandRateLimits& limits = context_.options.rate_limits;
  bool by_total = false;
  const core::CommandLimiter::Verdict verdict = limiter_.Check(limits, kind, now, &by_total);
  if (verdict == core::CommandLimiter::Verdict::kAllow) return false;
  // Counted under the bucket that refused: the kind's own, or "total" (index 5).
  const core::CommandKind refused_by = by_total ? core::CommandKind::kOther : kind;
  ++loop().stats().guard.commands_limited[by_total ? 5 : static_cast<size_t>(kind)];
  uint64_t suppressed = 0;
  const bool abuse = verdict == core::CommandLimiter::Verdict::kAbuse;
  if (Scratch().rate_log.Allow(now, &suppressed)) {
    log::Write(spdlog::level::info,
               {{"client", client_id_},
                {"user", user_},
                {"code", abuse ? kDisconnectTooManyRequests.code : 111},
                {"reason", core::CommandKindName(refused_by)}},
               "client {} user '{}': {} rate limit{} ({} more refusals on this loop since)",
               client_id_, user_, core::CommandKindName(refused_by),
               abuse ? " exceeded persistently: disconnect 3013" : ": error 111", suppressed);
  }
  if (abuse) {
    ++loop().stats().guard.rate_limit_disconnects;
    Disconnect(kDisconnectTooManyRequests);
  } else if (c.method != Method::kSend) {
    ReplyError(c.id, ErrorCode::kTooManyRequests);
  }
  return true;
}

bool ClientSession::AdmitConnect(const Command& c, const std::string& user) {
  core::Admission* admission = context_.admission;
  if (admission == nullptr) return true;
  uint64_t suppressed = 0;
  if (must_recover_) {
    const bool recovering =
        std::any_of(c.subs.begin(), c.subs.end(), [](const ConnectSub& s) { return s.recover; });
    if (!recovering) {
      ++loop().stats().guard.rejected_soft_limit;
      if (Scratch().admission_log.Allow(loop().now_ms(), &suppressed)) {
        spdlog::info(
            "connect refused (soft connection limit, no recovery position): 111 "
            "({} more admission refusals on this loop since)",
            suppressed);
      }
      ReplyError(c.id, ErrorCode::kTooManyRequests);
      return false;
    }
  }
  if (!user.empty() && !admission->AddUser(user)) {
    ++loop().stats().guard.rejected_user_limit;
    if (Scratch().admission_log.Allow(loop().now_ms(), &suppressed)) {
      log::Write(spdlog::level::info,
                 {{"user", user},
                  {"code", kDisconnectConnectionLimit.code},
                  {"reason", "client_user_connection_limit"}},
                 "connect of user '{}' refused: client_user_connection_limit {} reached, "
                 "disconnect 3504 ({} more admission refusals on this loop since)",
                 user, admission->limits().user_connection_limit, suppressed);
    }
    Disconnect(kDisconnectConnectionLimit);
    return false;
  }
  user_counted_ = !user.empty() && admission->limits().user_connection_limit != 0;
  return true;
}

}  // namespace hermod::proto
