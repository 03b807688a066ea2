// The `memory` inbox engine (core/inbox_store.h), and the state every engine keeps in memory.
//
// Each inbox is an ordered map of its entries (offset → entry) with its epoch and top offset,
// under one mutex for all inboxes: inbox calls are per publication, ack and delivery, far
// fewer than fan-out's pushes, and a call holds it for a map lookup or a short walk. Dead
// letters are also indexed by their dead_id (the API's cursor order).
//
// A durable engine derives from it (store/sqlite_inbox.h): each change is recorded as row
// writes and handed to Persist, in the order the changes were made (under the mutex), and
// the engine calls `stored` once they are durable. The memory engine persists nothing: not
// durable, it says so at start-up (app/) and in the README.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/inbox_store.h"

namespace hermod::store {

class MemoryInboxStore : public core::InboxStore {
 public:
  MemoryInboxStore() = default;
  const char* name() const override { return "memory"; }
  bool durable() const override { return false; }

  core::InboxAppended Append(std::string_view channel, std::string_view data,
                             std::string_view fire_key, const core::InboxLimits& limits,
                             uint64_t now_ms, core::InboxStored stored) override;
  core::InboxPosition Position(std::string_view channel) override;
  std::vector<core::InboxEntry> Unacked(std::string_view channel) override;
  std::vector<core::InboxEntry> MarkDelivered(std::string_view channel,
                                              const std::vector<uint64_t>& offsets,
                                              uint64_t ack_timeout_ms, uint64_t now_ms) override;
  core::InboxChange Ack(std::string_view channel, const std::vector<uint64_t>& offsets,
                        std::optional<uint64_t> up_to, uint64_t now_ms,
                        core::InboxStored stored) override;
  core::InboxChange DeadLetter(std::string_view channel, const std::vector<uint64_t>& offsets,
                               std::string_view reason, uint64_t now_ms,
                               core::InboxStored stored) override;
  core::InboxChange Redrive(std::string_view channel, const std::vector<uint64_t>& offsets,
                            uint64_t now_ms, core::InboxStored stored) override;
  core::InboxChange RemoveDead(std::string_view channel, const std::vector<uint64_t>& offsets,
                               core::InboxStored stored) override;
  core::DeadLetterPage DeadLetters(const core::DeadLetterQuery& query) override;
  std::vector<core::InboxEntry> Status(std::string_view channel,
                                       const std::vector<uint64_t>& offsets) override;
  std::vector<core::InboxEntry> Expire(uint64_t now_ms) override;
  std::vector<std::pair<std::string, size_t>> PendingCounts() override;
  size_t DeadCount() override;

