// The sqlite engine's writer, watched from inside its own transactions: a real file, the
// engine's own connection seen through SQLite's update and commit hooks (installed by a write
// of SqliteEngine::Exec, on the writer thread), so each transaction's inserted and deleted
// publications are counted as SQLite makes them. A write that waits on the test holds the
// writer, so what is queued meanwhile is known exactly: no sleep, no timing.
//
// - Group commit: a burst of history appends queued while the writer is busy is one
//   transaction (sqlite.max_batch more: one per max_batch), counted by
//   hermod_store_operations_total{kind="trim"} (one per transaction).
// - hermod_store_queue_depth: what waits for the writer, and 0 once it is done.
// - Trimming to history_size and by history_ttl deletes at most sqlite.max_trim publications
//   per transaction (to size: plus as many as the transaction appends); a backlog (history
//   shrunk, or expired while nothing was written) is finished over several transactions,
//   on its own, while appends queued meanwhile go into the next transaction.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/history_store.h"
#include "net/event_loop.h"
#include "store/sqlite_store.h"
#include "store/store_status.h"

namespace hermod::store {
namespace {

std::string Encode(std::string_view data, std::string_view, uint64_t offset, std::string_view) {
  return std::string(data) + "@" + std::to_string(offset);
}
const core::PublicationEncoder kEncode = &Encode;

// What each committed transaction of the writer inserted into and deleted from `pubs`.
class Watcher {
 public:
  struct Tx {
    uint64_t inserted = 0, deleted = 0;
  };
  // On the writer thread, inside a transaction (SqliteEngine::Exec).
  void Install(sqlite3* db) {
    sqlite3_update_hook(db, &Watcher::OnUpdate, this);
    sqlite3_commit_hook(db, &Watcher::OnCommit, this);
    sqlite3_rollback_hook(db, &Watcher::OnRollback, this);
  }
  size_t commits() {
    std::lock_guard lock(mutex_);
    return done_.size();
  }
  std::vector<Tx> done() {
    std::lock_guard lock(mutex_);
    return done_;
  }
  uint64_t Deleted(size_t from) {
    std::lock_guard lock(mutex_);
    uint64_t n = 0;
    for (size_t i = from; i < done_.size(); ++i) n += done_[i].deleted;
    return n;
  }
  // Waits (30 s at most) until the transactions from `from` on have deleted n publications.
  bool AwaitDeleted(size_t from, uint64_t n) {
    std::unique_lock lock(mutex_);
    return committed_.wait_for(lock, std::chrono::seconds(30), [&] {
      uint64_t sum = 0;
      for (size_t i = from; i < done_.size(); ++i) sum += done_[i].deleted;
      return sum >= n;
    });
  }
  // The index of the first transaction from `from` on that inserted a publication.
  std::optional<size_t> FirstInsert(size_t from) {
    std::lock_guard lock(mutex_);
    for (size_t i = from; i < done_.size(); ++i) {
      if (done_[i].inserted > 0) return i;
    }
    return std::nullopt;
  }

 private:
  static void OnUpdate(void* self, int op, const char*, const char* table, sqlite3_int64) {
    auto* w = static_cast<Watcher*>(self);
    if (std::string_view(table) != "pubs") return;
    std::lock_guard lock(w->mutex_);
    if (op == SQLITE_INSERT) ++w->current_.inserted;
    if (op == SQLITE_DELETE) ++w->current_.deleted;
  }
  static int OnCommit(void* self) {
    auto* w = static_cast<Watcher*>(self);
    {
      std::lock_guard lock(w->mutex_);
      w->done_.push_back(w->current_);
      w->current_ = {};
    }
    w->committed_.notify_all();
    return 0;
  }
  static void OnRollback(void* self) {
    auto* w = static_cast<Watcher*>(self);
    std::lock_guard lock(w->mutex_);
    w->current_ = {};
  }

