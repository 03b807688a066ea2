// The `nats` history engine: channel history on NATS JetStream, shared by every node of a
// cluster (and idempotency through JetStream's Nats-Msg-Id duplicate window).
//
// Layout. One stream (nats.jetstream.stream, default HERMOD_HISTORY) holds every channel, on
// subjects `<prefix>.history.<token>`: the token is the channel name itself when it is made of
// [A-Za-z0-9_:-] only, otherwise `~` and the name in unpadded base64url (a plain token never
// starts with `~`, so two channels never share a subject). Each message is one publication as
// the client protocol encodes it (with its offset), and carries headers: Hermod-Offset,
// Hermod-Epoch, and the history_size and history_ttl it was appended with (Hermod-Size,
// Hermod-Ttl), and, when the API asked for delta compression, Hermod-Delta (a character per
// publication of the message, `1` for delta; absent: none), which deliveries hand on. A
// "mark" message (Hermod-Mark) carries a position and no publication: the first one names a
// new channel's epoch, history_remove appends one and purges the rest.
//
// Limits. The stream keeps MaxMsgsPerSubject = the largest history_size of any namespace and
// MaxAge = history_meta_ttl (30 days): the last message of a channel outlives its history_ttl,
// so a channel's epoch and top offset outlive its publications (Centrifugo's history meta),
// without a second record to keep in step. A channel's own size and TTL are applied when it
// is read, from the last message's headers, so namespaces with different limits share one
// stream and the memory engine's answers are reproduced exactly (core::HistoryStream).
//
// Offsets. The next offset is the last message's plus one, appended with
// Nats-Expected-Last-Subject-Sequence = that message's stream sequence: when another node
// appended first the server refuses (error 10071), the engine reads the last message again
// and retries. So offsets are contiguous per channel across the cluster and never given
// twice. The epoch changes only when a channel has no message left (the stream was recreated
// or purged, or the channel was silent for MaxAge).
//
// Idempotency. A keyed publication is appended with Nats-Msg-Id = token + ' ' + key; within
// the stream's Duplicates window (the idempotency window) the server answers a repeat as a
// duplicate with the first message's sequence, whose offset the publisher gets; nothing is
// appended or delivered. NatsIdempotencyStore keeps none of these keys, only the firings'
// of channels without history (below).
//
// Delivery. The stream RePublishes every stored message to `<prefix>.deliver.<token>`, in
// stream order; a node subscribes to those subjects and hands every publication to the hub
// with the offset it was stored with (Hub::Deliver): every node, the appending one too, fans
// out the cluster's publications in offset order, and its position follows them. With
// deliver_by_channel (a cluster: the broker's interest drives it) a node subscribes to a
// channel's subject only while the hub holds the channel (Interest, applied in the broker's
// rounds, so a subscribe reply waits for it as for the broker's own SUB), and a channel
// held elsewhere only costs the nodes holding it; otherwise (no broker) to
// `<prefix>.deliver.>`. Deliveries missed while a node's NATS connection was down
// (RePublish is not replayed) are read back from the stream when the next one shows the
// gap, and handed on first; those appended between the position a channel's Open read and
// its subscription being in place, once the server has the SUB (CatchUp); when they are gone
// (trimmed, removed) the channel's subscribers are told (SetLost), never a silent jump. When a
// channel's subscription ends its cached position is dropped, and the next Open reads it again and
// checks deliveries from there: the time without interest is not a gap to read back.
//
// Threads. Appends, reads and recoveries run on `workers` threads of the engine, a channel
// always on the same one (by hash), so a channel's appends complete in the order they were
// made; the hub's calls only queue.
//
// Reads. A read or recovery answers from the channel's history as a core::HistoryStream
// rebuilt from its messages. Each worker keeps the streams it rebuilt (NatsReadCache, at most
// read_cache_bytes over all workers) with the stream sequence they were read up to: the next
// read fetches the last message (as an append does), folds in only the messages stored since,
// by any node, and checks that the oldest message it still answers from is stored. A mark
// starts the stream again; a publication past the next offset (JetStream trimmed the messages
// between) starts it at that publication, once the channel's first stored message shows
// nothing before it is left. Whatever the fold cannot vouch for (another epoch, another size,
// a message it answers from gone, the clock gone back) is rebuilt from every message, as
// without a cache: the answers are the same either way.
//
// Failure. Appends go through a circuit breaker (options.breaker): JetStream's failures
// (gone, timing out, refusing) open it, and while it is open an append is refused at once,
// on the caller, without a request; after open_ms one append tries again and closes it on
// success. Status() is hermod_store_* with engine="nats" and the /health `store` check. Open reads
// a channel's last message on the caller when the engine has not seen the channel yet (one round
// trip, skipped while JetStream is failing); after that, appends and deliveries keep the engine's
// cache of positions current. Kept does the same read for a channel it has no position of, so
// the hub finds a channel's stored history after a restart (history, history_remove).
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/circuit_breaker.h"
#include "core/history_store.h"
#include "core/idempotency_store.h"
#include "store/nats_read_cache.h"
#include "store/store_status.h"

