#include "core/hub.h"

#include <algorithm>
#include <cassert>
#include <deque>
#include <functional>

#include "core/schedule_store.h"
#include "stats/loop_metrics.h"

namespace hermod::core {

namespace {

// A publication without history (skip_history, or a namespace without it) accepted while
// appends an engine completes later are in flight on its channel: it waits behind them, so
// that fan-out keeps the order publications were accepted in.
struct WaitingPublish {
  uint64_t after;  // fanned out once this many appends of the channel have completed
  config::ChannelOptions options;
  std::string data;
  std::string info;
  std::string tags;
  net::Priority priority;
  uint64_t published_us;
  bool delta;
};

}  // namespace

struct Hub::ChannelState {
  std::vector<bool> loops;  // loops with local subscribers
  size_t loop_count = 0;    // how many are set
  size_t subscribers = 0;   // on all loops
  // The engines' per-channel state (history_store.h and beside it); presence and keys are
  // opened on first use.
  std::unique_ptr<HistoryStore::Stream> history;
  std::unique_ptr<PresenceStore::Set> presence;
  std::unique_ptr<IdempotencyStore::Keys> idempotency;
  // The offset fanned out last: what a subscriber's position is, whatever an engine that
  // completes later has stored beyond it.
  uint64_t top = 0;
  uint32_t appending = 0;  // appends an engine completes later, in flight: kept till done
  uint64_t appended = 0;   // of those, how many have completed (WaitingPublish::after)
  std::deque<WaitingPublish> waiting;  // in acceptance order; empty when appending is 0
  // The namespace's publish_rate_limit for this channel, node-wide: every publisher of the
  // channel, on any loop or API call, takes its token here under the shard lock it holds
  // anyway. publish_limit: the limit last used, so the sweep can tell a refilled bucket.
  TokenBucket publish_bucket;
  RateLimit publish_limit;
  // Delta compression (PublicationPush): the last publication fanned out, its sequence
  // number (0: none known), and the count that numbers publications without an offset.
  std::string delta_prev;
  uint64_t delta_prev_seq = 0;
  uint64_t delta_count = 0;
  uint64_t reclaim_at = 0;  // its entry in the shard's reclaim queue; 0: none
  bool interest = false;    // the broker was told this node holds the channel (SyncInterest)
  // Under the shard lock: nothing but the channel's name would be lost by erasing it now.
  bool HasPresence() const { return presence && !presence->empty(); }
  bool HasKeys() const { return idempotency && !idempotency->empty(); }
  bool Unused(uint64_t now) {
    return loop_count == 0 && !HasPresence() && !HasKeys() && appending == 0 &&
           publish_bucket.Full(publish_limit, now);
  }
};

struct Hub::Shard {
  std::mutex mutex;         // guards everything below (/LOCKS.md)
  uint32_t publishes = 0;   // every kSweepEvery, the shard drops channels nobody uses
  size_t sweep_bucket = 0;  // where the next sweep starts (a bucket of channels)
  ChannelMap channels;
  // Channels without subscribers by the time they may become unused: a min-heap (std::
  // push_heap with greater). An entry whose time is not its channel's reclaim_at is stale
  // (the channel was queued again, or erased) and is skipped when it comes up.
  struct Due {
    uint64_t at;
    std::string name;
    bool operator>(const Due& other) const { return at > other.at; }
  };
  std::vector<Due> reclaim;
  uint64_t reclaimed = 0;  // channels erased, for /metrics
  // Its channels' subscribers, summed as they change (Totals reads it: no walk).
  uint64_t subscribers = 0;
};

namespace {

// What a mailbox task costs its loop's inbox beyond the push's bytes (the task, its
// std::function, the channel name's copy).
constexpr size_t kTaskOverhead = 128;

// A push reference held by a mailbox task, and the task's share of its loop's inbox bytes:
// copied with the task, dropped with it, so a task that never runs (a loop destroyed with
// work pending) still releases the push and its budget. Only the last copy gives the bytes
// back (a std::function may copy its task before it runs).
class PushRef {
 public:
  PushRef(const Push* push, LoopChannels* local, size_t bytes)
      : push_(push), local_(local), bytes_(bytes) {
    push_->Ref();
    local_->AddInbox(bytes_);
  }
  PushRef(const PushRef& other) : push_(other.push_), local_(other.local_), bytes_(0) {
    push_->Ref();
    std::swap(bytes_, const_cast<PushRef&>(other).bytes_);
  }
  PushRef& operator=(const PushRef&) = delete;
  ~PushRef() {
    if (bytes_ != 0) local_->SubInbox(bytes_);
    push_->Unref();
  }
  const Push* get() const { return push_; }

 private:
  const Push* push_;
  LoopChannels* local_;
  size_t bytes_;
};

}  // namespace

std::optional<net::Priority> ParsePriority(std::string_view name) {
  if (name == "normal") return net::Priority::kNormal;
  if (name == "low") return net::Priority::kLow;
  if (name == "high") return net::Priority::kHigh;
  if (name == "critical") return net::Priority::kCritical;
  return std::nullopt;
}

class Hub::SweepTimer final : public net::TimerNode {
 public:
  SweepTimer(Hub& hub, net::Loop& loop) : hub_(hub), loop_(loop) {}
  void Start() { loop_.timers().Schedule(this, hub_.sweep_.interval_ms); }
  void OnTimer() override {
    hub_.SweepTick(static_cast<size_t>(loop_.index()), visits_++);
    Start();
  }

