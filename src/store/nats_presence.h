// The `nats` presence engine: every node's presence entries in one NATS KV bucket (JetStream),
// so that `presence` and `presence_stats` on any node list the clients of every node.
//
// Layout: one key per (channel, client), `<token(channel)>.<token(client)>` (PresenceKeyToken:
// an injective escaping into the characters KV keys allow, with no '.'), its value the user
// and ClientInfo (EncodePresenceValue). A channel's entries are the keys under
// `<token(channel)>.*`: a read takes the keys from the stream's subjects, their values from
// a KV watcher, and any key the watcher's initial values missed directly (exact even while
// entries are put again: Engine::Read).
//
// Expiry. nats-server 2.9 has no per-key TTL: the bucket's TTL (MaxAge, presence_ttl) ages
// every key out, and each node re-puts its own live entries every ttl/3, so a live node's
// entries stay and a killed node's are gone within presence_ttl of its last refresh.
//
// Threads. Set::Add/Remove run under the hub's shard lock: they queue the write for the
// engine's thread and return. List/Stats queue a read for the readers (Options::readers
// threads, each reading from NATS on its own, so reads from every loop run at once) and
// answer later through the Completion (Stores::presence_inline is false). A read first waits
// until the engine's thread has sent the writes queued before it and NATS acknowledged them,
// so a node reads its own writes; it may also hold writes queued after it began (it answers
// a state at least as new as the one when it was asked). A read while NATS is unreachable
// answers failed (the protocol's internal error), counted, never an empty list. Reads of one
// channel queued together cost one read: made once all were queued, it answers each.
// The thread connects, and reconnects, in the background: the node serves meanwhile. A
// delete that could not be sent or was not acknowledged (NATS down) is kept, bounded, and
// sent again once connected, so a client that left during an outage is not listed until
// presence_ttl; a put of the same key since cancels it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/presence_store.h"

namespace hermod::store {

// A non-empty token of [-/0-9A-Za-z] and '=': bytes outside [-/0-9A-Za-z] become '=' and two
// upper-case hex digits; the empty string is "=". Injective: ParsePresenceKeyToken inverts it.
std::string PresenceKeyToken(std::string_view s);
std::optional<std::string> ParsePresenceKeyToken(std::string_view token);
// "<user length>:<user><info>".
std::string EncodePresenceValue(std::string_view user, std::string_view info);
std::optional<core::PresenceEntry> DecodePresenceValue(std::string_view value);

class NatsPresenceStore final : public core::PresenceStore {
 public:
  // Deletes kept while NATS is unreachable (KeepDelete), at most.
  static constexpr size_t kMaxPendingDeletes = 65536;
  struct Options {
    std::string url = "nats://127.0.0.1:4222";
    std::string bucket = "hermod_presence";
    int replicas = 1;
    bool memory_storage = false;  // false: file storage
    uint64_t ttl_ms = 60000;
    uint64_t dial_timeout_ms = 1000;
    uint64_t reconnect_wait_ms = 1000;
    uint64_t request_timeout_ms = 2000;  // a read's (and a write acknowledgement's) deadline
    int readers = 4;                     // reads served at once (threads)
    config::NatsTls tls;
    // Called by a reader before each read from NATS, with the channel's key token and no
    // lock held: tests hold one channel's reads back with it. Unset in the product.
    std::function<void(std::string_view token)> before_read;
  };
  // What health and /metrics show; any thread.
  struct Counters {
    std::atomic<bool> connected{false};
    std::atomic<uint64_t> writes{0};        // puts and deletes sent, refreshes included
    std::atomic<uint64_t> write_errors{0};  // not sent, or not acknowledged
    std::atomic<uint64_t> reads{0};
    std::atomic<uint64_t> reads_shared{0};     // of reads: answered by a read of the same batch
    std::atomic<uint64_t> read_errors{0};      // answered failed
    std::atomic<uint64_t> entries{0};          // this node's entries
    std::atomic<uint64_t> queued{0};           // operations waiting for the engine's thread
    std::atomic<uint64_t> pending_deletes{0};  // deletes made while NATS was down, not sent yet
    std::atomic<uint64_t> deletes_dropped{0};  // past kMaxPendingDeletes: left to expire
  };

  explicit NatsPresenceStore(Options options);
  ~NatsPresenceStore() override;
  NatsPresenceStore(const NatsPresenceStore&) = delete;
  NatsPresenceStore& operator=(const NatsPresenceStore&) = delete;

  // Starts the engine's thread. Tries to connect and to create (or find) the bucket at once:
  // false with *error when the server is there but the bucket cannot be used as configured
  // (another TTL, no JetStream); an unreachable server is retried in the background.
  bool Start(std::string* error);
  // Stops the thread; later writes are dropped and later reads answer failed.
  void Stop();

  const char* name() const override { return "nats"; }
  std::unique_ptr<Set> Open(std::string_view channel) override;

  std::shared_ptr<const Counters> counters() const;
  const Options& options() const;

  class Engine;

 private:
  std::shared_ptr<Engine> engine_;
};

}  // namespace hermod::store
