// The `sqlite` engine: channel history (publications, each channel's epoch and top offset)
// and idempotency keys in one SQLite file (WAL), so they survive a restart, clean or kill -9.
//
// Threads. The hub calls the engine under a channel's shard lock, on the event loops; the
// engine never touches the file there. One writer thread owns the only connection: the
// loops queue work for it (appends, key writes, removes, reads, recoveries) and it runs a
// burst of writes as one transaction (group commit: one fsync per burst, at most max_batch
// writes), then hands the committed burst to a completer thread in one hand-off, which
// answers its appends (the hub's fan-out runs there), keys, removes and reads in queue order
// through their Completions, so a channel's appends complete in the order they were made,
// while the writer goes on with the next transaction. Reads and recoveries run on the
// writer between transactions, so they see every append queued before them. Exec's writes
// are answered on the writer itself.
//
// What is in memory: each channel's position (epoch, committed top offset), loaded from the
// file at start-up, so Stream::Position and HistoryStore::Kept answer without I/O; the
// unexpired idempotency keys, loaded at start-up and handed to the channel's Keys when the
// hub opens them (Keys::Find is from memory). A keyed append writes its key in the same
// transaction as the publication, and the key of a publication without history is a write of
// its own in the same queue (Keys::PutDurable), answered after its commit: a publish that was
// answered is never repeated after a restart within the window.
//
// Durability: the answer (API 200, client reply) follows the COMMIT. synchronous=FULL (the
// default) fsyncs the WAL at each commit: an answered publication survives kill -9 and power
// loss. synchronous=NORMAL leaves the fsync to checkpoints: kill -9 loses nothing (the WAL
// is in the OS's cache), power loss may lose the last transactions.
//
// Failure. Every transaction's outcome goes to a circuit breaker: failures (I/O error, disk
// full, the file removed or replaced under the server) fail the burst's appends (never a
// silent success) and, past the threshold, open the breaker, which refuses appends at once
// until a trial transaction succeeds. Status() reports it for /health and /metrics.
//
// Kept positions: a freed channel's row of `meta` stays (history_meta_ttl); at most
// history_meta_max_channels of them, the oldest forgotten first, but only a channel with no
// publication left in the file (meta.expires, its newest publication's expiry, has passed):
// forgetting a position drops its channel's history.
//
// Expiry: a channel's publications expire in offset order (one history_ttl per channel), so
// the writer deletes them from the channel's oldest, found by the (channel, offset) index;
// it keeps in memory when each channel's oldest may expire, instead of an index on expiry.
//
// Trimming is bounded per transaction (max_trim), so a backlog never stalls the appends
// behind it: by TTL at most max_trim publications (and max_trim keys); past history_size at
// most as many as the transaction appends (trimming keeps up with publishing) plus max_trim
// of a backlog (history_size shrunk under a long history). A channel's floor (its top minus
// history_size) hides what is past it from reads and recovery until it is deleted. What the
// bounds leave goes on in the next transactions, and in transactions of its own while
// nothing is queued (also at start-up, for what expired while hermod was down). The floor
// and the list of channels behind are in memory: after a restart a channel's rows past
// history_size are read, and deleted, again from its next publication on (as when
// history_size was shrunk while hermod was down).
//
// Schema version (PRAGMA user_version, 2): publications in a rowid table in the order they
// are stored, found by an index on (channel id, offset), each channel's id a number in meta
// (its name is stored there only). A file of version 0 or 1 (publications keyed by the
// channel's name) is migrated at Open in one transaction; a newer one is refused and left
// unchanged.
//
// Times: the hub's clock is monotonic; the file holds wall-clock expiry times, converted
// with the difference between the two clocks taken when the store is opened.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/circuit_breaker.h"
#include "core/history_store.h"
#include "core/idempotency_store.h"
#include "core/schedule_store.h"
#include "store/store_status.h"

struct sqlite3;

namespace hermod::store {

struct SqliteOptions {
  std::string path = "hermod.db";
  size_t max_batch = 1024;       // writes per transaction
  bool synchronous_full = true;  // false: synchronous=NORMAL
  // PRAGMA secure_delete: zeros over what is deleted. Set either way, since SQLite builds
  // differ in their default (Debian's is on).
  bool secure_delete = false;
  // Publications a transaction deletes by TTL (expired keys too, apart), and past
  // history_size beyond as many as it appends; what is left goes on in the next
  // transactions, written or not.
  size_t max_trim = 1024;
  size_t max_queue = 65536;  // appends waiting for the writer; past it, refused
  // Read pause (core::HistoryStore::Backlogged): with this many writes waiting or in the
  // writer's batch the loops stop reading the connections that publish, and resume them
  // at resume_reads_at or fewer, so a burst waits in the publishers' sockets, not in memory.
  // 0: never paused.
  size_t pause_reads_at = 4096;
  size_t resume_reads_at = 1024;
  uint64_t idempotency_window_ms = 5 * 60 * 1000;
  core::CircuitBreaker::Options breaker;
};

class SqliteDb;

// The engine's shared part (connection, writer, positions, loaded keys), used by its history
// and idempotency stores. Open fails with a message naming the file and the fix.
class SqliteEngine {
 public:
  static std::shared_ptr<SqliteEngine> Open(const SqliteOptions& options, std::string* error);
  ~SqliteEngine();
  std::unique_ptr<core::HistoryStore> History();
  std::unique_ptr<core::IdempotencyStore> Idempotency();
  // Scheduled publications in the same file (sqlite_schedule.cc); creates its table.
  std::unique_ptr<core::ScheduleStore> Schedules();
  // Runs write on the writer thread inside its next transaction, with the other writes
  // queued (write returns false on failure: the transaction is rolled back), then
  // done(committed) on that thread. Refused (done(false) at once) once stopped.
  void Write(std::function<bool(sqlite3*)> write, std::function<void(bool)> done);
  StoreStatus Status() const;
  // Runs write on the writer thread inside its next transaction (group commit with
  // history's writes; false fails the transaction), then done(committed) on that thread.
  // false: refused at once (stopped), and neither is called.
  bool Exec(std::function<bool(sqlite3*)> write, std::function<void(bool)> done);
  // Completes what is queued and stops the writer (the history store does it when the hub
  // destroys it); later calls fail at once.
  void Stop();

 private:
  explicit SqliteEngine(std::shared_ptr<SqliteDb> db);
  std::shared_ptr<SqliteDb> db_;
};

}  // namespace hermod::store
