// The store contract: the same cases against every engine, through the interfaces as the
// hub calls them (core/history_store.h, idempotency_store.h, presence_store.h). An engine
// that completes later is driven through its Completions: the test waits on a future, never
// sleeps. Another engine gets these tests by one line in kEngines. The nats engines run on a
// real `nats-server -js` the suite starts (free port, temporary store directory; stopped at
// the end, killed by the failing-storage case and started again for the next case).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/hub.h"
#include "net/event_loop.h"
#include "store/engines.h"
#include "store/nats_history.h"
#include "store/nats_presence.h"
#include "store/sqlite_store.h"
#include "tests/unit/store/nats_server.h"

namespace hermod::store {
namespace {

// One engine on its storage (a temporary directory the test owns).
struct Engine {
  core::Stores stores;
  // Makes the storage fail from now on (an engine that cannot fail: empty).
  std::function<void()> break_storage;
};

struct EngineFactory {
  const char* name;
  bool durable;  // what it stores survives the engine being made again on the same storage
  std::function<std::unique_ptr<Engine>(const std::string& dir)> make;
  // Trims by TTL on the caller's clock (HistoryAppend/HistoryQuery::now_ms). The nats engine
  // cannot: a message's age is JetStream's timestamp against the wall clock, so its TTL case
  // waits for real time to pass instead.
  bool caller_clock = true;
  // Keeps idempotency keys in its Keys. The nats engine keeps them in JetStream's Duplicates
  // window instead (a repeated keyed append answers the first offset: nats_history_test's
  // IdempotencyKeyAnswersTheFirstOffset), so its Keys find nothing by design.
  bool keys = true;
  // Keeps at most history_meta_max_channels positions of closed channels, exactly. The
  // memory engine's cap is per stripe (of 64); the nats engine's positions are the stream's.
  bool exact_meta_cap = false;
};

// The test's name shows the engine, not the factory's bytes.
void PrintTo(const EngineFactory& f, std::ostream* os) { *os << f.name; }

std::unique_ptr<Engine> MakeMemory(const std::string&) {
  auto e = std::make_unique<Engine>();
  e->stores = MemoryStores();
  return e;
}

std::unique_ptr<Engine> MakeSqlite(const std::string& dir) {
  auto e = std::make_unique<Engine>();
  EngineConfig config;
  config.engine = "sqlite";
  config.sqlite.path = dir + "/hermod.db";
  config.sqlite.breaker.failure_threshold = 1000;  // every failure reaches the file
  Engines engines;
  std::string error;
  if (!MakeEngines(config, &engines, &error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  e->stores = std::move(engines.stores);
  const std::string path = config.sqlite.path;
  e->break_storage = [path] { std::filesystem::remove(path); };
  return e;
}

// The nats-server of the nats cases: started by the first, killed by a failing-storage case
// (the next one starts another), stopped when the suite ends.
std::unique_ptr<test::NatsServer>& Nats() {
  static std::unique_ptr<test::NatsServer> server;
  return server;
}
class NatsEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { Nats().reset(); }
};
const auto* const kNatsEnvironment = ::testing::AddGlobalTestEnvironment(new NatsEnvironment);

// History on JetStream and presence on NATS KV; the names come from the case's directory,
// so cases never see each other's channels and a restart finds its own stream again.
std::unique_ptr<Engine> MakeNats(const std::string& dir) {
  if (!Nats()) {
    Nats() = std::make_unique<test::NatsServer>();
    if (!Nats()->Start()) {
      ADD_FAILURE() << "nats-server did not start";
      Nats().reset();
      return nullptr;
    }
  }
  const std::string id = std::filesystem::path(dir).filename().string().substr(16);  // XXXXXX
  NatsHistoryOptions history;
  history.url = Nats()->url();
  history.prefix = "c" + id;
  history.stream = "C_" + id;
  history.timeout_ms = 1000;
  history.workers = 2;
  std::string error;
  auto e = std::make_unique<Engine>();
  e->stores.history = MakeNatsHistoryStore(history, &error);
  if (!e->stores.history) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  NatsPresenceStore::Options presence;
  presence.url = Nats()->url();
  presence.bucket = "p_" + id;
  presence.reconnect_wait_ms = 100;
  auto kv = std::make_unique<NatsPresenceStore>(presence);
  if (!kv->Start(&error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  e->stores.presence = std::move(kv);
  e->stores.idempotency = std::make_unique<NatsIdempotencyStore>();
  e->stores.history_inline = false;
  e->stores.presence_inline = false;
  e->break_storage = [] { Nats()->Stop(/*kill=*/true), Nats().reset(); };
  return e;
}

// The engines under contract. A new engine: one line here.
const EngineFactory kEngines[] = {
    {"memory", false, &MakeMemory},
    {"sqlite", true, &MakeSqlite, /*caller_clock=*/true, /*keys=*/true,
     /*exact_meta_cap=*/true},
    {"nats", true, &MakeNats, /*caller_clock=*/false, /*keys=*/false},
};

std::string Encode(std::string_view data, std::string_view, uint64_t offset, std::string_view) {
  return std::string(data) + "@" + std::to_string(offset);
}
const core::PublicationEncoder kEncode = &Encode;

// The engine's answer, now or through the completion.
template <class T, class Call>
T Await(Call&& call) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> future = promise->get_future();
  std::optional<T> now =
      call(core::Completion<T>([promise](T v) { promise->set_value(std::move(v)); }));
  if (now) return std::move(*now);
  if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "the engine never completed";
    return T{};
  }
  return future.get();
}

class StoreContract : public ::testing::TestWithParam<EngineFactory> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hermod-contract-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Start();
    base_ = net::Loop::MonotonicMs();
  }
  void TearDown() override {
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  // (Re)makes the engine on the same storage: a restart.
  void Start() {
    engine_.reset();
    engine_ = GetParam().make(dir_);
    ASSERT_TRUE(engine_);
    history().SetMetaLimits(3600 * 1000, 1000);
  }
  core::HistoryStore& history() { return *engine_->stores.history; }
  core::IdempotencyStore& idempotency() { return *engine_->stores.idempotency; }

  core::HistoryAppended Append(core::HistoryStore::Stream& s, std::string_view data,
                               uint64_t size = 10, uint64_t ttl = 60000, uint64_t at = 0) {
    core::HistoryAppend a;
    a.data = data;
    a.size = size;
    a.ttl_ms = ttl;
    a.now_ms = base_ + at;
    core::HistoryAppended r = Await<core::HistoryAppended>(
        [&](auto done) { return s.Append(a, kEncode, std::move(done)); });
    // An answer held by the engine (the memory engine's view) is copied before the next call.
    if (r.publication.empty() && r.stored.data() != nullptr) r.publication = std::string(r.stored);
    r.stored = {};
    return r;
  }
  std::vector<std::string> Read(core::HistoryStore::Stream& s, core::HistoryQuery q,
                                core::HistoryPage* out = nullptr) {
    if (q.now_ms == 0) q.now_ms = base_;
    core::HistoryPage page =
        Await<core::HistoryPage>([&](auto done) { return s.Read(q, std::move(done)); });
    if (out != nullptr) *out = page;
    return page.publications;
  }
  core::HistoryStream::Recovery Recover(core::HistoryStore::Stream& s, core::StreamPosition since,
                                        uint64_t at = 0) {
    core::RecoveryQuery q;
    q.since = std::move(since);
    q.until = s.Position().offset;
    q.now_ms = base_ + at;
    return Await<core::HistoryStream::Recovery>(
        [&](auto done) { return s.Recover(q, std::move(done)); });
  }
  std::unique_ptr<core::HistoryStore::Stream> Open(std::string_view channel) {
    return history().Open(channel, base_);
  }

  std::string dir_;
  std::unique_ptr<Engine> engine_;
  uint64_t base_ = 0;
};

std::vector<std::string> Pubs(std::initializer_list<int> offsets) {
  std::vector<std::string> out;
  for (int o : offsets) out.push_back("p" + std::to_string(o) + "@" + std::to_string(o));
  return out;
}

TEST_P(StoreContract, AppendsWithContiguousOffsetsInOneEpochAndReads) {
  auto s = Open("ch");
  const std::string epoch = s->Position().epoch;
  EXPECT_FALSE(epoch.empty());
  EXPECT_EQ(s->Position().offset, 0u);
  for (int i = 1; i <= 5; ++i) {
    core::HistoryAppended r = Append(*s, "p" + std::to_string(i));
    ASSERT_FALSE(r.failed);
    EXPECT_EQ(r.position.offset, static_cast<uint64_t>(i));
    EXPECT_EQ(r.position.epoch, epoch);
    EXPECT_EQ(r.publication, "p" + std::to_string(i) + "@" + std::to_string(i));
  }
  EXPECT_EQ(s->Position().offset, 5u);
  EXPECT_EQ(s->Position().epoch, epoch);

  EXPECT_EQ(Read(*s, {}), Pubs({1, 2, 3, 4, 5}));
  core::HistoryQuery q;
  q.since = core::StreamPosition{2, epoch};
  q.limit = 2;
  EXPECT_EQ(Read(*s, q), Pubs({3, 4}));
  q = {};
  q.reverse = true;
  q.limit = 2;
  EXPECT_EQ(Read(*s, q), Pubs({5, 4}));
  q.since = core::StreamPosition{4, epoch};
  q.limit = -1;
  EXPECT_EQ(Read(*s, q), Pubs({3, 2, 1}));
  q = {};
  q.limit = 0;
  EXPECT_TRUE(Read(*s, q).empty());
  // max_bytes: each publication counts with its separator; the page stops before the first
  // that passes it and says so.
  q = {};
  q.max_bytes = 9;  // "p1@1" + 1 + "p2@2" + 1 = 10
  core::HistoryPage page;
  EXPECT_EQ(Read(*s, q, &page), Pubs({1}));
  EXPECT_TRUE(page.cut);
  EXPECT_EQ(page.position.offset, 5u);
  // An epoch that is not the stream's.
  q = {};
  q.since = core::StreamPosition{1, "other"};
  Read(*s, q, &page);
  EXPECT_TRUE(page.unrecoverable);
}

TEST_P(StoreContract, ChannelsHaveTheirOwnOffsetsAndEpochs) {
  auto a = Open("a");
  auto b = Open("b");
  Append(*a, "p1");
  Append(*a, "p2");
  EXPECT_EQ(Append(*b, "p1").position.offset, 1u);
  EXPECT_EQ(a->Position().offset, 2u);
  EXPECT_EQ(b->Position().offset, 1u);
  EXPECT_NE(a->Position().epoch, b->Position().epoch);
}

TEST_P(StoreContract, TrimsToSize) {
  auto s = Open("ch");
  for (int i = 1; i <= 5; ++i) Append(*s, "p" + std::to_string(i), 3);
  EXPECT_EQ(Read(*s, {}), Pubs({3, 4, 5}));
  EXPECT_EQ(s->Position().offset, 5u);
}

TEST_P(StoreContract, TrimsByTtlAndKeepsThePosition) {
  auto s = Open("ch");
  if (!GetParam().caller_clock) {
    // The wall clock: p1 lives a second, p2 a minute; p1 goes (polled, with a deadline).
    Append(*s, "p1", 10, 1000);
    Append(*s, "p2", 10, 60000);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::vector<std::string> read = Read(*s, {});
    EXPECT_EQ(read.size(), 2u) << "p1 expired at once";
    while (read.size() != 1 && std::chrono::steady_clock::now() < deadline) read = Read(*s, {});
    EXPECT_EQ(read, Pubs({2}));
    EXPECT_EQ(s->Position().offset, 2u);
    EXPECT_EQ(Append(*s, "p3", 10, 1000).position.offset, 3u);
    return;
  }
  Append(*s, "p1", 10, 1000, 0);
  Append(*s, "p2", 10, 1000, 500);
  core::HistoryQuery q;
  q.now_ms = base_ + 1200;  // p1 expired at 1000, p2 expires at 1500
  EXPECT_EQ(Read(*s, q), Pubs({2}));
  q.now_ms = base_ + 2000;
  EXPECT_TRUE(Read(*s, q).empty());
  EXPECT_EQ(s->Position().offset, 2u);
  EXPECT_EQ(Append(*s, "p3", 10, 1000, 2000).position.offset, 3u);
}

TEST_P(StoreContract, RemoveDropsPublicationsAndKeepsThePosition) {
  auto s = Open("ch");
  Append(*s, "p1");
  Append(*s, "p2");
  const core::StreamPosition before = s->Position();
  s->Remove();
  EXPECT_TRUE(Read(*s, {}).empty());
  EXPECT_EQ(s->Position().offset, before.offset);
  EXPECT_EQ(s->Position().epoch, before.epoch);
  EXPECT_EQ(Append(*s, "p3").position.offset, 3u);
  EXPECT_EQ(Read(*s, {}), Pubs({3}));
}

TEST_P(StoreContract, ClosedChannelKeepsItsPositionAndContinues) {
  auto s = Open("ch");
  Append(*s, "p1");
  Append(*s, "p2");
  const core::StreamPosition before = s->Position();
  history().Close("ch", std::move(s), base_);
  std::optional<core::StreamPosition> kept = history().Kept("ch", base_);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->offset, 2u);
  EXPECT_EQ(kept->epoch, before.epoch);
  EXPECT_FALSE(history().Kept("never", base_));
  auto again = Open("ch");
  EXPECT_EQ(again->Position().epoch, before.epoch);
  EXPECT_EQ(Append(*again, "p3").position.offset, 3u);
}

TEST_P(StoreContract, RecoversWhatItHoldsAndOnlyThat) {
  auto s = Open("ch");
  for (int i = 1; i <= 5; ++i) Append(*s, "p" + std::to_string(i), 3);  // holds 3..5
  const std::string epoch = s->Position().epoch;
  core::HistoryStream::Recovery r = Recover(*s, {2, epoch});
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.publications, Pubs({3, 4, 5}));
  r = Recover(*s, {5, epoch});
  EXPECT_TRUE(r.recovered);
  EXPECT_TRUE(r.publications.empty());
  EXPECT_FALSE(Recover(*s, {1, epoch}).recovered);  // p2 was trimmed
  EXPECT_FALSE(Recover(*s, {3, "other"}).recovered);
  EXPECT_FALSE(Recover(*s, {9, epoch}).recovered);  // past the top
}

