// The hub: channels across every loop. Shared nothing on the fan-out path, one lock where
// state must be shared.
//
// Each loop keeps its own channel -> local subscribers map (LoopChannels), touched only by
// its thread. What all loops share lives in ChannelState, one per channel, in one of
// kShards shards, each guarded by its own mutex: which loops have subscribers, and the store
// engines' per-channel history stream, presence set and idempotency keys (history_store.h
// and its siblings; an engine that completes later has the publication fanned out on
// completion, under the lock again, in offset order). A publication takes its shard's lock once: it
// gets its offset, is encoded once (the publication JSON for history, and one refcounted Push: the
// WebSocket frame, and its deflated form built once on first need), and the push is posted to each
// loop that has subscribers; the posts happen under the lock so that every loop sees a channel's
// publications in offset order. Each loop then queues the push to its subscribers by
// reference. Locks: LOCKS.md, at the repository's root.
//
// Subscribing runs on the subscriber's loop: under the shard lock it marks the loop, reads
// the stream position (and the publications to recover), and adds presence; then it adds the
// subscriber locally with delivered_offset = the position read, so frames already in the
// mailbox are not delivered twice and nothing published after is missed. An engine that
// recovers later (a read from disk or the network) is not waited for: the subscriber is
// added in the same way but holding its pushes (Subscription::held: what the hub fans out
// past the position read waits there, in offset order), and the caller's completion gets
// the recovered publications on its loop; the caller sends its reply, then Resume sends
// the held pushes past the last recovered offset. No gap, no duplicate, in offset order,
// however many publications arrive during the read.
//
// Channels nobody uses any more (no subscribers, presence, idempotency keys or live history)
// are reclaimed by time, not by search: when a channel is left without subscribers, each
// shard queues it by the time it can first become unused (its newest history entry's
// expiry, its last idempotency key's, its rate bucket's refill), a min-heap on that time.
// Due entries are taken off the heap by each loop's timer, every sweep interval, for each
// shard the loop owns (loop i owns shards i, i + loops, ...), at most the sweep budget per
// shard per tick so that no tick holds a lock for long; and by every channel created, which
// takes up to kReclaimPerCreate due entries of its shard first. Creating channels thus pays
// for reclaiming them: however fast new names arrive, reclaim keeps up once their time has
// come, and the count settles at about creation rate x TTL. A due entry still in use (a
// subscriber came, a newer publication) is queued again for its new time, or dropped when
// subscribers hold it (their leaving queues it again). The older bucket-by-bucket sweep of
// one shard per tick (and every kSweepEvery publishes per shard) stays as a net for state
// that changed without queueing (history_remove). StateStats reports both, with the
// backlog: queued channels whose time has passed.
//
// Publisher backpressure: a publisher can outrun the loops (one API call fans out to every
// subscriber on every loop). Each loop's undelivered pushes are counted (LoopChannels::
// inbox_bytes); while a loop the channel reaches holds more than Limits::inbox_budget_bytes,
// Publish refuses the publication before it gets an offset (the API answers 111 "too many
// requests", a temporary error the publisher retries, with its idempotency key if it wants
// exactly once). Critical publications may use twice the budget. Memory for pushes in flight
// is thus bounded per loop, whatever publishers do; per connection, SendLimits bound it.
//
// Publish rate (a namespace's publish_rate_limit): each channel's token bucket is in its
// ChannelState, taken under the shard lock Publish holds anyway, so the limit is exact
// node-wide (client and API publishers, every loop) at no extra lock. A channel in debt is
// kept (not swept) until its bucket has refilled, so forgetting it never resets the limit.
//
// Join/leave batching (a namespace's join_leave_batch_delay): presence itself changes at
// once under the shard lock (Presence and PresenceStats are exact); only the pushes wait.
// Each loop collects the join/leave events of its own clients, per channel, in a map only
// its thread touches (JoinLeaveBatches), with a timer on the loop's wheel per channel
// batch. A client lives on one loop, so its join and its leave meet in the same batch, where
// they cancel out (join then leave, or leave then join), with no lock; a leave in a later
// batch than its join is posted after it, so no subscriber sees a leave before its join.
// When the window ends (the loop timer fires, with no further event needed) or the batch
// holds join_leave_batch_max events, its pushes are encoded outside any lock, joined into
// one (PushCodec::join) and posted once, taking the shard lock like any publication. A
// subscriber thus gets at most one join/leave message per channel, window and source loop.
// The publish path is untouched.
//
// Cluster mode with batching: a loop hands its clients' joins and leaves to the broker only
// when it flushes the batch, after cancellation, so a pair cancelled here never leaves the
// node. Events another node sends join a batch of their own on the receiving node (on the
// loop the channel's name hashes to, marked remote: never cancelled, never sent on again),
// so its watchers too get at most one message per channel, window and loop.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/broker.h"
#include "core/completion.h"
#include "core/history_store.h"
#include "core/history_stream.h"
#include "core/idempotency_store.h"
#include "core/loop_channels.h"
#include "core/presence_store.h"
#include "core/push.h"
#include "core/rate_limit.h"
#include "net/event_loop.h"
#include "net/output_queue.h"
#include "stats/hub_state.h"

