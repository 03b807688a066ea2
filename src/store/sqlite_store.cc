#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/schedule_store.h"
#include "net/event_loop.h"
#include "stats/loop_metrics.h"
#include "store/epoch.h"
#include "store/sqlite_schedule.h"

namespace hermod::store {

namespace {

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t SteadyUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// A client's `since` offset as SQLite's signed integer: one past INT64_MAX (which no stream
// reaches) reads as INT64_MAX, not as a negative bound that would match every row.
int64_t SinceBound(uint64_t offset) {
  return static_cast<int64_t>(std::min<uint64_t>(offset, INT64_MAX));
}

constexpr const char* kSchema =
    // id: the channel's number in pubs, never reused in the file (SqliteDb::next_id_).
    // expires: when the channel's newest publication expires (wall ms; 0: none held), so
    // history_meta_max_channels can tell channels with no history left without a scan.
    "CREATE TABLE IF NOT EXISTS meta(channel TEXT PRIMARY KEY, id INTEGER NOT NULL,"
    " epoch TEXT NOT NULL, top INTEGER NOT NULL, expires INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS keys(channel TEXT NOT NULL, key TEXT NOT NULL,"
    " offset INTEGER NOT NULL, epoch TEXT NOT NULL, expires INTEGER NOT NULL,"
    " PRIMARY KEY(channel, key));"
    "CREATE INDEX IF NOT EXISTS keys_expires ON keys(expires);";

// The publications (schema version 2). A rowid table, so a transaction's publications are
// appended at its end whatever their channels, and a small index on (channel id, offset)
// for reads, trims and expiry (a channel's publications expire in offset order,
// SqliteDb::ExpireDue, so no index on expiry); the channel's name is in meta only. Not one
// b-tree clustered by channel (a WITHOUT ROWID table keyed by (id, offset), or a rowid of
// id << 40 | offset): it is cheaper for one channel only, since a transaction then rewrites
// the last page of every channel it touches (a 16 KiB WAL frame for a few rows). CPU per
// 1 KiB publication, 256 per transaction (BM_SqliteLayout, medians of 3), this layout
// against keyed by name, WITHOUT ROWID, id << 40: 1 channel 4.8 against 5.0, 5.5, 4.2 µs;
// 10 channels 5.6 against 6.0, 7.4, 6.7; 100 channels 6.3 against 8.3, 23, 19; 1,000 9.9
// against 10.6, 35, 31.
constexpr const char* kPubs =
    "CREATE TABLE IF NOT EXISTS pubs(chan INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " expires INTEGER NOT NULL, pub BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS pubs_chan ON pubs(chan, offset);";

// A firing's key (core::FireKey) stays until its schedule is forgotten, which deletes it
// (sqlite_schedule.cc), rather than for idempotency_window: the firing is repeated after a
// crash between its publication and that, however long the server was down.
int64_t KeyExpires(std::string_view key, int64_t expires_wall_ms) {
  return core::IsFireKey(key) ? INT64_MAX : expires_wall_ms;
}

// PRAGMA user_version of the file. 0: written before versions were kept (pubs keyed by the
// channel's name, with the index pubs_key and an expiry index pubs_expires); 1: the same
// without pubs_expires; 2: pubs keyed by the channel's id (kPubs). A file of version 0 or 1
// is migrated at Open in one transaction (SqliteDb::Migrate); one of a later version is
// refused, never rewritten.
constexpr int kSchemaVersion = 2;

// The writer's byte buffer keeps its capacity between bursts up to this (a burst at the read
// pause's default, 4,096 1 KiB publications, fits); past it, it is freed after the burst.
constexpr size_t kKeptBytes = 8 << 20;

// A prepared statement, reset after each use.
class Stmt {
 public:
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }
  bool Prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) == SQLITE_OK;
  }
  Stmt& Bind(int i, std::string_view text) {
    sqlite3_bind_text(s_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& Blob(int i, std::string_view bytes) {
    sqlite3_bind_blob(s_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // One step of a statement that returns no rows; resets it.
  bool Run() {
    const int rc = sqlite3_step(s_);
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    return rc == SQLITE_DONE;
  }
  int Step() { return sqlite3_step(s_); }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  std::string_view Text(int col) const {
    const void* p = sqlite3_column_blob(s_, col);
    const int n = sqlite3_column_bytes(s_, col);
    return p == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// The file's schema version (PRAGMA user_version).
int ReadVersion(sqlite3* db, int* version) {
  Stmt q;
  if (!q.Prepare(db, "PRAGMA user_version")) return sqlite3_errcode(db);
  const int rc = q.Step();
  if (rc == SQLITE_ROW) *version = static_cast<int>(q.Int(0));
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// Whether table has column (false when there is no such table).
int HasColumn(sqlite3* db, const char* table, const char* column, bool* has) {
  Stmt q;
  if (!q.Prepare(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name=?2")) {
    return sqlite3_errcode(db);
  }
  q.Bind(1, std::string_view(table)).Bind(2, std::string_view(column));
  const int rc = q.Step();
  *has = rc == SQLITE_ROW;
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

}  // namespace

// The engine's state; see sqlite_store.h.
class SqliteDb : public std::enable_shared_from_this<SqliteDb> {
 public:
  // A channel's position. epoch never changes; top is the committed offset (the writer
  // stores it after each commit, Position reads it); writer_top is the writer's own.
  struct Chan {
    Chan(std::string n, int64_t i, std::string e, uint64_t t)
        : name(std::move(n)), id(i), epoch(std::move(e)) {
      top.store(t);
      writer_top = t;
    }
    const std::string name;
    const int64_t id;  // its rows' pubs.chan
    const std::string epoch;
    std::atomic<uint64_t> top{0};
    // When its newest stored publication expires (wall ms; 0: none), stored after commits.
    std::atomic<int64_t> expires{0};
    // Offsets up to floor are past history_size: never read, deleted by the writer, at most
    // max_trim beyond what a transaction appends (SqliteDb::TrimToSize). Stored after commits.
    std::atomic<uint64_t> floor{0};
    uint64_t writer_top = 0;       // writer thread only
    int64_t writer_expires = 0;    // writer thread only
    bool writer_expiring = false;  // in SqliteDb::expiring_; writer thread only
    uint64_t writer_floor = 0;     // writer thread only
    // The oldest offset the file may hold (its rows are offsets writer_low..writer_top);
    // 0: not known yet (loaded, or a transaction failed), read from the file when needed.
    uint64_t writer_low = 0;               // writer thread only
    bool writer_trimming = false;          // in SqliteDb::trimming_; writer thread only
    bool open = false;                     // under channels_mutex_
    uint64_t closed_ms = 0;                // under channels_mutex_
    std::list<Chan*>::iterator closed_at;  // in closed_, while !open; under channels_mutex_
  };
  struct Key {
    std::string key;
    core::StreamPosition position;
    uint64_t expires_ms;  // the hub's clock
  };

  SqliteDb(SqliteOptions options)
      : options_(std::move(options)), breaker_(options_.breaker, &Now) {}
  ~SqliteDb() {
    Stop();
    stmts_ = {};
    if (db_ != nullptr) sqlite3_close(db_);
  }

  bool Open(std::string* error);
  void Start() {
    writer_ = std::thread([this] { Run(); });
    completer_ = std::thread([this] { RunCompleter(); });
  }
  void Stop();

  std::shared_ptr<Chan> OpenChannel(std::string_view channel, uint64_t now_ms);
  void CloseChannel(const std::shared_ptr<Chan>& chan, uint64_t now_ms);
  std::optional<core::StreamPosition> Kept(std::string_view channel);
  void ExpireKept(uint64_t now_ms);
  void SetMetaLimits(uint64_t ttl_ms, size_t max_channels) {
    std::lock_guard lock(channels_mutex_);
    meta_ttl_ms_ = ttl_ms;
    meta_max_channels_ = max_channels;
  }
  std::vector<Key> TakeKeys(std::string_view channel);

  std::optional<core::HistoryAppended> Append(const std::shared_ptr<Chan>& chan,
                                              const core::HistoryAppend& append,
                                              const core::PublicationEncoder& encode,
                                              core::Completion<core::HistoryAppended> done);
  void Read(const std::shared_ptr<Chan>& chan, const core::HistoryQuery& query,
            core::Completion<core::HistoryPage> done);
  void Recover(const std::shared_ptr<Chan>& chan, const core::RecoveryQuery& query,
               core::Completion<core::HistoryStream::Recovery> done);
  void Remove(const std::shared_ptr<Chan>& chan, core::Completion<bool> done = {});
  // A key of a publication without history; done(stored) after the commit. false: refused
  // at once (stopped, breaker open, queue full), done not called.
  bool PutKey(std::string_view channel, std::string_view key, const core::StreamPosition& position,
              uint64_t expires_ms, core::Completion<bool> done);
  StoreStatus Status() const;
  // The loops' read pause (core::HistoryStore::Backlogged).
  bool Backlogged() const {
    return options_.pause_reads_at != 0 &&
           outstanding_.load(std::memory_order_relaxed) >= options_.pause_reads_at;
  }
  bool Drained() const {
    return outstanding_.load(std::memory_order_relaxed) <= options_.resume_reads_at;
  }
  // Another concern's writes (store/sqlite_inbox.h, sqlite_schedule.cc), in the next
  // transaction.
  bool Exec(std::function<bool(sqlite3*)> write, std::function<void(bool)> done);

 private:
  enum class Op { kAppend, kRead, kRecover, kRemove, kKey, kNew, kForget, kCall };
  // What a read, recovery, remove, key or forget needs: apart, so an append's task (the one
  // queued per publication, moved into the queue and grown with it) stays small.
  struct Rare {
    std::string channel;  // kKey, kForget
    int64_t id = 0;       // kForget: the channel's id
    core::HistoryQuery query;
    core::Completion<core::HistoryPage> page;
    core::RecoveryQuery recovery;
    core::Completion<core::HistoryStream::Recovery> recovered;
    core::Completion<bool> removed;  // kRemove: answered once committed (or failed)
    core::Completion<bool> stored;   // kKey: answered once committed (or failed)
    core::StreamPosition position;
    core::HistoryPage page_result;                  // kRead, for the completer
    core::HistoryStream::Recovery recovery_result;  // kRecover, for the completer
  };
  // Where a task's bytes are in the queue's byte buffer (queue_bytes_, then the writer's
  // bytes_): one buffer per burst instead of four allocations per publication, freed by
  // another thread than the loop that made them.
  struct Span {
    size_t at = 0, size = 0;
  };
  struct Task {
    Op op;
    std::shared_ptr<Chan> chan;
    Span data, info, tags, key;
    uint64_t size = 0, ttl = 0, now = 0, expires = 0;
    const core::PublicationEncoder* encode = nullptr;
    core::Completion<core::HistoryAppended> appended;
    std::function<bool(sqlite3*)> call;  // kCall: its writes; called(committed) after
    std::function<void(bool)> called;
    uint64_t queued_us = 0;
    core::HistoryAppended result;  // kAppend: what the completer answers
    bool ok = false;               // kKey, kRemove: committed
    std::unique_ptr<Rare> rare;
    Rare& More() {
      if (!rare) rare = std::make_unique<Rare>();
      return *rare;
    }
  };
  struct Stmts {
    Stmt begin, commit, rollback, insert_pub, insert_key, upsert_meta, trim_size, remove_pubs,
        forget_meta, oldest, expire_keys, read_fwd, read_rev, recover;
  };

  static uint64_t Now() { return net::Loop::MonotonicMs(); }
  int64_t ToWall(uint64_t mono_ms) const { return static_cast<int64_t>(mono_ms) + wall_delta_; }
  // The bytes a task needs on the writer (an append's data, info, tags and key; a key's key),
  // copied into the queue's byte buffer with the task.
  struct Bytes {
    std::string_view data, info, tags, key;
  };
  // false: refused at once (stopped, or an append while the breaker is open); task is then
  // left to the caller, who completes it.
  bool Post(Task& task, const Bytes& bytes = {});
  // A span of the writer's byte buffer (writer thread).
  std::string_view Of(Span span) const { return {bytes_.data() + span.at, span.size}; }
  void Run();
  // Hands tasks the writer is done with to the completer (one hand-off per transaction).
  void HandOff(std::vector<Task> tasks);
  // The completer thread: answers the tasks handed off, in the order they were queued.
  void RunCompleter();
  static void Complete(Task& task);
  void Process(std::vector<Task>& batch, size_t begin, size_t end);
  void Transaction(std::vector<Task>& batch, size_t begin, size_t end);
  bool Write(Task& task, core::HistoryAppended* result, std::unordered_set<Chan*>* touched);
  // Lists a channel that now holds a publication expiring at expires (writer thread).
  void ListExpiring(const std::shared_ptr<Chan>& chan, int64_t expires);
  // What ExpireDue took off expiring_ (put back if the transaction fails) and what it lists
  // again once the transaction commits.
  struct Expiry {
    std::vector<std::pair<int64_t, std::shared_ptr<Chan>>> visited, due;
  };
  // Deletes at most max_trim expired publications, those of the channels due first.
  bool ExpireDue(int64_t now_wall, Expiry* expiry);
  // Deletes at most budget publications past their channel's history_size (its floor), the
  // channels in the order they fell behind; one left behind stays listed in trimming_ for the
  // next transaction. Adds the channels it deleted from to changed.
  bool TrimToSize(uint64_t budget, std::vector<std::shared_ptr<Chan>>* changed);
  // The oldest offset the file holds of chan (writer_top + 1: none).
  bool FindLow(Chan& chan);
  void RunRead(Task& task);
  void RunRecover(Task& task);
  bool FileGone();
  // Counts an operation and its latency in recorded_ (writer thread); Publish adds them to
  // the status under the lock, once per transaction rather than once per row.
  void Record(StoreStatus::Kind kind, uint64_t queued_us, uint64_t now_us);
  void PublishRecorded();
  void Fail(StoreStatus::Reason reason, std::string message);
  // Rewrites a file of schema version 0 or 1 as version 2, in one transaction.
  bool Migrate(std::string* what);

  SqliteOptions options_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<Stmts> stmts_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int64_t wall_delta_ = 0;  // wall-clock ms minus the monotonic clock's, at Open

  mutable std::mutex channels_mutex_;  // guards channels_, keys_, Chan::open/closed_ms
  std::unordered_map<std::string, std::shared_ptr<Chan>> channels_;
  std::unordered_map<std::string, std::vector<Key>> keys_;  // loaded, not yet taken
  // Channels not open, in the order they were closed (the oldest first): the positions
  // history_meta_max_channels bounds.
  std::list<Chan*> closed_;
  uint64_t meta_ttl_ms_ = 0;
  size_t meta_max_channels_ = SIZE_MAX;
  // Forgets the oldest closed channels with no history left while more than the cap are
  // closed; under channels_mutex_. Returns the names to forget in the file.
  std::vector<std::pair<std::string, int64_t>> EvictClosed(uint64_t now_ms);
  // Forgets a channel in the file (its publications and its row of meta, if still its id's).
  void PostForget(std::string name, int64_t id);
  // A new channel's id: one more than any in meta or pubs at Open, so never one whose rows
  // may still be in pubs; under channels_mutex_.
  int64_t next_id_ = 1;

  mutable std::mutex mutex_;  // guards the queue, the breaker and the status
  std::condition_variable ready_;
  // Swapped whole with the writer's batch (both keep their capacity): no allocation per
  // task, and the loops wait for the lock only as long as a swap.
  std::vector<Task> queue_;
  std::string queue_bytes_;  // the queued tasks' bytes (Span); swapped whole with bytes_
  std::string bytes_;        // the writer's batch's bytes; writer thread only
  bool stopping_ = false;
  // Tasks queued or in the writer's batch and not yet completed: the loops' read pause
  // (Backlogged, Drained) reads it without the lock.
  std::atomic<size_t> outstanding_{0};
  mutable core::CircuitBreaker breaker_;  // state() advances its clock
  StoreStatus status_;
  struct Recorded {
    std::array<uint64_t, StoreStatus::kKinds> operations{};
    std::array<uint64_t, StoreStatus::kLatencyBounds.size() + 1> buckets{};
    double sum_s = 0;
    uint64_t count = 0;
  } recorded_;  // writer thread only
  // The channels holding publications, by when their oldest may expire (a lower bound: the
  // expiry of a publication no longer the oldest, or 0 for those loaded at start-up);
  // writer thread only (filled by Open before the writer starts).
  std::multimap<int64_t, std::shared_ptr<Chan>> expiring_;
  // Channels with publications past their history_size still in the file; writer thread only.
  std::deque<std::shared_ptr<Chan>> trimming_;
  // The last transaction left trimming undone (its bounds reached): the writer goes on with
  // transactions of trimming only while nothing is queued. Writer thread only.
  bool more_trim_ = false;
  std::thread writer_;
  // The writer's finished tasks, answered by the completer thread (the hub's fan-out and the
  // answers to the publishers run there), so the writer goes on with the next transaction.
  std::mutex done_mutex_;
  std::condition_variable done_ready_;
  std::deque<std::vector<Task>> done_;    // under done_mutex_
  std::vector<std::vector<Task>> spare_;  // emptied, with their capacity; under done_mutex_
  bool done_stopping_ = false;            // under done_mutex_
  std::thread completer_;
};

bool SqliteDb::Open(std::string* error) {
  // SQLite's memory statistics (unused here) take a process-wide mutex around each of its
  // mallocs and frees, a dozen per stored publication. Only possible before SQLite's first
  // use in the process (later, the call is refused and changes nothing).
  static std::once_flag no_memstatus;
  std::call_once(no_memstatus, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  const std::string& path = options_.path;
  auto fail = [&](const std::string& what, const std::string& fix) {
    *error = "sqlite: " + path + ": " + what + ": " + fix;
    return false;
  };
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    return fail(db_ ? sqlite3_errmsg(db_) : "cannot open",
                "check that the directory exists and hermod's user may write it, or set "
                "sqlite.path");
  }
  sqlite3_extended_result_codes(db_, 1);
  // A server killed a moment ago may still hold the file's locks while the kernel reaps it.
  sqlite3_busy_timeout(db_, 5000);
  auto exec = [&](const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  };
  // A new file's pages (an existing file keeps its own): 16 KiB, a quarter of the WAL frames
  // (and their writes) a burst of 1 KiB publications takes with SQLite's 4 KiB.
  exec("PRAGMA page_size=16384");
  // The first read of the file tells a corrupt or foreign file apart.
  int rc = exec("PRAGMA journal_mode=WAL");
  int version = 0;
  if (rc == SQLITE_OK) rc = ReadVersion(db_, &version);
  if (rc == SQLITE_OK && version > kSchemaVersion) {
    return fail("written by a newer hermod (schema version " + std::to_string(version) +
                    "; this one knows " + std::to_string(kSchemaVersion) + " and older)",
                "run that hermod on it, or set sqlite.path to another file; the file is left "
                "unchanged");
  }
  // A file of version 0 or 1: pubs keyed by the channel's name, migrated below.
  bool legacy = false;
  if (rc == SQLITE_OK && version < kSchemaVersion) rc = HasColumn(db_, "pubs", "channel", &legacy);
  if (rc == SQLITE_OK) rc = exec(kSchema);
  if (rc == SQLITE_OK && !legacy) rc = exec(kPubs);
  if (rc == SQLITE_OK) rc = exec("PRAGMA quick_check(1)");
  if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
    return fail(std::string("not a usable SQLite database (") + sqlite3_errmsg(db_) + ")",
                "move the file aside (or restore it from a backup) and start again, or set "
                "sqlite.path to another file");
  }
  if ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN ||
      (rc & 0xff) == SQLITE_PERM) {
    return fail(std::string("cannot write (") + sqlite3_errmsg(db_) + ")",
                "make the file and its directory writable by hermod's user, or set sqlite.path");
  }
  if (rc != SQLITE_OK) {
    return fail(sqlite3_errmsg(db_), "check the file and its directory, or set sqlite.path");
  }
  // A write now, so a read-only file stops start-up rather than the first publication.
  rc = exec("BEGIN IMMEDIATE; COMMIT");
  if (rc != SQLITE_OK) {
    return fail(std::string("cannot write (") + sqlite3_errmsg(db_) + ")",
                "make the file and its directory writable by hermod's user, or set sqlite.path");
  }
  std::string what;
  if (legacy && !Migrate(&what)) {
    return fail("cannot upgrade the file (" + what + ")",
                "check the file and its directory, or set sqlite.path; the file is left "
                "unchanged");
  }
  if (version < kSchemaVersion && !legacy &&
      exec("PRAGMA user_version=" + std::to_string(kSchemaVersion)) != SQLITE_OK) {
    return fail(std::string("cannot write (") + sqlite3_errmsg(db_) + ")",
                "make the file and its directory writable by hermod's user, or set sqlite.path");
  }
  exec(options_.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // The pages a burst touches stay cached between transactions (64 MiB at most).
  exec("PRAGMA cache_size=-65536");
  // A checkpoint copies each page the WAL holds once, however often it was rewritten: with
  // history trimmed to size the same pages take every append, so checkpoint rarely (40 MiB
  // of WAL at most) and copy each of them once for many transactions.
  exec("PRAGMA wal_autocheckpoint=10000");
  // Off, each trimmed publication's delete is a pointer update rather than zeros over its
  // cell, and a page emptied by the trim goes to the free list without a page of zeros
  // written to the WAL: the writer's instructions per stored 1 KiB publication fell by a
  // third (docs/benchmarks.md). On: the old bytes are gone from the file as soon as deleted.
  exec(options_.secure_delete ? "PRAGMA secure_delete=ON" : "PRAGMA secure_delete=OFF");
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
  wall_delta_ = WallMs() - static_cast<int64_t>(Now());

  stmts_ = std::make_unique<Stmts>();
  Stmts& s = *stmts_;
  const bool prepared =
      s.begin.Prepare(db_, "BEGIN IMMEDIATE") && s.commit.Prepare(db_, "COMMIT") &&
      s.rollback.Prepare(db_, "ROLLBACK") &&
      s.insert_pub.Prepare(db_,
                           "INSERT OR REPLACE INTO pubs(chan,offset,expires,pub) "
                           "VALUES(?1,?2,?3,?4)") &&
      s.insert_key.Prepare(db_,
                           "INSERT OR REPLACE INTO keys(channel,key,offset,epoch,expires) "
                           "VALUES(?1,?2,?3,?4,?5)") &&
      s.upsert_meta.Prepare(db_,
                            "INSERT INTO meta(channel,id,epoch,top,expires) "
                            "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(channel) DO UPDATE SET "
                            "id=excluded.id, epoch=excluded.epoch, top=excluded.top, "
                            "expires=excluded.expires") &&
      s.trim_size.Prepare(db_, "DELETE FROM pubs WHERE chan=?1 AND offset<=?2") &&
      s.remove_pubs.Prepare(db_, "DELETE FROM pubs WHERE chan=?1") &&
      // A name forgotten and opened again has a new id: its new row stays.
      s.forget_meta.Prepare(db_, "DELETE FROM meta WHERE channel=?1 AND id=?2") &&
      s.oldest.Prepare(db_,
                       "SELECT offset, expires FROM pubs WHERE chan=?1 ORDER BY offset "
                       "LIMIT ?2") &&
      s.expire_keys.Prepare(db_,
                            "DELETE FROM keys WHERE rowid IN (SELECT rowid FROM keys WHERE "
                            "expires<=?1 LIMIT ?2)") &&
      s.read_fwd.Prepare(db_,
                         "SELECT pub FROM pubs WHERE chan=?1 AND offset>?2 AND expires>?3 "
                         "ORDER BY offset LIMIT ?4") &&
      s.read_rev.Prepare(db_,
                         "SELECT pub FROM pubs WHERE chan=?1 AND offset<?2 AND expires>?3 "
                         "AND offset>?5 ORDER BY offset DESC LIMIT ?4") &&
      s.recover.Prepare(db_,
                        "SELECT pub FROM pubs WHERE chan=?1 AND offset>?2 AND offset<=?3 AND "
                        "expires>?4 ORDER BY offset LIMIT ?5");
  if (!prepared) return fail(sqlite3_errmsg(db_), "move the file aside or set sqlite.path");

  // Every channel's position, and the keys still within their window.
  const uint64_t now = Now();
  {
    Stmt q;
    if (!q.Prepare(db_, "SELECT max(chan) FROM pubs")) {
      return fail(sqlite3_errmsg(db_), "move the file aside or set sqlite.path");
    }
    if (q.Step() == SQLITE_ROW) next_id_ = q.Int(0) + 1;
  }
  {
    Stmt q;
    if (!q.Prepare(db_, "SELECT channel, id, epoch, top, expires FROM meta")) {
      return fail(sqlite3_errmsg(db_), "move the file aside or set sqlite.path");
    }
    while (q.Step() == SQLITE_ROW) {
      next_id_ = std::max(next_id_, q.Int(1) + 1);
      std::string name(q.Text(0));
      auto chan = std::make_shared<Chan>(name, q.Int(1), std::string(q.Text(2)),
                                         static_cast<uint64_t>(q.Int(3)));
      chan->expires.store(q.Int(4));
      chan->writer_expires = q.Int(4);
      // Due at once: the first transactions find when its oldest publication expires.
      if (chan->writer_expires != 0) ListExpiring(chan, 0);
      chan->closed_ms = now;
      chan->closed_at = closed_.insert(closed_.end(), chan.get());
      channels_.emplace(std::move(name), std::move(chan));
    }
    // What expired while hermod was down is deleted from the start, not from the first write.
    more_trim_ = !expiring_.empty();
  }
  {
    Stmt q;
    if (!q.Prepare(db_, "SELECT channel, key, offset, epoch, expires FROM keys WHERE expires>?1")) {
      return fail(sqlite3_errmsg(db_), "move the file aside or set sqlite.path");
    }
    q.Bind(1, WallMs());
    while (q.Step() == SQLITE_ROW) {
      const int64_t expires = q.Int(4) - wall_delta_;
      keys_[std::string(q.Text(0))].push_back(
          Key{std::string(q.Text(1)),
              {static_cast<uint64_t>(q.Int(2)), std::string(q.Text(3))},
              expires > 0 ? static_cast<uint64_t>(expires) : 0});
    }
  }
  status_.engine = "sqlite";
  status_.failure_threshold = options_.breaker.failure_threshold;
  return true;
}

bool SqliteDb::Migrate(std::string* what) {
  auto exec = [this](const char* sql) {
    return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
  };
  bool has_expires = false;
  bool ok =
      exec("BEGIN IMMEDIATE") && HasColumn(db_, "meta", "expires", &has_expires) == SQLITE_OK &&
      // A file from before meta had its expires column: added, and filled from pubs.
      (has_expires || (exec("ALTER TABLE meta ADD COLUMN expires INTEGER NOT NULL DEFAULT 0") &&
                       exec("UPDATE meta SET expires=coalesce((SELECT max(expires) FROM pubs WHERE "
                            "pubs.channel=meta.channel),0)"))) &&
      // Each channel's id: its row's rowid, unique in meta.
      exec("ALTER TABLE meta ADD COLUMN id INTEGER NOT NULL DEFAULT 0") &&
      exec("UPDATE meta SET id=rowid") && exec("DROP INDEX IF EXISTS pubs_expires") &&
      exec("DROP INDEX IF EXISTS pubs_key") && exec("ALTER TABLE pubs RENAME TO pubs_v1") &&
      exec(kPubs) &&
      // In the order they were stored; a row of no channel in meta was never read.
      exec(
          "INSERT INTO pubs(chan,offset,expires,pub) SELECT meta.id, p.offset, "
          "p.expires, p.pub FROM pubs_v1 p JOIN meta ON meta.channel=p.channel "
          "ORDER BY p.rowid") &&
      exec("DROP TABLE pubs_v1") &&
      exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str()) && exec("COMMIT");
  if (!ok) {
    *what = sqlite3_errmsg(db_);
    exec("ROLLBACK");
  }
  return ok;
}

void SqliteDb::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  // The writer completes what is queued, then returns; then the completer answers it all.
  if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
  {
    std::lock_guard lock(done_mutex_);
    done_stopping_ = true;
  }
  done_ready_.notify_all();
  if (completer_.joinable() && completer_.get_id() != std::this_thread::get_id()) {
    completer_.join();
  }
}

std::shared_ptr<SqliteDb::Chan> SqliteDb::OpenChannel(std::string_view channel, uint64_t now_ms) {
  std::shared_ptr<Chan> chan;
  {
    std::lock_guard lock(channels_mutex_);
    auto it = channels_.find(std::string(channel));
    if (it != channels_.end()) {
      Chan& c = *it->second;
      if (!c.open) closed_.erase(c.closed_at);
      c.open = true;
      return it->second;
    }
    chan = std::make_shared<Chan>(std::string(channel), next_id_++, NewEpoch(), 0);
    chan->open = true;
    channels_.emplace(std::string(channel), chan);
  }
  // The new epoch is written before any append, so a restart keeps it even if nothing is
  // published. Its id is new: no older publication of the name is read as its.
  Task task{Op::kNew};
  task.chan = chan;
  task.now = now_ms;
  Post(task);
  return chan;
}

void SqliteDb::CloseChannel(const std::shared_ptr<Chan>& chan, uint64_t now_ms) {
  std::vector<std::pair<std::string, int64_t>> forgotten;
  {
    std::lock_guard lock(channels_mutex_);
    if (!chan->open) return;
    chan->open = false;
    chan->closed_ms = now_ms;
    chan->closed_at = closed_.insert(closed_.end(), chan.get());
    forgotten = EvictClosed(now_ms);
  }
  if (!forgotten.empty()) stats::RecordHistoryMetaEvicted(forgotten.size());
  for (auto& [name, id] : forgotten) PostForget(std::move(name), id);
}

void SqliteDb::PostForget(std::string name, int64_t id) {
  Task task{Op::kForget};
  task.More().channel = std::move(name);
  task.More().id = id;
  Post(task);
}

std::vector<std::pair<std::string, int64_t>> SqliteDb::EvictClosed(uint64_t now_ms) {
  std::vector<std::pair<std::string, int64_t>> forgotten;
  if (closed_.size() <= meta_max_channels_) return forgotten;
  size_t excess = closed_.size() - meta_max_channels_;
  const int64_t now_wall = ToWall(now_ms);
  // A channel whose history is still held keeps its position (forgetting it would drop the
  // history); a bounded look past those, so a close costs O(1).
  size_t looked = 0;
  for (auto it = closed_.begin(); it != closed_.end() && excess > 0 && looked < 64; ++looked) {
    Chan* c = *it;
    if (c->expires.load() > now_wall) {
      ++it;
      continue;
    }
    forgotten.emplace_back(c->name, c->id);
    it = closed_.erase(it);
    channels_.erase(forgotten.back().first);  // c is gone now
    --excess;
  }
  return forgotten;
}

std::optional<core::StreamPosition> SqliteDb::Kept(std::string_view channel) {
  std::lock_guard lock(channels_mutex_);
  auto it = channels_.find(std::string(channel));
  if (it == channels_.end()) return std::nullopt;
  return core::StreamPosition{it->second->top.load(), it->second->epoch};
}

void SqliteDb::ExpireKept(uint64_t now_ms) {
  std::vector<std::pair<std::string, int64_t>> forgotten;
  {
    std::lock_guard lock(channels_mutex_);
    if (meta_ttl_ms_ == 0) return;
    for (auto it = channels_.begin(); it != channels_.end();) {
      const Chan& c = *it->second;
      if (!c.open && c.closed_ms + meta_ttl_ms_ <= now_ms) {
        forgotten.emplace_back(it->first, c.id);
        closed_.erase(c.closed_at);
        it = channels_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [name, id] : forgotten) PostForget(std::move(name), id);
}

std::vector<SqliteDb::Key> SqliteDb::TakeKeys(std::string_view channel) {
  std::lock_guard lock(channels_mutex_);
  auto it = keys_.find(std::string(channel));
  if (it == keys_.end()) return {};
  std::vector<Key> keys = std::move(it->second);
  keys_.erase(it);
  return keys;
}

bool SqliteDb::Exec(std::function<bool(sqlite3*)> write, std::function<void(bool)> done) {
  Task task{Op::kCall};
  task.call = std::move(write);
  task.called = std::move(done);
  return Post(task);
}

bool SqliteDb::Post(Task& task, const Bytes& bytes) {
  task.queued_us = SteadyUs();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    // An open breaker refuses writes at once: nothing piles up behind a file that fails.
    // A key is a publication's (one without history), refused like an append.
    const bool publication = task.op == Op::kAppend || task.op == Op::kKey;
    if (publication && breaker_.state() == core::CircuitBreaker::State::kOpen) {
      ++status_.errors[StoreStatus::kBreakerOpen];
      return false;
    }
    // Publications faster than the disk takes them are refused, not queued without bound.
    if (publication && queue_.size() >= options_.max_queue) {
      ++status_.errors[StoreStatus::kQueueFull];
      return false;
    }
    auto put = [this](std::string_view part) {
      const Span span{queue_bytes_.size(), part.size()};
      queue_bytes_.append(part);
      return span;
    };
    task.data = put(bytes.data);
    task.info = put(bytes.info);
    task.tags = put(bytes.tags);
    task.key = put(bytes.key);
    queue_.push_back(std::move(task));
    status_.queue_depth = queue_.size();
    outstanding_.fetch_add(1, std::memory_order_relaxed);
  }
  ready_.notify_one();
  return true;
}

std::optional<core::HistoryAppended> SqliteDb::Append(
    const std::shared_ptr<Chan>& chan, const core::HistoryAppend& a,
    const core::PublicationEncoder& encode, core::Completion<core::HistoryAppended> done) {
  Task task{Op::kAppend};
  task.chan = chan;
  task.size = a.size;
  task.ttl = a.ttl_ms;
  task.now = a.now_ms;
  task.encode = &encode;
  task.appended = std::move(done);
  if (Post(task, {a.data, a.info, a.tags, a.idempotency_key})) return std::nullopt;
  core::HistoryAppended failed;
  failed.failed = true;
  return failed;
}

void SqliteDb::Read(const std::shared_ptr<Chan>& chan, const core::HistoryQuery& query,
                    core::Completion<core::HistoryPage> done) {
  Task task{Op::kRead};
  task.chan = chan;
  task.More().query = query;
  task.More().page = std::move(done);
  if (!Post(task)) {
    core::HistoryPage page;
    page.failed = true;
    task.More().page(std::move(page));
  }
}

void SqliteDb::Recover(const std::shared_ptr<Chan>& chan, const core::RecoveryQuery& query,
                       core::Completion<core::HistoryStream::Recovery> done) {
  Task task{Op::kRecover};
  task.chan = chan;
  task.More().recovery = query;
  task.More().recovered = std::move(done);
  if (!Post(task)) task.More().recovered({});
}

void SqliteDb::Remove(const std::shared_ptr<Chan>& chan, core::Completion<bool> done) {
  Task task{Op::kRemove};
  task.chan = chan;
  task.More().removed = std::move(done);
  if (!Post(task) && task.More().removed) task.More().removed(false);
}

bool SqliteDb::PutKey(std::string_view channel, std::string_view key,
                      const core::StreamPosition& position, uint64_t expires_ms,
                      core::Completion<bool> done) {
  Task task{Op::kKey};
  task.More().channel = channel;
  task.More().position = position;
  task.expires = expires_ms;
  task.More().stored = std::move(done);
  return Post(task, Bytes{{}, {}, {}, key});
}

void SqliteDb::Run() {
  std::vector<Task> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty() || more_trim_; });
      if (queue_.empty() && stopping_) return;  // everything queued is done
      batch.swap(queue_);
      bytes_.swap(queue_bytes_);
      queue_bytes_.clear();
      status_.queue_depth = 0;
    }
    // At most max_batch writes per transaction, each transaction's tasks answered as soon as
    // it commits. Nothing queued: a transaction that only goes on with the trimming left.
    if (batch.empty()) {
      Transaction(batch, 0, 0);
    } else if (batch.size() <= options_.max_batch) {
      Process(batch, 0, batch.size());
      HandOff(std::move(batch));
    } else {
      for (size_t i = 0; i < batch.size(); i += options_.max_batch) {
        const size_t end = std::min(batch.size(), i + options_.max_batch);
        Process(batch, i, end);
        HandOff(std::vector<Task>(
            std::make_move_iterator(batch.begin() + static_cast<ptrdiff_t>(i)),
            std::make_move_iterator(batch.begin() + static_cast<ptrdiff_t>(end))));
      }
    }
    batch.clear();
    // Its capacity is kept for the next burst, unless a rare flood made it large.
    if (bytes_.capacity() > kKeptBytes) std::string().swap(bytes_);
    std::lock_guard lock(done_mutex_);
    if (!spare_.empty()) {
      batch = std::move(spare_.back());
      spare_.pop_back();
    }
  }
}

void SqliteDb::HandOff(std::vector<Task> tasks) {
  {
    std::lock_guard lock(done_mutex_);
    done_.push_back(std::move(tasks));
  }
  done_ready_.notify_one();
}

void SqliteDb::RunCompleter() {
  for (;;) {
    std::vector<Task> tasks;
    {
      std::unique_lock lock(done_mutex_);
      done_ready_.wait(lock, [this] { return done_stopping_ || !done_.empty(); });
      if (done_.empty()) return;  // stopping, and everything handed off is answered
      tasks = std::move(done_.front());
      done_.pop_front();
    }
    for (Task& t : tasks) Complete(t);
    // Answered: the read pause (Backlogged, Drained) counts a task until now.
    outstanding_.fetch_sub(tasks.size(), std::memory_order_relaxed);
    tasks.clear();
    std::lock_guard lock(done_mutex_);
    if (spare_.size() < 2) spare_.push_back(std::move(tasks));
  }
}

void SqliteDb::Complete(Task& t) {
  switch (t.op) {
    case Op::kAppend:
      t.appended(std::move(t.result));
      break;
    case Op::kKey:
      t.rare->stored(t.ok);  // the publish is answered now: stored, or refused
      break;
    case Op::kRemove:
      // history_remove is answered now: removed, or refused (nothing of it is stored).
      if (t.rare->removed) t.rare->removed(t.ok);
      break;
    case Op::kRead:
      t.rare->page(std::move(t.rare->page_result));
      break;
    case Op::kRecover:
      t.rare->recovered(std::move(t.rare->recovery_result));
      break;
    case Op::kNew:
    case Op::kForget:
    case Op::kCall:  // answered by the writer (SqliteEngine::Exec)
      break;
  }
}

void SqliteDb::Process(std::vector<Task>& batch, size_t begin, size_t end) {
  auto is_read = [](const Task& t) { return t.op == Op::kRead || t.op == Op::kRecover; };
  size_t i = begin;
  while (i < end) {
    if (is_read(batch[i])) {
      batch[i].op == Op::kRead ? RunRead(batch[i]) : RunRecover(batch[i]);
      ++i;
      continue;
    }
    size_t j = i;
    while (j < end && !is_read(batch[j])) ++j;
    Transaction(batch, i, j);
    i = j;
  }
}

bool SqliteDb::FileGone() {
  struct stat st {};
  return stat(options_.path.c_str(), &st) != 0 || st.st_ino != ino_ || st.st_dev != dev_;
}

bool SqliteDb::Write(Task& t, core::HistoryAppended* result, std::unordered_set<Chan*>* touched) {
  Stmts& s = *stmts_;
  switch (t.op) {
    case Op::kNew:
      return s.upsert_meta.Bind(1, t.chan->name)
          .Bind(2, t.chan->id)
          .Bind(3, t.chan->epoch)
          .Bind(4, static_cast<int64_t>(t.chan->writer_top))
          .Bind(5, int64_t{0})
          .Run();
    case Op::kAppend: {
      Chan& c = *t.chan;
      const uint64_t offset = c.writer_top + 1;
      const int64_t expires = ToWall(t.now + t.ttl);
      touched->insert(&c);
      result->position = {offset, c.epoch};
      result->publication = (*t.encode)(Of(t.data), Of(t.info), offset, Of(t.tags));
      if (!s.insert_pub.Bind(1, c.id)
               .Bind(2, static_cast<int64_t>(offset))
               .Bind(3, expires)
               .Blob(4, result->publication)
               .Run()) {
        return false;
      }
      const std::string_view key = Of(t.key);
      if (!key.empty() &&
          !s.insert_key.Bind(1, c.name)
               .Bind(2, key)
               .Bind(3, static_cast<int64_t>(offset))
               .Bind(4, c.epoch)
               .Bind(5, KeyExpires(key, ToWall(t.now + options_.idempotency_window_ms)))
               .Run()) {
        return false;
      }
      c.writer_top = offset;
      c.writer_expires = std::max(c.writer_expires, expires);
      if (!c.writer_expiring) ListExpiring(t.chan, expires);
      if (t.size > 0 && offset > t.size) {
        c.writer_floor = std::max(c.writer_floor, offset - t.size);
        if (!c.writer_trimming) {
          c.writer_trimming = true;
          trimming_.push_back(t.chan);
        }
      }
      return true;
    }
    case Op::kRemove:
      touched->insert(t.chan.get());
      t.chan->writer_expires = 0;  // no history left; the position stays
      t.chan->writer_low = t.chan->writer_top + 1;
      return s.remove_pubs.Bind(1, t.chan->id).Run();
    case Op::kKey:
      return s.insert_key.Bind(1, t.rare->channel)
          .Bind(2, Of(t.key))
          .Bind(3, static_cast<int64_t>(t.rare->position.offset))
          .Bind(4, t.rare->position.epoch)
          .Bind(5, KeyExpires(Of(t.key), ToWall(t.expires)))
          .Run();
    case Op::kForget:
      return s.remove_pubs.Bind(1, t.rare->id).Run() &&
             s.forget_meta.Bind(1, t.rare->channel).Bind(2, t.rare->id).Run();
    case Op::kCall:
      return t.call(db_);
    case Op::kRead:
    case Op::kRecover:
      break;
  }
  return true;
}

void SqliteDb::Transaction(std::vector<Task>& batch, size_t begin, size_t end) {
  Stmts& s = *stmts_;
  bool allowed;
  {
    std::lock_guard lock(mutex_);
    allowed = breaker_.Allow();
  }
  std::optional<StoreStatus::Reason> reason;
  std::string message;
  if (!allowed) {
    reason = StoreStatus::kBreakerOpen;
  } else if (FileGone()) {
    reason = StoreStatus::kFileGone;
    message = "sqlite: " + options_.path +
              " was removed or replaced while hermod runs: publications with history are "
              "refused; restore the file and restart hermod";
  }
  std::unordered_set<Chan*> touched;           // channels written
  std::vector<std::shared_ptr<Chan>> trimmed;  // channels trimmed to size
  Expiry expiry;
  bool began = false;
  bool ok = !reason;
  bool keys_left = false;  // expired keys past max_trim
  const int64_t now_wall = WallMs();
  if (ok) ok = began = s.begin.Run();
  uint64_t appends = 0;
  for (size_t i = begin; ok && i < end; ++i) {
    ok = Write(batch[i], &batch[i].result, &touched);
    appends += batch[i].op == Op::kAppend ? 1 : 0;
  }
  if (ok) {
    // The channel's top, once per channel per transaction.
    for (Chan* chan : touched) {
      ok = ok && s.upsert_meta.Bind(1, chan->name)
                     .Bind(2, chan->id)
                     .Bind(3, chan->epoch)
                     .Bind(4, static_cast<int64_t>(chan->writer_top))
                     .Bind(5, chan->writer_expires)
                     .Run();
    }
    // Past history_size: as many as this transaction appends, so trimming keeps up with
    // publishing, and max_trim more of a backlog (history_size shrunk). Expired rows and
    // keys: at most max_trim of each.
    const auto max_trim = static_cast<int64_t>(options_.max_trim);
    ok = ok && TrimToSize(appends + options_.max_trim, &trimmed);
    ok = ok && ExpireDue(now_wall, &expiry);
    ok = ok && s.expire_keys.Bind(1, now_wall).Bind(2, max_trim).Run();
    keys_left = ok && sqlite3_changes(db_) >= max_trim;
  }
  if (ok) ok = s.commit.Run();
  if (!ok && !reason) {
    reason = StoreStatus::kIo;
    message = "sqlite: " + options_.path + ": " + sqlite3_errmsg(db_) +
              ": publications with history are refused until a write succeeds";
  }
  if (!ok && began) s.rollback.Run();
  if (!ok) {
    // Nothing was deleted: the channels visited are due as they were, and where their
    // oldest row is is read from the file again.
    for (auto& [at, chan] : expiry.visited) {
      chan->writer_low = 0;
      if (!chan->writer_expiring) ListExpiring(chan, at);
    }
    for (auto& chan : trimmed) chan->writer_low = 0;
    // Nothing of the burst is stored: its channels continue from their committed top.
    for (Chan* chan : touched) {
      chan->writer_top = chan->top.load();
      chan->writer_expires = chan->expires.load();
      chan->writer_floor = chan->floor.load();
      chan->writer_low = 0;
    }
    more_trim_ = false;  // until a write succeeds
    Fail(*reason, std::move(message));
  } else {
    for (Chan* chan : touched) {
      chan->top.store(chan->writer_top);
      chan->expires.store(chan->writer_expires);
      chan->floor.store(chan->writer_floor);
    }
    for (auto& [at, chan] : expiry.due) {
      if (!chan->writer_expiring) ListExpiring(chan, at);
    }
    // Trimming left by the bounds goes on in the next transaction, written or not.
    more_trim_ = !trimming_.empty() || keys_left ||
                 (!expiring_.empty() && expiring_.begin()->first <= now_wall);
    std::lock_guard lock(mutex_);
    breaker_.OnSuccess();
    status_.last_error.clear();
  }
  if (allowed && !ok && reason != StoreStatus::kBreakerOpen) {
    std::lock_guard lock(mutex_);
    breaker_.OnFailure();
  }
  // Answered by the completer in queue order, so each channel's appends in the order they
  // were made; another concern's writes (kCall) here, on the writer, as Exec promises.
  const uint64_t now_us = SteadyUs();
  for (size_t i = begin; i < end; ++i) {
    Task& t = batch[i];
    t.ok = ok;
    if (t.op == Op::kAppend) {
      if (!ok) t.result = core::HistoryAppended{true, {}, {}, {}};
      Record(StoreStatus::kAppend, t.queued_us, now_us);
    } else if (t.op == Op::kKey) {
      Record(StoreStatus::kKey, t.queued_us, now_us);
    } else if (t.op == Op::kRemove) {
      ++recorded_.operations[StoreStatus::kRemove];
    }
  }
  if (ok) ++recorded_.operations[StoreStatus::kTrim];
  PublishRecorded();  // before the answers: /metrics counts what was answered
  for (size_t i = begin; i < end; ++i) {
    Task& t = batch[i];
    if (t.op == Op::kCall && t.called) t.called(ok);
  }
}

void SqliteDb::ListExpiring(const std::shared_ptr<Chan>& chan, int64_t expires) {
  chan->writer_expiring = true;
  expiring_.emplace(expires, chan);
}

bool SqliteDb::ExpireDue(int64_t now_wall, Expiry* expiry) {
  Stmts& s = *stmts_;
  // A channel's publications are deleted from its oldest while they have expired: with one
  // history_ttl per channel they expire in offset order. One published with a shorter TTL
  // than those before it (the namespace changed) is kept until they expire, and never read
  // (reads skip what has expired).
  auto budget = static_cast<int64_t>(options_.max_trim);
  while (budget > 0 && !expiring_.empty() && expiring_.begin()->first <= now_wall) {
    auto node = expiring_.extract(expiring_.begin());
    std::shared_ptr<Chan> chan = std::move(node.mapped());
    chan->writer_expiring = false;
    expiry->visited.emplace_back(node.key(), chan);
    Stmt& q = s.oldest;
    q.Bind(1, chan->id).Bind(2, budget + 1);
    int64_t last = -1;  // the newest offset that expired
    int64_t next = 0;   // when the oldest one left expires (0: none left)
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      if (q.Int(1) > now_wall || budget == 0) {
        next = budget == 0 ? now_wall : q.Int(1);
        break;
      }
      last = q.Int(0);
      --budget;
    }
    q.Reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return false;
    if (last >= 0 && !s.trim_size.Bind(1, chan->id).Bind(2, last).Run()) return false;
    // Rows are a channel's offsets from its oldest to its top: the oldest left is last + 1.
    if (last >= 0) chan->writer_low = static_cast<uint64_t>(last) + 1;
    if (next != 0) expiry->due.emplace_back(next, std::move(chan));
  }
  return true;
}