  std::mutex mutex_;
  std::condition_variable committed_;
  Tx current_;  // the transaction under way
  std::vector<Tx> done_;
};

class SqliteWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hermod-sqlite-writer-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.path = dir_ + "/hermod.db";
    now_ = net::Loop::MonotonicMs();
  }
  void TearDown() override {
    Release();
    stream_.reset();
    history_.reset();  // stops the writer: what is queued is completed
    if (engine_) engine_->Stop();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Start() {
    std::string error;
    engine_ = SqliteEngine::Open(options_, &error);
    ASSERT_TRUE(engine_) << error;
    history_ = engine_->History();
    stream_ = history_->Open("h", now_);
  }
  // Holds the writer inside a transaction of its own (the watcher installed by it) until
  // Release; returns once the writer is held, so the queue is empty and everything queued
  // from now on waits.
  void Hold() {
    std::promise<void> held;
    auto entered = held.get_future();
    release_ = std::make_shared<std::promise<void>>();
    auto go = release_->get_future().share();
    ASSERT_TRUE(engine_->Exec(
        [this, &held, go](sqlite3* db) {
          watcher_.Install(db);
          held.set_value();
          go.wait();
          return true;
        },
        [](bool) {}));
    entered.wait();
  }
  void Release() {
    if (release_) release_->set_value();
    release_.reset();
  }
  // Queues an append; its answer is kept in answers_.
  void Post(uint64_t size, uint64_t ttl_ms, uint64_t now_ms,
            core::HistoryStore::Stream* s = nullptr) {
    core::HistoryAppend a;
    a.data = "p";
    a.size = size;
    a.ttl_ms = ttl_ms;
    a.now_ms = now_ms;
    auto promise = std::make_shared<std::promise<core::HistoryAppended>>();
    answers_.push_back(promise->get_future());
    auto now =
        (s ? s : stream_.get())
            ->Append(a, kEncode,
                     core::Completion<core::HistoryAppended>(
                         [promise](core::HistoryAppended r) { promise->set_value(std::move(r)); }));
    if (now) promise->set_value(std::move(*now));
  }
  // Waits for every queued append's answer; each must be stored.
  void AwaitAnswers() {
    for (auto& f : answers_) {
      ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
      EXPECT_FALSE(f.get().failed);
    }
    answers_.clear();
  }
  uint64_t Transactions() { return engine_->Status().operations[StoreStatus::kTrim]; }
  // Rows of `pubs` in the file, read by a connection of the test's own.
  int64_t RowsInFile() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(options_.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM pubs", -1, &q, nullptr);
    const int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
  }
  std::vector<std::string> ReadAll() {
    core::HistoryQuery q;
    q.limit = -1;
    q.now_ms = now_;
    std::promise<core::HistoryPage> page;
    auto f = page.get_future();
    auto now = stream_->Read(q, core::Completion<core::HistoryPage>([&page](core::HistoryPage p) {
                               page.set_value(std::move(p));
                             }));
    if (now) return now->publications;
    EXPECT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    return f.get().publications;
  }
  bool Recovers(uint64_t since) {
    core::RecoveryQuery q;
    q.since = {since, stream_->Position().epoch};
    q.until = stream_->Position().offset;
    q.now_ms = now_;
    std::promise<core::HistoryStream::Recovery> r;
    auto f = r.get_future();
    auto now = stream_->Recover(
        q, core::Completion<core::HistoryStream::Recovery>(
               [&r](core::HistoryStream::Recovery v) { r.set_value(std::move(v)); }));
    if (now) return now->recovered;
    EXPECT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    return f.get().recovered;
  }

  std::string dir_;
  SqliteOptions options_;
  uint64_t now_ = 0;
  Watcher watcher_;  // outlives the engine, whose connection calls it
  std::shared_ptr<SqliteEngine> engine_;
  std::unique_ptr<core::HistoryStore> history_;
  std::unique_ptr<core::HistoryStore::Stream> stream_;
  std::shared_ptr<std::promise<void>> release_;
  std::vector<std::future<core::HistoryAppended>> answers_;
};

constexpr uint64_t kHour = 3600 * 1000;

// 200 publications to history channels queued together cost one transaction, not 200.
TEST_F(SqliteWriter, ABurstOfHistoryAppendsIsOneTransaction) {
  Start();
  std::vector<std::unique_ptr<core::HistoryStore::Stream>> channels;
  for (int i = 0; i < 4; ++i) channels.push_back(history_->Open("c" + std::to_string(i), now_));
  Hold();
  const uint64_t before = Transactions();
  const size_t commits = watcher_.commits();
  for (int i = 0; i < 200; ++i) Post(100, kHour, now_, channels[i % 4].get());
  Release();
  AwaitAnswers();
  // The holding transaction, then one for the burst.
  EXPECT_EQ(Transactions() - before, 2u);
  auto done = watcher_.done();
  ASSERT_EQ(done.size(), commits + 2);
  EXPECT_EQ(done.back().inserted, 200u);
  channels.clear();
}

// sqlite.max_batch bounds a transaction: 200 appends at 64 per transaction are 4 commits.
TEST_F(SqliteWriter, ABurstPastMaxBatchIsOneTransactionPerMaxBatch) {
  options_.max_batch = 64;
  Start();
  Hold();
  const uint64_t before = Transactions();
  for (int i = 0; i < 200; ++i) Post(1000, kHour, now_);
  Release();
  AwaitAnswers();
  EXPECT_EQ(Transactions() - before, 1u + 4u);
  for (const auto& tx : watcher_.done()) EXPECT_LE(tx.inserted, 64u);
}

// hermod_store_queue_depth: the appends waiting for a busy writer, then 0 once it is done.
TEST_F(SqliteWriter, QueueDepthIsWhatWaitsForTheWriter) {
  Start();
  Hold();
  EXPECT_EQ(engine_->Status().queue_depth, 0u);
  for (int i = 0; i < 25; ++i) Post(100, kHour, now_);
  EXPECT_EQ(engine_->Status().queue_depth, 25u);
  Release();
  AwaitAnswers();
  EXPECT_EQ(engine_->Status().queue_depth, 0u);
}

// A channel's history_size shrunk from unbounded to 10 under 3000 stored publications: no
// transaction deletes more than max_trim plus what it appends; the rest goes on in the
// transactions after it without another write, and an append queued meanwhile is in the
// next transaction. Reads and recovery see only the last 10 all along.
TEST_F(SqliteWriter, TrimmingToSizeIsBoundedPerTransactionAndFinishesOverSeveral) {
  options_.max_trim = 50;
  options_.max_batch = 4096;
  Start();
  Hold();
  for (int i = 0; i < 3000; ++i) Post(0, kHour, now_);
  Release();
  AwaitAnswers();
  ASSERT_EQ(RowsInFile(), 3000);

  const size_t from = watcher_.commits();
  Post(10, kHour, now_);  // offset 3001; history_size 10 from now on
  AwaitAnswers();
  // The append went into the first transaction after it was queued.
  EXPECT_EQ(watcher_.FirstInsert(from), from);
  // Only the last 10 are history, whatever is still in the file.
  std::vector<std::string> all = ReadAll();
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all.front(), "p@2992");
  EXPECT_EQ(all.back(), "p@3001");
  EXPECT_FALSE(Recovers(2985));  // 2986..2991 are past history_size
  EXPECT_TRUE(Recovers(2995));