namespace hermod::core {

// How the client protocol encodes what the hub fans out (given by proto/, which the hub
// does not include).
struct PushCodec {
  // The publication object, as stored in history and embedded in pushes. tags: the
  // publication's tags as the protocol encodes them, empty when none.
  std::function<std::string(std::string_view data, std::string_view info, uint64_t offset,
                            std::string_view tags)>
      publication;
  // A new push (refcount 1) carrying the publication, or a join/leave, to its channel.
  std::function<Push*(std::string_view channel, std::string_view publication)> publication_push;
  std::function<Push*(std::string_view channel, bool join, std::string_view info)> join_leave_push;
  // One new push carrying the messages of count pushes, newline-joined, as the protocol
  // allows (push coalescing); empty: every push leaves as its own message.
  std::function<Push*(const Push* const* pushes, size_t count)> join;
  // A publication push that also carries the forms a delta subscriber gets (Centrifugo's
  // delta compression, namespaces with allowed_delta_types): its data as the full payload,
  // and, when base is given, a fossil delta against base's data. seq orders the channel's
  // publications (the offset, or a count of its own for those without one); base_seq is the
  // publication the delta applies to. Empty: delta subscribers get the plain push.
  struct DeltaSource {
    uint64_t seq = 0;
    uint64_t base_seq = 0;              // 0: no delta, full data only
    std::string_view base_publication;  // the publication at base_seq
  };
  std::function<Push*(std::string_view channel, std::string_view publication,
                      const DeltaSource& delta)>
      delta_push;
  // Tells a subscriber with Subscription::tell_missed that a push it may not miss was not
  // queued (LoopChannels' missed handler); null: such a subscriber's connection is cut.
  void (*missed)(Subscription& s) = nullptr;
};

// The engines the hub keeps history, presence and idempotency keys in (store/engines.h
// makes them from config; `memory` by default).
struct Stores {
  std::unique_ptr<HistoryStore> history;
  std::unique_ptr<PresenceStore> presence;
  std::unique_ptr<IdempotencyStore> idempotency;
  // Whether every history call completes inline (the memory engine): the publish path then
  // makes no completion.
  bool history_inline = true;
  // Whether presence lists and counts complete inline (the memory engine): a caller then
  // need not pass a completion.
  bool presence_inline = true;
  // Whether the history engine itself brings every stored publication back, from every
  // node, with its offset (JetStream's RePublish: store/nats_history.h), through
  // Hub::Deliver: an append's completion then only answers its publisher, and Deliver fans
  // out, in the engine's order, for the whole cluster.
  bool history_delivers = false;
};

// How idle channels are swept (see the top of this file).
struct SweepPolicy {
  uint64_t interval_ms = 1000;  // per loop, between two shard visits
  size_t budget = 256;          // channels visited per visit, at most
};
// A publication's priority from its name (the API's `priority`, a namespace's
// default_priority); nullopt for an unknown name.
std::optional<net::Priority> ParsePriority(std::string_view name);

class Hub {
 public:
  using Clock = uint64_t (*)();
  struct Limits {
    // Undelivered push bytes per loop past which publications are refused.
    size_t inbox_budget_bytes = size_t{64} << 20;
    // Centrifugo keeps idempotent publish results for 5 minutes.
    uint64_t idempotency_window_ms = 5 * 60 * 1000;
    // A channel's history position outlives the channel this long (history_meta.h), at
    // most history_meta_max_channels of them; 0: not kept.
    uint64_t history_meta_ttl_ms = 30ull * 24 * 3600 * 1000;
    size_t history_meta_max_channels = 100000;
    // A scheduled firing's key (core::FireKey) goes to the broker with a publication
    // without history, so every node that delivers it remembers it (in its idempotency
    // engine's keys) and drops a repeat of that firing (engine nats: README, Scheduled
    // delivery). Off: no key leaves the node.
    bool relay_fire_keys = false;
  };
  Hub(size_t loop_count, PushCodec codec, Stores stores, Clock clock = &net::Loop::MonotonicMs,
      SweepPolicy sweep = {});
  ~Hub();

