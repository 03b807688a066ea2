// The memory engines through the store interfaces, as the hub calls them: every call
// answers at once and never touches the completion it is given.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "store/memory_history.h"
#include "store/memory_idempotency.h"
#include "store/memory_presence.h"

namespace hermod::store {
namespace {

std::string Encode(std::string_view data, std::string_view, uint64_t offset, std::string_view) {
  return std::string(data) + "@" + std::to_string(offset);
}
const core::PublicationEncoder kEncode = &Encode;

// A completion that must never run: the memory engines answer inline.
template <class T>
core::Completion<T> Never() {
  return core::Completion<T>([](T) { ADD_FAILURE() << "the memory engine completed later"; });
}

core::HistoryAppended Append(core::HistoryStore::Stream& s, std::string_view data, uint64_t now,
                             uint64_t size = 10, uint64_t ttl = 60000) {
  core::HistoryAppend a;
  a.data = data;
  a.size = size;
  a.ttl_ms = ttl;
  a.now_ms = now;
  std::optional<core::HistoryAppended> r = s.Append(a, kEncode, Never<core::HistoryAppended>());
  EXPECT_TRUE(r.has_value());
  return r ? std::move(*r) : core::HistoryAppended{};
}

TEST(MemoryHistoryStore, AppendsWithContiguousOffsetsInOneEpochAndReturnsTheStoredBytes) {
  MemoryHistoryStore store;
  auto stream = store.Open("ch", 0);
  const std::string epoch = stream->Position().epoch;
  EXPECT_EQ(stream->Position().offset, 0u);
  for (uint64_t i = 1; i <= 3; ++i) {
    core::HistoryAppended r = Append(*stream, "d" + std::to_string(i), 0);
    EXPECT_EQ(r.position.offset, i);
    EXPECT_EQ(r.position.epoch, epoch);
    EXPECT_EQ(r.bytes(), "d" + std::to_string(i) + "@" + std::to_string(i));
  }
  EXPECT_EQ(stream->entries(), 3u);
  EXPECT_EQ(stream->bytes(), 3 * 4u);
}

TEST(MemoryHistoryStore, ReadsSinceWithLimitReverseAndMaxBytes) {
  MemoryHistoryStore store;
  auto stream = store.Open("ch", 0);
  for (int i = 1; i <= 5; ++i) Append(*stream, "p" + std::to_string(i), 0);
  core::HistoryQuery q;
  q.since = core::StreamPosition{2, stream->Position().epoch};
  q.limit = 2;
  std::optional<core::HistoryPage> page = stream->Read(q, Never<core::HistoryPage>());
  ASSERT_TRUE(page);
  EXPECT_EQ(page->publications, (std::vector<std::string>{"p3@3", "p4@4"}));
  EXPECT_EQ(page->position.offset, 5u);

  q.since.reset();
  q.limit = -1;
  q.reverse = true;
  q.max_bytes = 10;  // two of 4 bytes and their separators
  page = stream->Read(q, Never<core::HistoryPage>());
  EXPECT_EQ(page->publications, (std::vector<std::string>{"p5@5", "p4@4"}));
  EXPECT_TRUE(page->cut);

  q = {};
  q.since = core::StreamPosition{1, "another"};
  page = stream->Read(q, Never<core::HistoryPage>());
  EXPECT_TRUE(page->unrecoverable);
  EXPECT_TRUE(page->publications.empty());
}

TEST(MemoryHistoryStore, RecoversOnlyWhenEveryMissedPublicationIsHeld) {
  MemoryHistoryStore store;
  auto stream = store.Open("ch", 0);
  const std::string epoch = stream->Position().epoch;
  for (int i = 1; i <= 5; ++i) Append(*stream, "p", 0, 3);  // keeps 3..5
  core::RecoveryQuery q{{2, epoch}, 5, 10, SIZE_MAX, 0};
  auto r = stream->Recover(q, Never<core::HistoryStream::Recovery>());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->recovered);
  EXPECT_EQ(r->publications.size(), 3u);
  q.since.offset = 1;  // 2 was trimmed
  EXPECT_FALSE(stream->Recover(q, Never<core::HistoryStream::Recovery>())->recovered);
  q.since = {4, "other"};
  EXPECT_FALSE(stream->Recover(q, Never<core::HistoryStream::Recovery>())->recovered);
}

TEST(MemoryHistoryStore, RemoveDropsPublicationsAndKeepsThePosition) {
  MemoryHistoryStore store;
  auto stream = store.Open("ch", 0);
  Append(*stream, "a", 0);
  Append(*stream, "b", 0);
  const core::StreamPosition before = stream->Position();
  stream->Remove();
  EXPECT_EQ(stream->entries(), 0u);
  EXPECT_EQ(stream->bytes(), 0u);
  EXPECT_EQ(stream->Position().offset, before.offset);
  EXPECT_EQ(Append(*stream, "c", 0).position.offset, 3u);
}

TEST(MemoryHistoryStore, ExpiresByTtlAndTellsWhenTheNewestGoes) {
  MemoryHistoryStore store;
  auto stream = store.Open("ch", 0);
  Append(*stream, "a", 100, 10, 50);
  Append(*stream, "b", 120, 10, 50);
  EXPECT_EQ(stream->expires_ms(), 170u);
  stream->Expire(160);
  EXPECT_EQ(stream->entries(), 1u);
  stream->Expire(170);
  EXPECT_EQ(stream->entries(), 0u);
  EXPECT_EQ(stream->expires_ms(), 0u);
}

TEST(MemoryHistoryStore, AClosedChannelsPositionIsKeptAndContinuedWithinTheMetaTtl) {
  MemoryHistoryStore store;
  store.SetMetaLimits(1000, 100);
  auto stream = store.Open("ch", 0);
  Append(*stream, "a", 0);
  Append(*stream, "b", 0);
  const core::StreamPosition left = stream->Position();
  store.Close("ch", std::move(stream), 10);
  EXPECT_EQ(store.kept(), 1u);
  std::optional<core::StreamPosition> kept = store.Kept("ch", 20);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->offset, 2u);
  EXPECT_EQ(kept->epoch, left.epoch);
  auto again = store.Open("ch", 20);
  EXPECT_EQ(again->Position().epoch, left.epoch);
  EXPECT_EQ(Append(*again, "c", 20).position.offset, 3u);
  EXPECT_EQ(store.kept(), 0u);  // taken back by the stream