 private:
  Hub& hub_;
  net::Loop& loop_;
  size_t visits_ = 0;  // which of its shards the next tick sweeps
};

// One loop's join/leave events waiting for their channel's window (join_leave_batch_delay),
// by channel; only the loop's thread touches it. The loop's clients are the only ones whose
// joins and leaves come here, so a client's join and its leave meet in the same batch (or
// the join in an earlier one, flushed first): cancelling needs no lock, and a subscriber
// never gets a leave before its join.
class Hub::JoinLeaveBatches {
 public:
  struct Event {
    std::string client;
    std::string info;
    bool join;
    bool remote;  // from another node: shown here only
  };
  struct Batch final : net::TimerNode {
    Batch(Hub& h, size_t i, std::string_view channel) : hub(h), index(i), name(channel) {}
    void OnTimer() override { hub.FlushJoinLeave(index, name); }  // frees this batch
    Hub& hub;
    size_t index;  // its loop
    std::string name;
    // A copy: a subscription's options may be its own (token overrides) and end with it.
    config::ChannelOptions options;
    std::vector<Event> events;  // at most join_leave_batch_max
  };
  std::unordered_map<std::string, std::unique_ptr<Batch>, LoopChannels::Hash, std::equal_to<>>
      channels;
};

Hub::Hub(size_t loop_count, PushCodec codec, Stores stores, Clock clock, SweepPolicy sweep)
    : codec_(codec),
      stores_(std::move(stores)),
      clock_(clock),
      loops_(loop_count, nullptr),
      sweep_(sweep) {
  assert(stores_.history && stores_.presence && stores_.idempotency);
  sweepers_.resize(loop_count);
  batches_.resize(loop_count);
  for (auto& batches : batches_) batches = std::make_unique<JoinLeaveBatches>();
  locals_.resize(loop_count);
  for (auto& local : locals_) local = std::make_unique<LoopChannels>(codec_.join, codec_.missed);
  for (auto& shard : shards_) shard = std::make_unique<Shard>();
}

// The engines go first: one that completes later may finish its work as it stops, and its
// completions come back into the hub, which must still be whole.
Hub::~Hub() { stores_ = {}; }

void Hub::set_limits(const Limits& limits) {
  limits_ = limits;
  stores_.history->SetMetaLimits(limits.history_meta_ttl_ms, limits.history_meta_max_channels);
}

void Hub::Forget(Shard& shard, ChannelMap::iterator it, uint64_t now) {
  if (it->second->interest && broker_ != nullptr) broker_->Interest(it->first, false);
  // With a broker, what other nodes publish from now on does not reach this node: a kept
  // position would let a returning subscriber "recover" past publications never received.
  // The stream starts afresh (a new epoch) instead.
  if (it->second->history && broker_ == nullptr) {
    stores_.history->Close(it->first, std::move(it->second->history), now);
  }
  shard.subscribers -= it->second->subscribers;
  shard.channels.erase(it);
}

void Hub::AttachLoop(net::Loop& loop) {
  const size_t index = static_cast<size_t>(loop.index());
  loops_[index] = &loop;
  locals_[index]->Attach(loop);
  if (sweep_.interval_ms > 0 && sweep_.budget > 0) {
    sweepers_[index] = std::make_unique<SweepTimer>(*this, loop);
    sweepers_[index]->Start();
  }
}

Hub::Shard& Hub::ShardOf(std::string_view channel) {
  return *shards_[LoopChannels::Hash{}(channel) % kShards];
}

Hub::ChannelState& Hub::StateOf(Shard& shard, std::string_view channel,
                                const config::ChannelOptions& options) {
  return StateOf(shard, shard.channels.find(channel), channel, options);
}

Hub::ChannelState& Hub::StateOf(Shard& shard, ChannelMap::iterator it, std::string_view channel,
                                const config::ChannelOptions& options) {
  if (it == shard.channels.end()) {
    // A new channel pays for reclaiming old ones (see the top of hub.h).
    ReclaimDue(shard, clock_(), kReclaimPerCreate);
    auto state = std::make_unique<ChannelState>();
    state->loops.assign(loops_.size(), false);
    it = shard.channels.emplace(std::string(channel), std::move(state)).first;
  }
  ChannelState& state = *it->second;
  if (options.history_size > 0 && !state.history) {
    // The stream this channel had before it was erased continues, if its position is kept.
    state.history = stores_.history->Open(channel, clock_());
    state.top = state.history->Position().offset;
  }
  SyncInterest(channel, state);
  return state;
}

void Hub::SyncInterest(std::string_view channel, ChannelState& state) {
  // Held: it has subscribers here, or a history stream this node keeps complete.
  const bool held = state.loop_count > 0 || state.history != nullptr;
  if (broker_ == nullptr || held == state.interest) return;
  state.interest = held;
  broker_->Interest(channel, held);
}

bool Hub::Reclaimable(ChannelState& state, uint64_t now) {
  if (state.loop_count != 0 || state.HasPresence()) return false;
  if (state.HasKeys()) state.idempotency->Expire(now);
  if (!state.Unused(now)) return false;
  if (state.history) {
    state.history->Expire(now);
    return state.history->entries() == 0;
  }
  return true;
}

void Hub::QueueReclaim(Shard& shard, std::string_view name, ChannelState& state, uint64_t now) {
  // Their leaving queues it, or the append's completion.
  if (state.loop_count != 0 || state.HasPresence() || state.appending != 0) return;
  uint64_t at = now;
  if (state.history && state.history->entries() > 0) {
    at = std::max(at, state.history->expires_ms());
  }
  // Keys expire a window after they were stored, so none outlives now + the window (exact
  // for the key just stored; a later pass finds older keys gone). Not a walk of the keys:
  // this runs on every keyed publish to a channel without subscribers.
  if (state.HasKeys()) at = std::max(at, now + limits_.idempotency_window_ms);
  at = std::max(at, now + state.publish_bucket.FullInMs(state.publish_limit, now));
  // An earlier entry is enough: when it comes up, the channel is queued again if need be.
  if (state.reclaim_at != 0 && state.reclaim_at <= at) return;
  state.reclaim_at = at;
  shard.reclaim.push_back({at, std::string(name)});
  std::push_heap(shard.reclaim.begin(), shard.reclaim.end(), std::greater<>{});
}

size_t Hub::ReclaimDue(Shard& shard, uint64_t now, size_t max) {
  size_t taken = 0;
  auto& heap = shard.reclaim;
  while (taken < max && !heap.empty() && heap.front().at <= now) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    Shard::Due due = std::move(heap.back());
    heap.pop_back();
    ++taken;
    auto it = shard.channels.find(std::string_view(due.name));
    if (it == shard.channels.end() || it->second->reclaim_at != due.at) continue;  // stale
    ChannelState& state = *it->second;
    state.reclaim_at = 0;
    if (Reclaimable(state, now)) {
      Forget(shard, it, now);
      ++shard.reclaimed;
    } else {
      QueueReclaim(shard, it->first, state, now);
    }
  }
  return taken;
}

