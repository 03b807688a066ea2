// Who may open a client connection, decided at the WebSocket upgrade (before the 101) and
// again at `connect`, once the token names the user.
//
// Connections live on several loops, so the counts here are shared: the node-wide count is
// one atomic (fetch_add, and a fetch_sub when the add overshot), the per-IP and per-user
// counts live in 16 mutex-guarded shards picked by hash (/LOCKS.md). A lock is taken once per
// upgrade and once per close, never per message. The node-wide connection rate is split
// into one bucket per loop (RateLimit::Share), touched only by its loop: no lock at all.
//
// Choosing under pressure. Between soft_connection_limit and connection_limit is a band
// where an upgrade is admitted on condition: its `connect` must present a recovery position
// (an entry of connect.subs with recover: true), else it gets error 111 (temporary, so the
// SDK backs off and retries). Clients that were connected a moment ago and carry a stream
// position are thus admitted first when the server must choose, and a reconnect storm of
// fresh clients cannot take the last places. Above connection_limit every upgrade gets 503
// with Retry-After, before the 101: the client never holds a half-open WebSocket.
//
// Only the client protocol (/connection/websocket) is admitted here; /connection/echo is a
// transport test endpoint, bounded by the accept throttle and the descriptor limit alone.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/rate_limit.h"

namespace hermod::core {

struct AdmissionLimits {
  uint64_t connection_limit = 0;       // client_connection_limit; 0: none
  uint64_t soft_connection_limit = 0;  // admission.soft_connection_limit; 0: no band
  uint64_t user_connection_limit = 0;  // client_user_connection_limit; 0: none
  uint64_t ip_connection_limit = 0;    // admission.ip_connection_limit; 0: none
  RateLimit ip_rate;                   // admission.ip_connection_rate / _burst
  RateLimit node_rate;                 // client_connection_rate_limit (whole node)
  uint64_t ip_table_size = 100000;     // per-IP entries kept at most (admission.ip_table_size)
  uint64_t retry_after_s = 5;          // admission.retry_after
};

enum class AdmitVerdict : uint8_t {
  kAdmitted,
  kAdmittedIfRecovering,  // in the soft band: connect must carry a recovery position
  kAtCapacity,            // connection_limit reached: 503
  kNodeRate,              // client_connection_rate_limit: 503
  kIpLimit,               // ip_connection_limit: 429
  kIpRate,                // ip_connection_rate: 429
};
std::string_view AdmitVerdictName(AdmitVerdict verdict);
inline bool Admitted(AdmitVerdict v) {
  return v == AdmitVerdict::kAdmitted || v == AdmitVerdict::kAdmittedIfRecovering;
}

class Admission {
 public:
  Admission(const AdmissionLimits& limits, size_t loops);
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  const AdmissionLimits& limits() const { return limits_; }
  bool enabled() const { return enabled_; }

  // On loop `loop`'s thread; counts the connection when it is admitted. Every admitted
  // connection is released exactly once with Release(ip).
  AdmitVerdict Admit(size_t loop, std::string_view ip, uint64_t now_ms);
  void Release(std::string_view ip);
  // Counts one more connection of `user` (non-empty); false (nothing counted) at the limit.
  bool AddUser(std::string_view user);
  void RemoveUser(std::string_view user);

  uint64_t connections() const { return connections_.load(std::memory_order_relaxed); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct IpEntry {
    uint32_t connections = 0;
    TokenBucket rate;
  };
  struct alignas(64) Shard {
    std::mutex mutex;  // guards ips and users
    std::unordered_map<std::string, IpEntry, Hash, std::equal_to<>> ips;
    std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> users;
  };
  struct alignas(64) LoopShare {
    TokenBucket node_rate;  // this loop's share of client_connection_rate_limit
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(std::string_view key) { return shards_[Hash()(key) % kShards]; }
  // Under shard.mutex: drops entries with no connection whose rate bucket is full again.
  void SweepIps(Shard& shard, uint64_t now_ms);

  const AdmissionLimits limits_;
  const bool enabled_;
  const RateLimit node_rate_share_;
  std::atomic<uint64_t> connections_{0};
  std::array<Shard, kShards> shards_;
  std::unique_ptr<LoopShare[]> loops_;
  size_t loop_count_;
};

}  // namespace hermod::core