bool SqliteDb::FindLow(Chan& c) {
  Stmt& q = stmts_->oldest;
  q.Bind(1, c.id).Bind(2, int64_t{1});
  const int rc = q.Step();
  c.writer_low = rc == SQLITE_ROW ? static_cast<uint64_t>(q.Int(0)) : c.writer_top + 1;
  q.Reset();
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

bool SqliteDb::TrimToSize(uint64_t budget, std::vector<std::shared_ptr<Chan>>* changed) {
  size_t done = 0;  // channels of trimming_ with nothing left past their floor
  while (done < trimming_.size() && budget > 0) {
    const std::shared_ptr<Chan>& chan = trimming_[done];
    Chan& c = *chan;
    if (c.writer_low == 0 && !FindLow(c)) return false;
    if (c.writer_floor >= c.writer_low) {
      // Offsets are contiguous from writer_low: this deletes upto - writer_low + 1 rows.
      const uint64_t upto = std::min(c.writer_floor, c.writer_low - 1 + budget);
      if (!stmts_->trim_size.Bind(1, c.id).Bind(2, static_cast<int64_t>(upto)).Run()) {
        return false;
      }
      budget -= upto - c.writer_low + 1;
      c.writer_low = upto + 1;
      changed->push_back(chan);
      if (c.writer_floor >= c.writer_low) break;  // the budget is spent: it stays listed
    }
    ++done;
  }
  for (size_t i = 0; i < done; ++i) trimming_[i]->writer_trimming = false;
  trimming_.erase(trimming_.begin(), trimming_.begin() + static_cast<ptrdiff_t>(done));
  return true;
}

void SqliteDb::Fail(StoreStatus::Reason reason, std::string message) {
  std::lock_guard lock(mutex_);
  ++status_.errors[reason];
  if (!message.empty()) status_.last_error = std::move(message);
}

void SqliteDb::Record(StoreStatus::Kind kind, uint64_t queued_us, uint64_t now_us) {
  const double seconds = static_cast<double>(now_us - queued_us) / 1e6;
  size_t bucket = 0;
  while (bucket < StoreStatus::kLatencyBounds.size() &&
         seconds > StoreStatus::kLatencyBounds[bucket]) {
    ++bucket;
  }
  ++recorded_.operations[kind];
  ++recorded_.buckets[bucket];
  recorded_.sum_s += seconds;
  ++recorded_.count;
}

void SqliteDb::PublishRecorded() {
  std::lock_guard lock(mutex_);
  for (size_t k = 0; k < StoreStatus::kKinds; ++k) status_.operations[k] += recorded_.operations[k];
  for (size_t b = 0; b < recorded_.buckets.size(); ++b) {
    status_.latency_buckets[b] += recorded_.buckets[b];
  }
  status_.latency_sum_s += recorded_.sum_s;
  status_.latency_count += recorded_.count;
  recorded_ = {};
}

void SqliteDb::RunRead(Task& t) {
  const Chan& c = *t.chan;
  const core::HistoryQuery& q = t.rare->query;
  core::HistoryPage page;
  page.position = {c.top.load(), c.epoch};
  if (q.since && !q.since->epoch.empty() && q.since->epoch != c.epoch) {
    page.unrecoverable = true;
  } else if (q.limit != 0) {
    Stmt& st = q.reverse ? stmts_->read_rev : stmts_->read_fwd;
    // What is past history_size and not yet deleted is not history.
    const auto floor = static_cast<int64_t>(c.floor.load());
    int64_t bound = 0;
    if (q.reverse) {
      bound = q.since && q.since->offset != 0 ? SinceBound(q.since->offset) : INT64_MAX;
      st.Bind(5, floor);
    } else {
      bound = std::max(floor, q.since ? SinceBound(q.since->offset) : 0);
    }
    st.Bind(1, c.id).Bind(2, bound).Bind(3, ToWall(q.now_ms)).Bind(4, q.limit < 0 ? -1 : q.limit);
    size_t bytes = 0;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      const std::string_view pub = st.Text(0);
      if (pub.size() + 1 > q.max_bytes - bytes) {
        page.cut = true;
        break;
      }
      bytes += pub.size() + 1;
      page.publications.emplace_back(pub);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      page.failed = true;
      page.publications.clear();
    }
    st.Reset();
  }
  Record(StoreStatus::kRead, t.queued_us, SteadyUs());
  PublishRecorded();
  t.rare->page_result = std::move(page);
}

