#include "store/sqlite_inbox.h"

#include <sqlite3.h>

#include <future>
#include <string>
#include <utility>

#include "core/schedule_store.h"

namespace hermod::store {

namespace {

constexpr const char* kInboxSchema =
    "CREATE TABLE IF NOT EXISTS inbox_meta(channel TEXT PRIMARY KEY, epoch TEXT NOT NULL,"
    " top INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS inbox(channel TEXT NOT NULL, offset INTEGER NOT NULL,"
    " data BLOB NOT NULL, state INTEGER NOT NULL, deliveries INTEGER NOT NULL,"
    " published INTEGER NOT NULL, delivered INTEGER NOT NULL, due INTEGER NOT NULL,"
    " done INTEGER NOT NULL, expires INTEGER NOT NULL, reason TEXT NOT NULL,"
    " dead_id INTEGER NOT NULL, PRIMARY KEY(channel, offset));";

int64_t I(uint64_t v) { return static_cast<int64_t>(v); }

}  // namespace

// Prepared on the writer thread at the first write, finalized by whoever drops them last
// (the connection is serialized, SQLite's default threading mode).
struct SqliteInboxStore::Statements {
  sqlite3_stmt* put = nullptr;
  sqlite3_stmt* del = nullptr;
  sqlite3_stmt* meta = nullptr;
  sqlite3_stmt* state = nullptr;
  sqlite3_stmt* fired = nullptr;
  ~Statements() {
    sqlite3_finalize(fired);
    sqlite3_finalize(state);
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    sqlite3_finalize(meta);
  }
  bool Prepare(sqlite3* db) {
    if (put != nullptr) return true;
    return sqlite3_prepare_v3(db,
                              "INSERT OR REPLACE INTO inbox(channel,offset,data,state,deliveries,"
                              "published,delivered,due,done,expires,reason,dead_id) "
                              "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
                              -1, SQLITE_PREPARE_PERSISTENT, &put, nullptr) == SQLITE_OK &&
           sqlite3_prepare_v3(db, "DELETE FROM inbox WHERE channel=?1 AND offset=?2", -1,
                              SQLITE_PREPARE_PERSISTENT, &del, nullptr) == SQLITE_OK &&
           sqlite3_prepare_v3(db,
                              "INSERT INTO inbox_meta(channel,epoch,top) VALUES(?1,?2,?3) "
                              "ON CONFLICT(channel) DO UPDATE SET epoch=excluded.epoch,"
                              " top=max(top, excluded.top)",
                              -1, SQLITE_PREPARE_PERSISTENT, &meta, nullptr) == SQLITE_OK &&
           // A delivery, an ack, a dead letter: the state columns in place (the data is not
           // copied again; an ack's cleared data is emptied), and nothing when the row is
           // gone, so a late write never brings back a removed entry.
           sqlite3_prepare_v3(db,
                              "UPDATE inbox SET state=?3,deliveries=?4,delivered=?5,due=?6,"
                              "done=?7,expires=?8,reason=?9,dead_id=?10,"
                              "data=CASE WHEN ?11 THEN x'' ELSE data END "
                              "WHERE channel=?1 AND offset=?2",
                              -1, SQLITE_PREPARE_PERSISTENT, &state, nullptr) == SQLITE_OK &&
           // A scheduled publication's fire key, in the history keys' table (sqlite_store.cc):
           // kept until its schedule is forgotten, which deletes it (sqlite_schedule.cc).
           sqlite3_prepare_v3(db,
                              "INSERT OR REPLACE INTO keys(channel,key,offset,epoch,expires) "
                              "VALUES(?1,?2,?3,?4,9223372036854775807)",
                              -1, SQLITE_PREPARE_PERSISTENT, &fired, nullptr) == SQLITE_OK;
  }
  static bool Run(sqlite3_stmt* s) {
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE;
  }
  static void Text(sqlite3_stmt* s, int i, std::string_view v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
};

SqliteInboxStore::SqliteInboxStore(std::shared_ptr<SqliteEngine> engine)
    : engine_(std::move(engine)), stmts_(std::make_shared<Statements>()) {}

SqliteInboxStore::~SqliteInboxStore() = default;

std::unique_ptr<SqliteInboxStore> SqliteInboxStore::Open(std::shared_ptr<SqliteEngine> engine,
                                                         std::string* error) {
  std::unique_ptr<SqliteInboxStore> store(new SqliteInboxStore(engine));
  struct Fired {
    std::string channel, key;
    core::InboxPosition position;
  };
  struct Loaded {
    std::vector<std::pair<std::string, std::pair<std::string, uint64_t>>> metas;
    std::vector<core::InboxEntry> entries;
    std::vector<Fired> fired;
    std::string error;
  };
  auto loaded = std::make_shared<Loaded>();
  std::promise<bool> done;
  std::future<bool> committed = done.get_future();
  const bool queued = engine->Exec(
      [loaded](sqlite3* db) {
        if (sqlite3_exec(db, kInboxSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
          loaded->error = sqlite3_errmsg(db);
          return false;
        }
        sqlite3_stmt* q = nullptr;
        if (sqlite3_prepare_v2(db, "SELECT channel, epoch, top FROM inbox_meta", -1, &q, nullptr) !=
            SQLITE_OK) {
          loaded->error = sqlite3_errmsg(db);
          return false;
        }
        auto text = [](sqlite3_stmt* s, int col) {
          const void* p = sqlite3_column_blob(s, col);
          return p == nullptr ? std::string()
                              : std::string(static_cast<const char*>(p),
                                            static_cast<size_t>(sqlite3_column_bytes(s, col)));
        };
        while (sqlite3_step(q) == SQLITE_ROW) {
          loaded->metas.push_back(
              {text(q, 0), {text(q, 1), static_cast<uint64_t>(sqlite3_column_int64(q, 2))}});
        }
        sqlite3_finalize(q);
        if (sqlite3_prepare_v2(
                db,
                "SELECT channel,offset,data,state,deliveries,published,delivered,"
                "due,done,expires,reason,dead_id FROM inbox ORDER BY channel, offset",
                -1, &q, nullptr) != SQLITE_OK) {
          loaded->error = sqlite3_errmsg(db);
          return false;
        }
        while (sqlite3_step(q) == SQLITE_ROW) {
          core::InboxEntry e;
          e.channel = text(q, 0);
          e.offset = static_cast<uint64_t>(sqlite3_column_int64(q, 1));
          e.data = text(q, 2);
          e.state = static_cast<core::InboxState>(sqlite3_column_int(q, 3) & 3);
          e.deliveries = static_cast<uint32_t>(sqlite3_column_int64(q, 4));
          e.published_ms = static_cast<uint64_t>(sqlite3_column_int64(q, 5));
          e.delivered_ms = static_cast<uint64_t>(sqlite3_column_int64(q, 6));
          e.due_ms = static_cast<uint64_t>(sqlite3_column_int64(q, 7));
          e.done_ms = static_cast<uint64_t>(sqlite3_column_int64(q, 8));
          e.expires_ms = static_cast<uint64_t>(sqlite3_column_int64(q, 9));
          e.reason = text(q, 10);
          e.dead_id = static_cast<uint64_t>(sqlite3_column_int64(q, 11));
          loaded->entries.push_back(std::move(e));
        }
        sqlite3_finalize(q);
        // Fire keys of inboxes.
        const std::string fired = "SELECT channel,key,offset,epoch FROM keys WHERE key LIKE '" +
                                  std::string(core::kFireKeyPrefix) +
                                  "%' AND channel IN (SELECT channel FROM inbox_meta)";
        if (sqlite3_prepare_v2(db, fired.c_str(), -1, &q, nullptr) != SQLITE_OK) {
          loaded->error = sqlite3_errmsg(db);
          return false;
        }
        while (sqlite3_step(q) == SQLITE_ROW) {
          loaded->fired.push_back(
              {text(q, 0),
               text(q, 1),
               {static_cast<uint64_t>(sqlite3_column_int64(q, 2)), text(q, 3)}});
        }
        sqlite3_finalize(q);
        return true;
      },
      [&done](bool ok) { done.set_value(ok); });
  if (!queued || !committed.get()) {
    if (error != nullptr) {
      *error = "sqlite: cannot open the inbox tables" +
               (loaded->error.empty() ? std::string() : ": " + loaded->error);
    }
    return nullptr;
  }
  for (auto& [channel, meta] : loaded->metas) {
    store->Restore(channel, std::move(meta.first), meta.second);
  }
  for (core::InboxEntry& e : loaded->entries) store->Restore(std::move(e), core::InboxLimits{});
  for (Fired& f : loaded->fired) {
    store->RestoreFired(std::move(f.channel), std::move(f.key), std::move(f.position));
  }
  return store;
}

std::optional<bool> SqliteInboxStore::Persist(std::vector<Write>& writes,
                                              core::InboxStored& stored) {
  auto call = [stmts = stmts_, writes = std::move(writes)](sqlite3* db) {
    if (!stmts->Prepare(db)) return false;
    for (const Write& w : writes) {
      const core::InboxEntry& e = w.entry;
      sqlite3_stmt* s = nullptr;
      switch (w.kind) {
        case Write::Kind::kPut:
          if (w.state_only) {
            s = stmts->state;
            Statements::Text(s, 1, e.channel);
            sqlite3_bind_int64(s, 2, I(e.offset));
            sqlite3_bind_int(s, 3, static_cast<int>(e.state));
            sqlite3_bind_int64(s, 4, e.deliveries);
            sqlite3_bind_int64(s, 5, I(e.delivered_ms));
            sqlite3_bind_int64(s, 6, I(e.due_ms));
            sqlite3_bind_int64(s, 7, I(e.done_ms));
            sqlite3_bind_int64(s, 8, I(e.expires_ms));
            Statements::Text(s, 9, e.reason);
            sqlite3_bind_int64(s, 10, I(e.dead_id));
            sqlite3_bind_int(s, 11, w.data_cleared ? 1 : 0);
            break;
          }
          s = stmts->put;
          Statements::Text(s, 1, e.channel);
          sqlite3_bind_int64(s, 2, I(e.offset));
          sqlite3_bind_blob(s, 3, e.data.data(), static_cast<int>(e.data.size()), SQLITE_STATIC);
          sqlite3_bind_int(s, 4, static_cast<int>(e.state));
          sqlite3_bind_int64(s, 5, e.deliveries);
          sqlite3_bind_int64(s, 6, I(e.published_ms));
          sqlite3_bind_int64(s, 7, I(e.delivered_ms));
          sqlite3_bind_int64(s, 8, I(e.due_ms));
          sqlite3_bind_int64(s, 9, I(e.done_ms));
          sqlite3_bind_int64(s, 10, I(e.expires_ms));
          Statements::Text(s, 11, e.reason);
          sqlite3_bind_int64(s, 12, I(e.dead_id));
          break;
        case Write::Kind::kDelete:
          s = stmts->del;
          Statements::Text(s, 1, e.channel);
          sqlite3_bind_int64(s, 2, I(e.offset));
          break;
        case Write::Kind::kFired:
          s = stmts->fired;
          Statements::Text(s, 1, e.channel);
          Statements::Text(s, 2, w.fire_key);
          sqlite3_bind_int64(s, 3, I(e.offset));
          Statements::Text(s, 4, w.epoch);
          break;
        case Write::Kind::kMeta:
          s = stmts->meta;
          Statements::Text(s, 1, e.channel);
          Statements::Text(s, 2, w.epoch);
          sqlite3_bind_int64(s, 3, I(e.offset));
          break;
      }
      if (!Statements::Run(s)) return false;
    }
    return true;
  };
  if (engine_->Exec(std::move(call), stored ? stored : std::function<void(bool)>())) {
    stored = nullptr;
    return std::nullopt;
  }
  return false;
}

}  // namespace hermod::store