  // Before the loops run. Starts the loop's sweep timer; the loop must not run once the hub
  // is gone.
  void AttachLoop(net::Loop& loop);
  void set_limits(const Limits& limits);
  const Limits& limits() const { return limits_; }
  // Whether history calls complete inline (the memory engine): callers then need not make
  // a completion (see Stores).
  bool history_inline() const { return stores_.history_inline; }
  // The history engine's writes are behind (HistoryStore::Backlogged, Drained).
  bool history_backlogged() const { return stores_.history && stores_.history->Backlogged(); }
  bool history_drained() const { return !stores_.history || stores_.history->Drained(); }
  bool presence_inline() const { return stores_.presence_inline; }

  struct SubscribeRequest {
    std::string_view channel;
    const config::ChannelOptions* options;
    std::string_view client;
    std::string_view user;
    std::string_view info;     // ClientInfo JSON, for presence and join
    bool recoverable = false;  // the stream position is reported (history must be on)
    bool recover = false;
    StreamPosition since;
    size_t max_recovery = 300;
    // Recovery publications (their bytes) the subscriber can take in its reply; more is
    // not recovered (recovered false), as too many publications are not.
    size_t max_recovery_bytes = SIZE_MAX;
  };
  struct SubscribeResult {
    bool recoverable = false;
    StreamPosition position;
    bool recovered = false;
    std::vector<std::string> publications;
    // The engine recovers later: the answer comes through the caller's completion.
    bool pending = false;
    // What the subscriber has once this result is sent: the last recovered offset, or the
    // position (for Resume).
    uint64_t delivered_offset = 0;
    // The subscriber gets fossil deltas (the session decides; the reply says so).
    bool delta = false;
  };
  using SubscribeDone = Completion<SubscribeResult>;
  // On the subscriber's loop. With recover and a history engine that recovers later:
  // without done, the result says not recovered (the current position: the protocol's
  // "gap"); with done (made with the subscriber's loop), the result is `pending`, s holds
  // its pushes, and done gets the whole result; send it, then call Resume. The memory
  // engine always answers here, and done is not used.
  SubscribeResult Subscribe(net::Loop& loop, const SubscribeRequest& request, Subscription* s,
                            SubscribeDone done = {});
  // On s's loop, after the reply of a pending Subscribe went out: sends the pushes s held
  // past result.delivered_offset. s may be gone when it returns (LoopChannels::Resume).
  void Resume(Subscription* s, const SubscribeResult& result);
  void Unsubscribe(net::Loop& loop, std::string_view channel, const config::ChannelOptions& options,
                   std::string_view client, std::string_view info, Subscription* s);

  // Why Publish refused a publication (the first two answer 111, a temporary error).
  enum class Refusal : uint8_t {
    kNone,
    kBackpressure,  // a loop the channel reaches is over its inbox budget
    kRateLimit,     // the namespace's publish_rate_limit, for this channel, node-wide
    kTooLarge,      // larger than the broker carries (NATS max_payload): 106, not temporary
    kStoreFailed,   // the history engine could not store it: nothing was published
    kPending,       // not a refusal: the engine completes later, through request.done
  };
  struct PublishResult {
    Refusal refusal = Refusal::kNone;
    StreamPosition position;  // offset 0 without history
    bool ok() const { return refusal == Refusal::kNone; }
    explicit operator bool() const { return ok(); }
  };
  struct PublishRequest {
    std::string_view channel;
    const config::ChannelOptions* options = nullptr;
    std::string_view data;
    std::string_view info;
    // Non-empty and seen on this channel within the idempotency window: the first
    // publication's position, and nothing is published.
    std::string_view idempotency_key;
    std::string_view tags;
    std::optional<net::Priority> priority;  // none: the namespace's default_priority
    // Called with the result when a history engine completes the append later (the result
    // was kPending); unused with the memory engine, which answers at once.
    Completion<PublishResult> done;
    // The API's `delta`: delta subscribers get this publication as a fossil delta against
    // the channel's previous one (namespaces with allowed_delta_types).
    bool delta = false;
  };
  // Any thread. Refused: nothing was published (kBackpressure, kRateLimit: try again).
  // A history engine that completes later: kPending, and request.done gets the result once
  // the publication is stored and fanned out (in offset order, see history_store.h).
  PublishResult Publish(PublishRequest request);
  // Any thread, with Stores::history_delivers: a publication the engine stored at position
  // (on this node or another), in the engine's order, to this node's subscribers. One at or
  // below the channel's position is skipped (a subscriber's position covers it); the
  // channel's position follows it. Nothing is stored or sent to the broker. delta: it was
  // published with the API's delta (PublishRequest::delta).
  void Deliver(std::string_view channel, const config::ChannelOptions& options,
               const StreamPosition& position, std::string_view publication, bool delta = false);
  // Any thread: the engine cannot hand on publications this node's subscribers of the
  // channel should have had (gone from the stream before they could be read). Each
  // subscriber is told it missed publications (LoopChannels::TellMissed), never left with a
  // silent jump.
  void TellMissed(std::string_view channel);
  // Drops the channel's stored publications (its position stays), held here or not: a
  // durable engine keeps a freed channel's publications, and they are removed too.
  void RemoveHistory(std::string_view channel, const config::ChannelOptions& options);
  // RemoveHistory, answered when the engine stored it (HistoryStore::Stream::RemoveThen):
  // true, or false when it failed; now, or later through done.
  std::optional<bool> RemoveHistory(std::string_view channel, const config::ChannelOptions& options,
                                    Completion<bool> done);
  // Channels with subscribers, and how many (API `channels`).
  std::vector<std::pair<std::string, size_t>> Channels();
  // Every channel the hub keeps state for, used or not (tests, metrics).
  size_t ChannelCount();

