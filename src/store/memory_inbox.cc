#include "store/memory_inbox.h"

#include <algorithm>

#include "store/epoch.h"

namespace hermod::store {

namespace {

bool IsUnacked(const core::InboxEntry& e) {
  return e.state == core::InboxState::kPending || e.state == core::InboxState::kDelivered;
}

// Whether the channel's user-limited part (after `#`, comma-separated) names user.
bool NamesUser(std::string_view channel, std::string_view user) {
  const size_t hash = channel.rfind('#');
  if (hash == std::string_view::npos) return false;
  std::string_view users = channel.substr(hash + 1);
  while (!users.empty()) {
    const size_t comma = users.find(',');
    if (users.substr(0, comma) == user) return true;
    if (comma == std::string_view::npos) break;
    users.remove_prefix(comma + 1);
  }
  return false;
}

std::vector<uint64_t> Sorted(const std::vector<uint64_t>& offsets) {
  std::vector<uint64_t> v = offsets;
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

MemoryInboxStore::Inbox& MemoryInboxStore::Get(std::string_view channel,
                                               std::vector<Write>* writes) {
  auto it = inboxes_.find(std::string(channel));
  if (it != inboxes_.end()) return it->second;
  Inbox& inbox = inboxes_[std::string(channel)];
  inbox.epoch = NewEpoch();
  if (writes != nullptr) {
    Write w{Write::Kind::kMeta, {}, inbox.epoch};
    w.entry.channel = std::string(channel);
    writes->push_back(std::move(w));
  }
  return inbox;
}

MemoryInboxStore::Inbox* MemoryInboxStore::Find(std::string_view channel) {
  auto it = inboxes_.find(std::string(channel));
  return it == inboxes_.end() ? nullptr : &it->second;
}

void MemoryInboxStore::Put(std::vector<Write>& w, const core::InboxEntry& e, bool state_only) {
  if (!journaled()) return;
  if (!state_only || state_writes_data()) {
    w.push_back({Write::Kind::kPut, e, {}, state_only});
    w.back().data_cleared = state_only && e.data.empty();
    return;
  }
  Write s{Write::Kind::kPut, {}, {}, true};
  s.data_cleared = e.data.empty();
  core::InboxEntry& c = s.entry;
  c.channel = e.channel;
  c.offset = e.offset;
  c.state = e.state;
  c.deliveries = e.deliveries;
  c.published_ms = e.published_ms;
  c.delivered_ms = e.delivered_ms;
  c.due_ms = e.due_ms;
  c.done_ms = e.done_ms;
  c.expires_ms = e.expires_ms;
  c.reason = e.reason;
  c.dead_id = e.dead_id;
  w.push_back(std::move(s));
}

void MemoryInboxStore::Erase(Inbox& inbox, std::map<uint64_t, core::InboxEntry>::iterator it,
                             std::vector<Write>& w) {
  core::InboxEntry& e = it->second;
  if (IsUnacked(e)) --inbox.unacked;
  if (e.state == core::InboxState::kAcked) --inbox.acked;
  if (e.state == core::InboxState::kDead) {
    --inbox.dead;
    dead_.erase(e.dead_id);
  }
  if (journaled()) {
    Write d{Write::Kind::kDelete, {}, {}};
    d.entry.channel = e.channel;
    d.entry.offset = e.offset;
    w.push_back(std::move(d));
  }
  inbox.entries.erase(it);
}

void MemoryInboxStore::Kill(Inbox& inbox, core::InboxEntry& e, std::string_view reason,
                            uint64_t now_ms) {
  --inbox.unacked;
  ++inbox.dead;
  e.state = core::InboxState::kDead;
  e.reason = std::string(reason);
  e.done_ms = now_ms;
  // A dead letter is kept for the inbox's ttl after it died.
  e.expires_ms = now_ms + inbox.limits.ttl_ms;
  e.dead_id = NextDeadId(now_ms);
  dead_[e.dead_id] = {e.channel, e.offset};
}

void MemoryInboxStore::SkipSettled(Inbox& inbox) {
  auto it = inbox.entries.lower_bound(inbox.unacked_from);
  while (it != inbox.entries.end() && !IsUnacked(it->second)) ++it;
  inbox.unacked_from = it == inbox.entries.end() ? inbox.top + 1 : it->first;
}

void MemoryInboxStore::Bound(Inbox& inbox, std::vector<Write>& w) {
  const size_t max = std::max<size_t>(inbox.limits.size, 1);
  for (auto it = inbox.entries.begin();
       it != inbox.entries.end() && (inbox.acked > max || inbox.dead > max);) {
    auto next = std::next(it);
    const core::InboxState s = it->second.state;
    if ((s == core::InboxState::kAcked && inbox.acked > max) ||
        (s == core::InboxState::kDead && inbox.dead > max)) {
      Erase(inbox, it, w);
    }
    it = next;
  }
}

void MemoryInboxStore::TopsOfDeletes(std::vector<Write>& writes) {
  if (top_with_each_append()) return;
  std::string_view last;
  const size_t n = writes.size();
  for (size_t i = 0; i < n; ++i) {
    if (writes[i].kind != Write::Kind::kDelete || writes[i].entry.channel == last) continue;
    last = writes[i].entry.channel;
    Inbox* inbox = Find(last);
    if (inbox == nullptr) continue;
    Write m{Write::Kind::kMeta, {}, inbox->epoch};
    m.entry.channel = std::string(last);
    m.entry.offset = inbox->top;
    writes.push_back(std::move(m));
    last = writes[i].entry.channel;  // (push_back may have moved the writes)
  }
}

void MemoryInboxStore::Finish(std::unique_lock<std::mutex>& lock, std::vector<Write>& writes,
                              core::InboxStored stored) {
  TopsOfDeletes(writes);
  std::optional<bool> now = true;
  if (!writes.empty()) now = Persist(writes, stored);
  lock.unlock();
  if (now && stored) stored(*now);
}

core::InboxAppended MemoryInboxStore::Append(std::string_view channel, std::string_view data,
                                             std::string_view fire_key,
                                             const core::InboxLimits& limits, uint64_t now_ms,
                                             core::InboxStored stored) {
  std::unique_lock lock(mutex_);
  if (!fire_key.empty() && !fired_.empty()) {
    auto it = fired_.find({std::string(channel), std::string(fire_key)});
    if (it != fired_.end()) {
      core::InboxAppended result;
      result.duplicate = true;
      result.position = it->second;
      if (result.position.epoch.empty()) {
        if (Inbox* inbox = Find(channel)) result.position.epoch = inbox->epoch;
      }
      lock.unlock();
      if (stored) stored(true);
      return result;
    }
  }
  std::vector<Write> w;
  if (journaled()) w.reserve(3);  // the entry, its inbox's top, a fire key
  Inbox& inbox = Get(channel, journaled() ? &w : nullptr);
  inbox.limits = limits;
  core::InboxAppended result;
  const size_t max = std::max<size_t>(limits.size, 1);
  if (inbox.unacked >= max) {
    if (!limits.dead_letter_oldest) {
      result.status = core::InboxAppended::Status::kFull;
      result.position = {inbox.top, inbox.epoch};
      Finish(lock, w, nullptr);  // a new inbox's epoch, nothing else
      return result;
    }
    for (auto& [offset, e] : inbox.entries) {
      if (!IsUnacked(e)) continue;
      Kill(inbox, e, "overflow", now_ms);
      Put(w, e, true);
      result.dead.push_back(e);
      if (inbox.unacked < max) break;
    }
  }
  const uint64_t offset = ++inbox.top;
  core::InboxEntry& e = inbox.entries[offset];
  e.channel = std::string(channel);
  e.offset = offset;
  e.data = std::string(data);
  e.published_ms = now_ms;
  e.expires_ms = now_ms + limits.ttl_ms;
  if (limits.delivered_ack_timeout_ms != 0) {
    e.state = core::InboxState::kDelivered;
    e.deliveries = 1;
    e.delivered_ms = now_ms;
    e.due_ms = now_ms + core::InboxRedeliveryDelay(limits.delivered_ack_timeout_ms, 1);
    result.entry = e;
  }
  ++inbox.unacked;
  Put(w, e);
  if (journaled()) {
    Write m{Write::Kind::kMeta, {}, inbox.epoch};
    m.entry.channel = e.channel;
    m.entry.offset = offset;
    if (!fire_key.empty()) {
      Write f = m;
      f.kind = Write::Kind::kFired;
      f.fire_key = std::string(fire_key);
      w.push_back(std::move(f));
    }
    if (top_with_each_append()) w.push_back(std::move(m));
  }
  Bound(inbox, w);
  result.position = {offset, inbox.epoch};
  Finish(lock, w, std::move(stored));
  return result;
}

core::InboxPosition MemoryInboxStore::Position(std::string_view channel) {
  std::lock_guard lock(mutex_);
  Inbox* inbox = Find(channel);
  if (inbox == nullptr) return {};
  return {inbox->top, inbox->epoch};
}

std::vector<core::InboxEntry> MemoryInboxStore::Unacked(std::string_view channel) {
  std::lock_guard lock(mutex_);
  std::vector<core::InboxEntry> out;
  Inbox* inbox = Find(channel);
  if (inbox == nullptr) return out;
  out.reserve(inbox->unacked);
  for (auto it = inbox->entries.lower_bound(inbox->unacked_from); it != inbox->entries.end();
       ++it) {
    if (IsUnacked(it->second)) out.push_back(it->second);
  }
  return out;
}

std::vector<core::InboxEntry> MemoryInboxStore::MarkDelivered(std::string_view channel,
                                                              const std::vector<uint64_t>& offsets,
                                                              uint64_t ack_timeout_ms,
                                                              uint64_t now_ms) {
  std::unique_lock lock(mutex_);
  std::vector<core::InboxEntry> out;
  std::vector<Write> w;
  Inbox* inbox = Find(channel);
  if (inbox != nullptr) {
    for (uint64_t offset : offsets) {
      auto it = inbox->entries.find(offset);
      if (it == inbox->entries.end() || !IsUnacked(it->second)) continue;
      core::InboxEntry& e = it->second;
      e.state = core::InboxState::kDelivered;
      ++e.deliveries;
      e.delivered_ms = now_ms;
      e.due_ms = now_ms + core::InboxRedeliveryDelay(ack_timeout_ms, e.deliveries);
      Put(w, e, true);
      out.push_back(e);
    }
  }
  // Not waited for: a count lost to a crash only means one more delivery after restart.
  Finish(lock, w, nullptr);
  return out;
}

core::InboxChange MemoryInboxStore::Ack(std::string_view channel,
                                        const std::vector<uint64_t>& offsets,
                                        std::optional<uint64_t> up_to, uint64_t now_ms,
                                        core::InboxStored stored) {
  std::unique_lock lock(mutex_);
  core::InboxChange change;
  Inbox* inbox = Find(channel);
  std::vector<uint64_t> wanted;
  if (up_to) {
    if (inbox == nullptr || *up_to == 0 || *up_to > inbox->top) {
      change.error = "unknown offset " + std::to_string(*up_to);
      return change;
    }
    // Only what was delivered: pushes of one inbox stored through two loops can reach the
    // client out of offset order, and acking one it has not seen yet would lose it.
    for (auto it = inbox->entries.lower_bound(inbox->unacked_from);
         it != inbox->entries.end() && it->first <= *up_to; ++it) {
      if (IsUnacked(it->second) && it->second.deliveries > 0) wanted.push_back(it->first);
    }
    if (wanted.empty()) {
      change.error = "nothing delivered and unacknowledged at or below " + std::to_string(*up_to);
      return change;
    }
  } else {
    wanted = Sorted(offsets);
    if (wanted.empty()) {
      change.error = "no offsets";
      return change;
    }
    for (uint64_t offset : wanted) {
      auto it = inbox ? inbox->entries.find(offset) : decltype(inbox->entries.end()){};
      if (inbox == nullptr || it == inbox->entries.end()) {
        change.error = "unknown offset " + std::to_string(offset);
        return change;
      }
      if (!IsUnacked(it->second)) {
        change.error =
            "offset " + std::to_string(offset) + " is " + core::InboxStateName(it->second.state);
        return change;
      }
    }
  }
  std::vector<Write> w;
  if (journaled()) w.reserve(wanted.size());
  change.changed.reserve(wanted.size());
  for (uint64_t offset : wanted) {
    core::InboxEntry& e = inbox->entries.find(offset)->second;
    --inbox->unacked;
    ++inbox->acked;
    e.state = core::InboxState::kAcked;
    e.done_ms = now_ms;
    // The data goes (an acked entry keeps none), and the answer's copy needs none.
    std::string().swap(e.data);
    change.changed.push_back(e);
    Put(w, e, true);
  }
  SkipSettled(*inbox);
  Bound(*inbox, w);
  Finish(lock, w, std::move(stored));
  return change;
}

core::InboxChange MemoryInboxStore::DeadLetter(std::string_view channel,
                                               const std::vector<uint64_t>& offsets,
                                               std::string_view reason, uint64_t now_ms,
                                               core::InboxStored stored) {
  std::unique_lock lock(mutex_);
  core::InboxChange change;
  Inbox* inbox = Find(channel);
  const std::vector<uint64_t> wanted = Sorted(offsets);
  if (wanted.empty()) change.error = "no offsets";
  for (uint64_t offset : wanted) {
    if (!change.error.empty()) break;
    auto it = inbox ? inbox->entries.find(offset) : decltype(inbox->entries.end()){};
    if (inbox == nullptr || it == inbox->entries.end()) {
      change.error = "unknown offset " + std::to_string(offset);
    } else if (!IsUnacked(it->second)) {
      change.error =
          "offset " + std::to_string(offset) + " is " + core::InboxStateName(it->second.state);
    }
  }
  if (!change.error.empty()) return change;
  std::vector<Write> w;
  for (uint64_t offset : wanted) {
    core::InboxEntry& e = inbox->entries[offset];
    Kill(*inbox, e, reason, now_ms);
    Put(w, e, true);
    change.changed.push_back(e);
  }
  Bound(*inbox, w);
  Finish(lock, w, std::move(stored));
  return change;
}

core::InboxChange MemoryInboxStore::Redrive(std::string_view channel,
                                            const std::vector<uint64_t>& offsets, uint64_t now_ms,
                                            core::InboxStored stored) {
  std::unique_lock lock(mutex_);
  core::InboxChange change;
  Inbox* inbox = Find(channel);
  std::vector<uint64_t> wanted = Sorted(offsets);
  if (inbox != nullptr && wanted.empty()) {
    for (auto& [offset, e] : inbox->entries) {
      if (e.state == core::InboxState::kDead) wanted.push_back(offset);
    }
  }
  for (uint64_t offset : wanted) {
    if (!change.error.empty()) break;
    auto it = inbox ? inbox->entries.find(offset) : decltype(inbox->entries.end()){};
    if (inbox == nullptr || it == inbox->entries.end() ||
        it->second.state != core::InboxState::kDead) {
      change.error = "offset " + std::to_string(offset) + " is not a dead letter";
    }
  }
  if (!change.error.empty()) return change;
  std::vector<Write> w;
  for (uint64_t offset : wanted) {
    core::InboxEntry& e = inbox->entries[offset];
    dead_.erase(e.dead_id);
    --inbox->dead;
    ++inbox->unacked;
    e.state = core::InboxState::kPending;
    e.deliveries = 0;
    e.reason.clear();
    e.dead_id = 0;
    e.done_ms = 0;
    e.due_ms = 0;
    e.expires_ms = now_ms + inbox->limits.ttl_ms;
    inbox->unacked_from = std::min(inbox->unacked_from, offset);
    Put(w, e, true);
    change.changed.push_back(e);
  }
  Finish(lock, w, std::move(stored));
  return change;
}

core::InboxChange MemoryInboxStore::RemoveDead(std::string_view channel,
                                               const std::vector<uint64_t>& offsets,
                                               core::InboxStored stored) {
  std::unique_lock lock(mutex_);
  core::InboxChange change;
  Inbox* inbox = Find(channel);
  std::vector<uint64_t> wanted = Sorted(offsets);
  if (inbox != nullptr && wanted.empty()) {
    for (auto& [offset, e] : inbox->entries) {
      if (e.state == core::InboxState::kDead) wanted.push_back(offset);
    }
  }
  for (uint64_t offset : wanted) {
    if (!change.error.empty()) break;
    auto it = inbox ? inbox->entries.find(offset) : decltype(inbox->entries.end()){};
    if (inbox == nullptr || it == inbox->entries.end() ||
        it->second.state != core::InboxState::kDead) {
      change.error = "offset " + std::to_string(offset) + " is not a dead letter";
    }
  }
  if (!change.error.empty()) return change;
  std::vector<Write> w;
  for (uint64_t offset : wanted) {
    auto it = inbox->entries.find(offset);
    change.changed.push_back(it->second);
    Erase(*inbox, it, w);
  }
  Finish(lock, w, std::move(stored));
  return change;
}

core::DeadLetterPage MemoryInboxStore::DeadLetters(const core::DeadLetterQuery& query) {
  std::lock_guard lock(mutex_);
  core::DeadLetterPage page;
  const size_t limit = std::max<size_t>(query.limit, 1);
  for (auto it = dead_.upper_bound(query.cursor); it != dead_.end(); ++it) {
    const auto& [channel, offset] = it->second;
    if (!query.channel.empty() && channel != query.channel) continue;
    if (!query.user.empty() && !NamesUser(channel, query.user)) continue;
    if (page.entries.size() == limit) {
      page.next_cursor = page.entries.back().dead_id;
      break;
    }
    page.entries.push_back(inboxes_[channel].entries[offset]);
  }
  return page;
}

std::vector<core::InboxEntry> MemoryInboxStore::Status(std::string_view channel,
                                                       const std::vector<uint64_t>& offsets) {
  std::lock_guard lock(mutex_);
  std::vector<core::InboxEntry> out;
  Inbox* inbox = Find(channel);
  if (inbox == nullptr) return out;
  if (offsets.empty()) {
    for (const auto& [offset, e] : inbox->entries) out.push_back(e);
    return out;
  }
  for (uint64_t offset : offsets) {
    auto it = inbox->entries.find(offset);
    if (it != inbox->entries.end()) out.push_back(it->second);
  }
  return out;
}

std::vector<core::InboxEntry> MemoryInboxStore::Expire(uint64_t now_ms) {
  std::unique_lock lock(mutex_);
  std::vector<core::InboxEntry> died;
  std::vector<Write> w;
  for (auto& [channel, inbox] : inboxes_) ExpireLocked(inbox, now_ms, died, w);
  Finish(lock, w, nullptr);
  return died;
}

std::vector<std::string> MemoryInboxStore::ExpiringChannels(uint64_t now_ms) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [channel, inbox] : inboxes_) {
    for (const auto& [offset, e] : inbox.entries) {
      if (e.expires_ms <= now_ms) {
        out.push_back(channel);
        break;
      }
    }
  }
  return out;
}

std::vector<core::InboxEntry> MemoryInboxStore::ExpireChannel(std::string_view channel,
                                                              uint64_t now_ms) {
  std::unique_lock lock(mutex_);
  std::vector<core::InboxEntry> died;
  std::vector<Write> w;
  if (Inbox* inbox = Find(channel)) ExpireLocked(*inbox, now_ms, died, w);
  Finish(lock, w, nullptr);
  return died;
}

void MemoryInboxStore::ExpireLocked(Inbox& inbox, uint64_t now_ms,
                                    std::vector<core::InboxEntry>& died, std::vector<Write>& w) {
  for (auto it = inbox.entries.begin(); it != inbox.entries.end();) {
    auto next = std::next(it);
    core::InboxEntry& e = it->second;
    if (e.expires_ms <= now_ms) {
      if (IsUnacked(e)) {
        Kill(inbox, e, "expired", now_ms);
        Put(w, e, true);
        died.push_back(e);
      } else {
        Erase(inbox, it, w);
      }
    }
    it = next;
  }
}

std::vector<std::pair<std::string, size_t>> MemoryInboxStore::PendingCounts() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, size_t>> out;
  for (const auto& [channel, inbox] : inboxes_) {
    if (inbox.unacked > 0) out.emplace_back(channel, inbox.unacked);
  }
  return out;
}