TEST_P(StoreContract, IdempotencyKeysHoldForTheirWindow) {
  if (!GetParam().keys) GTEST_SKIP() << GetParam().name << " keeps keys in its history (above)";
  auto keys = idempotency().Open("ch");
  EXPECT_FALSE(keys->Find("k", base_));
  keys->Put("k", {7, "e"}, base_, base_ + 1000);
  std::optional<core::StreamPosition> seen = keys->Find("k", base_ + 999);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->offset, 7u);
  EXPECT_EQ(seen->epoch, "e");
  EXPECT_FALSE(keys->Find("other", base_));
  EXPECT_FALSE(keys->Find("k", base_ + 1000));
  keys->Expire(base_ + 1000);
  EXPECT_TRUE(keys->empty());
}

TEST_P(StoreContract, WhatItStoresSurvivesARestart) {
  if (!GetParam().durable) GTEST_SKIP() << GetParam().name << " keeps nothing past the process";
  std::string epoch;
  {
    auto s = Open("ch");
    for (int i = 1; i <= 4; ++i) Append(*s, "p" + std::to_string(i), 3);
    epoch = s->Position().epoch;
    auto keys = idempotency().Open("ch");
    if (keys->durable()) {
      // A key of its own (a publication without history) is answered once stored.
      EXPECT_TRUE(Await<bool>([&](auto done) -> std::optional<bool> {
        if (!keys->PutDurable("k", {4, epoch}, base_ + 60000, std::move(done))) return false;
        return std::nullopt;
      }));
    }
    keys->Put("k", {4, epoch}, base_, base_ + 60000);
    // A keyed append stores its key with it.
    core::HistoryAppend a;
    a.data = "p5";
    a.size = 3;
    a.ttl_ms = 60000;
    a.now_ms = base_;
    a.idempotency_key = "k5";
    Await<core::HistoryAppended>([&](auto done) { return s->Append(a, kEncode, std::move(done)); });
    auto other = Open("closed");
    Append(*other, "p1");
    history().Close("closed", std::move(other), base_);
  }
  Start();  // the engine again, on the same file
  // Kept() knows channels closed before the engine was made again (the hub reads and
  // removes their history through it).
  ASSERT_TRUE(history().Kept("closed", base_));
  EXPECT_EQ(history().Kept("closed", base_)->offset, 1u);
  EXPECT_EQ(Open("closed")->Position().offset, 1u);
  auto s = Open("ch");
  EXPECT_EQ(s->Position().offset, 5u);
  EXPECT_EQ(s->Position().epoch, epoch);
  EXPECT_EQ(Read(*s, {}), Pubs({3, 4, 5}));
  EXPECT_TRUE(Recover(*s, {3, epoch}).recovered);
  EXPECT_EQ(Append(*s, "p6", 3).position.offset, 6u);
  if (!GetParam().keys) return;
  auto keys = idempotency().Open("ch");
  ASSERT_TRUE(keys->Find("k", base_));
  EXPECT_EQ(keys->Find("k", base_)->offset, 4u);
  ASSERT_TRUE(keys->Find("k5", base_));
  EXPECT_EQ(keys->Find("k5", base_)->offset, 5u);
}