void SqliteDb::RunRecover(Task& t) {
  const Chan& c = *t.chan;
  const core::RecoveryQuery& q = t.rare->recovery;
  core::HistoryStream::Recovery r;
  const uint64_t top = c.top.load();
  const bool same = q.since.epoch.empty() || q.since.epoch == c.epoch;
  // Missed publications past history_size (at or below the floor) are not history, even if
  // still in the file.
  if (same && q.since.offset <= top && q.since.offset >= c.floor.load()) {
    // What the hub has fanned out is what the subscriber may get (see history_store.h).
    const uint64_t upto = std::max(q.since.offset, std::min(top, q.until));
    const uint64_t wanted = upto - q.since.offset;
    if (wanted <= q.max_publications) {
      Stmt& st = stmts_->recover;
      st.Bind(1, c.id)
          .Bind(2, static_cast<int64_t>(q.since.offset))
          .Bind(3, static_cast<int64_t>(upto))
          .Bind(4, ToWall(q.now_ms))
          .Bind(5, static_cast<int64_t>(wanted));
      size_t bytes = 0;
      bool fits = true;
      while (st.Step() == SQLITE_ROW) {
        const std::string_view pub = st.Text(0);
        bytes += pub.size() + 1;
        if (bytes > q.max_bytes) {
          fits = false;
          break;
        }
        r.publications.emplace_back(pub);
      }
      st.Reset();
      // Recovered only when every publication missed is still held.
      r.recovered = fits && r.publications.size() == wanted;
      if (!r.recovered) r.publications.clear();
    }
  }
  Record(StoreStatus::kRecover, t.queued_us, SteadyUs());
  PublishRecorded();
  t.rare->recovery_result = std::move(r);
}

