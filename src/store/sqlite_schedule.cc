#include "store/sqlite_schedule.h"

#include <sqlite3.h>

#include <algorithm>
#include <future>
#include <string>
#include <utility>
#include <vector>

namespace hermod::store {

namespace {

constexpr const char* kScheduleSchema =
    "CREATE TABLE IF NOT EXISTS schedules(id TEXT PRIMARY KEY, deliver_at INTEGER NOT NULL,"
    " created INTEGER NOT NULL, method TEXT NOT NULL, channels BLOB NOT NULL,"
    " params BLOB NOT NULL)";

// Channel names hold no NUL: the list is stored NUL-separated.
std::string JoinChannels(const std::vector<std::string>& channels) {
  std::string joined;
  for (size_t i = 0; i < channels.size(); ++i) {
    if (i > 0) joined += '\0';
    joined += channels[i];
  }
  return joined;
}

std::vector<std::string> SplitChannels(std::string_view joined) {
  std::vector<std::string> channels;
  size_t at = 0;
  for (;;) {
    const size_t end = joined.find('\0', at);
    channels.emplace_back(joined.substr(at, end - at));
    if (end == std::string_view::npos) return channels;
    at = end + 1;
  }
}

std::string_view Column(sqlite3_stmt* st, int col) {
  const void* p = sqlite3_column_blob(st, col);
  const int n = sqlite3_column_bytes(st, col);
  return p == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
}

// One statement on db: binds, steps to the end (calling row for each row), finalizes.
template <class Bind, class Row>
bool Run(sqlite3* db, const char* sql, Bind&& bind, Row&& row) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) return false;
  bind(st);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) row(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE;
}

void Text(sqlite3_stmt* st, int i, std::string_view text) {
  sqlite3_bind_blob(st, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

class SqliteScheduleStore final : public core::ScheduleStore {
 public:
  explicit SqliteScheduleStore(SqliteWriteFn write) : write_(std::move(write)) {}
  const char* name() const override { return "sqlite"; }
  bool durable() const override { return true; }

  bool Load(std::vector<core::ScheduledPublication>* out, std::string* error) override {
    // Start-up only: waits for the writer, which creates the table and reads it.
    std::promise<bool> loaded;
    write_(
        [out](sqlite3* db) {
          if (sqlite3_exec(db, kScheduleSchema, nullptr, nullptr, nullptr) != SQLITE_OK)
            return false;
          return Run(
              db, "SELECT id, deliver_at, created, method, channels, params FROM schedules",
              [](sqlite3_stmt*) {},
              [out](sqlite3_stmt* st) {
                core::ScheduledPublication p;
                p.id = std::string(Column(st, 0));
                p.deliver_at_ms = sqlite3_column_int64(st, 1);
                p.created_ms = sqlite3_column_int64(st, 2);
                p.method = std::string(Column(st, 3));
                p.channels = SplitChannels(Column(st, 4));
                p.params = std::string(Column(st, 5));
                out->push_back(std::move(p));
              });
        },
        [&loaded](bool ok) { loaded.set_value(ok); });
    if (loaded.get_future().get()) return true;
    out->clear();
    if (error != nullptr) *error = "sqlite: cannot create or read the schedules table";
    return false;
  }

  void Put(const core::ScheduledPublication& s, std::function<void(bool)> done) override {
    write_(
        [s](sqlite3* db) {
          return Run(
              db,
              "INSERT OR REPLACE INTO schedules(id, deliver_at, created, method, channels, params)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
              [&s](sqlite3_stmt* st) {
                Text(st, 1, s.id);
                sqlite3_bind_int64(st, 2, s.deliver_at_ms);
                sqlite3_bind_int64(st, 3, s.created_ms);
                Text(st, 4, s.method);
                Text(st, 5, JoinChannels(s.channels));
                Text(st, 6, s.params);
              },
              [](sqlite3_stmt*) {});
        },
        std::move(done));
  }

  void Remove(const std::string& id, std::function<void(bool)> done) override {
    write_(
        [id](sqlite3* db) {
          // Its publications' fire keys go with it, in one transaction: until then a firing
          // repeated after a crash finds them (sqlite_store.cc keeps them that long).
          std::vector<std::string> channels;
          const std::string key = core::FireKey(id);
          return Run(
                     db, "SELECT channels FROM schedules WHERE id = ?1",
                     [&id](sqlite3_stmt* st) { Text(st, 1, id); },
                     [&channels](sqlite3_stmt* st) { channels = SplitChannels(Column(st, 0)); }) &&
                 std::all_of(
                     channels.begin(), channels.end(),
                     [&](const std::string& channel) {
                       return Run(
                           db, "DELETE FROM keys WHERE channel = ?1 AND key = ?2",
                           [&](sqlite3_stmt* st) {
                             sqlite3_bind_text(st, 1, channel.data(),
                                               static_cast<int>(channel.size()), SQLITE_TRANSIENT);
                             sqlite3_bind_text(st, 2, key.data(), static_cast<int>(key.size()),
                                               SQLITE_TRANSIENT);
                           },
                           [](sqlite3_stmt*) {});
                     }) &&
                 Run(
                     db, "DELETE FROM schedules WHERE id = ?1",
                     [&id](sqlite3_stmt* st) { Text(st, 1, id); }, [](sqlite3_stmt*) {});
        },
        [done = std::move(done)](bool ok) {
          if (done) done(ok);
        });
  }

 private:
  SqliteWriteFn write_;
};

}  // namespace

std::unique_ptr<core::ScheduleStore> MakeSqliteSchedules(SqliteWriteFn write) {
  return std::make_unique<SqliteScheduleStore>(std::move(write));
}

}  // namespace hermod::store