TEST_P(StoreContract, KeepsAtMostMaxChannelsPositionsOfChannelsWithNoHistoryLeft) {
  if (!GetParam().exact_meta_cap) GTEST_SKIP() << GetParam().name << " has no exact cap";
  history().SetMetaLimits(3600 * 1000, 3);
  // The oldest closed channel still holds history: its position stays (it is the history's).
  auto held = Open("held");
  Append(*held, "p1", 10, 60000);
  history().Close("held", std::move(held), base_ + 2000);
  for (int i = 0; i < 4; ++i) {
    const std::string name = "c" + std::to_string(i);
    auto s = Open(name);
    Append(*s, "p1", 10, 1000);  // expired by the time it is closed
    history().Close(name, std::move(s), base_ + 2000);
  }
  // Five closed, three kept: the two oldest without history left are forgotten.
  EXPECT_FALSE(history().Kept("c0", base_ + 2000));
  EXPECT_FALSE(history().Kept("c1", base_ + 2000));
  EXPECT_EQ(history().Kept("c2", base_ + 2000)->offset, 1u);
  EXPECT_EQ(history().Kept("c3", base_ + 2000)->offset, 1u);
  EXPECT_EQ(history().Kept("held", base_ + 2000)->offset, 1u);
  // A channel opened again is not counted while open, and continues its stream.
  auto c2 = Open("c2");
  EXPECT_EQ(Append(*c2, "p2", 10, 1000, 2000).position.offset, 2u);
  if (!GetParam().durable) return;
  c2.reset();
  Start();  // the same file: what was forgotten is gone from it too
  EXPECT_FALSE(history().Kept("c0", base_));
  EXPECT_FALSE(history().Kept("c1", base_));
  EXPECT_EQ(history().Kept("c2", base_)->offset, 2u);
  auto again = Open("held");
  EXPECT_EQ(again->Position().offset, 1u);
  EXPECT_EQ(Read(*again, {}), Pubs({1}));
  auto c0 = Open("c0");
  EXPECT_EQ(c0->Position().offset, 0u);
}