void Hub::MaybeErase(Shard& shard, std::string_view channel) {
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return;
  ChannelState& state = *it->second;
  const uint64_t now = clock_();
  if (!Reclaimable(state, now)) {
    QueueReclaim(shard, it->first, state, now);
    return;
  }
  Forget(shard, it, now);
  ++shard.reclaimed;
}

void Hub::Sweep(Shard& shard) {
  const uint64_t now = clock_();
  auto& channels = shard.channels;
  const size_t buckets = channels.bucket_count();
  size_t visited = 0;
  // Bucket by bucket from where the last sweep stopped; erasing never rehashes, so the
  // buckets stay put while this runs.
  std::vector<const std::string*> idle;
  for (size_t n = 0; n < buckets && visited < sweep_.budget; ++n) {
    const size_t bucket = shard.sweep_bucket % buckets;
    bool whole = true;  // the bucket was visited to its end
    for (auto it = channels.begin(bucket); it != channels.end(bucket); ++it) {
      if (visited == sweep_.budget) {
        whole = false;  // the next sweep starts on this bucket again
        break;
      }
      ++visited;
      ChannelState& state = *it->second;
      bool unused = state.loop_count == 0 && !state.HasPresence();
      if (unused && state.HasKeys()) state.idempotency->Expire(now);
      unused = unused && state.Unused(now);
      if (unused && state.history) {
        state.history->Expire(now);
        unused = state.history->entries() == 0;
      }
      if (unused) idle.push_back(&it->first);
    }
    if (whole) ++shard.sweep_bucket;
    for (const std::string* name : idle) Forget(shard, channels.find(std::string_view(*name)), now);
    shard.reclaimed += idle.size();
    idle.clear();
  }
}

void Hub::SweepTick(size_t index, size_t visit) {
  const size_t loop_count = loops_.size();
  if (index >= kShards) return;  // more loops than shards: the first kShards sweep
  // The shards this loop owns: index, index + loop_count, ...
  const size_t owned = (kShards - index + loop_count - 1) / loop_count;
  // Every owned shard's due channels (a heap top compared when none is due), then the
  // bucket sweep of one of them.
  for (size_t k = 0; k < owned; ++k) {
    Shard& shard = *shards_[index + k * loop_count];
    std::lock_guard lock(shard.mutex);
    ReclaimDue(shard, clock_(), sweep_.budget);
  }
  {
    Shard& shard = *shards_[index + (visit % owned) * loop_count];
    std::lock_guard lock(shard.mutex);
    Sweep(shard);
  }
  // The positions freed channels left, outside any shard lock (the engine locks its own).
  if (index == 0) stores_.history->ExpireKept(clock_());
}

Hub::StateStats Hub::State(size_t loop) {
  StateStats stats;
  const uint64_t now = clock_();
  for (size_t i = 0; i < kShards; ++i) {
    if (loop != static_cast<size_t>(-1) && i % loops_.size() != loop) continue;
    Shard& shard = *shards_[i];
    std::lock_guard lock(shard.mutex);
    stats.channels += shard.channels.size();
    for (const auto& [name, state] : shard.channels) {
      stats.subscriptions += state->subscribers;
      if (state->presence) stats.presence_entries += state->presence->size();
      if (state->idempotency) stats.idempotency_keys += state->idempotency->size();
      if (state->history) {
        stats.history_entries += state->history->entries();
        stats.history_bytes += state->history->bytes();
      }
    }
    stats.reclaim_queued += shard.reclaim.size();
    for (const Shard::Due& due : shard.reclaim) stats.reclaim_backlog += due.at <= now ? 1 : 0;
    stats.reclaimed += shard.reclaimed;
  }
  return stats;
}

Hub::Counts Hub::Totals() {
  Counts counts;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    counts.channels += shard->channels.size();
    counts.subscriptions += shard->subscribers;
  }
  return counts;
}

size_t Hub::ChannelCount() {
  size_t count = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    count += shard->channels.size();
  }
  return count;
}

bool Hub::Admits(const ChannelState& state, net::Priority priority) const {
  const size_t budget = priority == net::Priority::kCritical ? 2 * limits_.inbox_budget_bytes
                                                             : limits_.inbox_budget_bytes;
  for (size_t i = 0; i < state.loops.size(); ++i) {
    if (state.loops[i] && locals_[i]->inbox_bytes() > budget) return false;
  }
  return true;
}

void Hub::PostPush(const ChannelState& state, std::string_view channel,
                   const config::ChannelOptions& options, Push* push, uint64_t offset,
                   bool join_leave, net::Priority priority) {
  const Delivery delivery{
      Coalescing{options.push_coalesce_max_bytes, options.push_coalesce_delay.ms}, priority,
      options.delivery == config::Delivery::kLatest, options.droppable};
  const size_t bytes = push->size() + channel.size() + kTaskOverhead;
  for (size_t i = 0; i < state.loops.size(); ++i) {
    if (!state.loops[i]) continue;
    LoopChannels* local = locals_[i].get();
    loops_[i]->Post([local, channel = std::string(channel), ref = PushRef(push, local, bytes),
                     offset, join_leave, delivery] {
      local->Deliver(channel, *ref.get(), offset, join_leave, delivery);
    });
  }
  push->Unref();
}