StoreStatus SqliteDb::Status() const {
  std::lock_guard lock(mutex_);
  StoreStatus s = status_;
  s.breaker = breaker_.state();
  return s;
}

namespace {

class SqliteStream final : public core::HistoryStore::Stream {
 public:
  SqliteStream(std::shared_ptr<SqliteDb> db, std::shared_ptr<SqliteDb::Chan> chan)
      : db_(std::move(db)), chan_(std::move(chan)) {}
  core::StreamPosition Position() const override { return {chan_->top.load(), chan_->epoch}; }
  std::optional<core::HistoryAppended> Append(
      const core::HistoryAppend& append, const core::PublicationEncoder& encode,
      core::Completion<core::HistoryAppended> done) override {
    return db_->Append(chan_, append, encode, std::move(done));
  }
  std::optional<core::HistoryPage> Read(const core::HistoryQuery& query,
                                        core::Completion<core::HistoryPage> done) override {
    db_->Read(chan_, query, std::move(done));
    return std::nullopt;
  }
  std::optional<core::HistoryStream::Recovery> Recover(
      const core::RecoveryQuery& query,
      core::Completion<core::HistoryStream::Recovery> done) override {
    db_->Recover(chan_, query, std::move(done));
    return std::nullopt;
  }
  void Remove() override { db_->Remove(chan_); }
  std::optional<bool> RemoveThen(core::Completion<bool> done) override {
    db_->Remove(chan_, std::move(done));
    return std::nullopt;
  }
  // Durable: nothing of it is held in this process's memory but its position.
  void Expire(uint64_t) override {}
  size_t entries() const override { return 0; }
  size_t bytes() const override { return 0; }
  uint64_t expires_ms() const override { return 0; }
  const std::shared_ptr<SqliteDb::Chan>& chan() const { return chan_; }