size_t MemoryInboxStore::DeadCount() {
  std::lock_guard lock(mutex_);
  return dead_.size();
}

void MemoryInboxStore::Restore(std::string_view channel, std::string epoch, uint64_t top) {
  std::lock_guard lock(mutex_);
  Inbox& inbox = inboxes_[std::string(channel)];
  inbox.epoch = std::move(epoch);
  inbox.top = std::max(inbox.top, top);
}

void MemoryInboxStore::Restore(core::InboxEntry e, const core::InboxLimits& limits) {
  std::lock_guard lock(mutex_);
  inboxes_[e.channel].limits = limits;
  if (e.state == core::InboxState::kDead) next_dead_id_ = std::max(next_dead_id_, e.dead_id + 1);
  ReplaceLocked(std::move(e));
}

void MemoryInboxStore::RestoreFired(std::string channel, std::string fire_key,
                                    core::InboxPosition position) {
  std::lock_guard lock(mutex_);
  fired_[{std::move(channel), std::move(fire_key)}] = std::move(position);
}

void MemoryInboxStore::FiredLocked(std::string_view channel, std::string fire_key,
                                   uint64_t offset) {
  fired_[{std::string(channel), std::move(fire_key)}] = {offset, {}};
}

void MemoryInboxStore::UnfiredLocked(std::string_view channel, std::string fire_key) {
  fired_.erase({std::string(channel), std::move(fire_key)});
}