Hub::SubscribeResult Hub::Subscribe(net::Loop& loop, const SubscribeRequest& request,
                                    Subscription* s, SubscribeDone done) {
  SubscribeResult result;
  const config::ChannelOptions& options = *request.options;
  const size_t index = static_cast<size_t>(loop.index());
  LoopChannels& local = *locals_[index];
  Shard& shard = ShardOf(request.channel);
  {
    std::lock_guard lock(shard.mutex);
    ChannelState& state = StateOf(shard, request.channel, options);
    if (!state.loops[index]) {
      state.loops[index] = true;
      ++state.loop_count;
      SyncInterest(request.channel, state);
    }
    ++state.subscribers;
    ++shard.subscribers;
    if (state.history) {
      const uint64_t now = clock_();
      state.history->Expire(now);
      result.position = {state.top, state.history->Position().epoch};
      result.recoverable = request.recoverable;
      result.delivered_offset = state.top;
      if (request.recover && request.recoverable) {
        // An engine that reads later completes on its thread; the result goes on to the
        // subscriber's loop through done. Without done: recovered=false with the current
        // position (the protocol's way to say "gap"). The memory engine makes no completion.
        const bool deferred = !stores_.history_inline && done;
        const bool delta_namespace = !options.allowed_delta_types.empty();
        Completion<HistoryStream::Recovery> later;
        if (deferred) {
          later = Completion<HistoryStream::Recovery>(
              [this, done = std::move(done), base = result, since = request.since.offset,
               channel = delta_namespace ? std::string(request.channel) : std::string(),
               delta_namespace](HistoryStream::Recovery r) mutable {
                base.recovered = r.recovered;
                if (r.recovered) {
                  // Recovery stops at the position read; an engine past it still gives no
                  // duplicate: the held pushes at or below this are skipped.
                  base.delivered_offset =
                      std::max(base.position.offset, since + r.publications.size());
                  base.publications = std::move(r.publications);
                  if (delta_namespace && !base.publications.empty()) {
                    Shard& shard = ShardOf(channel);
                    std::lock_guard lock(shard.mutex);
                    auto it = shard.channels.find(std::string_view(channel));
                    if (it != shard.channels.end()) {
                      SeedDelta(*it->second, true, since + base.publications.size(),
                                base.publications.back());
                    }
                  }
                }
                done(std::move(base));
              });
        }
        std::optional<HistoryStream::Recovery> r = state.history->Recover(
            {request.since, state.top, request.max_recovery, request.max_recovery_bytes, now},
            std::move(later));
        if (r) {
          result.recovered = r->recovered;
          result.publications = std::move(r->publications);
          if (result.recovered && !result.publications.empty()) {
            SeedDelta(state, delta_namespace, request.since.offset + result.publications.size(),
                      result.publications.back());
          }
        } else if (deferred) {
          result.pending = true;
        }
      }
    }
    if (options.presence) {
      if (!state.presence) state.presence = stores_.presence->Open(request.channel);
      state.presence->Add(request.client, request.user, request.info);
    }
    if (options.join_leave && options.join_leave_batch_delay.ms == 0) {
      PostPush(state, request.channel, options,
               codec_.join_leave_push(request.channel, true, request.info), 0, true,
               net::Priority::kLow);
      stats::RecordPresenceEvents(stats::PresenceKind::kJoin, stats::PresenceOutcome::kSent);
    }
    // Cluster: while the node's subscription to the channel's subject is on its way to the
    // server, the reply waits for it (held pushes, as a later recovery), so that whatever
    // another node publishes after the reply reaches this subscriber (docs/cluster.md).
    if (broker_ != nullptr && done && !result.pending) {
      result.delivered_offset = result.position.offset;
      auto answer = std::make_shared<SubscribeResult>(result);
      if (broker_->AwaitInterest(request.channel,
                                 [done, answer]() mutable { done(std::move(*answer)); })) {
        result.pending = true;
      }
    }
  }
  s->delivered_offset = result.position.offset;
  // Pushes past the position read wait for the reply (Resume).
  if (result.pending) s->held = std::make_unique<HeldPushes>();
  local.Add(request.channel, s);
  if (options.join_leave && options.join_leave_batch_delay.ms > 0) {
    BatchJoinLeave(index, request.channel, options, request.client, true, request.info);
  } else if (options.join_leave) {
    ToBroker(BrokerMessageKind::kJoin, request.channel, {}, request.info, {}, net::Priority::kLow,
             false);
  }
  return result;
}

void Hub::Resume(Subscription* s, const SubscribeResult& result) {
  locals_[static_cast<size_t>(s->connection->loop().index())]->Resume(*s, result.delivered_offset);
}

void Hub::Unsubscribe(net::Loop& loop, std::string_view name, const config::ChannelOptions& options,
                      std::string_view client, std::string_view info, Subscription* s) {
  // name may be s's (Subscription::channel), which the loop's entry holds: Remove may end it.
  const std::string channel(name);
  const size_t index = static_cast<size_t>(loop.index());
  const bool last = locals_[index]->Remove(channel, s);
  const bool batched = options.join_leave && options.join_leave_batch_delay.ms > 0;
  if (options.join_leave && !batched) {  // batched: the flush sends it, unless cancelled
    ToBroker(BrokerMessageKind::kLeave, channel, {}, info, {}, net::Priority::kLow, false);
  }
  {
    Shard& shard = ShardOf(channel);
    std::lock_guard lock(shard.mutex);
    auto it = shard.channels.find(channel);
    if (it != shard.channels.end()) {
      ChannelState& state = *it->second;
      if (state.subscribers > 0) {
        --state.subscribers;
        --shard.subscribers;
      }
      if (last && state.loops[index]) {
        state.loops[index] = false;
        --state.loop_count;
        SyncInterest(channel, state);
      }
      if (options.presence && state.presence) state.presence->Remove(client);
      if (options.join_leave && !batched && state.loop_count > 0) {
        PostPush(state, channel, options, codec_.join_leave_push(channel, false, info), 0, true,
                 net::Priority::kLow);
        stats::RecordPresenceEvents(stats::PresenceKind::kLeave, stats::PresenceOutcome::kSent);
      }
      MaybeErase(shard, channel);
    }
  }
  if (batched) BatchJoinLeave(index, channel, options, client, false, info);
}