 private:
  std::shared_ptr<SqliteDb> db_;
  std::shared_ptr<SqliteDb::Chan> chan_;
};

class SqliteHistoryStore final : public core::HistoryStore {
 public:
  explicit SqliteHistoryStore(std::shared_ptr<SqliteDb> db) : db_(std::move(db)) {}
  // The hub destroys its engines first: what is queued is stored and completed now.
  ~SqliteHistoryStore() override { db_->Stop(); }
  const char* name() const override { return "sqlite"; }
  void SetMetaLimits(uint64_t ttl_ms, size_t max_channels) override {
    db_->SetMetaLimits(ttl_ms, max_channels);
  }
  std::unique_ptr<Stream> Open(std::string_view channel, uint64_t now_ms) override {
    return std::make_unique<SqliteStream>(db_, db_->OpenChannel(channel, now_ms));
  }
  void Close(std::string_view, std::unique_ptr<Stream> stream, uint64_t now_ms) override {
    if (stream) db_->CloseChannel(static_cast<SqliteStream&>(*stream).chan(), now_ms);
  }
  std::optional<core::StreamPosition> Kept(std::string_view channel, uint64_t) override {
    return db_->Kept(channel);
  }
  void ExpireKept(uint64_t now_ms) override { db_->ExpireKept(now_ms); }
  bool Backlogged() const override { return db_->Backlogged(); }
  bool Drained() const override { return db_->Drained(); }