void MemoryInboxStore::ReplaceLocked(core::InboxEntry e) {
  ForgetLocked(e.channel, e.offset);
  Inbox& inbox = inboxes_[e.channel];
  inbox.top = std::max(inbox.top, e.offset);
  if (IsUnacked(e)) {
    ++inbox.unacked;
    inbox.unacked_from = std::min(inbox.unacked_from, e.offset);
  }
  if (e.state == core::InboxState::kAcked) ++inbox.acked;
  if (e.state == core::InboxState::kDead) {
    ++inbox.dead;
    dead_[e.dead_id] = {e.channel, e.offset};
  }
  const uint64_t offset = e.offset;
  inbox.entries[offset] = std::move(e);
}

void MemoryInboxStore::ForgetLocked(std::string_view channel, uint64_t offset) {
  Inbox* inbox = Find(channel);
  if (inbox == nullptr) return;
  auto it = inbox->entries.find(offset);
  if (it == inbox->entries.end()) return;
  core::InboxEntry& e = it->second;
  if (IsUnacked(e)) --inbox->unacked;
  if (e.state == core::InboxState::kAcked) --inbox->acked;
  if (e.state == core::InboxState::kDead) {
    --inbox->dead;
    dead_.erase(e.dead_id);
  }
  inbox->entries.erase(it);
}

void MemoryInboxStore::MetaLocked(std::string_view channel, std::string epoch, uint64_t top) {
  Inbox& inbox = inboxes_[std::string(channel)];
  inbox.epoch = std::move(epoch);
  inbox.top = std::max(inbox.top, top);
}

}  // namespace hermod::store