void Hub::BatchJoinLeave(size_t index, std::string_view channel,
                         const config::ChannelOptions& options, std::string_view client, bool join,
                         std::string_view info, bool remote) {
  auto& channels = batches_[index]->channels;
  auto it = channels.find(channel);
  if (it != channels.end() && !remote) {
    std::vector<JoinLeaveBatches::Event>& events = it->second->events;
    // A client's events alternate, so at most one of its events is pending: the opposite
    // of this one cancels with it (join then leave, or leave then join: no change to show).
    for (size_t i = events.size(); i-- > 0;) {
      if (events[i].remote || events[i].client != client) continue;
      if (events[i].join == join) break;  // cannot happen; keep both rather than guess
      stats::RecordPresenceEvents(stats::PresenceKind::kJoin, stats::PresenceOutcome::kCancelled);
      stats::RecordPresenceEvents(stats::PresenceKind::kLeave, stats::PresenceOutcome::kCancelled);
      events.erase(events.begin() + static_cast<ptrdiff_t>(i));
      if (events.empty()) {
        loops_[index]->timers().Cancel(it->second.get());
        channels.erase(it);
      }
      return;
    }
  } else if (it == channels.end()) {
    it = channels
             .emplace(std::string(channel),
                      std::make_unique<JoinLeaveBatches::Batch>(*this, index, channel))
             .first;
    it->second->options = options;
  }
  JoinLeaveBatches::Batch& batch = *it->second;
  batch.events.push_back({std::string(client), std::string(info), join, remote});
  if (batch.events.size() >= options.join_leave_batch_max) {
    FlushJoinLeave(index, channel);  // full: waiting longer only adds latency and memory
  } else if (!batch.scheduled()) {
    loops_[index]->timers().Schedule(&batch, options.join_leave_batch_delay.ms);
  }
}

void Hub::FlushJoinLeave(size_t index, std::string_view channel) {
  auto& channels = batches_[index]->channels;
  auto it = channels.find(channel);
  if (it == channels.end()) return;
  std::unique_ptr<JoinLeaveBatches::Batch> batch = std::move(it->second);
  channels.erase(it);
  loops_[index]->timers().Cancel(batch.get());
  if (batch->events.empty()) return;
  // Encoded outside the lock: each event's push, then one push joining them all.
  std::vector<Push*> pushes;
  pushes.reserve(batch->events.size());
  for (const JoinLeaveBatches::Event& e : batch->events) {
    pushes.push_back(codec_.join_leave_push(batch->name, e.join, e.info));
    if (e.remote) continue;  // counted on the node of its client
    stats::RecordPresenceEvents(e.join ? stats::PresenceKind::kJoin : stats::PresenceKind::kLeave,
                                stats::PresenceOutcome::kSent);
  }
  if (pushes.size() > 1 && codec_.join) {
    Push* joined = codec_.join(pushes.data(), pushes.size());
    for (Push* p : pushes) p->Unref();
    pushes.assign(1, joined);
  }
  {
    Shard& shard = ShardOf(batch->name);
    std::lock_guard lock(shard.mutex);
    auto state = shard.channels.find(batch->name);
    for (Push* push : pushes) {
      if (state != shard.channels.end() && state->second->loop_count > 0) {
        PostPush(*state->second, batch->name, batch->options, push, 0, true, net::Priority::kLow);
      } else {
        push->Unref();  // nobody left to tell
      }
    }
  }
  // Other nodes get what survived the window, in the batch's order (the wire carries one
  // event per message; their own batch joins them again).
  for (const JoinLeaveBatches::Event& e : batch->events) {
    if (e.remote) continue;
    ToBroker(e.join ? BrokerMessageKind::kJoin : BrokerMessageKind::kLeave, batch->name, {}, e.info,
             {}, net::Priority::kLow, false);
  }
}

// A publication whose append an engine completes later: what its fan-out needs then.
struct Hub::PendingPublish {
  std::string channel;
  config::ChannelOptions options;
  std::string data;
  std::string info;
  std::string tags;
  std::string idempotency_key;
  net::Priority priority;
  uint64_t published_us;
  Completion<PublishResult> done;
  // false: a publication without history whose idempotency key a durable engine writes
  // (IdempotencyStore::Keys::PutDurable); fanned out without an offset once it is stored.
  bool history = true;
  bool delta = false;  // the API's delta (PublishRequest::delta)
};

