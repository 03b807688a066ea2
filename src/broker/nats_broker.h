// The `nats` engine: core NATS (libnats) between the nodes of a cluster, as Centrifugo's
// `broker: "nats"` does: publications, joins and leaves cross; history and presence stay
// node-local (cluster-wide history and presence would need JetStream and NATS KV: not built).
//
// Subjects: one per channel, `<prefix>.ch.<token>` (subject.h maps any channel name to a safe,
// injective token), carrying the channel's publications, joins and leaves; the channel also
// travels in the payload (wire.h). A node subscribes to a channel's subject only while it
// holds the channel (Interest: the hub calls it when the node's first local subscriber
// arrives, or a history stream is opened, and when the channel is freed), as Centrifugo's
// NATS broker does: nats-server then routes each publication only to the nodes that hold its
// channel, and a channel with no subscriber on a node costs that node nothing. Interest is
// recorded at once (the hub's call only locks and marks) and applied by the sender thread,
// coalesced per channel: a storm of subscribes to one channel is one SUB, a subscribe and
// unsubscribe between two rounds is nothing, and the last word for a channel wins. After a
// round with new SUBs the sender flushes (PING/PONG), so the server has them. The same rounds
// carry the JetStream history's per-channel delivery subscriptions (SetInterestHook).
//
// No window after a subscribe reply (docs/cluster.md): a subscriber added while its channel's
// SUB is pending or in the current round waits (AwaitInterest) until that round's SUBs are
// acknowledged by the server's PONG; then whatever another node publishes reaches it. Received
// messages for channels the node no longer holds (in flight when it unsubscribed) are dropped,
// counted as `unwanted`. The connection is made with no_echo: the server never returns a node's own
// messages, and a message carrying this node's id is dropped anyway (counted). Other nodes' word
// about themselves goes on `<prefix>.nodes` (cluster_nodes.h), which every node subscribes to.
//
// Threads. Loops (and the API) call Publish: it asks the Link (link.h: the circuit breaker)
// and queues the encoded message for the sender thread, bounded by send_queue_bytes; a loop
// never waits on the network. The sender thread is the only caller of
// natsConnection_Publish (buffered by libnats, flushed by its flusher thread; a write that
// would block waits at most dial_timeout, the write deadline); a send while the connection is
// not up fails at once and counts against the breaker; the reconnect buffer is bounded by
// reconnect_buffer_bytes. libnats delivers received messages on its own thread; they enter
// the hub through its any-thread API (Hub::Publish, Hub::JoinLeaveFromBroker), which posts to
// each loop's mailbox: no loop state is touched from a libnats thread. The hub hands every
// accepted publication back to Publish, also those fed from the receive thread: Publish
// ignores calls made on that thread, so nothing is sent twice.
//
// Received messages are released in batches (Release): libnats frees every destroyed message
// on its garbage-collector thread, which it wakes whenever that thread is idle, so destroying
// each message as it is handled cost that thread a wake-up, and the delivery thread a futex
// call, per message (about one context switch per received message in the cluster stand).
// A handled message is only its wire bytes (the hub has its own copies), held until
// Options::release_batch of them or release_bytes are (nats.release_batch,
// nats.release_bytes), or the broker stops.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/cluster_nodes.h"
#include "broker/link.h"
#include "config/config.h"
#include "core/broker.h"
#include "core/channel_rules.h"
#include "core/hub.h"

namespace hermod::broker {

class NatsBroker final : public core::Broker {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

 public:
  struct Options {
    std::string url = "nats://127.0.0.1:4222";
    std::string prefix = "hermod";
    uint64_t dial_timeout_ms = 1000;
    uint64_t reconnect_wait_ms = 1000;
    uint64_t reconnect_buffer_bytes = 8 << 20;
    uint64_t send_queue_bytes = 16 << 20;
    uint64_t receive_queue_bytes = 64 << 20;
    uint64_t release_batch = 32;  // Release: messages, and bytes, given back at once
    uint64_t release_bytes = 64 * 1024;
    Link::Options link;
    static Options FromConfig(const config::Config& config);
  };

  // hub and rules outlive the broker.
  NatsBroker(Options options, core::Hub& hub, const core::ChannelRules& rules);
  ~NatsBroker() override;
  NatsBroker(const NatsBroker&) = delete;
  NatsBroker& operator=(const NatsBroker&) = delete;

  // Connects (or keeps trying in the background when the server is not there yet: the node
  // serves locally meanwhile), subscribes and starts the sender thread. false on a bad
  // option (the URL), with *error.
  bool Start(std::string* error);
  // Unsubscribes, closes, and waits until libnats has made its last call into this broker
  // (each subscription's completion, the connection's closed callback): no callback runs
  // after it. The library itself stays open for the process's other NATS users; main
  // closes it once, after the server is gone.
  void Stop();

  void Publish(const core::BrokerMessage& message) override;
  bool Fits(const core::BrokerMessage& message) override;
  // Under the channel's shard lock (core/broker.h): records, wakes the sender, returns.
  void Interest(std::string_view channel, bool on) override;
  // Under the channel's shard lock: true while the channel's change is pending or in the
  // sender's current round; ready runs on the sender thread once that round's SUBs are
  // acknowledged (PING/PONG), or written while disconnected.
  bool AwaitInterest(std::string_view channel, std::function<void()> ready) override;
  // Any thread but the sender's: waits (at most timeout_ms) until what was queued before is
  // written and the server has answered a PING after it. For a crash test's kill at a point
  // (config fault_kill_at): what the node published before it died has left it.
  bool Flush(uint64_t timeout_ms);
  // The server's max_payload as learned on the last connect; 0 before the first.
  uint64_t max_payload() const { return max_payload_.load(std::memory_order_relaxed); }

