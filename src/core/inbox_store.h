// Durable per-user inboxes behind an interface: what the inbox's callers need (core/inbox.h:
// the API's publish, inbox_status and dead letters; the client's acks and rejects through
// RPC; delivery on connect and redelivery), implemented by an engine in store/ (`memory`,
// `sqlite`, `nats`).
//
// An inbox is a channel of a namespace with `inbox: true`. Each publication gets the next
// offset of its channel and stays until it is acknowledged or dead-lettered:
//   pending ──deliver──> delivered(count) ──ack──> acked
//      └──────────────────────┴──reject, max_deliveries, expiry, overflow──> dead
//   dead ──redrive──> pending (count 0, same offset)
// Acked entries are kept (without their data) for inbox_status until their ttl; dead letters
// until removed, redriven, or their ttl after they died; both at most inbox_size per channel.
//
// Every call is answered at once from memory (an engine keeps each inbox's entries in this
// process's memory, bounded by inbox_size); a call that changes state also gets `stored`,
// called once the change is durable (the memory engine: at once, inline; sqlite: after the
// COMMIT, on the writer thread). A caller answers its client only from `stored`, so an answer
// means it is on disk. Calls may come from any thread: an engine locks what it must.
//
// Times are wall-clock milliseconds (they are stored, and must mean the same after a
// restart); the caller passes now_ms, so tests drive the clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hermod::core {

enum class InboxState : uint8_t { kPending, kDelivered, kAcked, kDead };
constexpr const char* InboxStateName(InboxState s) {
  switch (s) {
    case InboxState::kPending:
      return "pending";
    case InboxState::kDelivered:
      return "delivered";
    case InboxState::kAcked:
      return "acked";
    case InboxState::kDead:
      return "dead";
  }
  return "pending";
}

// A namespace's bounds on each of its inboxes.
struct InboxLimits {
  size_t size = 1000;                      // unacknowledged entries per inbox
  uint64_t ttl_ms = 168ull * 3600 * 1000;  // from publication
  bool dead_letter_oldest = false;         // a full inbox: false refuses the new one
  // Append only, non-zero: the publication is delivered as soon as it is stored (its inbox is
  // watched), so it is stored delivered once, due again after InboxRedeliveryDelay of this:
  // its delivery count goes in the append's own write, not one of its own.
  uint64_t delivered_ack_timeout_ms = 0;
};

// The delay before a delivered entry is due again: ack_timeout, doubled with each delivery,
// at most 16 times ack_timeout (so a client that is slow to ack is not flooded, and one that
// never acks reaches max_deliveries in bounded time).
constexpr uint64_t InboxRedeliveryDelay(uint64_t ack_timeout_ms, uint32_t deliveries) {
  const uint32_t shift = deliveries == 0 ? 0 : (deliveries - 1 > 4 ? 4 : deliveries - 1);
  return ack_timeout_ms << shift;
}

struct InboxEntry {
  std::string channel;
  uint64_t offset = 0;
  std::string data;  // the publication's data, raw JSON (dropped once acked)
  InboxState state = InboxState::kPending;
  uint32_t deliveries = 0;
  uint64_t published_ms = 0;
  uint64_t delivered_ms = 0;  // the last delivery
  uint64_t due_ms = 0;        // delivered: when it is delivered again without an ack
  uint64_t done_ms = 0;       // acked or dead: when
  uint64_t expires_ms = 0;
  std::string reason;    // dead: max_deliveries, rejected (or the client's reason), expired,
                         // overflow
  uint64_t dead_id = 0;  // dead: the dead letters' order (their cursor)
};

struct InboxPosition {
  uint64_t offset = 0;  // the last publication's (0: none yet)
  std::string epoch;
};

struct InboxAppended {
  enum class Status : uint8_t { kOk, kFull, kFailed };
  Status status = Status::kOk;
  InboxPosition position;
  std::vector<InboxEntry> dead;  // dead-lettered to make room (dead_letter_oldest)
  InboxEntry entry;  // limits.delivered_ack_timeout_ms set: the entry as stored, to send
  // Its fire key was stored before (a scheduled publication fired again after a crash):
  // position is the first one's, nothing was stored, stored(true) is called at once.
  bool duplicate = false;
};

// What an ack, reject, dead-lettering or redrive did: nothing when error is set.
struct InboxChange {
  std::string error;                // the client's mistake, for its error reply
  std::vector<InboxEntry> changed;  // the entries whose state changed, as they are now
  explicit operator bool() const { return error.empty(); }
};

