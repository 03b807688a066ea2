// The broker interface: how a publication, a join or a leave made on this node reaches the other
// nodes of a cluster. One small interface, two engines (docs/architecture.md, "Cluster"):
//
// - `memory` (the default): no broker at all. The hub's own in-process fan-out to every loop
//   is the whole delivery; the hub's broker pointer is null. A class that forwards nothing
//   would only be a layer that forwards.
// - `nats` (broker/nats_broker.h): core NATS, one subject per channel, each node subscribed to
//   the subjects of the channels it holds (Interest below).
//
// The hub calls Publish after it has delivered locally, for every publication, join and
// leave it accepted, from any thread (loops, the API, the engine's own receive thread). An
// engine must never block the caller on the network, and must not send back out what it
// fed into the hub itself (a node delivers its own publications locally once, and ignores
// them if the network returns them). What another node sent enters this node's hub as a
// local publication (history, recovery and offsets are this node's own), except with a
// history engine that delivers itself (Stores::history_delivers, JetStream): publications
// to channels with history then reach every node from the engine, with the cluster's
// offsets (Hub::Deliver), and the hub does not send them to the broker.
//
// The interface lives in core/ because the hub is its caller; its engines live in broker/,
// which includes core/ and never the other way round.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "net/output_queue.h"

namespace hermod::core {

enum class BrokerMessageKind : uint8_t { kPublication = 1, kJoin = 2, kLeave = 3 };

// Borrowed views, valid for the call only.
struct BrokerMessage {
  BrokerMessageKind kind = BrokerMessageKind::kPublication;
  net::Priority priority = net::Priority::kNormal;
  bool skip_history = false;  // the publisher asked for no history (the API's skip_history)
  // The API's delta: the receiving node's delta subscribers get it as a fossil delta against
  // the channel's previous publication there.
  bool delta = false;
  std::string_view channel;
  std::string_view data;  // publications: the data JSON
  std::string_view info;  // publications: ClientInfo JSON or empty; join/leave: ClientInfo
  std::string_view tags;  // publications: the tags as the protocol encodes them, or empty
  // publications: a scheduled firing's key (core::FireKey), or empty. A node that delivered
  // this key on the channel drops a repeat (a firing repeated after its node crashed).
  std::string_view key;
};

class Broker {
 public:
  virtual ~Broker() = default;
  // Any thread; returns at once (the engine queues, drops or fails fast, and counts it).
  virtual void Publish(const BrokerMessage& message) = 0;
  // Any thread, before the hub accepts a publication: whether the engine can carry it at all
  // (NATS: the server's max_payload). false: the hub refuses the publication to its publisher
  // (counted here), rather than deliver it locally while the other nodes never get it.
  virtual bool Fits(const BrokerMessage& message) = 0;
  // Whether this node wants what other nodes send to channel: on when the node starts to hold
  // the channel (its first local subscriber, or a history stream it keeps), off when it holds
  // it no more (the last subscriber left and the channel was freed). The hub calls it under
  // the channel's shard lock, so calls for one channel arrive in the order of the changes
  // they report, and the last call is the truth; an engine only records it and returns
  // (never the network, never a lock the hub's callers hold beyond its own, LOCKS.md).
  // The default: every node receives everything (an engine without per-channel interest).
  virtual void Interest(std::string_view channel, bool on) {
    (void)channel;
    (void)on;
  }
  // Under the channel's shard lock, right after a subscriber was added while the node holds
  // the channel: true when the node's subscription to it is not yet in place at the server
  // (Interest(on) not yet applied and acknowledged); the engine then calls ready, from any
  // thread, once it is (or once it gave up: disconnected), and the subscriber's reply waits
  // for it. false: nothing to wait for (ready is not called).
  virtual bool AwaitInterest(std::string_view channel, std::function<void()> ready) {
    (void)channel;
    (void)ready;
    return false;
  }
};

}  // namespace hermod::core