 private:
  std::shared_ptr<SqliteDb> db_;
};

// A channel's keys in memory (Find answers from here). A key reaches the file with its
// publication's append, or through PutDurable (one without history); Put only remembers.
class SqliteKeys final : public core::IdempotencyStore::Keys {
 public:
  SqliteKeys(std::shared_ptr<SqliteDb> db, std::string channel, std::vector<SqliteDb::Key> loaded)
      : db_(std::move(db)), channel_(std::move(channel)) {
    for (SqliteDb::Key& k : loaded) keys_[std::move(k.key)] = {std::move(k.position), k.expires_ms};
  }
  std::optional<core::StreamPosition> Find(std::string_view key, uint64_t now_ms) override {
    auto it = keys_.find(std::string(key));
    if (it == keys_.end() || it->second.second <= now_ms) return std::nullopt;
    return it->second.first;
  }
  void Put(std::string_view key, const core::StreamPosition& position, uint64_t now_ms,
           uint64_t expires_ms) override {
    if (keys_.size() >= 1024) Expire(now_ms);
    keys_[std::string(key)] = {position, expires_ms};
  }
  bool durable() const override { return true; }
  bool PutDurable(std::string_view key, const core::StreamPosition& position, uint64_t expires_ms,
                  core::Completion<bool> done) override {
    return db_->PutKey(channel_, key, position, expires_ms, std::move(done));
  }
  void Expire(uint64_t now_ms) override {
    std::erase_if(keys_, [now_ms](const auto& e) { return e.second.second <= now_ms; });
  }
  size_t size() const override { return keys_.size(); }

