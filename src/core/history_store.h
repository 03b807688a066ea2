// Channel history behind an interface: what the hub's callers need of it (a publication's
// offset and epoch, the `history` command and API, recovery on subscribe, history_remove),
// implemented by an engine in store/ (`memory` today; SQLite and JetStream next).
//
// The hub holds one Stream per channel that has history, in the channel's state, and calls
// it under the channel's shard lock. So a stream's calls are serialised by the hub, and an
// engine must not block in them: an engine that writes to disk or to the network returns
// nullopt and completes later (completion.h). What a Stream answers at once (Position, the
// in-memory counts) it must answer from memory.
//
// Ordering: a stream completes its appends in the order they were made, one at a time
// (memory: inline; a writer thread: in queue order; JetStream: one writer per channel). The
// hub fans a publication out when its append completes, taking the shard lock again, so
// every loop still sees a channel's publications in offset order.
//
// Shutdown: the hub destroys the engine before its channels (an engine that stops may still
// complete what it holds, into a hub that is whole), so a Stream may outlive its store and
// must not need it in its destructor.
//
// Reclaim: the hub frees a channel nobody uses, and first asks its stream what it holds in
// this process's memory (entries, bytes, when the newest expires). The memory engine holds
// everything; a durable engine holds nothing, and Close loses nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/completion.h"
#include "core/history_stream.h"

namespace hermod::core {

// The publication object as the client protocol sends it (the hub's PushCodec), with its
// offset: what history stores and what subscribers get.
using PublicationEncoder = std::function<std::string(std::string_view data, std::string_view info,
                                                     uint64_t offset, std::string_view tags)>;

struct HistoryAppend {
  std::string_view data;
  std::string_view info;
  std::string_view tags;
  // An engine that deduplicates as it stores (JetStream's Nats-Msg-Id) uses it; the memory
  // engine leaves it to the IdempotencyStore.
  std::string_view idempotency_key;
  uint64_t size = 0;  // history_size: entries kept
  uint64_t ttl_ms = 0;
  uint64_t now_ms = 0;
  // The API's delta (Hub::PublishRequest::delta): an engine that hands publications back
  // through Hub::Deliver (the nats engine) keeps it with the publication, so every node's
  // delta subscribers get it as a delta. Recovery does not need it (every recovered
  // publication after the first goes as a delta, as Centrifugo does).
  bool delta = false;
};

struct HistoryAppended {
  bool failed = false;  // nothing was stored (an engine's I/O error): the publish is refused
  // An engine that deduplicates as it stores found append.idempotency_key within its window:
  // nothing was stored, position is the original publication's, and the hub fans nothing
  // out (the publisher gets that position, as from the IdempotencyStore).
  bool duplicate = false;
  StreamPosition position;
  // The publication encoded with position.offset: owned here (an engine that completes
  // later), or a view of the engine's own copy, valid until the stream's next call (the
  // memory engine, inline, under the shard lock: no copy per publication).
  std::string publication;
  std::string_view stored;
  std::string_view bytes() const { return stored.data() != nullptr ? stored : publication; }
};

struct HistoryQuery {
  std::optional<StreamPosition> since;  // none: from the oldest kept (newest with reverse)
  int64_t limit = -1;                   // < 0: all
  bool reverse = false;
  size_t max_bytes = SIZE_MAX;  // the reply's room: stops before the first that passes it
  uint64_t now_ms = 0;
};

struct HistoryPage {
  bool failed = false;
  bool pending = false;        // the hub's: the engine answers later, through the caller's done
  bool unrecoverable = false;  // since.epoch is not the stream's
  StreamPosition position;
  std::vector<std::string> publications;
  bool cut = false;  // stopped short of limit: the next did not fit max_bytes
};

struct RecoveryQuery {
  StreamPosition since;
  // The offset the hub has fanned out to (its subscribers' position): recovery stops there,
  // even when the engine has completed appends past it (the hub is fanning them out).
  uint64_t until = 0;
  size_t max_publications = 300;
  size_t max_bytes = SIZE_MAX;
  uint64_t now_ms = 0;
};

class HistoryStore {
 public:
  class Stream {
   public:
    virtual ~Stream() = default;

    // The position after the last completed append (offset 0: none yet). From memory.
    virtual StreamPosition Position() const = 0;
    // Stores a publication with the next offset (encoded by encode, which outlives the
    // call and any completion); trims to size and ttl. The result now, or nullopt and
    // done later, in append order (see the top of this file).
    virtual std::optional<HistoryAppended> Append(const HistoryAppend& append,
                                                  const PublicationEncoder& encode,
                                                  Completion<HistoryAppended> done) = 0;
    virtual std::optional<HistoryPage> Read(const HistoryQuery& query,
                                            Completion<HistoryPage> done) = 0;
    // Every publication after query.since if the stream still holds them all, at most
    // max_publications and max_bytes; otherwise recovered = false.
    virtual std::optional<HistoryStream::Recovery> Recover(
        const RecoveryQuery& query, Completion<HistoryStream::Recovery> done) = 0;
    // history_remove: drops the publications; the position stays.
    virtual void Remove() = 0;
    // Remove, answered: true once the removal is stored, false when the engine failed and
    // nothing was removed; now (an engine that removes at once) or later through done.
    virtual std::optional<bool> RemoveThen(Completion<bool> done) {
      (void)done;
      Remove();
      return true;
    }

    // What this process's memory holds for the stream (reclaim, /metrics).
    virtual void Expire(uint64_t now_ms) = 0;
    virtual size_t entries() const = 0;
    virtual size_t bytes() const = 0;
    virtual uint64_t expires_ms() const = 0;  // when the newest entry goes (0: none held)
  };

  virtual ~HistoryStore() = default;
  virtual const char* name() const = 0;
  // How long, and for how many channels at most, a stream's position outlives its
  // publications and its channel (Centrifugo's history meta); 0: not kept.
  virtual void SetMetaLimits(uint64_t ttl_ms, size_t max_channels) = 0;
  // The channel's stream, continuing the kept position if any (else a new epoch).
  // Under the channel's shard lock.
  virtual std::unique_ptr<Stream> Open(std::string_view channel, uint64_t now_ms) = 0;
  // The channel is freed: keep what must outlive it (its position). Under the shard lock.
  virtual void Close(std::string_view channel, std::unique_ptr<Stream> stream, uint64_t now_ms) = 0;
  // The position a freed channel left, without opening it.
  virtual std::optional<StreamPosition> Kept(std::string_view channel, uint64_t now_ms) = 0;
  // Forgets kept positions whose TTL passed (the hub's sweep, any thread).
  virtual void ExpireKept(uint64_t now_ms) = 0;
  // Backpressure for the loops (net::Connection::PauseReading): Backlogged while the
  // engine's writes wait past its pause mark (a connection that just published should stop
  // being read); Drained once they are back under its resume mark (the loops resume
  // reading). Any thread, no lock. An engine that answers at once is never behind.
  virtual bool Backlogged() const { return false; }
  virtual bool Drained() const { return true; }
};

}  // namespace hermod::core