namespace hermod::store {

struct NatsHistoryOptions {
  std::string url = "nats://127.0.0.1:4222";
  config::NatsTls tls;
  std::string prefix = "hermod";          // subjects <prefix>.history.* and <prefix>.deliver.*
  std::string stream = "HERMOD_HISTORY";  // nats.jetstream.stream
  int64_t replicas = 1;                   // nats.jetstream.replicas
  bool file_storage = true;               // nats.jetstream.storage: "file" or "memory"
  int64_t max_msgs_per_subject = 1000;    // the largest history_size
  uint64_t max_age_ms = 30ull * 24 * 3600 * 1000;  // history_meta_ttl; 0: none
  uint64_t duplicates_ms = 5 * 60 * 1000;          // the idempotency window
  uint64_t timeout_ms = 2000;                      // a JetStream request's wait
  size_t workers = 4;
  // Bytes of channel histories the workers keep between reads (split evenly); 0: none, each
  // read fetches every message the channel keeps.
  uint64_t read_cache_bytes = 64ull << 20;
  bool deliver = true;  // RePublish to <prefix>.deliver.> and subscribe to it
  // With deliver: subscribe to <prefix>.deliver.<token> per channel, as Interest says,
  // rather than to every channel's.
  bool deliver_by_channel = false;
  // Around appends: JetStream failures open it; while open, appends are refused at once.
  core::CircuitBreaker::Options breaker;
};

// A channel's token in a subject (see the top of this file), and back; nullopt for a token
// no channel maps to.
std::string SubjectToken(std::string_view channel);
std::optional<std::string> ChannelOfToken(std::string_view token);

class NatsHistoryStore final : public core::HistoryStore {
 public:
  // A publication the stream stored (on this node or another), in stream order, from the
  // engine's delivery thread.
  // delta: it was published with the API's delta (the Hermod-Delta header).
  using Delivered =
      std::function<void(std::string_view channel, const core::StreamPosition& position,
                         std::string_view publication, bool delta)>;
  explicit NatsHistoryStore(NatsHistoryOptions options);
  ~NatsHistoryStore() override;
  NatsHistoryStore(const NatsHistoryStore&) = delete;
  NatsHistoryStore& operator=(const NatsHistoryStore&) = delete;

  // Before Start.
  void SetDelivered(Delivered delivered) { delivered_ = std::move(delivered); }
  // Connects, makes or checks the stream, subscribes to deliveries and starts the workers.
  // false with *error when JetStream is not reachable or the stream's config conflicts.
  bool Start(std::string* error);
  // Stops the workers (what they hold completes as failed) and closes the connection.
  void Stop();
  // With deliver_by_channel, on one thread at a time (the broker's sender): the channels
  // this node now holds (on) or holds no more (off), coalesced. Subscribes and unsubscribes
  // their delivery subjects and returns once the server has the new subscriptions (PING/PONG,
  // at most timeout_ms): a subscriber's reply waiting for the round then misses nothing.
  void Interest(const std::vector<std::pair<std::string, bool>>& changes);

  const char* name() const override { return "nats"; }
  void SetMetaLimits(uint64_t, size_t) override {}  // the stream's MaxAge keeps positions
  std::unique_ptr<Stream> Open(std::string_view channel, uint64_t now_ms) override;
  void Close(std::string_view channel, std::unique_ptr<Stream> stream, uint64_t now_ms) override;
  std::optional<core::StreamPosition> Kept(std::string_view channel, uint64_t now_ms) override;
  void ExpireKept(uint64_t) override {}