TEST_P(StoreContract, AFailingStorageFailsAppendsNeverSilently) {
  if (!engine_->break_storage) GTEST_SKIP() << GetParam().name << " has no storage to fail";
  auto s = Open("ch");
  ASSERT_FALSE(Append(*s, "p1").failed);
  engine_->break_storage();
  for (int i = 0; i < 3; ++i) {
    core::HistoryAppended r = Append(*s, "p2");
    EXPECT_TRUE(r.failed);
  }
  // Nothing was stored: the position is the last one stored.
  EXPECT_EQ(s->Position().offset, 1u);
}

std::map<std::string, core::PresenceEntry> Listed(core::PresenceStore::Set& set) {
  core::PresenceList list =
      Await<core::PresenceList>([&](auto done) { return set.List(std::move(done)); });
  EXPECT_FALSE(list.failed);
  std::map<std::string, core::PresenceEntry> out(list.begin(), list.end());
  EXPECT_EQ(out.size(), list.size()) << "a client listed twice";
  return out;
}

TEST_P(StoreContract, PresenceListsAndCountsAChannelsClients) {
  core::PresenceStore& presence = *engine_->stores.presence;
  auto room = presence.Open("room");
  auto other = presence.Open("other");
  room->Add("c1", "alice", "{\"a\":1}");
  room->Add("c2", "alice", "{}");
  room->Add("c3", "bob", "{}");
  room->Add("c3", "bob", "{\"b\":2}");  // a client is one entry: its latest info
  other->Add("c9", "carol", "{}");
  EXPECT_EQ(room->size(), 3u);
  auto listed = Listed(*room);
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed["c1"].user, "alice");
  EXPECT_EQ(listed["c1"].info, "{\"a\":1}");
  EXPECT_EQ(listed["c3"].info, "{\"b\":2}");
  core::PresenceCounts counts =
      Await<core::PresenceCounts>([&](auto done) { return room->Stats(std::move(done)); });
  EXPECT_FALSE(counts.failed);
  EXPECT_EQ(counts.clients, 3u);
  EXPECT_EQ(counts.users, 2u);

  room->Remove("c1");
  room->Remove("nobody");
  EXPECT_EQ(room->size(), 2u);
  listed = Listed(*room);
  EXPECT_EQ(listed.count("c1"), 0u);
  EXPECT_EQ(listed.size(), 2u);
  EXPECT_EQ(Listed(*other).size(), 1u);
  EXPECT_TRUE(Listed(*presence.Open("empty")).empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreContract, ::testing::ValuesIn(kEngines),
                         [](const auto& info) { return std::string(info.param.name); });