  Link& link() { return link_; }
  uint64_t node_id() const { return node_id_; }

  // Before Start: what this node tells the others about itself every
  // ClusterNodes::kIntervalMs (cluster_nodes.h), called on the sender thread; a JSON object.
  void SetNodeInfo(std::function<std::string()> info) { node_info_ = std::move(info); }
  // Any thread: the other nodes heard from lately, their JSON as they sent it.
  std::vector<std::string> OtherNodes();
  // Before Start: each round's interest changes (channel, on), coalesced, also go to
  // another subscriber of channel subjects (the JetStream history's deliveries), on the
  // sender thread before the round's subscribers are answered; it returns once its own
  // subscriptions are in place, so a subscribe reply waits for them too.
  using InterestHook = std::function<void(const std::vector<std::pair<std::string, bool>>&)>;
  void SetInterestHook(InterestHook hook) { interest_hook_ = std::move(hook); }

 private:
  struct Outgoing {
    core::BrokerMessageKind kind;
    std::string subject;
    std::string bytes;
  };
  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* self);
  static void OnNodeInfo(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* self);
  static void OnConnectionEvent(natsConnection* nc, void* self);
  static void OnClosed(natsConnection* nc, void* self);
  static void OnAsyncError(natsConnection* nc, natsSubscription* sub, natsStatus status,
                           void* self);
  // A subscription's last callback has returned (libnats's completion callback).
  static void OnSubscriptionDone(void* self);
  // Registers sub's completion callback, counted until it runs.
  void Track(natsSubscription* sub);
  // Messages for sub's channel were dropped (libnats's slow consumer): its subscribers here
  // are told. Every channel held when the subject names none.
  void TellDropped(natsSubscription* sub);
  // After a reconnect: every subscriber of every channel held here is told it missed some.
  void TellEveryWanted();
  // The last touch of this broker by a libnats thread: one of the counted calls is over.
  void Done();
  // On a delivery thread: msg is handled; destroyed with the others of its batch.
  void Release(natsMsg* msg);
  void DestroyReleased();
  void Receive(std::string_view bytes);
  // On (re)connect: the server's INFO max_payload, which a publish must not pass.
  void LearnMaxPayload(natsConnection* nc);
  void SendLoop();
  // On the sender thread: SUB and UNSUB for the interest changed since the last round.
  void ApplyInterest();
  // Any thread: whether the node holds channel now.
  bool Wanted(std::string_view channel);
  // On the sender thread: this node's info, when it is due.
  void SendNodeInfo();

  const Options options_;
  core::Hub& hub_;
  const core::ChannelRules& rules_;
  const uint64_t node_id_;
  Link link_;

  natsOptions* nats_options_ = nullptr;
  natsConnection* connection_ = nullptr;
  // The channel subjects subscribed to, by channel: the sender thread's alone (Stop's once
  // the sender has ended).
  std::unordered_map<std::string, natsSubscription*> subscriptions_;
  // The cluster's nodes (cluster_nodes.h): their own subject, sent by the sender thread.
  const std::string nodes_subject_;
  natsSubscription* nodes_subscription_ = nullptr;
  std::function<std::string()> node_info_;
  InterestHook interest_hook_;     // sender thread only (set before Start)
  uint64_t node_info_due_ms_ = 0;  // sender thread only
  ClusterNodes nodes_;
  // Callbacks in progress, and whether they must do nothing (Stop waits for the count).
  std::atomic<int> in_callback_{0};
  std::atomic<bool> closing_{false};
  std::atomic<bool> was_connected_{false};  // a connected event after the first is a reconnect
  // libnats's calls still to come, which Stop waits for: one closed callback per connection
  // made, one completion per subscription (done_mutex_ guards the count).
  std::mutex done_mutex_;
  std::condition_variable done_;
  int pending_done_ = 0;
  // The server's max_payload (its INFO, read by libnats on every connect); 0: not yet known,
  // everything fits until then (a send while disconnected fails anyway).
  std::atomic<uint64_t> max_payload_{0};

  // Handled messages not yet destroyed (Release): fewer than options_.release_batch, and
  // under options_.release_bytes.
  std::mutex released_mutex_;  // a leaf: guards released_ and released_bytes_
  std::vector<natsMsg*> released_;
  size_t released_bytes_ = 0;

  // Guards wanted_ and interest_changes_ (LOCKS.md: a leaf, taken under a shard lock by
  // Interest, by the receive thread per message, by the sender once a round).
  std::mutex interest_mutex_;
  // The channels the node holds now (the hub's last word), and the changes not yet applied
  // (channel -> on), coalesced.
  std::unordered_set<std::string, Hash, std::equal_to<>> wanted_;
  std::unordered_map<std::string, bool, Hash, std::equal_to<>> interest_changes_;
  // The changes the sender's current round applies (empty between rounds), the rounds
  // begun, and the subscribers waiting for a round's end: (round, ready).
  std::unordered_map<std::string, bool, Hash, std::equal_to<>> applying_;
  uint64_t rounds_ = 0;
  std::vector<std::pair<uint64_t, std::function<void()>>> waiting_;

  std::mutex mutex_;             // guards queue_, queued_bytes_, stopping_, interest_dirty_
  bool interest_dirty_ = false;  // interest_changes_ may hold something: wake the sender
  std::condition_variable wake_;
  std::deque<Outgoing> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  bool sending_ = false;             // the sender holds a batch (guarded by mutex_)
  std::condition_variable drained_;  // the sender ended a round with nothing queued
  std::thread sender_;
};

}  // namespace hermod::broker