  // Counters (any thread): appends refused because JetStream failed, offset conflicts
  // retried, duplicates answered, deliveries seen with a gap before them.
  uint64_t store_errors() const { return store_errors_.load(std::memory_order_relaxed); }
  uint64_t conflicts() const { return conflicts_.load(std::memory_order_relaxed); }
  uint64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  // Deliveries that came past a gap: filled from the stream, or not (publications trimmed or
  // JetStream failing; the channel's subscribers are then told through Lost).
  uint64_t gaps_filled() const { return gaps_filled_.load(std::memory_order_relaxed); }
  uint64_t gaps_lost() const { return gaps_lost_.load(std::memory_order_relaxed); }
  // Reads: answered by folding in new messages, or rebuilt from every message; channels
  // evicted from the workers' caches, the bytes they hold; messages fetched (JetStream
  // direct gets) for reads and recoveries.
  struct ReadCounts {
    uint64_t folded = 0;
    uint64_t rebuilt = 0;
    uint64_t evicted = 0;
    uint64_t cache_bytes = 0;
    uint64_t messages = 0;
  };
  ReadCounts read_counts() const;
  // Before Start: called (delivery thread) when a gap could not be filled, before the
  // delivery past it.
  void SetLost(std::function<void(std::string_view channel)> lost) { lost_ = std::move(lost); }
  const NatsHistoryOptions& options() const { return options_; }
  // hermod_store_* and the /health `store` check (engine "nats"); any thread.
  StoreStatus Status() const { return status_.Status(); }

  // An append waiting for its channel's worker.
  struct PendingAppend {
    std::string data;
    std::string info;
    std::string tags;
    std::string key;
    uint64_t size = 0;
    uint64_t ttl_ms = 0;
    const core::PublicationEncoder* encode = nullptr;
    core::Completion<core::HistoryAppended> done;
    bool remove = false;     // not an append: history_remove, in its place in the order
    uint64_t queued_us = 0;  // StatusKeeper::SteadyUs when the hub made it
    bool delta = false;      // HistoryAppend::delta, kept in the Hermod-Delta header
  };
  // What the engine knows of a channel (shared by its Streams, the workers and deliveries).
  struct Channel {
    explicit Channel(std::string n) : name(std::move(n)), token(SubjectToken(name)) {}
    const std::string name;
    const std::string token;
    std::mutex mutex;  // guards the rest
    bool loaded = false;
    std::string epoch;
    uint64_t top = 0;
    uint64_t last_seq = 0;  // the stream sequence of the channel's last message
    // Appends not yet taken by the worker: taken together, as one message (group commit).
    std::deque<PendingAppend> pending;
    // What the delivery thread handed on last (0: nothing yet): a delivery past it + 1 in the
    // same epoch means deliveries were missed (a NATS reconnect), and the gap is read back.
    uint64_t delivered = 0;
    uint64_t delivered_seq = 0;
    std::string delivered_epoch;
    // deliver_by_channel: its subscription ended since it was last subscribed; the next Open
    // sets delivered to the position it gives the hub, which then only needs what follows.
    bool reseed = false;
    // Held while deliveries are handed on (OnDeliver, CatchUp), so they reach the hub in
    // offset order; taken before mutex and never under it.
    std::mutex order;
  };

 private:
  class NatsStream;
  class Worker;
  struct Last {
    bool found = false;
    core::StreamPosition position;
    uint64_t seq = 0;
  };
  struct Entry {
    uint64_t seq = 0;  // the message's stream sequence
    uint64_t offset = 0;
    uint64_t ts_ms = 0;
    uint64_t ttl_ms = 0;  // its own history_ttl (0: none)
    bool mark = false;
    std::string publication;
  };
  std::shared_ptr<Channel> ChannelOf(std::string_view channel);
  Worker& WorkerOf(const Channel& channel);
  // On a worker (or Open): the channel's last message into its cache; false on an error.
  bool Load(Channel& channel);
  bool ReadLast(const Channel& channel, Last* last, natsStatus* status);
  // On a worker: appends what the channel has pending, a batch per message, until none is.
  void Flush(Channel& channel);
  // On a worker: appends one batch as one message, retrying on offset conflicts; each
  // append's result, in order.
  // *error: why it failed (JetStream's answer), for /health.
  std::vector<core::HistoryAppended> DoAppend(Channel& channel, std::vector<PendingAppend>& batch,
                                              std::string* error);
  // On a worker: answer() with the channel's kept publications as a HistoryStream with its
  // logical limits, expired at now_ms; false on an error (answer not called).
  bool Snapshot(Channel& channel, uint64_t now_ms,
                const std::function<void(core::HistoryStream&)>& answer);
  // The channel's messages with sequences from..to, oldest first, each publication of a batch
  // an Entry; *size: the Hermod-Size of the last one (unchanged when none). false: JetStream
  // failed.
  bool Scan(const Channel& channel, uint64_t from, uint64_t to, std::vector<Entry>* out,
            uint64_t* size);
  // Every message the channel keeps up to last into *out; false on an error.
  bool Rebuild(const Channel& channel, const Last& last, NatsReadCache::Entry* out);
  enum class Folded { kDone, kRebuild, kFailed };
  // The messages after in->scanned_seq up to last folded into *in, when the result is what
  // Rebuild would give.
  Folded Fold(const Channel& channel, const Last& last, uint64_t now_ms, NatsReadCache::Entry* in);
  // The stream sequence of the channel's first stored message (0: none); false on an error.
  bool FirstSeq(const Channel& channel, uint64_t* seq);
  // The first message of subject at or after stream sequence seq (a JetStream direct get).
  natsStatus NextOf(const std::string& subject, uint64_t seq, natsMsg** msg);
  // The position of the channel's stored message with this Nats-Msg-Id, in *found (nullopt:
  // none). false: JetStream failed.
  bool FindMsgId(Channel& channel, const std::string& msg_id,
                 std::optional<core::StreamPosition>* found);
  void DoRemove(Channel& channel);
  bool EnsureStream(std::string* error);
  void Failed();
  bool Down() const;
  // A delivery read back from the stream (Fill).
  struct Missed {
    uint64_t offset = 0;
    std::string publication;
    bool delta = false;
  };
  // On the delivery thread: the publications of channel at offsets after+1 .. until-1, read
  // from stream sequences from_seq .. to_seq-1; false unless every one was there.
  bool Fill(const Channel& channel, uint64_t from_seq, uint64_t to_seq, uint64_t after,
            uint64_t until, std::vector<Missed>* out);
  static void OnDeliver(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* self);
  // Once a channel's delivery subscription is in place: what was appended past the
  // delivery mark before it, read back and handed on (Interest's caller thread).
  void CatchUp(Channel& channel);
  static void OnReconnected(natsConnection* nc, void* self);
  // A per-channel subscription's last callback has returned (libnats's completion).
  static void OnSubscriptionDone(void* self);