// The writer's connection, asked for its PRAGMA secure_delete through Exec (in a transaction
// of the writer, as the engine's other writes).
int SecureDelete(bool option) {
  char tmpl[] = "/tmp/hermod-secure-delete-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  SqliteOptions o;
  o.path = std::string(tmpl) + "/hermod.db";
  o.secure_delete = option;
  std::string error;
  auto engine = SqliteEngine::Open(o, &error);
  EXPECT_TRUE(engine) << error;
  if (!engine) return -1;
  std::promise<int> value;
  auto read = [&value](sqlite3* db) {
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA secure_delete", -1, &q, nullptr);
    value.set_value(sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1);
    sqlite3_finalize(q);
    return true;
  };
  EXPECT_TRUE(engine->Exec(read, [](bool) {}));
  const int result = value.get_future().get();
  engine->Stop();
  engine.reset();
  std::filesystem::remove_all(tmpl);
  return result;
}

// Off unless asked, whatever the SQLite build's default (Debian's is on): a trimmed
// publication's delete then writes no zeros, over its cell or over a freed page.
TEST(SqliteEngine, SecureDeleteIsTheOptionsWhateverTheBuildsDefault) {
  EXPECT_EQ(SecureDelete(false), 0);
  EXPECT_EQ(SecureDelete(true), 1);
}

}  // namespace
}  // namespace hermod::store
