// The subscribers one loop holds, by channel: the last step of fan-out. A publication's
// Push arrives here once per loop (through the loop's mailbox) and is queued to each local
// subscriber by reference (Push::SendTo, which references the shared frame or its shared
// deflated form): no copy and no allocation per subscriber. Everything here runs on its
// loop's thread; nothing is locked.
//
// Push coalescing (the seeds' "batching"): the pushes for one channel that reach this loop in
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
#pragma once

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

// One connection's subscription to one channel, owned by the connection; the loop's list
// points at it while it is subscribed.
struct Subscription {
  net::Connection* connection = nullptr;
  // Publications at or below this offset were in the subscribe reply (recovery): a frame
  // still in the mailbox when the subscriber joined is not delivered twice.
  uint64_t delivered_offset = 0;
  bool wants_join_leave = false;
  uint32_t slot = 0;  // index in LoopChannels' list for its channel
};

// A channel's coalescing bounds (from its namespace's options).
struct Coalescing {
  uint64_t max_bytes = 0;  // 0: every push leaves alone, at once
  uint64_t delay_ms = 0;
};

class LoopChannels {
 public:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Builds one push from several (PushCodec::join); empty: no coalescing.
  using Join = std::function<Push*(const Push* const* pushes, size_t count)>;

  explicit LoopChannels(Join join = {});
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
               Coalescing coalescing = {});
  size_t channel_count() const { return channels_.size(); }

 private:
  struct Pending {
    const Push* push;  // a reference held until the batch leaves
    uint64_t offset;
    bool join_leave;
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
        : name(name), timer(owner, *this) {}
    std::string name;
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

  Join join_;
  net::Loop* loop_ = nullptr;
  Map channels_;
  bool delivering_ = false;  // no channel is erased while its list is walked
};

}  // namespace hermod::core