  store.Close("ch", std::move(again), 30);
  store.ExpireKept(1030);
  EXPECT_EQ(store.kept(), 0u);
  EXPECT_FALSE(store.Kept("ch", 1030));
  auto fresh = store.Open("ch", 1030);
  EXPECT_NE(fresh->Position().epoch, left.epoch);
  EXPECT_EQ(fresh->Position().offset, 0u);
}

TEST(MemoryHistoryStore, KeepsNoPositionsWithoutMetaLimitsAndAtMostTheCap) {
  MemoryHistoryStore none;
  auto s = none.Open("ch", 0);
  Append(*s, "a", 0);
  none.Close("ch", std::move(s), 0);
  EXPECT_EQ(none.kept(), 0u);

  MemoryHistoryStore capped;
  capped.SetMetaLimits(1000, 64);  // one a stripe
  for (int i = 0; i < 1000; ++i) {
    auto c = capped.Open("c" + std::to_string(i), 0);
    capped.Close("c" + std::to_string(i), std::move(c), 0);
  }
  EXPECT_LE(capped.kept(), 64u);
  EXPECT_GT(capped.kept(), 0u);
}

TEST(MemoryHistoryStore, ChannelsOpenAndCloseFromManyThreads) {
  MemoryHistoryStore store;
  store.SetMetaLimits(60000, 100000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i % 50);
        auto s = store.Open(name, 0);
        Append(*s, "x", 0);
        store.Close(name, std::move(s), 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store.kept(), 200u);
  EXPECT_EQ(store.Kept("t0-0", 0)->offset, 10u);  // 10 rounds, each continuing the stream
}

TEST(MemoryPresenceStore, AddsRemovesListsAndCountsDistinctUsers) {
  MemoryPresenceStore store;
  auto set = store.Open("ch");
  EXPECT_TRUE(set->empty());
  set->Add("c1", "alice", "{\"a\":1}");
  set->Add("c2", "alice", "{}");
  set->Add("c3", "bob", "{}");
  set->Add("c3", "bob", "{\"again\":true}");  // a client is one entry
  std::optional<core::PresenceCounts> stats = set->Stats(Never<core::PresenceCounts>());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->clients, 3u);
  EXPECT_EQ(stats->users, 2u);
  set->Remove("c1");
  set->Remove("nobody");
  std::optional<core::PresenceList> list = set->List(Never<core::PresenceList>());
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  for (const auto& [client, entry] : *list) {
    if (client == "c3") {
      EXPECT_EQ(entry.info, "{\"again\":true}");
    }
  }
  EXPECT_EQ(set->size(), 2u);
}

TEST(MemoryIdempotencyStore, FindsAKeyWithinItsWindowOnly) {
  MemoryIdempotencyStore store;
  auto keys = store.Open("ch");
  EXPECT_FALSE(keys->Find("k", 0));
  keys->Put("k", {7, "e"}, 0, 100);
  std::optional<core::StreamPosition> seen = keys->Find("k", 99);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->offset, 7u);
  EXPECT_EQ(seen->epoch, "e");
  EXPECT_FALSE(keys->Find("k", 100));
  EXPECT_EQ(keys->size(), 1u);  // expired, still held until Expire
  keys->Expire(100);
  EXPECT_TRUE(keys->empty());
}

TEST(MemoryIdempotencyStore, PrunesExpiredKeysWhenLargeOnly) {
  MemoryIdempotencyStore store;
  auto keys = store.Open("ch");
  for (size_t i = 0; i < MemoryIdempotencyStore::kPruneAt; ++i) {
    keys->Put("old" + std::to_string(i), {i, "e"}, 0, 10);
  }
  EXPECT_EQ(keys->size(), MemoryIdempotencyStore::kPruneAt);
  keys->Put("new", {1, "e"}, 20, 30);  // the old ones expired at 10
  EXPECT_EQ(keys->size(), 1u);
  EXPECT_TRUE(keys->Find("new", 20));
}

}  // namespace
}  // namespace hermod::store