  // An append while the backlog is trimmed is not held behind it.
  const size_t queued_at = watcher_.commits();
  Post(10, kHour, now_);  // offset 3002
  AwaitAnswers();
  auto inserted = watcher_.FirstInsert(queued_at);
  ASSERT_TRUE(inserted);
  EXPECT_LE(*inserted, queued_at + 1);

  ASSERT_TRUE(watcher_.AwaitDeleted(from, 3002 - 10)) << watcher_.Deleted(from) << " deleted";
  size_t trimming = 0;
  const auto done = watcher_.done();
  for (size_t i = from; i < done.size(); ++i) {
    EXPECT_LE(done[i].deleted, options_.max_trim + done[i].inserted) << "transaction " << i;
    if (done[i].deleted > 0) ++trimming;
  }
  EXPECT_GE(trimming, (3002u - 10u) / (options_.max_trim + 1));
  // A read runs on the writer between transactions: the last one's commit is done (the hook
  // ran before it), so the file shows it to another connection.
  EXPECT_EQ(ReadAll().back(), "p@3002");
  EXPECT_EQ(RowsInFile(), 10);
}

// 3000 publications that have expired (their TTL counted from an hour ago): at most max_trim
// of them deleted per transaction, and the rest in the transactions after, without another
// write; an append queued meanwhile is in the next transaction.
TEST_F(SqliteWriter, ExpiryIsBoundedPerTransactionAndFinishesWithoutAWrite) {
  options_.max_trim = 50;
  options_.max_batch = 4096;
  Start();
  Hold();
  const size_t from = watcher_.commits();
  for (int i = 0; i < 3000; ++i) Post(0, 1000, now_ - kHour);
  Release();
  AwaitAnswers();

  const size_t queued_at = watcher_.commits();
  Post(0, kHour, now_);  // offset 3001, not expired
  AwaitAnswers();
  auto inserted = watcher_.FirstInsert(queued_at);
  ASSERT_TRUE(inserted);
  EXPECT_LE(*inserted, queued_at + 1);

  ASSERT_TRUE(watcher_.AwaitDeleted(from, 3000)) << watcher_.Deleted(from) << " deleted";
  size_t trimming = 0;
  const auto done = watcher_.done();
  for (size_t i = from; i < done.size(); ++i) {
    EXPECT_LE(done[i].deleted, options_.max_trim) << "transaction " << i;
    if (done[i].deleted > 0) ++trimming;
  }
  EXPECT_GE(trimming, 3000u / options_.max_trim);
  EXPECT_EQ(ReadAll(), std::vector<std::string>{"p@3001"});  // after the last commit
  EXPECT_EQ(RowsInFile(), 1);
}

}  // namespace
}  // namespace hermod::store