  // What the hub holds, for /metrics: of the shards loop `loop` sweeps (shard % loops ==
  // loop), or of all when loop is npos. Walks those shards' channels, one lock at a time,
  // briefly: a scrape's cost grows with the channel count, never a publisher's.
  using StateStats = stats::HubState;
  StateStats State(size_t loop = static_cast<size_t>(-1));
  // The channels and their subscribers on every loop, node-wide, as State counts them but
  // kept as they change (channel created or freed, subscriber added or removed): a lock and
  // two reads per shard, whatever the channel count (the dashboard's sampler, every second).
  struct Counts {
    uint64_t channels = 0;
    uint64_t subscriptions = 0;
  };
  Counts Totals();
  size_t loop_count() const { return loops_.size(); }

  using HistoryResult = HistoryPage;
  // max_bytes bounds the publications' bytes in all (the reply's room on its connection):
  // the result stops before the first that would pass it. An engine that reads later
  // answers through done (the returned result is then `pending`).
  HistoryResult History(std::string_view channel, const config::ChannelOptions& options,
                        const StreamPosition* since, int64_t limit, bool reverse,
                        size_t max_bytes = SIZE_MAX, Completion<HistoryPage> done = {});
  // With done, the answer always comes through it (at once, or later from an engine that
  // lists later) and the returned list is empty.
  PresenceList Presence(std::string_view channel, Completion<PresenceList> done = {});
  // {clients, distinct users}; with done, as Presence.
  std::pair<size_t, size_t> PresenceStats(std::string_view channel,
                                          Completion<PresenceCounts> done = {});

  // Cluster mode (core/broker.h). With a broker, every publication this hub accepts (from
  // the API, a client, or the broker itself) and every join and leave is handed to it after
  // local delivery; publications go under the channel's shard lock, so that they leave in
  // offset order. Before the loops run; null (the `memory` engine): this node only.
  void set_broker(Broker* broker) { broker_ = broker; }
  bool clustered() const { return broker_ != nullptr; }
  // Any thread: a join or leave another node sent, to this node's subscribers of channel;
  // with join_leave_batch_delay, through a batch on one loop (the channel's by hash).
  void JoinLeaveFromBroker(std::string_view channel, const config::ChannelOptions& options,
                           bool join, std::string_view info);

 private:
  struct ChannelState;
  struct Shard;
  class SweepTimer;
  class JoinLeaveBatches;
  static constexpr size_t kShards = 64;
  static constexpr uint32_t kSweepEvery = 1024;  // publishes per shard between sweeps
  // Due channels a new channel reclaims first: above 1, reclaim outruns any creation rate.
  static constexpr size_t kReclaimPerCreate = 2;

  using ChannelMap = std::unordered_map<std::string, std::unique_ptr<ChannelState>,
                                        LoopChannels::Hash, std::equal_to<>>;