 private:
  std::shared_ptr<SqliteDb> db_;
  std::string channel_;
  std::unordered_map<std::string, std::pair<core::StreamPosition, uint64_t>> keys_;
};

class SqliteIdempotencyStore final : public core::IdempotencyStore {
 public:
  explicit SqliteIdempotencyStore(std::shared_ptr<SqliteDb> db) : db_(std::move(db)) {}
  const char* name() const override { return "sqlite"; }
  std::unique_ptr<Keys> Open(std::string_view channel) override {
    return std::make_unique<SqliteKeys>(db_, std::string(channel), db_->TakeKeys(channel));
  }

 private:
  std::shared_ptr<SqliteDb> db_;
};

}  // namespace

std::shared_ptr<SqliteEngine> SqliteEngine::Open(const SqliteOptions& options, std::string* error) {
  auto db = std::make_shared<SqliteDb>(options);
  std::string message;
  if (!db->Open(&message)) {
    if (error != nullptr) *error = std::move(message);
    return nullptr;
  }
  db->Start();
  return std::shared_ptr<SqliteEngine>(new SqliteEngine(std::move(db)));
}

SqliteEngine::SqliteEngine(std::shared_ptr<SqliteDb> db) : db_(std::move(db)) {}
SqliteEngine::~SqliteEngine() = default;

