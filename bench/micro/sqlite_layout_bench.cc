// Layouts of the sqlite engine's publications table, SQLite alone (no engine, no threads):
// BM_SqliteLayout/L/C stores 50,000 1 KiB publications spread over C channels on a fresh
// file (WAL, synchronous=FULL, 16 KiB pages, the engine's pragmas), 256 per transaction,
// each channel trimmed to 1,000 and its meta row updated once per transaction, as the
// writer does. Items/s is per CPU second of the thread (user and kernel): the layout's cost.
// L: 0 keyed by the channel's name (a rowid table and an index on (name, offset): schema
// version 1), 1 a WITHOUT ROWID table keyed by (channel id, offset), 2 a rowid of
// id << 40 | offset (one b-tree, each channel's rows contiguous), 3 a rowid table and an index
// on (channel id, offset) (schema version 2, the engine's).
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Layout {
  const char* schema;
  const char* insert;  // ?1 channel (name or id), ?2 offset, ?3 expires, ?4 publication
  const char* trim;    // ?1 channel, ?2 the newest offset to delete
};

const Layout kLayouts[] = {
    {"CREATE TABLE pubs(channel TEXT NOT NULL, offset INTEGER NOT NULL, expires INTEGER NOT "
     "NULL, pub BLOB NOT NULL); CREATE UNIQUE INDEX pubs_key ON pubs(channel, offset);",
     "INSERT OR REPLACE INTO pubs(channel,offset,expires,pub) VALUES(?1,?2,?3,?4)",
     "DELETE FROM pubs WHERE channel=?1 AND offset<=?2"},
    {"CREATE TABLE pubs(chan INTEGER NOT NULL, offset INTEGER NOT NULL, expires INTEGER NOT "
     "NULL, pub BLOB NOT NULL, PRIMARY KEY(chan, offset)) WITHOUT ROWID;",
     "INSERT OR REPLACE INTO pubs(chan,offset,expires,pub) VALUES(?1,?2,?3,?4)",
     "DELETE FROM pubs WHERE chan=?1 AND offset<=?2"},
    {"CREATE TABLE pubs(k INTEGER PRIMARY KEY, expires INTEGER NOT NULL, pub BLOB NOT NULL);",
     "INSERT OR REPLACE INTO pubs(k,expires,pub) VALUES((?1<<40)|?2,?3,?4)",
     "DELETE FROM pubs WHERE k>=(?1<<40) AND k<=((?1<<40)|?2)"},
    {"CREATE TABLE pubs(chan INTEGER NOT NULL, offset INTEGER NOT NULL, expires INTEGER NOT "
     "NULL, pub BLOB NOT NULL); CREATE UNIQUE INDEX pubs_chan ON pubs(chan, offset);",
     "INSERT OR REPLACE INTO pubs(chan,offset,expires,pub) VALUES(?1,?2,?3,?4)",
     "DELETE FROM pubs WHERE chan=?1 AND offset<=?2"},
};

bool Run(sqlite3_stmt* s) {
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE;
}

// The channel's name (layout 0) or id as ?1.
void BindChannel(sqlite3_stmt* s, size_t layout, const std::string& name, int64_t id) {
  if (layout == 0) {
    sqlite3_bind_text(s, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_int64(s, 1, id);
  }
}

// Stores the publications; false on an SQLite error.
bool Store(sqlite3* db, size_t layout, size_t channels, size_t rows) {
  const Layout& l = kLayouts[layout];
  if (sqlite3_exec(db, l.schema, nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_exec(db,
                   "CREATE TABLE meta(channel TEXT PRIMARY KEY, id INTEGER NOT NULL, epoch TEXT "
                   "NOT NULL, top INTEGER NOT NULL, expires INTEGER NOT NULL)",
                   nullptr, nullptr, nullptr) != SQLITE_OK) {
    return false;
  }
  sqlite3_stmt *insert = nullptr, *trim = nullptr, *meta = nullptr;
  sqlite3_prepare_v2(db, l.insert, -1, &insert, nullptr);
  sqlite3_prepare_v2(db, l.trim, -1, &trim, nullptr);
  sqlite3_prepare_v2(db,
                     "INSERT INTO meta VALUES(?1,?2,'epoch',?3,?4) ON CONFLICT(channel) DO "
                     "UPDATE SET top=excluded.top, expires=excluded.expires",
                     -1, &meta, nullptr);
  std::vector<std::string> names;
  for (size_t c = 0; c < channels; ++c) names.push_back("bench:channel-" + std::to_string(c));
  std::vector<int64_t> top(channels, 0);
  const std::string pub(1024, 'x');
  constexpr size_t kPerTransaction = 256;
  bool ok = true;
  for (size_t done = 0; ok && done < rows;) {
    ok = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
    for (size_t i = 0; ok && i < kPerTransaction && done < rows; ++i, ++done) {
      const size_t c = done % channels;
      BindChannel(insert, layout, names[c], static_cast<int64_t>(c) + 1);
      sqlite3_bind_int64(insert, 2, ++top[c]);
      sqlite3_bind_int64(insert, 3, 1'900'000'000'000 + top[c]);
      sqlite3_bind_blob(insert, 4, pub.data(), static_cast<int>(pub.size()), SQLITE_STATIC);
      ok = Run(insert);
    }
    for (size_t c = 0; ok && c < channels; ++c) {
      if (top[c] > 1000) {
        BindChannel(trim, layout, names[c], static_cast<int64_t>(c) + 1);
        sqlite3_bind_int64(trim, 2, top[c] - 1000);
        ok = Run(trim);
      }
      sqlite3_bind_text(meta, 1, names[c].data(), static_cast<int>(names[c].size()), SQLITE_STATIC);
      sqlite3_bind_int64(meta, 2, static_cast<int64_t>(c) + 1);
      sqlite3_bind_int64(meta, 3, top[c]);
      sqlite3_bind_int64(meta, 4, 1'900'000'000'000 + top[c]);
      ok = ok && Run(meta);
    }
    ok = ok && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  sqlite3_finalize(insert);
  sqlite3_finalize(trim);
  sqlite3_finalize(meta);
  return ok;
}

void BM_SqliteLayout(benchmark::State& state) {
  const auto layout = static_cast<size_t>(state.range(0));
  const auto channels = static_cast<size_t>(state.range(1));
  constexpr size_t kRows = 50000;
  for (auto _ : state) {
    state.PauseTiming();
    char dir[] = "/tmp/hermod-micro-layout-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      state.SkipWithError("mkdtemp");
      return;
    }
    const std::string path = std::string(dir) + "/bench.db";
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                 "PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=10000",
                 nullptr, nullptr, nullptr);
    state.ResumeTiming();
    const bool ok = Store(db, layout, channels, kRows);
    state.PauseTiming();
    if (!ok) state.SkipWithError(sqlite3_errmsg(db));
    sqlite3_close(db);
    std::remove(path.c_str());
    std::remove((path + "-wal").c_str());
    std::remove((path + "-shm").c_str());
    rmdir(dir);
    state.ResumeTiming();
    if (!ok) return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRows));
}
BENCHMARK(BM_SqliteLayout)
    ->ArgsProduct({{0, 1, 2, 3}, {1, 10, 100, 1000}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