  Shard& ShardOf(std::string_view channel);
  // Under the shard lock: the channel's state, created if it has none.
  ChannelState& StateOf(Shard& shard, std::string_view channel,
                        const config::ChannelOptions& options);
  // The same, given the caller's find of channel in the shard (end(): not there), so that a
  // caller that looked first does not hash and probe the map twice per publication.
  ChannelState& StateOf(Shard& shard, ChannelMap::iterator it, std::string_view channel,
                        const config::ChannelOptions& options);
  // Under the shard lock: the push of a publication; in a namespace with delta compression
  // it carries the delta forms (PushCodec::delta_push), against the channel's previous
  // publication when delta is asked and that one is known.
  Push* PublicationPush(ChannelState& state, std::string_view channel,
                        const config::ChannelOptions& options, std::string_view publication,
                        uint64_t offset, bool delta);
  // Under the shard lock, after a recovery that returned publications up to offset (the
  // last one publication): when the channel is at offset but fanned out nothing since an
  // older publication (nobody here got these), that one becomes the base of the next delta,
  // so the recovered delta subscriber's next live publication is a delta against it.
  void SeedDelta(ChannelState& state, bool delta_namespace, uint64_t offset,
                 std::string_view publication);
  // Posts push to every loop with subscribers; takes over the caller's reference.
  void PostPush(const ChannelState& state, std::string_view channel,
                const config::ChannelOptions& options, Push* push, uint64_t offset, bool join_leave,
                net::Priority priority);
  // Under the shard lock: whether every loop the channel reaches has room for a push.
  bool Admits(const ChannelState& state, net::Priority priority) const;
  void MaybeErase(Shard& shard, std::string_view channel);
  // Under the shard lock: the history stream of the channel, or null when no publication of
  // it is stored. A channel the hub freed while a durable engine still keeps its publications
  // (after a restart: every channel) is opened again, and queued for reclaim.
  HistoryStore::Stream* StoredHistory(Shard& shard, std::string_view channel,
                                      const config::ChannelOptions& options);
  // Under the shard lock: tells the broker when the node starts or stops holding the channel
  // (Broker::Interest).
  void SyncInterest(std::string_view channel, ChannelState& state);
  // From the history engine's thread: an append that completed later (Publish's kPending).
  struct PendingPublish;
  void Appended(PendingPublish& pending, HistoryAppended appended);
  // Under the shard lock: erases the channel, keeping its history position (history_meta.h).
  void Forget(Shard& shard, ChannelMap::iterator it, uint64_t now);
  // Under the shard lock. Whether the channel holds nothing worth keeping at now (expired
  // history entries and idempotency keys are dropped on the way).
  static bool Reclaimable(ChannelState& state, uint64_t now);
  // Under the shard lock: queues a channel without subscribers for reclaim at the first time
  // it can be unused (nothing when it never can: history without a TTL).
  void QueueReclaim(Shard& shard, std::string_view name, ChannelState& state, uint64_t now);
  // Under the shard lock: handles up to max due reclaim entries; returns how many it took.
  size_t ReclaimDue(Shard& shard, uint64_t now, size_t max);
  // Under the shard lock: erases channels without subscribers, presence or live history,
  // visiting at most the sweep budget of them from where the last sweep of the shard ended.
  void Sweep(Shard& shard);
  // On loop `index`'s thread, from its sweep timer: sweeps the visit-th of its shards.
  void SweepTick(size_t index, size_t visit);
  // On loop `index`'s thread, outside any lock: a client of this loop joined or left a
  // channel whose namespace batches join/leave pushes. A join and a leave of one client in
  // one window cancel out; a full batch leaves at once.
  // remote: an event another node sent (no client id here; already batched and cancelled
  // there): it is only shown, never cancelled nor sent to the broker again.
  void BatchJoinLeave(size_t index, std::string_view channel, const config::ChannelOptions& options,
                      std::string_view client, bool join, std::string_view info,
                      bool remote = false);
  // On loop `index`'s thread: sends the channel's batch as one joined push (and forgets it).
  void FlushJoinLeave(size_t index, std::string_view channel);

  PushCodec codec_;
  Stores stores_;
  Clock clock_;
  Limits limits_;
  std::vector<net::Loop*> loops_;
  std::vector<std::unique_ptr<LoopChannels>> locals_;
  SweepPolicy sweep_;
  std::vector<std::unique_ptr<SweepTimer>> sweepers_;       // one per loop
  std::vector<std::unique_ptr<JoinLeaveBatches>> batches_;  // one per loop
  std::array<std::unique_ptr<Shard>, kShards> shards_;
  Broker* broker_ = nullptr;
  void ToBroker(BrokerMessageKind kind, std::string_view channel, std::string_view data,
                std::string_view info, std::string_view tags, net::Priority priority,
                bool skip_history, bool delta = false, std::string_view key = {});
};

}  // namespace hermod::core