Hub::PublishResult Hub::Publish(PublishRequest request) {
  const config::ChannelOptions& options = *request.options;
  const std::string_view channel = request.channel;
  const std::string_view key = request.idempotency_key;
  // config::Priority is net::Priority's order (config/ may not include net/).
  static_assert(int(config::Priority::kHigh) == int(net::Priority::kHigh) &&
                int(config::Priority::kLow) == int(net::Priority::kLow));
  const net::Priority p =
      request.priority ? *request.priority : static_cast<net::Priority>(options.default_priority);
  const uint64_t published_us = net::Loop::MonotonicUs();  // publish-to-queue latency metric
  // Cluster mode: a publication the broker cannot carry is refused before anything sees it,
  // so no node has it and its publisher is told, outside the shard lock.
  if (broker_ != nullptr) {
    BrokerMessage m;
    m.channel = channel;
    m.data = request.data;
    m.info = request.info;
    m.tags = request.tags;
    if (!broker_->Fits(m)) return {Refusal::kTooLarge, {}};
  }
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  // Publishes create streams for channels without subscribers: now and then, drop those
  // whose history expired, so distinct channel names cannot grow the map without bound.
  if (++shard.publishes % kSweepEvery == 0) Sweep(shard);
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end() && options.history_size == 0 && key.empty() &&
      options.publish_rate_limit == 0) {
    ToBroker(BrokerMessageKind::kPublication, channel, request.data, request.info, request.tags, p,
             true, request.delta);
    return {};  // nobody listens here, nothing to remember
  }
  ChannelState& state = StateOf(shard, it, channel, options);
  const uint64_t now = clock_();
  // Opened before the first Find: a durable engine's Keys hold the keys it kept.
  if (!key.empty() && !state.idempotency) state.idempotency = stores_.idempotency->Open(channel);
  if (!key.empty()) {
    if (std::optional<StreamPosition> seen = state.idempotency->Find(key, now)) {
      return {Refusal::kNone, std::move(*seen)};
    }
  }
  if (state.loop_count > 0 && !Admits(state, p)) return {Refusal::kBackpressure, {}};
  // After the checks that take nothing: a refused or deduplicated publication costs no token.
  if (options.publish_rate_limit != 0) {
    state.publish_limit = RateLimit{static_cast<uint32_t>(options.publish_rate_limit),
                                    static_cast<uint32_t>(options.publish_rate_burst)};
    if (!state.publish_bucket.TryTake(state.publish_limit, now)) {
      return {Refusal::kRateLimit, {}};
    }
  }
  PublishResult result;
  // history_size 0 with a stream: the API's skip_history; delivered without an offset.
  if (state.history && options.history_size > 0) {
    const HistoryAppend append{request.data, request.info,         request.tags,
                               key,          options.history_size, options.history_ttl.ms,
                               now,          request.delta};
    Completion<HistoryAppended> later;
    if (!stores_.history_inline) {
      // Fanned out when the engine completes (Appended), which it does in append order.
      // The publication's parts are kept only for the broker: the engine encodes its own.
      const bool relay = broker_ != nullptr;
      auto pending = std::make_shared<PendingPublish>(PendingPublish{
          std::string(channel), options, relay ? std::string(request.data) : std::string(),
          relay ? std::string(request.info) : std::string(),
          relay ? std::string(request.tags) : std::string(), std::string(key), p, published_us,
          std::move(request.done), true, request.delta});
      later = Completion<HistoryAppended>(
          [this, pending](HistoryAppended appended) { Appended(*pending, std::move(appended)); });
      ++state.appending;
    }
    std::optional<HistoryAppended> appended =
        state.history->Append(append, codec_.publication, std::move(later));
    if (!appended) return {Refusal::kPending, {}};
    if (!stores_.history_inline) --state.appending;  // answered at once after all
    if (appended->failed) return {Refusal::kStoreFailed, {}};
    // The engine's own deduplication (history_store.h): the original's position, no fan-out.
    if (appended->duplicate) return {Refusal::kNone, std::move(appended->position)};
    result.position = std::move(appended->position);
    state.top = result.position.offset;
    if (state.loop_count > 0) {
      Push* push = PublicationPush(state, channel, options, appended->bytes(),
                                   result.position.offset, request.delta);
      push->set_published_us(published_us);
      PostPush(state, channel, options, push, result.position.offset, false, p);
    }
  } else if (!key.empty() && state.idempotency->durable()) {
    // A durable engine's key: answered and fanned out once it is stored (Appended), in
    // order with the channel's appends, so an answered publish is never repeated.
    auto pending = std::make_shared<PendingPublish>(
        PendingPublish{std::string(channel), options, std::string(request.data),
                       std::string(request.info), std::string(request.tags), std::string(key), p,
                       published_us, std::move(request.done), false, request.delta});
    Completion<bool> stored([this, pending](bool ok) {
      HistoryAppended appended;
      appended.failed = !ok;
      Appended(*pending, std::move(appended));
    });
    if (!state.idempotency->PutDurable(key, {}, now + limits_.idempotency_window_ms,
                                       std::move(stored))) {
      return {Refusal::kStoreFailed, {}};
    }
    ++state.appending;
    return {Refusal::kPending, {}};
  } else if (state.appending > 0) {
    // Appends still in flight: fanned out (and handed to the broker) after them (Appended).
    state.waiting.push_back({state.appended + state.appending, options, std::string(request.data),
                             std::string(request.info), std::string(request.tags), p, published_us,
                             request.delta});
    if (!key.empty()) {
      if (!state.idempotency) state.idempotency = stores_.idempotency->Open(channel);
      state.idempotency->Put(key, result.position, now, now + limits_.idempotency_window_ms);
    }
    return result;
  } else if (state.loop_count > 0) {
    const std::string publication = codec_.publication(request.data, request.info, 0, request.tags);
    Push* push = PublicationPush(state, channel, options, publication, 0, request.delta);
    push->set_published_us(published_us);
    PostPush(state, channel, options, push, 0, false, p);
  }
  if (!key.empty()) {
    if (!state.idempotency) state.idempotency = stores_.idempotency->Open(channel);
    state.idempotency->Put(key, result.position, now, now + limits_.idempotency_window_ms);
  }
  if (state.loop_count == 0) {
    // Nobody listens: the channel is kept for its history or key, then reclaimed.
    QueueReclaim(shard, channel, state, now);
  }
  const bool relay_key = limits_.relay_fire_keys && options.history_size == 0 && IsFireKey(key);
  ToBroker(BrokerMessageKind::kPublication, channel, request.data, request.info, request.tags, p,
           options.history_size == 0, request.delta, relay_key ? key : std::string_view());
  return result;
}

