#include "core/admission.h"

#include <iterator>

namespace hermod::core {

std::string_view AdmitVerdictName(AdmitVerdict verdict) {
  switch (verdict) {
    case AdmitVerdict::kAdmitted:
      return "admitted";
    case AdmitVerdict::kAdmittedIfRecovering:
      return "soft_limit";
    case AdmitVerdict::kAtCapacity:
      return "capacity";
    case AdmitVerdict::kNodeRate:
      return "node_rate";
    case AdmitVerdict::kIpLimit:
      return "ip_limit";
    case AdmitVerdict::kIpRate:
      return "ip_rate";
  }
  return "unknown";
}

Admission::Admission(const AdmissionLimits& limits, size_t loops)
    : limits_(limits),
      enabled_(limits.connection_limit != 0 || limits.soft_connection_limit != 0 ||
               limits.user_connection_limit != 0 || limits.ip_connection_limit != 0 ||
               limits.ip_rate.enabled() || limits.node_rate.enabled()),
      node_rate_share_(limits.node_rate.Share(loops)),
      loops_(std::make_unique<LoopShare[]>(loops)),
      loop_count_(loops) {}

AdmitVerdict Admission::Admit(size_t loop, std::string_view ip, uint64_t now_ms) {
  if (loop < loop_count_ && !loops_[loop].node_rate.TryTake(node_rate_share_, now_ms)) {
    return AdmitVerdict::kNodeRate;
  }
  const uint64_t count = connections_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (limits_.connection_limit != 0 && count > limits_.connection_limit) {
    connections_.fetch_sub(1, std::memory_order_relaxed);
    return AdmitVerdict::kAtCapacity;
  }
  if (limits_.ip_connection_limit != 0 || limits_.ip_rate.enabled()) {
    Shard& shard = ShardFor(ip);
    std::lock_guard lock(shard.mutex);
    auto it = shard.ips.find(ip);
    if (it == shard.ips.end()) {
      if (shard.ips.size() >= limits_.ip_table_size / kShards + 1) SweepIps(shard, now_ms);
      it = shard.ips.emplace(std::string(ip), IpEntry{}).first;
    }
    IpEntry& entry = it->second;
    AdmitVerdict refused = AdmitVerdict::kAdmitted;
    if (limits_.ip_connection_limit != 0 && entry.connections >= limits_.ip_connection_limit) {
      refused = AdmitVerdict::kIpLimit;
    } else if (!entry.rate.TryTake(limits_.ip_rate, now_ms)) {
      refused = AdmitVerdict::kIpRate;
    }
    if (refused != AdmitVerdict::kAdmitted) {
      connections_.fetch_sub(1, std::memory_order_relaxed);
      return refused;
    }
    ++entry.connections;
  }
  if (limits_.soft_connection_limit != 0 && count > limits_.soft_connection_limit) {
    return AdmitVerdict::kAdmittedIfRecovering;
  }
  return AdmitVerdict::kAdmitted;
}

void Admission::Release(std::string_view ip) {
  connections_.fetch_sub(1, std::memory_order_relaxed);
  if (limits_.ip_connection_limit == 0 && !limits_.ip_rate.enabled()) return;
  Shard& shard = ShardFor(ip);
  std::lock_guard lock(shard.mutex);
  auto it = shard.ips.find(ip);
  // Kept at zero while its rate bucket still remembers recent connects (the sweep drops it).
  if (it != shard.ips.end() && it->second.connections > 0) --it->second.connections;
}

void Admission::SweepIps(Shard& shard, uint64_t now_ms) {
  for (auto it = shard.ips.begin(); it != shard.ips.end();) {
    IpEntry& e = it->second;
    it = e.connections == 0 && e.rate.Full(limits_.ip_rate, now_ms) ? shard.ips.erase(it)
                                                                    : std::next(it);
  }
  // Still full: drop the rate memory of idle addresses (they err towards admission); the
  // entries with live connections are bounded by the connection count itself.
  if (shard.ips.size() >= limits_.ip_table_size / kShards + 1) {
    std::erase_if(shard.ips, [](auto& item) { return item.second.connections == 0; });
  }
}

bool Admission::AddUser(std::string_view user) {
  if (limits_.user_connection_limit == 0 || user.empty()) return true;
  Shard& shard = ShardFor(user);
  std::lock_guard lock(shard.mutex);
  auto it = shard.users.find(user);
  if (it == shard.users.end()) it = shard.users.emplace(std::string(user), 0).first;
  if (it->second >= limits_.user_connection_limit) return false;
  ++it->second;
  return true;
}

void Admission::RemoveUser(std::string_view user) {
  if (limits_.user_connection_limit == 0 || user.empty()) return;
  Shard& shard = ShardFor(user);
  std::lock_guard lock(shard.mutex);
  auto it = shard.users.find(user);
  if (it == shard.users.end()) return;
  if (--it->second == 0) shard.users.erase(it);
}

}  // namespace hermod::core
