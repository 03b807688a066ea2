// The hub: channels across every loop. Shared nothing on the fan-out path, one lock where
// state must be shared.
//
// Each loop keeps its own channel -> local subscribers map (LoopChannels), touched only by
// its thread. What all loops share lives in ChannelState, one per channel, in one of
// kShards shards, each guarded by its own mutex: which loops have subscribers, the history
// stream, the presence set. A publication takes its shard's lock once: it gets its offset,
// is encoded once (the publication JSON for history, and one refcounted Push: the WebSocket
// frame, and its deflated form built once on first need), and the push is posted to each loop
// that has subscribers; the posts happen under the lock so that every loop sees a channel's
// publications in offset order. Each loop then queues the push to its subscribers by
// reference. Locks: see LOCKS.md.
//
// Subscribing runs on the subscriber's loop: under the shard lock it marks the loop, reads
// the stream position (and the publications to recover), and adds presence; then it adds the
// subscriber locally with delivered_offset = the position read, so frames already in the
// mailbox are not delivered twice and nothing published after is missed.
//
// Channels nobody uses any more (no subscribers, presence, idempotency keys or live history)
// are swept: each loop has a timer that, every sweep interval, visits a bounded number of
// channels of the next shard it owns (loop i owns shards i, i + loops, ...), so a quiet
// server frees them too and no tick holds a shard lock for long. Publishes also sweep,
// bounded the same way, every kSweepEvery publishes per shard.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/history_stream.h"
#include "core/loop_channels.h"
#include "core/push.h"
#include "net/event_loop.h"
#include "net/output_queue.h"

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
};

struct PresenceEntry {
  std::string user;
  std::string info;  // ClientInfo JSON
};

// How idle channels are swept (see the top of this file).
struct SweepPolicy {
  uint64_t interval_ms = 1000;  // per loop, between two shard visits
  size_t budget = 256;          // channels visited per visit, at most
};

class Hub {
 public:
  using Clock = uint64_t (*)();
  Hub(size_t loop_count, PushCodec codec, Clock clock = &net::Loop::MonotonicMs,
      SweepPolicy sweep = {});
  ~Hub();

  // Before the loops run. Starts the loop's sweep timer; the loop must not run once the hub
  // is gone.
  void AttachLoop(net::Loop& loop);

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
  };
  struct SubscribeResult {
    bool recoverable = false;
    StreamPosition position;
    bool recovered = false;
    std::vector<std::string> publications;
  };
  // On the subscriber's loop.
  SubscribeResult Subscribe(net::Loop& loop, const SubscribeRequest& request, Subscription* s);
  void Unsubscribe(net::Loop& loop, std::string_view channel, const config::ChannelOptions& options,
                   std::string_view client, std::string_view info, Subscription* s);

  // Any thread. Returns the publication's position (offset 0 without history). A non-empty
  // idempotency_key seen on this channel within kIdempotencyWindowMs returns the first
  // publication's position and publishes nothing.
  StreamPosition Publish(std::string_view channel, const config::ChannelOptions& options,
                         std::string_view data, std::string_view info,
                         std::string_view idempotency_key = {}, std::string_view tags = {});
  // Drops the channel's stored publications (its position stays).
  void RemoveHistory(std::string_view channel);
  // Channels with subscribers, and how many (API `channels`).
  std::vector<std::pair<std::string, size_t>> Channels();
  // Every channel the hub keeps state for, used or not (tests, metrics).
  size_t ChannelCount();

  struct HistoryResult {
    bool unrecoverable = false;  // since.epoch is not the stream's
    StreamPosition position;
    std::vector<std::string> publications;
  };
  HistoryResult History(std::string_view channel, const config::ChannelOptions& options,
                        const StreamPosition* since, int64_t limit, bool reverse);
  std::vector<std::pair<std::string, PresenceEntry>> Presence(std::string_view channel);
  // {clients, distinct users}
  std::pair<size_t, size_t> PresenceStats(std::string_view channel);

 private:
  struct ChannelState;
  struct Shard;
  class SweepTimer;
  static constexpr size_t kShards = 64;
  static constexpr uint32_t kSweepEvery = 1024;  // publishes per shard between sweeps
  // Centrifugo keeps idempotent publish results for 5 minutes.
  static constexpr uint64_t kIdempotencyWindowMs = 5 * 60 * 1000;
  static constexpr size_t kIdempotencyPruneAt = 1024;  // keys per channel before pruning

  Shard& ShardOf(std::string_view channel);
  // Under the shard lock.
  ChannelState& StateOf(Shard& shard, std::string_view channel,
                        const config::ChannelOptions& options);
  // Posts push to every loop with subscribers; takes over the caller's reference.
  void PostPush(const ChannelState& state, std::string_view channel,
                const config::ChannelOptions& options, Push* push, uint64_t offset,
                bool join_leave);
  void MaybeErase(Shard& shard, std::string_view channel);
  // Under the shard lock: erases channels without subscribers, presence or live history,
  // visiting at most the sweep budget of them from where the last sweep of the shard ended.
  void Sweep(Shard& shard);
  // On loop `index`'s thread, from its sweep timer: sweeps the visit-th of its shards.
  void SweepTick(size_t index, size_t visit);

  PushCodec codec_;
  Clock clock_;
  std::vector<net::Loop*> loops_;
  std::vector<std::unique_ptr<LoopChannels>> locals_;
  SweepPolicy sweep_;
  std::vector<std::unique_ptr<SweepTimer>> sweepers_;  // one per loop
  std::array<std::unique_ptr<Shard>, kShards> shards_;
};

}  // namespace hermod::core
