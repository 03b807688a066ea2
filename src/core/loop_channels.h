// The subscribers one loop holds, by channel: the last step of fan-out. A publication's
// Push arrives here once per loop (through the loop's mailbox) and is queued to each local
// subscriber by reference (Push::SendTo, which references the shared frame or its shared
// deflated form): no copy and no allocation per subscriber. Everything here runs on its
// loop's thread; nothing is locked.
//
// Push coalescing ("message batching"): the pushes for one channel that reach this loop in
// one mailbox run are held and leave together, as one message of newline-joined pushes (the
// protocol allows several per frame; the SDK splits on '\n') bounded by the namespace's
// push_coalesce_max_bytes. The joined push is built once per loop per batch, through the
// codec, and shared by reference by every subscriber of the channel on the loop, so
// coalescing keeps the fan-out zero-copy: the trade-off is that batches are per channel, not
// per connection (a connection on many busy channels gets one frame per channel per run,
// not one in all), and that a subscriber who must not get every push of a batch (it joined
// mid-batch after recovering part of it, or did not ask for join/leave) gets the original
// pushes one by one instead. A batch of one is the original push: at low rates nothing is
// joined or copied. The cost is latency: a batch leaves on the loop's next mailbox run (one
// extra wakeup of the loop, microseconds), or after push_coalesce_delay when a namespace sets
// one, or as soon as it holds push_coalesce_max_bytes.
//
// Priorities and slow consumers: every push goes to the connection with its priority (the
// publication's, or its namespace's default_priority; join/leave pushes are low), and runs
// of one batch are joined only within one priority. A connection past its watermark does not
// queue a low or normal push. A droppable one (low priority, delivery: latest, or a
// namespace with droppable: true) is left out silently (net::SendStatus::kShed); any other
// (net::SendStatus::kMissed) makes LoopChannels call its missed handler for the subscription once,
// as the last thing it does with that subscription, so the client is told at once that its stream
// has a gap (Centrifugo's "insufficient state": the SDK resubscribes and recovers from history
// where it can); a subscription without tell_missed has its connection cut
// (net::Connection::CutSlow). No publication of a channel that did not opt in to losses is
// lost silently.
// "Latest value wins" channels (namespace delivery: latest) keep only the newest pending
// publication of a batch, and a push queued but unsent at a connection is replaced in place
// by a newer one of the same channel (net::PushClass::latest_key).
//
// Publisher backpressure: what the hub has posted to this loop and the loop has not yet
// delivered is counted in inbox_bytes (push sizes plus a per-task overhead); the hub refuses
// publications while a target loop's inbox is past its budget (Hub::Limits).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "net/connection.h"
#include "net/event_loop.h"
#include "net/timer_wheel.h"

namespace hermod::core {

class Push;

// The pushes a subscription gets while its subscribe reply waits for a history engine that
// recovers later (Hub::Subscribe with a completion): held by reference, in the order they
// came, and sent after the reply (Hub::Resume). Bounded by the connection's write budget,
// as its queue would be: past it they are dropped and the subscription is told it missed
// publications once its reply is out.
struct HeldPushes {
  struct Entry {
    const Push* push;  // a reference held
    uint64_t offset;
    bool join_leave;
    net::PushClass cls;
  };
  HeldPushes() = default;
  HeldPushes(const HeldPushes&) = delete;
  HeldPushes& operator=(const HeldPushes&) = delete;
  ~HeldPushes() { Drop(); }
  void Drop();
  std::vector<Entry> entries;
  size_t bytes = 0;
  bool overflowed = false;
};

// One connection's subscription to one channel, owned by the connection; the loop's list
// points at it while it is subscribed.
struct Subscription {
  net::Connection* connection = nullptr;
  // The channel's name as the loop's entry for the channel holds it (LoopChannels::Add sets
  // it): one copy per loop, not one per subscriber. Valid while subscribed; the entry goes
  // with its last subscriber, so a caller that removes s and still needs the name copies it.
  const std::string* channel_name = nullptr;
  std::string_view channel() const { return *channel_name; }
  // Publications at or below this offset were in the subscribe reply (recovery): a frame
  // still in the mailbox when the subscriber joined is not delivered twice.
  uint64_t delivered_offset = 0;
  bool wants_join_leave = false;
  // Gets fossil deltas: its pushes differ from its neighbours' (Push::SendTo picks the form),
  // so they are never joined with others' (coalescing).
  bool delta = false;
  // When a push that may not be dropped was not queued for this subscriber (backpressure),
  // it must learn it now: true, its loop's missed handler (LoopChannels::Missed, the client
  // protocol's, the same for every subscription: a flag, not a pointer each) tells it, and
  // may end the subscription (and free it): LoopChannels touches s no more after it. False,
  // or no handler: the connection is cut (3008 for the client protocol).
  bool tell_missed = false;
  uint32_t slot = 0;  // index in LoopChannels' list for its channel
  // Non-null while the subscribe reply waits for recovery: pushes wait here, not in the
  // connection's queue (LoopChannels::Resume sends them).
  std::unique_ptr<HeldPushes> held;
};

// A channel's coalescing bounds (from its namespace's options).
struct Coalescing {
  uint64_t max_bytes = 0;  // 0: every push leaves alone, at once
  uint64_t delay_ms = 0;
};

// How one push is delivered on a loop: its channel's coalescing, its priority, whether its
// channel wants "latest value wins", and whether it accepts losses (namespace droppable).
struct Delivery {
  Delivery(Coalescing c = {}, net::Priority p = net::Priority::kNormal, bool l = false,
           bool d = false)
      : coalescing(c), priority(p), latest(l), droppable(d) {}
  Coalescing coalescing;
  net::Priority priority;
  bool latest;
  bool droppable;
};

class LoopChannels {
 public:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Builds one push from several (PushCodec::join); empty: no coalescing.
  using Join = std::function<Push*(const Push* const* pushes, size_t count)>;
  // Tells a subscription with tell_missed that it missed a push (Subscription::tell_missed).
  using Missed = void (*)(Subscription& s);