 protected:
  // One row write of a durable engine, in the order the changes were made.
  struct Write {
    enum class Kind : uint8_t { kPut, kDelete, kMeta, kFired } kind;
    core::InboxEntry entry;  // kPut: the whole entry; kDelete, kFired: channel and offset
    std::string epoch;       // kMeta: the channel's epoch and top (entry.offset); kFired: too
    // kPut of an entry whose data is unchanged since it was put, or cleared (a delivery, an
    // ack, a dead letter, a redrive): an engine may write its state alone, and then must not
    // write it at all when its row is gone (removed since).
    bool state_only = false;
    std::string fire_key;  // kFired: a scheduled publication's, stored with the entry
    // state_only: the entry's data was cleared (an ack); the engine clears it too. Set as
    // entry.data may be left out (state_writes_data).
    bool data_cleared = false;
  };
  // Under the mutex, with a call's writes (never empty), in the order the changes were made.
  // nullopt: the engine calls stored later (or, store/nats_inbox.h, once the call has
  // written them with the mutex released); else the result now (the caller calls stored,
  // outside the mutex).
  virtual std::optional<bool> Persist(std::vector<Write>& writes, core::InboxStored& stored) {
    (void)writes;
    (void)stored;
    return true;
  }
  // A durable engine's start-up: entries and positions as they were stored.
  void Restore(std::string_view channel, std::string epoch, uint64_t top);
  void Restore(core::InboxEntry entry, const core::InboxLimits& limits);
  // A fire key stored with an entry before the restart, and that entry's position.
  void RestoreFired(std::string channel, std::string fire_key, core::InboxPosition position);
  // An engine shared by a cluster's nodes (store/nats_inbox.h) keeps the fire keys of the
  // entries it holds, each stored in its entry's own record, as those come and go (another
  // node's firing is repeated without a restart here): under inbox_mutex().
  void FiredLocked(std::string_view channel, std::string fire_key, uint64_t offset);
  void UnfiredLocked(std::string_view channel, std::string fire_key);
  // Whether Persist is worth its writes' copies (a durable engine).
  virtual bool journaled() const { return false; }
  // Whether each append writes its inbox's top (kMeta). false: an engine that restores the
  // top as the highest of the stored one and its rows' offsets; the top is then written only
  // with the new inbox's epoch and with every change that deletes rows (so a restart never
  // hands out an offset again, even when the newest rows are gone).
  virtual bool top_with_each_append() const { return true; }
  // Whether a state_only write needs the entry's data (an engine that rewrites the whole
  // entry); false: it is left out of the copy (a delivery count then copies no payload).
  virtual bool state_writes_data() const { return true; }
  // A dead letter's id (its cursor order): a cluster's engine makes them unique across nodes.
  virtual uint64_t NextDeadId(uint64_t now_ms) {
    (void)now_ms;
    return next_dead_id_++;
  }
  // An engine shared with other processes (store/nats_inbox.h) applies their changes, and
  // undoes its own that did not stick, with these, holding inbox_mutex().
  std::mutex& inbox_mutex() { return mutex_; }
  void ReplaceLocked(core::InboxEntry entry);  // the entry as stored, instead of ours
  void ForgetLocked(std::string_view channel, uint64_t offset);
  void MetaLocked(std::string_view channel, std::string epoch, uint64_t top);
  // Expire, one inbox at a time (an engine that serialises each inbox's changes sweeps them
  // one by one): the inboxes holding an entry past its expiry, then one inbox's sweep.
  std::vector<std::string> ExpiringChannels(uint64_t now_ms);
  std::vector<core::InboxEntry> ExpireChannel(std::string_view channel, uint64_t now_ms);

 private:
  struct Inbox {
    std::string epoch;
    uint64_t top = 0;
    std::map<uint64_t, core::InboxEntry> entries;
    size_t unacked = 0, acked = 0, dead = 0;
    // No unacked entry below this offset: walks for unacked entries start here, not at the
    // inbox's first (acked) entry. Raised past what acks settle, lowered by a redrive.
    uint64_t unacked_from = 0;
    core::InboxLimits limits;
  };
  Inbox& Get(std::string_view channel, std::vector<Write>* writes);
  Inbox* Find(std::string_view channel);
  void Put(std::vector<Write>& w, const core::InboxEntry& e, bool state_only = false);
  void Erase(Inbox& inbox, std::map<uint64_t, core::InboxEntry>::iterator it,
             std::vector<Write>& w);
  void Kill(Inbox& inbox, core::InboxEntry& e, std::string_view reason, uint64_t now_ms);
  // Raises unacked_from past the settled entries at its start.
  static void SkipSettled(Inbox& inbox);
  void ExpireLocked(Inbox& inbox, uint64_t now_ms, std::vector<core::InboxEntry>& died,
                    std::vector<Write>& w);
  // Keeps at most limits.size acked and dead entries.
  void Bound(Inbox& inbox, std::vector<Write>& w);
  // Without top_with_each_append: the top of each inbox that writes delete rows from.
  void TopsOfDeletes(std::vector<Write>& writes);
  // Hands writes to Persist and answers stored (now, outside the lock, or later).
  void Finish(std::unique_lock<std::mutex>& lock, std::vector<Write>& writes,
              core::InboxStored stored);

  std::mutex mutex_;
  std::unordered_map<std::string, Inbox> inboxes_;
  std::map<uint64_t, std::pair<std::string, uint64_t>> dead_;  // dead_id → channel, offset
  // (channel, fire key) → position: the keys a durable engine stored before the restart
  // (only those: a firing is repeated only after a restart), until the process ends; a
  // cluster's engine: those of the entries held (FiredLocked), the position's epoch empty
  // (the inbox's, when answered).
  std::map<std::pair<std::string, std::string>, core::InboxPosition> fired_;
  uint64_t next_dead_id_ = 1;
};

}  // namespace hermod::store