  const NatsHistoryOptions options_;
  StatusKeeper status_;
  const std::string history_prefix_;  // <prefix>.history.
  const std::string deliver_prefix_;  // <prefix>.deliver.
  Delivered delivered_;
  natsOptions* nats_options_ = nullptr;
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* deliveries_ = nullptr;
  NatsReadCacheCounts read_cache_counts_;  // before workers_: their caches count in it
  std::vector<std::unique_ptr<Worker>> workers_;
  // deliver_by_channel: the channels' delivery subscriptions (Interest; Stop ends them), and
  // the completions libnats still owes for those (Stop waits for them: no callback after).
  std::mutex subscriptions_mutex_;  // guards subscriptions_, stopped_
  std::unordered_map<std::string, natsSubscription*> subscriptions_;
  bool stopped_ = false;
  std::mutex done_mutex_;  // guards pending_done_
  std::condition_variable done_;
  int pending_done_ = 0;

  std::mutex mutex_;  // guards channels_
  std::unordered_map<std::string, std::shared_ptr<Channel>> channels_;
  std::atomic<uint64_t> failed_at_ms_{0};
  std::atomic<uint64_t> store_errors_{0};
  std::atomic<uint64_t> conflicts_{0};
  std::atomic<uint64_t> duplicates_{0};
  std::atomic<uint64_t> gaps_filled_{0};
  std::atomic<uint64_t> gaps_lost_{0};
  std::atomic<uint64_t> read_messages_{0};
  std::function<void(std::string_view channel)> lost_;
};

// Callers' keys are JetStream's (the Duplicates window): this store keeps none of them. It
// keeps the scheduler's (core::IsFireKey) of what this node delivered, at most max_fire_keys
// node-wide, until they expire (idempotency_window): a publication without history leaves
// nothing in JetStream, so a firing repeated after its node crashed (published again by the
// restarted node or another one) is known here only, on each node that delivered the first
// (README, Scheduled delivery). Past the bound a key is not kept, and counted.
class NatsIdempotencyStore final : public core::IdempotencyStore {
 public:
  struct Counts {
    uint64_t kept = 0;     // fire keys held now
    uint64_t repeats = 0;  // publications dropped as a repeat of a kept fire key
    uint64_t unkept = 0;   // fire keys not kept: max_fire_keys were held
  };
  explicit NatsIdempotencyStore(size_t max_fire_keys = 0);
  const char* name() const override { return "nats"; }
  std::unique_ptr<Keys> Open(std::string_view channel) override;
  // Any thread.
  Counts counts() const;
  struct Shared;  // the bound and the counts, shared with every channel's keys

 private:
  std::shared_ptr<Shared> shared_;  // with every Keys, which may outlive the store
};

// The engine started on options, or null with *error (the contract tests' factory).
std::unique_ptr<NatsHistoryStore> MakeNatsHistoryStore(NatsHistoryOptions options,
                                                       std::string* error);

}  // namespace hermod::store