Push* Hub::PublicationPush(ChannelState& state, std::string_view channel,
                           const config::ChannelOptions& options, std::string_view publication,
                           uint64_t offset, bool delta) {
  if (options.allowed_delta_types.empty() || !codec_.delta_push) {
    return codec_.publication_push(channel, publication);
  }
  // Publications without an offset are numbered apart (top bit set), so neither kind of
  // number can be mistaken for the other.
  constexpr uint64_t kUnpositioned = uint64_t{1} << 63;
  PushCodec::DeltaSource source;
  source.seq = offset != 0 ? offset : kUnpositioned | ++state.delta_count;
  if (delta && state.delta_prev_seq != 0) {
    source.base_seq = state.delta_prev_seq;
    source.base_publication = state.delta_prev;
  }
  Push* push = codec_.delta_push(channel, publication, source);
  state.delta_prev.assign(publication);
  state.delta_prev_seq = source.seq;
  return push;
}

void Hub::SeedDelta(ChannelState& state, bool delta_namespace, uint64_t offset,
                    std::string_view publication) {
  // A publication without an offset numbers above any offset (PublicationPush): kept.
  if (!delta_namespace || !codec_.delta_push || state.top != offset ||
      state.delta_prev_seq >= offset) {
    return;
  }
  state.delta_prev.assign(publication);
  state.delta_prev_seq = offset;
}

void Hub::Appended(PendingPublish& pending, HistoryAppended appended) {
  PublishResult result;
  {
    Shard& shard = ShardOf(pending.channel);
    std::lock_guard lock(shard.mutex);
    auto it = shard.channels.find(std::string_view(pending.channel));
    // An append in flight keeps its channel (Unused), so the channel is still here.
    assert(it != shard.channels.end());
    if (it == shard.channels.end()) return;
    ChannelState& state = *it->second;
    --state.appending;
    ++state.appended;
    const uint64_t now = clock_();
    if (appended.failed) {
      result.refusal = Refusal::kStoreFailed;
    } else if (!pending.history) {
      // Its key is stored: remembered, fanned out without an offset, handed to the broker.
      state.idempotency->Put(pending.idempotency_key, result.position, now,
                             now + limits_.idempotency_window_ms);
      if (state.loop_count > 0) {
        const std::string publication =
            codec_.publication(pending.data, pending.info, 0, pending.tags);
        // Through PublicationPush: a delta namespace's next delta is against this one.
        Push* push =
            PublicationPush(state, pending.channel, pending.options, publication, 0, pending.delta);
        push->set_published_us(pending.published_us);
        PostPush(state, pending.channel, pending.options, push, 0, false, pending.priority);
      }
      ToBroker(BrokerMessageKind::kPublication, pending.channel, pending.data, pending.info,
               pending.tags, pending.priority, true, pending.delta);
    } else if (appended.duplicate) {
      // Stored before (the engine's deduplication): the original's position, nothing sent.
      result.position = std::move(appended.position);
      if (!pending.idempotency_key.empty()) {
        if (!state.idempotency) state.idempotency = stores_.idempotency->Open(pending.channel);
        state.idempotency->Put(pending.idempotency_key, result.position, now,
                               now + limits_.idempotency_window_ms);
      }
    } else if (stores_.history_delivers) {
      // Stored: it comes back through Deliver, on every node (this one too), in offset order.
      result.position = std::move(appended.position);
    } else {
      result.position = std::move(appended.position);
      state.top = result.position.offset;
      if (state.loop_count > 0) {
        Push* push = PublicationPush(state, pending.channel, pending.options, appended.bytes(),
                                     result.position.offset, pending.delta);
        push->set_published_us(pending.published_us);
        PostPush(state, pending.channel, pending.options, push, result.position.offset, false,
                 pending.priority);
      }
      if (!pending.idempotency_key.empty()) {
        if (!state.idempotency) state.idempotency = stores_.idempotency->Open(pending.channel);
        state.idempotency->Put(pending.idempotency_key, result.position, now,
                               now + limits_.idempotency_window_ms);
      }
      ToBroker(BrokerMessageKind::kPublication, pending.channel, pending.data, pending.info,
               pending.tags, pending.priority, false, pending.delta);
    }
    // Publications without history accepted after this append and before the next.
    while (!state.waiting.empty() && state.waiting.front().after <= state.appended) {
      const WaitingPublish& w = state.waiting.front();
      if (state.loop_count > 0) {
        const std::string publication = codec_.publication(w.data, w.info, 0, w.tags);
        Push* push = PublicationPush(state, pending.channel, w.options, publication, 0, w.delta);
        push->set_published_us(w.published_us);
        PostPush(state, pending.channel, w.options, push, 0, false, w.priority);
      }
      ToBroker(BrokerMessageKind::kPublication, pending.channel, w.data, w.info, w.tags, w.priority,
               true, w.delta);
      state.waiting.pop_front();
    }
    if (state.loop_count == 0) QueueReclaim(shard, it->first, state, now);
  }
  pending.done(std::move(result));  // outside the lock: it may run the requester's code
}

void Hub::Deliver(std::string_view channel, const config::ChannelOptions& options,
                  const StreamPosition& position, std::string_view publication, bool delta) {
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return;  // nobody here: the engine keeps its position
  ChannelState& state = *it->second;
  if (position.offset <= state.top) return;  // covered by its subscribers' position
  state.top = position.offset;
  if (state.loop_count == 0) return;
  Push* push = PublicationPush(state, channel, options, publication, position.offset, delta);
  PostPush(state, channel, options, push, position.offset, false,
           static_cast<net::Priority>(options.default_priority));
}

void Hub::TellMissed(std::string_view channel) {
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return;
  const ChannelState& state = *it->second;
  for (size_t i = 0; i < state.loops.size(); ++i) {
    if (!state.loops[i]) continue;
    LoopChannels* local = locals_[i].get();
    loops_[i]->Post([local, channel = std::string(channel)] { local->TellMissed(channel); });
  }
}

HistoryStore::Stream* Hub::StoredHistory(Shard& shard, std::string_view channel,
                                         const config::ChannelOptions& options) {
  auto it = shard.channels.find(channel);
  if (it != shard.channels.end()) return it->second->history.get();
  if (stores_.history_inline || options.history_size == 0 ||
      !stores_.history->Kept(channel, clock_())) {
    return nullptr;
  }
  ChannelState& state = StateOf(shard, it, channel, options);
  QueueReclaim(shard, channel, state, clock_());
  return state.history.get();
}

