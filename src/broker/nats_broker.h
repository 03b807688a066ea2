// The `nats` engine: core NATS (its own client, nats_client.h) between the nodes of a cluster, as
// Centrifugo's `broker: "nats"` does: publications, joins and leaves cross; history and presence
// stay node-local (cluster-wide history and presence would need JetStream and NATS KV: not built).
//
// Subjects: one per channel, `<prefix>.ch.<token>` (subject.h maps any channel name to a safe,
// injective token), carrying the channel's publications, joins and leaves; the channel also
// travels in the payload (wire.h). A node subscribes to a channel's subject only while it
// holds the channel (Interest: the hub calls it when the node's first local subscriber
// arrives, or a history stream is opened, and when the channel is freed), as Centrifugo's
// NATS broker does: nats-server then routes each publication only to the nodes that hold its
// channel, and a channel with no subscriber on a node costs that node nothing. Interest is
// recorded at once (the hub's call only locks and marks) and applied in rounds, coalesced per
// channel: a storm of subscribes to one channel is one SUB, a subscribe and unsubscribe
// between two rounds is nothing, and the last word for a channel wins. After a round with new
// SUBs a PING follows them, and the round ends at its PONG, so the server has them. Without an
// interest hook the rounds run on the client loop itself (one round per loop iteration that
// changed something, several in flight, ending in order); with one (the JetStream history's
// per-channel delivery subscriptions, SetInterestHook, which blocks) on the interest thread.
//
// No window after a subscribe reply (docs/cluster.md): a subscriber added while its channel's
// SUB is pending or in the current round waits (AwaitInterest) until that round's SUBs are
// acknowledged by the server's PONG; then whatever another node publishes reaches it. Received
// messages for channels the node no longer holds (in flight when it unsubscribed) are dropped,
// counted as `unwanted`. The connection is made with no_echo: the server never returns a node's own
// messages, and a message carrying this node's id is dropped anyway (counted). Other nodes' word
// about themselves goes on `<prefix>.nodes` (cluster_nodes.h), which every node subscribes to.
//
// Threads. The connection is hermod's own core NATS client (nats_client.h), a Pollable on one
// worker loop (the client loop, loop 0): its socket, parser and output buffer are that loop's.
// A received MSG is decoded and fed to the hub on that loop (Hub::Publish,
// Hub::JoinLeaveFromBroker: the any-thread API, which posts to the client loop's own mailbox
// with no eventfd and to the others' with one), so on a one-loop node a message from another
// node reaches its subscribers with no thread hand-off. The hub hands every accepted
// publication back to Publish, also those fed in from the broker: Publish ignores calls made
// while a received message is being fed (`receiving`), so nothing is sent twice.
//
// Publish (any thread) asks the Link (link.h: the circuit breaker), encodes, and writes to the
// client's output buffer at once when called on the client loop, or queues for it (bounded by
// send_queue_bytes; one mailbox post per batch) from any other thread; a loop never waits on
// the network. A send while the connection is not up is held by the client (up to
// nats.reconnect_buffer_bytes) and written on the reconnect after the SUBs: the other nodes may
// have reconnected and told their subscribers already, so dropping it would be a silent gap.
// Past that bound it fails at once and counts against the breaker.
// Output that makes no progress within dial_timeout (the write deadline) closes the connection.
//
// The interest rounds: on the client loop, a round writes its SUBs and UNSUBs and a PING and
// ends at the PONG (or after dial_timeout, a loop timer), releasing its AwaitInterest waiters
// once every earlier round has ended. With an interest hook the interest thread runs them: it
// hands a round's SUBs, UNSUBs and PING to the client loop, waits (at most dial_timeout) for
// the PONG, then runs the hook (which blocks until the JetStream history's subscriptions are
// in place: never on a loop), then releases the round's waiters. The interest thread also
// sends this node's word on the nodes subject once a second, the lost notice, and an idle
// node's half-open trial (a PING).
//
// Back-pressure on the receive side is TCP's: the client loop reads as fast as it feeds the
// hub, and a node too slow for its share is cut by nats-server (its slow-consumer
// disconnect); then the client reconnects and every held channel's subscribers are told they
// may have missed publications. nats.receive_queue_bytes, release_batch and release_bytes
// (libnats's pending limit and its message release) no longer apply; the keys are accepted.
//
// Lost on the publishing node (lost_channels.h): a publication this node skipped (breaker
// open), could not queue or write (send queue, output bound, reconnect buffer), or wrote to a
// connection that died before the server answered a PING written after it, is lost only for
// the other nodes, whose connections are fine: they would never tell. So its channel is
// recorded, and once the node is connected and its breaker closed the interest thread sends
// a lost notice on `<prefix>.lost` (every node subscribes), kept until a PONG confirms it;
// each receiving node tells the subscribers of the listed channels it holds. The written
// publications are confirmed cheaply: at most one confirm PING in flight, sent after the first
// publication written since the last one; what was written after it waits for the next. An
// idle node has nothing unconfirmed, so a server restart with nothing in flight sends no
// notice.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/cluster_nodes.h"
#include "broker/link.h"
#include "broker/lost_channels.h"
#include "broker/nats_client.h"
#include "config/config.h"
#include "core/broker.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "net/event_loop.h"

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
    uint64_t ping_interval_ms = 20000;  // keepalive (nats_client.h)
    uint64_t max_pings_out = 2;
    uint64_t reconnect_buffer_bytes = 8 << 20;
    uint64_t send_queue_bytes = 16 << 20;
    uint64_t receive_queue_bytes = 64 << 20;
    uint64_t release_batch = 32;  // Release: messages, and bytes, given back at once
    uint64_t release_bytes = 64 * 1024;
    uint64_t lost_channels_max = 4096;  // channels named in a lost notice; past it: all
    Link::Options link;
    config::NatsTls tls;
    static Options FromConfig(const config::Config& config);
  };

  // hub, rules and loop outlive the broker; loop is the client loop (it carries the socket).
  NatsBroker(Options options, core::Hub& hub, const core::ChannelRules& rules, net::Loop& loop);
  ~NatsBroker() override;
  NatsBroker(const NatsBroker&) = delete;
  NatsBroker& operator=(const NatsBroker&) = delete;

  // Before the client loop runs: parses the URLs, has the client loop connect once it runs (and
  // keep trying when the server is not there yet: the node serves locally meanwhile), and
  // starts the interest thread. false on a bad option (the URL), with *error.
  bool Start(std::string* error);
  // Ends the interest thread and closes the connection: on the client loop when it still runs
  // (waiting for it), else here. No call into the hub after it.
  void Stop();

  void Publish(const core::BrokerMessage& message) override;
  bool Fits(const core::BrokerMessage& message) override;
  // Under the channel's shard lock (core/broker.h): records, has a round run (a post to the
  // client loop, one per iteration, or a wake of the interest thread), returns.
  void Interest(std::string_view channel, bool on) override;
  // Under the channel's shard lock: true while the channel's change is pending or in a round
  // in flight; ready runs (on the client loop, or the interest thread with a hook) once that
  // round's SUBs are acknowledged (PING/PONG) and every earlier round has ended, or when the
  // connection is down (or not answering within dial_timeout): then they are sent on the
  // reconnect.
  bool AwaitInterest(std::string_view channel, std::function<void()> ready) override;
  // Any thread: waits (at most timeout_ms) until what was queued before is written and the
  // server has answered a PING after it; on the client loop, until it is written. For a crash
  // test's kill at a point (config fault_kill_at): what the node published before it died has left
  // it.
  bool Flush(uint64_t timeout_ms);
  // The server's max_payload as learned on the last connect; 0 before the first.
  uint64_t max_payload() const { return max_payload_.load(std::memory_order_relaxed); }

  Link& link() { return link_; }
  uint64_t node_id() const { return node_id_; }

  // Before Start: what this node tells the others about itself every
  // ClusterNodes::kIntervalMs (cluster_nodes.h), called on the interest thread; a JSON object.
  void SetNodeInfo(std::function<std::string()> info) { node_info_ = std::move(info); }
  // Any thread: the other nodes heard from lately, their JSON as they sent it.
  std::vector<std::string> OtherNodes();
  // Before Start: each round's interest changes (channel, on), coalesced, also go to
  // another subscriber of channel subjects (the JetStream history's deliveries), on the
  // interest thread before the round's subscribers are answered; it returns once its own
  // subscriptions are in place, so a subscribe reply waits for them too.
  using InterestHook = std::function<void(const std::vector<std::pair<std::string, bool>>&)>;
  void SetInterestHook(InterestHook hook) { interest_hook_ = std::move(hook); }

 private:
  // The client's TLS settings from nats.tls; false with *error when a file does not load.
  bool MakeTls(const std::vector<NatsServer>& servers, NatsClient::Options* o,
               std::string* error) const;
  struct Outgoing {
    core::BrokerMessageKind kind;
    std::string subject;
    std::string bytes;
  };
  // A result the interest thread (or Flush) waits for, set on the client loop (shared: the
  // waiter may give up first).
  struct Waiter {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    bool ok = false;
    void Set(bool result);
    bool Wait(uint64_t timeout_ms);  // false on timeout or !ok
    // As Wait, and a timeout is remembered: SetLate (Set's twin) then says the waiter gave up.
    bool given_up = false;
    bool WaitOrGiveUp(uint64_t timeout_ms);
    bool SetLate(bool result);
  };
  // Runs task on the client loop (at once when called there); false once stopping.
  void OnLoop(std::function<void()> task);
  bool OnClientLoop() const;
  // On the client loop: the client's events.
  void OnConnected();
  void OnDisconnected(std::string_view why);
  void OnServerError(std::string_view text);
  void OnMessage(uint64_t sid, std::string_view payload);
  // On the client loop: one send (too large, or not connected: counted, as the link says).
  void SendNow(Outgoing& m);
  void DrainQueue();
  // Any thread but the client loop's: a PING's PONG within timeout_ms, after what was
  // queued before.
  bool RoundTrip(uint64_t timeout_ms);
  // After a reconnect: every subscriber of every channel held here is told it missed some.
  void TellEveryWanted();
  // Any thread: a publication to channel may not have reached the other nodes.
  void NoteLost(core::BrokerMessageKind kind, std::string_view channel);
  // On the client loop: a publication handed to the client, unconfirmed until a PONG; the
  // confirm PING (one in flight at most) and its answer.
  void Written(const Outgoing& m);
  void Confirm();
  void OnConfirmed(bool ok);
  // On the interest thread: the lost notice, when there is one and the link is up.
  void SendLostNotice();
  // On the client loop: another node's lost notice.
  void OnLostNotice(std::string_view payload);
  void Receive(std::string_view bytes);
  void InterestLoop();
  // On the interest thread (with an interest hook): SUB and UNSUB for the interest changed
  // since the last round, the PONG, the hook, the waiters.
  void ApplyInterest();
  // Under interest_mutex_: the changes since the last round, marked as in round *round.
  void TakeChanges(std::vector<std::pair<std::string, bool>>* changes, uint64_t* round);
  // On the client loop: a round's SUBs and UNSUBs written; how many SUBs.
  uint64_t WriteChanges(const std::vector<std::pair<std::string, bool>>& changes);
  // Under interest_mutex_: round ended; its channels leave applying_, its waiters' ready go
  // to *ready.
  void EndRound(uint64_t round, const std::vector<std::pair<std::string, bool>>& changes,
                std::vector<std::function<void()>>* ready);
  // The client loop's rounds (no interest hook): one written, its PONG, its give-up.
  struct Round {
    uint64_t id = 0;
    std::vector<std::pair<std::string, bool>> changes;
    uint64_t deadline_ms = 0;  // its PONG's, past which its waiters are answered anyway
    bool done = false;         // answered, or given up on
    bool given_up = false;     // dial_timeout passed first: a late PONG tells its channels
  };
  void RunRound();
  void OnRoundPong(const std::shared_ptr<Round>& round, bool ok);
  void OnRoundTimer();
  // The ended rounds at the front, in order: their waiters answered.
  void FinishRounds();
  class RoundTimer final : public net::TimerNode {
   public:
    explicit RoundTimer(NatsBroker& broker) : broker_(broker) {}
    void OnTimer() override { broker_.OnRoundTimer(); }

   private:
    NatsBroker& broker_;
  };
  // Any thread: whether the node holds channel now.
  bool Wanted(std::string_view channel);
  // On the interest thread: this node's info, when it is due.
  void SendNodeInfo();

  const Options options_;
  core::Hub& hub_;
  const core::ChannelRules& rules_;
  net::Loop& loop_;
  const uint64_t node_id_;
  Link link_;

  // The connection: the client loop's (Stop's once that loop is gone).
  std::unique_ptr<NatsClient> client_;
  // The client loop's thread, once it ran the first task (Start posts it).
  std::atomic<std::thread::id> loop_thread_{};
  // The channel subjects subscribed to, by channel (their client sids): the client loop's.
  std::unordered_map<std::string, uint64_t> subscriptions_;
  uint64_t nodes_sid_ = 0;       // the client loop's
  uint64_t lost_sid_ = 0;        // the client loop's
  bool attempt_warned_ = false;  // the client loop's: a failed attempt was logged this outage
  // The cluster's nodes (cluster_nodes.h): their own subject.
  const std::string nodes_subject_;
  const std::string lost_subject_;  // lost notices (lost_channels.h)
  // The client loop's: channels of publications written since the confirm PING in flight
  // was written, and those it covers.
  LostChannels unconfirmed_;
  LostChannels confirming_;
  bool confirm_out_ = false;
  // Guards lost_, the channels for the next lost notice (a leaf: LOCKS.md).
  std::mutex lost_mutex_;
  LostChannels lost_;
  std::function<std::string()> node_info_;
  InterestHook interest_hook_;     // set before Start; then read only
  uint64_t node_info_due_ms_ = 0;  // interest thread only
  ClusterNodes nodes_;
  std::atomic<bool> was_connected_{false};  // a connect after the first is a reconnect
  // An interest round released its replies without the server's PONG after its SUBs.
  std::atomic<bool> answered_early_{false};
  // Tasks posted to the client loop hold this; false (set there) once Stop closed the client.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // The server's max_payload (its INFO, on every connect); 0: not yet known, everything fits
  // until then (a send while disconnected fails anyway).
  std::atomic<uint64_t> max_payload_{0};

  // Guards wanted_ and interest_changes_ (LOCKS.md: a leaf, taken under a shard lock by
  // Interest, by the client loop per received message, by the interest thread once a round).
  std::mutex interest_mutex_;
  // The channels the node holds now (the hub's last word), and the changes not yet applied
  // (channel -> on), coalesced.
  std::unordered_set<std::string, Hash, std::equal_to<>> wanted_;
  std::unordered_map<std::string, bool, Hash, std::equal_to<>> interest_changes_;
  // The channels of the rounds in flight (channel -> its latest round), the rounds begun, and
  // the subscribers waiting for a round's end: (round, ready).
  std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> applying_;
  uint64_t rounds_ = 0;
  std::vector<std::pair<uint64_t, std::function<void()>>> waiting_;
  // No interest hook: the rounds run on the client loop. A round's task is in the client
  // loop's mailbox (set by Interest, cleared by the round: one post per loop iteration).
  std::atomic<bool> round_posted_{false};
  // The client loop's: its rounds in flight, oldest first, and their dial_timeout.
  std::deque<std::shared_ptr<Round>> rounds_out_;
  RoundTimer round_timer_{*this};

  // Guards queue_, queued_bytes_, drain_posted_, stopping_, interest_dirty_ (a leaf).
  std::mutex mutex_;
  bool interest_dirty_ = false;  // interest_changes_ may hold something: wake the thread
  std::condition_variable wake_;
  std::deque<Outgoing> queue_;  // from threads other than the client loop's
  size_t queued_bytes_ = 0;
  bool drain_posted_ = false;  // a DrainQueue task waits in the client loop's mailbox
  bool stopping_ = false;
  std::thread interest_thread_;
};

}  // namespace hermod::broker
