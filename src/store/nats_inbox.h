// The `nats` inbox engine (core/inbox_store.h): the memory engine's state (store/memory_inbox.h)
// kept in a NATS KV bucket (`<prefix>_inbox`) shared by every node of the cluster, so a user
// gets and acks on node B what was queued while they were on node A, and what a killed node
// held is delivered by another.
//
// Keys: `<hex channel>.m` holds the inbox's epoch and top offset; `<hex channel>.<offset>` one
// entry (state, count, times, reason, data, and a scheduled firing's key: core::FireKey). The
// fire key is in the entry's record, not a key of its own: KV writes one key at a time, so
// only there is it stored by the same revision-checked write as the entry (a crash can leave
// neither or both), and it is removed with the entry, so fire keys never outnumber entries.
// Every node holds every inbox in memory (a KV watcher applies what the others store), the
// fire keys indexed, so a firing repeated on any node after a crash is answered as a
// duplicate while its entry is kept; reads are answered from there. Each change is written
// with compare-and-set on the revisions this node last saw (kvStore_Create for a key it has
// never seen, kvStore_Update for one it has), before the call returns, so two nodes never both
// take an offset, both count one delivery, or both ack or dead-letter one entry: the loser's
// write fails, it reads the keys it could not write back from NATS, and does the call again
// (a publish takes the next offset; an ack of what the other node acked is an error; a
// delivery or expiry the other node made is left out of its result, so only one node
// redelivers each entry and sends its receipt). A delivery decided on what this node's
// Unacked answered (the redelivery tick, a connect) also leaves out an entry whose count
// changed since (another node's delivery that reached this node in between): a user
// connected to two nodes gets each redelivery from one of them.
//
// Threads: a change of one inbox holds that inbox's gate from reading its state to NATS's last
// reply, and the engine's lock (the memory engine's) only for the change in memory and again
// to record each reply: one inbox's changes reach NATS in the order they were made, while
// other inboxes' changes, reads and the watcher go on beside it. The expiry sweep takes one
// inbox's gate at a time. A key whose write is in flight is not touched by the watcher: its
// update is held back and applied after the reply, if the reply's revision is older. A read
// (Unacked, Status, dead letters) answers from memory at once, so it may show a change whose
// write is still in flight (and is undone if that write loses a race), as the sqlite engine
// shows a change before its COMMIT.
//
// Limits: reads on a node lag the other nodes' writes by the watcher's latency (about a
// millisecond on one host), except `inbox_status`, which reads the entries it answers from
// NATS first (ReadThrough: at most read_through_max, one round trip each); a call
// waits for NATS (at most the request timeout per key) while it holds its inbox's gate; with NATS
// unreachable a change fails (stored(false)) and the API answers an error. A change of
// several entries that loses a race part-way keeps the part it wrote (KV has no atomic
// write of several keys); an ack then acks the rest on its retry and answers exactly the
// entries it acked (NatsInboxStore::Ack); a dead-lettering or redrive answers an error. A
// connect counts a delivery of every unacked entry on the node connected to, as on one node. With
// `kill -9` nothing acknowledged as stored is lost: a change is answered only after NATS stored it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/inbox_store.h"

namespace hermod::store {

struct NatsInboxOptions {
  std::string url = "nats://127.0.0.1:4222";
  std::string bucket = "hermod_inbox";
  uint64_t dial_timeout_ms = 1000;
  uint64_t reconnect_wait_ms = 1000;
  uint64_t request_timeout_ms = 2000;
  config::NatsTls tls;
  // inbox_status reads at most this many entries from NATS (ReadThrough); an ask for more
  // (or for every entry of an inbox holding more) answers from this node's copy.
  size_t read_through_max = 100;
  // Called before each write to the bucket with the write's channel, on the calling thread,
  // with none of the engine's locks held (only that channel's gate): tests hold one
  // channel's writes back with it. Unset in the product.
  std::function<void(std::string_view channel)> before_write;
  // Called on the watcher's thread before it applies each update another node stored: tests
  // hold one node's watcher back with it. Unset in the product.
  std::function<void()> before_watched;
};

// Connects, creates (or binds) the bucket and reads it; null with *error naming NATS and the
// fix.
std::unique_ptr<core::InboxStore> MakeNatsInbox(const NatsInboxOptions& options,
                                                std::string* error);

}  // namespace hermod::store