  explicit LoopChannels(Join join = {}, Missed missed = nullptr);
  ~LoopChannels();
  LoopChannels(const LoopChannels&) = delete;
  LoopChannels& operator=(const LoopChannels&) = delete;

  // Before the loop runs: coalescing needs the loop's mailbox and timers.
  void Attach(net::Loop& loop) { loop_ = &loop; }
  // Returns true when s is the loop's first subscriber of the channel.
  bool Add(std::string_view channel, Subscription* s);
  // Returns true when the loop has no subscriber of the channel left.
  bool Remove(std::string_view channel, Subscription* s);
  // Queues push to every local subscriber (now, or with the channel's batch). offset: the
  // publication's (0 for none); join_leave: a join or leave push, only for subscribers that
  // asked for them.
  void Deliver(std::string_view channel, const Push& push, uint64_t offset, bool join_leave,
               Delivery delivery = {});
  // The subscribe reply of s (held) is out: publications at or below delivered_offset were
  // in it; the held pushes past it are sent, in order. A subscription that overflowed its
  // hold is told it missed publications (the missed handler, or its connection is cut). s
  // may be gone when this returns (the handler).
  void Resume(Subscription& s, uint64_t delivered_offset);
  // Every subscriber of the channel missed publications the engine cannot hand on: each is
  // told (the missed handler, or its connection is cut); one still waiting for its subscribe reply
  // learns it after the reply, as from an overflowed hold.
  void TellMissed(std::string_view channel);
  size_t channel_count() const { return channels_.size(); }

  // Posted but not yet delivered bytes (any thread; see the top of the file).
  size_t inbox_bytes() const { return inbox_bytes_.load(std::memory_order_relaxed); }
  void AddInbox(size_t n) { inbox_bytes_.fetch_add(n, std::memory_order_relaxed); }
  void SubInbox(size_t n) { inbox_bytes_.fetch_sub(n, std::memory_order_relaxed); }

 private:
  struct Pending {
    const Push* push;  // a reference held until the batch leaves
    uint64_t offset;
    bool join_leave;
    net::Priority priority;
  };
  struct Channel;
  class FlushTimer final : public net::TimerNode {
   public:
    FlushTimer(LoopChannels& owner, Channel& channel) : owner_(owner), channel_(channel) {}
    void OnTimer() override;

   private:
    LoopChannels& owner_;
    Channel& channel_;
  };
  struct Channel {
    explicit Channel(LoopChannels& owner, std::string_view name)
        : name(name), latest_key(Hash{}(name) | 1), timer(owner, *this) {}
    std::string name;
    uint64_t latest_key;  // net::PushClass::latest_key for this channel (never 0)
    bool latest = false;
    bool droppable = false;
    std::vector<Subscription*> subscribers;
    std::vector<Pending> pending;
    size_t pending_bytes = 0;
    uint64_t max_bytes = 0;
    bool flush_posted = false;  // a mailbox task will flush the batch
    FlushTimer timer;           // or this timer (push_coalesce_delay)
  };
  using Map = std::unordered_map<std::string, std::unique_ptr<Channel>, Hash, std::equal_to<>>;

  // Sends the batch (by name: from the mailbox task), then erases an empty channel.
  void Flush(std::string_view channel);
  void FlushBatch(Channel& channel);
  // Calls send for every open subscriber; send may close connections, which Remove
  // themselves from the list.
  template <class Send>
  void ForEachSubscriber(std::vector<Subscription*>& list, Send send);
  void Erase(Map::iterator it);
  // Sends one push to s; false when s must not be used again (its connection is ending, or
  // the missed handler ran and may have freed it).
  bool SendOne(Subscription& s, const Push& push, net::PushClass cls);
  // SendOne, or held while s waits for its subscribe reply (Subscription::held).
  bool Offer(Subscription& s, const Push& push, net::PushClass cls, uint64_t offset,
             bool join_leave);
  // A push that may not be dropped was not queued for s: tell it (or cut).
  void OnMissed(Subscription& s);

  Join join_;
  Missed missed_;
  net::Loop* loop_ = nullptr;
  Map channels_;
  bool delivering_ = false;  // no channel is erased while its list is walked
  std::atomic<size_t> inbox_bytes_{0};
};

}  // namespace hermod::core