struct DeadLetterQuery {
  std::string channel;  // empty: any
  std::string user;     // empty: any; else channels whose `#` part names this user
  uint64_t cursor = 0;  // dead_id of the last entry of the previous page (0: from the start)
  size_t limit = 100;
};
struct DeadLetterPage {
  std::vector<InboxEntry> entries;
  uint64_t next_cursor = 0;  // 0: this was the last page
};

// Called once a change is durable (false: the engine could not store it).
using InboxStored = std::function<void(bool stored)>;

class InboxStore {
 public:
  virtual ~InboxStore() = default;
  virtual const char* name() const = 0;
  // Whether what it holds survives a restart.
  virtual bool durable() const = 0;

  // Stores a publication with the next offset. kFull: the inbox holds limits.size unacked
  // entries and may not drop its oldest (nothing stored, stored not called). fire_key (a
  // scheduled publication's core::FireKey, or empty): a durable engine stores it with the
  // entry, in one transaction, keeps it until its schedule is forgotten (sqlite) or while
  // the entry is kept (nats: in the entry's record), and answers a second Append with it as
  // a duplicate.
  virtual InboxAppended Append(std::string_view channel, std::string_view data,
                               std::string_view fire_key, const InboxLimits& limits,
                               uint64_t now_ms, InboxStored stored) = 0;
  virtual InboxPosition Position(std::string_view channel) = 0;
  // The unacknowledged entries (pending and delivered), in offset order.
  virtual std::vector<InboxEntry> Unacked(std::string_view channel) = 0;
  // One more delivery of each (unacked) offset: its count, delivered_ms, due_ms (by
  // InboxRedeliveryDelay). The entries as they are now; offsets not unacked are skipped.
  virtual std::vector<InboxEntry> MarkDelivered(std::string_view channel,
                                                const std::vector<uint64_t>& offsets,
                                                uint64_t ack_timeout_ms, uint64_t now_ms) = 0;
  // Acks the offsets, or with up_to every unacked one at or below it. An offset that does
  // not exist or is not unacked (acked twice, dead) is an error: nothing changes.
  virtual InboxChange Ack(std::string_view channel, const std::vector<uint64_t>& offsets,
                          std::optional<uint64_t> up_to, uint64_t now_ms, InboxStored stored) = 0;
  // Dead-letters unacked offsets with reason (reject, max_deliveries); errors as Ack.
  virtual InboxChange DeadLetter(std::string_view channel, const std::vector<uint64_t>& offsets,
                                 std::string_view reason, uint64_t now_ms, InboxStored stored) = 0;
  // Dead letters back into their inbox (pending, count 0, same offset); offsets empty: all
  // of the channel's (none: nothing changes, no error).
  virtual InboxChange Redrive(std::string_view channel, const std::vector<uint64_t>& offsets,
                              uint64_t now_ms, InboxStored stored) = 0;
  // Forgets dead letters; offsets empty: all of the channel's.
  virtual InboxChange RemoveDead(std::string_view channel, const std::vector<uint64_t>& offsets,
                                 InboxStored stored) = 0;
  virtual DeadLetterPage DeadLetters(const DeadLetterQuery& query) = 0;
  // Each offset's entry (an unknown one is left out); offsets empty: every entry held.
  virtual std::vector<InboxEntry> Status(std::string_view channel,
                                         const std::vector<uint64_t>& offsets) = 0;
  // Before the API's Status: an engine shared by a cluster reads these entries (offsets
  // empty: the channel's) from where they are stored, so that Status shows a change another
  // node made a moment ago; at most the engine's bound of them, on the calling thread. The
  // others hold everything themselves: nothing to do.
  virtual void ReadThrough(std::string_view channel, const std::vector<uint64_t>& offsets) {
    (void)channel;
    (void)offsets;
  }
  // Dead-letters unacked entries past their expiry (reason "expired"), forgets acked ones
  // and dead letters past theirs. Returns the newly dead.
  virtual std::vector<InboxEntry> Expire(uint64_t now_ms) = 0;
  // Every inbox with unacked entries, and how many.
  virtual std::vector<std::pair<std::string, size_t>> PendingCounts() = 0;
  virtual size_t DeadCount() = 0;

  // An engine shared by a cluster's nodes calls pending (on its own thread) when another node
  // stored publications that wait for a first delivery in channel (a publish, a redrive), so
  // this node delivers them to its watchers. Null: stop calling (before the caller goes).
  using RemotePending = std::function<void(const std::string& channel)>;
  virtual void OnRemotePending(RemotePending pending) { (void)pending; }
};

}  // namespace hermod::core