std::unique_ptr<core::HistoryStore> SqliteEngine::History() {
  return std::make_unique<SqliteHistoryStore>(db_);
}
std::unique_ptr<core::IdempotencyStore> SqliteEngine::Idempotency() {
  return std::make_unique<SqliteIdempotencyStore>(db_);
}
StoreStatus SqliteEngine::Status() const { return db_->Status(); }
bool SqliteEngine::Exec(std::function<bool(sqlite3*)> write, std::function<void(bool)> done) {
  return db_->Exec(std::move(write), std::move(done));
}
namespace {
// Exec, with a refusal (a stopped writer) answered as done(false) at once.
void ExecOrRefuse(SqliteDb& db, std::function<bool(sqlite3*)> write,
                  std::function<void(bool)> done) {
  auto once = std::make_shared<std::function<void(bool)>>(std::move(done));
  if (!db.Exec(std::move(write), [once](bool ok) { (*once)(ok); })) (*once)(false);
}
}  // namespace
std::unique_ptr<core::ScheduleStore> SqliteEngine::Schedules() {
  return MakeSqliteSchedules(
      [db = db_](std::function<bool(sqlite3*)> fn, std::function<void(bool)> done) {
        ExecOrRefuse(*db, std::move(fn), std::move(done));
      });
}
void SqliteEngine::Write(std::function<bool(sqlite3*)> write, std::function<void(bool)> done) {
  ExecOrRefuse(*db_, std::move(write), std::move(done));
}
void SqliteEngine::Stop() { db_->Stop(); }

}  // namespace hermod::store
