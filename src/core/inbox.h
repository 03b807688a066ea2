// Reliable delivery to users: the inboxes of namespaces with `inbox: true`, on top of an
// InboxStore engine (inbox_store.h). Who is connected, what is delivered when, acks,
// dead letters and receipts are decided here; the engine only keeps state.
//
// Delivery. A connection subscribed to an inbox channel (server-side, through
// user_subscribe_to_personal, or by its own subscribe) is a Watcher of it on its loop. When
// it starts watching it gets every unacknowledged publication of the inbox, in offset order
// (whatever recovery state it has: a new device gets them too). A publication stored while
// the user is connected is delivered at once. Each delivery counts (InboxEntry::deliveries,
// sent in the push's tags as `hermod-delivery`) and makes the entry due again after the
// namespace's ack_timeout, doubled per delivery (InboxRedeliveryDelay); one timer (Tick, on
// one loop) delivers what is due to the inbox's watchers, and dead-letters what has been
// delivered max_deliveries times without an ack. A delivery goes to every watcher of the
// inbox (every connection of the user) and counts once.
//
// Acks and rejects come from the user's client (proto's RPC `hermod.ack`, `hermod.reject`)
// and are answered once the engine has stored them. Every ack and dead-lettering sends a
// receipt ({channel, offset, status, at}) to the namespace's receipts_channel through the
// hub, an ordinary publication.
//
// Threads: Publish, Ack and the rest are called from any loop (the API's, the client's);
// watchers are kept under one mutex and reached through their loop's mailbox, so a watcher
// is only touched on its own loop, and a gone one (weak_ptr) is skipped and forgotten.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/channel_rules.h"
#include "core/completion.h"
#include "core/inbox_store.h"
#include "net/event_loop.h"

namespace hermod::core {

class Hub;

// What /metrics shows of the inboxes (counters since start).
struct InboxStats {
  static constexpr std::array<const char*, 4> kDeadReasons = {"max_deliveries", "rejected",
                                                              "expired", "overflow"};
  static constexpr std::array<double, 10> kAckLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                               0.25,  0.5,  1,     5,    30};
  uint64_t published = 0;
  uint64_t delivered = 0;    // first deliveries
  uint64_t redelivered = 0;  // every later one
  uint64_t acked = 0;
  uint64_t refused_full = 0;
  std::array<uint64_t, kDeadReasons.size()> dead{};
  // Publication to ack, per ack: counts per bound (not cumulative), then +Inf.
  std::array<uint64_t, kAckLatencyBounds.size() + 1> ack_latency_buckets{};
  double ack_latency_sum_s = 0;
  uint64_t ack_latency_count = 0;
  // Unacked publications per namespace ("" for channels without one), dead letters held.
  std::vector<std::pair<std::string, uint64_t>> pending;
  uint64_t dead_held = 0;
};

class Inbox {
 public:
  using WallClock = uint64_t (*)();
  static uint64_t WallMs();

  // A connection's subscription to an inbox, on its loop.
  class Watcher {
   public:
    virtual ~Watcher() = default;
    // On the watcher's loop: publications to send, in offset order, each with its count.
    virtual void DeliverInbox(std::string_view channel, const std::vector<InboxEntry>& entries) = 0;
  };

  // tick_ms from the config's shortest ack_timeout of an inbox namespace.
  Inbox(InboxStore& store, const ChannelRules& rules, Hub& hub, const config::Config& config,
        WallClock wall = &WallMs);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;
  InboxStore& store() { return store_; }
  // The namespace options of an inbox channel, or null when channel is not one.
  const config::ChannelOptions* Options(std::string_view channel) const;
  static bool Owns(std::string_view channel, std::string_view user);

  // On loop: watcher starts watching channel and gets its unacked publications (posted, so
  // after the reply being built now).
  void Watch(std::string_view channel, net::Loop& loop, std::weak_ptr<Watcher> watcher);

  struct Published {
    InboxAppended::Status status = InboxAppended::Status::kOk;
    InboxPosition position;
    bool duplicate = false;  // its fire key was stored before: the first one's position
  };
  // Stores and delivers a publication: kOk, and done gets its position once it is stored
  // (or kFailed); kFull (the inbox is full and refuses) or kFailed (not an inbox) at once,
  // and done is not called. fire_key: a scheduled publication's (InboxStore::Append).
  InboxAppended::Status Publish(std::string_view channel, std::string_view data,
                                Completion<Published> done, std::string_view fire_key = {});

  // The user's ack or reject (error: nothing changed; else the offsets, once stored).
  struct Answer {
    std::string error;
    bool denied = false;  // not the user's inbox (or not an inbox)
    std::vector<uint64_t> offsets;
  };
  void Ack(std::string_view user, std::string_view channel, const std::vector<uint64_t>& offsets,
           std::optional<uint64_t> up_to, Completion<Answer> done);
  void Reject(std::string_view user, std::string_view channel, const std::vector<uint64_t>& offsets,
              std::string_view reason, Completion<Answer> done);
  // The API's redrive: the dead letters are delivered again to watchers.
  InboxChange Redrive(std::string_view channel, const std::vector<uint64_t>& offsets,
                      Completion<bool> done);

  // Redelivery, max_deliveries and expiry: from one loop's timer, every tick_ms().
  void Tick();
  uint64_t tick_ms() const { return tick_ms_; }
  InboxStats Stats();

 private:
  struct Watching {
    net::Loop* loop;
    std::weak_ptr<Watcher> watcher;
  };
  // Counts a delivery of entries and sends them to the channel's watchers (or one). fresh:
  // just stored, never delivered (no max_deliveries check, which copies every entry).
  void Deliver(std::string_view channel, const config::ChannelOptions& options,
               std::vector<uint64_t> offsets, const Watching* only, bool fresh = false);
  // Whether anyone watches channel (a publication is then stored delivered).
  bool Watched(std::string_view channel);
  // Counts entries delivered and sends them to to (null: the channel's watchers).
  void Send(std::string_view channel, const std::vector<Watching>* to,
            std::vector<InboxEntry> entries);
  void Receipts(const std::vector<InboxEntry>& entries);
  // By each entry's reason, or all as `as` (a client's reject, whatever its reason).
  void CountDead(const std::vector<InboxEntry>& entries, std::string_view as = {});
  void Answered(const InboxChange& change, bool acked, Completion<Answer> done);
  // Ack's and Reject's common part: the owner check, apply (the store's change, whose
  // InboxStored argument is called once committed), and the answer once both are known.
  template <typename Apply>
  void Settle(std::string_view user, std::string_view channel, bool acked, Completion<Answer> done,
              const Apply& apply);

  InboxStore& store_;
  const ChannelRules& rules_;
  Hub& hub_;
  WallClock wall_;
  uint64_t tick_ms_ = 1000;
  uint64_t last_expire_ms_ = 0;
  // Every inbox namespace ("" for top-level channels): each has a pending count, 0 included.
  std::vector<std::string> namespaces_;

  std::mutex mutex_;  // guards watches_ and stats_
  std::map<std::string, std::vector<Watching>, std::less<>> watches_;
  InboxStats stats_;
};

}  // namespace hermod::core