void Hub::RemoveHistory(std::string_view channel, const config::ChannelOptions& options) {
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  if (HistoryStore::Stream* history = StoredHistory(shard, channel, options)) history->Remove();
}

std::optional<bool> Hub::RemoveHistory(std::string_view channel,
                                       const config::ChannelOptions& options,
                                       Completion<bool> done) {
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  HistoryStore::Stream* history = StoredHistory(shard, channel, options);
  if (history == nullptr) return true;
  return history->RemoveThen(std::move(done));
}

std::vector<std::pair<std::string, size_t>> Hub::Channels() {
  std::vector<std::pair<std::string, size_t>> out;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    for (const auto& [name, state] : shard->channels) {
      if (state->subscribers > 0) out.emplace_back(name, state->subscribers);
    }
  }
  return out;
}

Hub::HistoryResult Hub::History(std::string_view channel, const config::ChannelOptions& options,
                                const StreamPosition* since, int64_t limit, bool reverse,
                                size_t max_bytes, Completion<HistoryPage> done) {
  HistoryResult result;
  if (options.history_size == 0) return result;
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  // A channel nobody published to has no stream yet; asking must not create one. One that
  // was erased answers with its kept position.
  auto it = shard.channels.find(channel);
  std::optional<StreamPosition> kept;
  if (it == shard.channels.end()) kept = stores_.history->Kept(channel, clock_());
  // A durable engine (not inline) still holds a freed channel's publications (after a
  // restart: every channel's): they are read through its stream, the channel reclaimed after.
  const bool reopen = kept && !stores_.history_inline;
  if (it == shard.channels.end() && !reopen) {
    if (kept) result.position = std::move(*kept);
    // No stream has the epoch the client names (none at all: the epoch is empty), so its
    // position cannot be continued, as when a stream's epoch changed.
    if (since && !since->epoch.empty() && since->epoch != result.position.epoch) {
      result.unrecoverable = true;
    }
    return result;
  }
  ChannelState& state = StateOf(shard, it, channel, options);
  if (reopen && state.loop_count == 0) QueueReclaim(shard, channel, state, clock_());
  HistoryQuery query;
  if (since) query.since = *since;
  query.limit = limit;
  query.reverse = reverse;
  query.max_bytes = max_bytes;
  query.now_ms = clock_();
  std::optional<HistoryPage> page = state.history->Read(query, std::move(done));
  if (!page) {
    result.pending = true;
    return result;
  }
  return std::move(*page);
}

PresenceList Hub::Presence(std::string_view channel, Completion<PresenceList> done) {
  std::optional<PresenceList> list;
  {
    Shard& shard = ShardOf(channel);
    std::lock_guard lock(shard.mutex);
    auto it = shard.channels.find(channel);
    if (it != shard.channels.end() && it->second->presence) {
      list = it->second->presence->List(done);  // a copy: ours answers if it does not
    } else if (!stores_.presence_inline) {
      // A cluster-wide engine knows entries of other nodes: ask it through a set of none.
      list = stores_.presence->Open(channel)->List(done);
    } else {
      list.emplace();
    }
    if (!list) {  // the engine answers through done; without one, nobody would hear it
      PresenceList failed;
      failed.failed = !done;
      return failed;
    }
  }
  if (done) {
    done(std::move(*list));  // with done, the answer always comes through it
    return {};
  }
  return std::move(*list);
}

std::pair<size_t, size_t> Hub::PresenceStats(std::string_view channel,
                                             Completion<PresenceCounts> done) {
  std::optional<PresenceCounts> counts;
  {
    Shard& shard = ShardOf(channel);
    std::lock_guard lock(shard.mutex);
    auto it = shard.channels.find(channel);
    if (it != shard.channels.end() && it->second->presence) {
      counts = it->second->presence->Stats(done);
    } else if (!stores_.presence_inline) {
      counts = stores_.presence->Open(channel)->Stats(done);  // as in Presence
    } else {
      counts.emplace();
    }
    if (!counts) return {0, 0};  // the engine answers through done
  }
  if (done) {
    done(*counts);
    return {0, 0};
  }
  return {counts->clients, counts->users};
}

// Cluster mode (core/broker.h): what follows is the hub's only tie to other nodes.

void Hub::ToBroker(BrokerMessageKind kind, std::string_view channel, std::string_view data,
                   std::string_view info, std::string_view tags, net::Priority priority,
                   bool skip_history, bool delta, std::string_view key) {
  if (broker_ == nullptr) return;
  BrokerMessage m;
  m.kind = kind;
  m.priority = priority;
  m.skip_history = skip_history;
  m.delta = delta;
  m.channel = channel;
  m.data = data;
  m.info = info;
  m.tags = tags;
  m.key = key;
  broker_->Publish(m);
}

void Hub::JoinLeaveFromBroker(std::string_view channel, const config::ChannelOptions& options,
                              bool join, std::string_view info) {
  if (!options.join_leave) return;
  if (options.join_leave_batch_delay.ms > 0) {
    // One loop per channel, so that a channel's remote events keep their order and meet in
    // one batch; the batch and its timer are that loop's alone.
    const size_t index = std::hash<std::string_view>{}(channel) % loops_.size();
    if (loops_[index] != nullptr) {
      loops_[index]->Post(
          [this, index, channel = std::string(channel), options, join, info = std::string(info)] {
            BatchJoinLeave(index, channel, options, {}, join, info, true);
          });
      return;
    }
  }
  Shard& shard = ShardOf(channel);
  std::lock_guard lock(shard.mutex);
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end() || it->second->loop_count == 0) return;
  PostPush(*it->second, channel, options, codec_.join_leave_push(channel, join, info), 0, true,
           net::Priority::kLow);
}

}  // namespace hermod::core
