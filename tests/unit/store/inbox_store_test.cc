// The inbox engines (core/inbox_store.h): the same cases against memory, sqlite and nats,
// through the interface as core/inbox.h calls it. `stored` is awaited on a future, never slept
// for. The nats engine runs on a real `nats-server -js` the suite starts (a free port, a
// temporary store directory), a bucket per case; a restart is a new store on the same bucket.
// NatsInboxNodes: two stores on one bucket are two nodes of a cluster.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/memory_inbox.h"
#include "store/nats_inbox.h"
#include "store/sqlite_inbox.h"
#include "tests/unit/store/nats_server.h"

namespace hermod::store {
namespace {

using core::InboxState;

struct Factory {
  const char* name;
  bool durable;
};
void PrintTo(const Factory& f, std::ostream* os) { *os << f.name; }

const Factory kEngines[] = {{"memory", false}, {"sqlite", true}, {"nats", true}};

// The nats-server of the nats cases: started by the first, stopped after the last.
std::unique_ptr<test::NatsServer>& Nats() {
  static std::unique_ptr<test::NatsServer> server;
  return server;
}
class NatsEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { Nats().reset(); }
};
const auto* const kNatsEnvironment = ::testing::AddGlobalTestEnvironment(new NatsEnvironment);

// A store on the case's own bucket; null (with a failure) when nats-server cannot start.
std::unique_ptr<core::InboxStore> NatsStore(const std::string& bucket,
                                            std::function<void(std::string_view)> before_write = {},
                                            std::function<void()> before_watched = {}) {
  if (!Nats()) {
    Nats() = std::make_unique<test::NatsServer>();
    if (!Nats()->Start()) {
      ADD_FAILURE() << "nats-server did not start";
      Nats().reset();
      return nullptr;
    }
  }
  NatsInboxOptions options;
  options.url = Nats()->url();
  options.bucket = bucket;
  options.before_write = std::move(before_write);
  options.before_watched = std::move(before_watched);
  std::string error;
  auto store = MakeNatsInbox(options, &error);
  EXPECT_TRUE(store) << error;
  return store;
}

std::string CaseBucket() {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return "t" + std::to_string(getpid()) + "_" + name;
}

class InboxStoreTest : public ::testing::TestWithParam<Factory> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("hermod-inbox-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  // The engine made again on the same storage (a restart).
  void Reopen() {
    store_.reset();
    engine_.reset();
    if (!GetParam().durable) {
      store_ = std::make_unique<MemoryInboxStore>();
      return;
    }
    if (std::string_view(GetParam().name) == "nats") {
      if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
      store_ = NatsStore(CaseBucket());
      ASSERT_TRUE(store_);
      return;
    }
    SqliteOptions options;
    options.path = (dir_ / "hermod.db").string();
    std::string error;
    engine_ = SqliteEngine::Open(options, &error);
    ASSERT_TRUE(engine_) << error;
    store_ = SqliteInboxStore::Open(engine_, &error);
    ASSERT_TRUE(store_) << error;
  }
  // Runs a call and waits until its change is stored.
  template <class Call>
  auto Stored(Call&& call) {
    auto promise = std::make_shared<std::promise<bool>>();
    auto future = promise->get_future();
    auto result = call([promise](bool ok) { promise->set_value(ok); });
    EXPECT_TRUE(future.get());
    return result;
  }
  uint64_t Publish(std::string_view channel, std::string_view data, core::InboxLimits limits = {}) {
    auto r = Stored([&](core::InboxStored s) {
      return store_->Append(channel, data, {}, limits, now_, std::move(s));
    });
    EXPECT_EQ(r.status, core::InboxAppended::Status::kOk);
    return r.position.offset;
  }
  static std::vector<uint64_t> Offsets(const std::vector<core::InboxEntry>& entries) {
    std::vector<uint64_t> v;
    for (const auto& e : entries) v.push_back(e.offset);
    return v;
  }

  std::filesystem::path dir_;
  std::shared_ptr<SqliteEngine> engine_;
  std::unique_ptr<core::InboxStore> store_;
  uint64_t now_ = 1'700'000'000'000;
};

TEST_P(InboxStoreTest, AppendsWithOffsetsAndListsUnackedInOrder) {
  EXPECT_EQ(Publish("inbox:#42", R"({"n":1})"), 1u);
  EXPECT_EQ(Publish("inbox:#42", R"({"n":2})"), 2u);
  EXPECT_EQ(Publish("inbox:#7", R"({"n":1})"), 1u);
  const auto unacked = store_->Unacked("inbox:#42");
  ASSERT_EQ(Offsets(unacked), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(unacked[1].data, R"({"n":2})");
  EXPECT_EQ(unacked[0].state, InboxState::kPending);
  EXPECT_FALSE(store_->Position("inbox:#42").epoch.empty());
  EXPECT_TRUE(store_->Unacked("inbox:#nobody").empty());
}

TEST_P(InboxStoreTest, AcksByOffsetsAndUpToAndRefusesBadAcksWithoutChange) {
  for (int i = 0; i < 5; ++i) Publish("inbox:#42", "{}");
  auto acked = Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {2}, std::nullopt, now_ + 5, std::move(s));
  });
  ASSERT_TRUE(acked) << acked.error;
  EXPECT_EQ(Offsets(acked.changed), (std::vector<uint64_t>{2}));
  // Twice, unknown, and one bad offset among good ones: errors, nothing changes.
  EXPECT_FALSE(store_->Ack("inbox:#42", {2}, std::nullopt, now_, nullptr));
  EXPECT_FALSE(store_->Ack("inbox:#42", {9}, std::nullopt, now_, nullptr));
  EXPECT_FALSE(store_->Ack("inbox:#42", {1, 9}, std::nullopt, now_, nullptr));
  EXPECT_FALSE(store_->Ack("inbox:#7", {1}, std::nullopt, now_, nullptr));
  EXPECT_FALSE(store_->Ack("inbox:#42", {}, 99, now_, nullptr));
  EXPECT_EQ(Offsets(store_->Unacked("inbox:#42")), (std::vector<uint64_t>{1, 3, 4, 5}));
  // up_to acks what was delivered at or below it; 4, never delivered (its push may still be
  // on its way, behind a later one), stays.
  EXPECT_FALSE(store_->Ack("inbox:#42", {}, 4, now_, nullptr));  // nothing delivered yet
  store_->MarkDelivered("inbox:#42", {1, 3}, 1000, now_);
  acked = Stored(
      [&](core::InboxStored s) { return store_->Ack("inbox:#42", {}, 4, now_, std::move(s)); });
  ASSERT_TRUE(acked) << acked.error;
  EXPECT_EQ(Offsets(acked.changed), (std::vector<uint64_t>{1, 3}));
  EXPECT_FALSE(store_->Ack("inbox:#42", {}, 4, now_, nullptr));
  EXPECT_EQ(Offsets(store_->Unacked("inbox:#42")), (std::vector<uint64_t>{4, 5}));
  const auto status = store_->Status("inbox:#42", {2, 5, 77});
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0].state, InboxState::kAcked);
  EXPECT_EQ(status[0].done_ms, now_ + 5);
  EXPECT_EQ(status[1].state, InboxState::kPending);
}

// Acks settle an inbox from its start, and walks for unacked entries (up_to, Unacked) skip
// what is settled there: a dead letter redriven below acked entries is seen again, by
// Unacked and by up_to, and so is one left unacked below later acks.
TEST_P(InboxStoreTest, UpToAndUnackedSeeARedrivenEntryBelowTheAcked) {
  for (int i = 0; i < 6; ++i) Publish("inbox:#42", "{}");
  store_->MarkDelivered("inbox:#42", {1, 2, 3, 4, 5, 6}, 1000, now_);
  Stored([&](core::InboxStored s) {
    return store_->DeadLetter("inbox:#42", {2}, "rejected", now_, std::move(s));
  });
  auto acked = Stored(
      [&](core::InboxStored s) { return store_->Ack("inbox:#42", {}, 3, now_, std::move(s)); });
  ASSERT_TRUE(acked) << acked.error;
  EXPECT_EQ(Offsets(acked.changed), (std::vector<uint64_t>{1, 3}));
  // 4 stays unacked below acked 5 and 6.
  Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {5, 6}, std::nullopt, now_, std::move(s));
  });
  EXPECT_FALSE(store_->Ack("inbox:#42", {}, 3, now_, nullptr));  // nothing left at or below 3
  EXPECT_EQ(Offsets(store_->Unacked("inbox:#42")), (std::vector<uint64_t>{4}));
  Stored(
      [&](core::InboxStored s) { return store_->Redrive("inbox:#42", {2}, now_, std::move(s)); });
  EXPECT_EQ(Offsets(store_->Unacked("inbox:#42")), (std::vector<uint64_t>{2, 4}));
  store_->MarkDelivered("inbox:#42", {2}, 1000, now_);
  acked = Stored(
      [&](core::InboxStored s) { return store_->Ack("inbox:#42", {}, 6, now_, std::move(s)); });
  ASSERT_TRUE(acked) << acked.error;
  EXPECT_EQ(Offsets(acked.changed), (std::vector<uint64_t>{2, 4}));
  EXPECT_TRUE(store_->Unacked("inbox:#42").empty());
  EXPECT_EQ(Publish("inbox:#42", "{}"), 7u);
  EXPECT_EQ(Offsets(store_->Unacked("inbox:#42")), (std::vector<uint64_t>{7}));
  // An acked entry's answer carries no data (it is dropped), the rest of it as stored.
  store_->MarkDelivered("inbox:#42", {7}, 1000, now_);
  acked = Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {7}, std::nullopt, now_ + 9, std::move(s));
  });
  ASSERT_EQ(acked.changed.size(), 1u);
  EXPECT_EQ(acked.changed[0].state, InboxState::kAcked);
  EXPECT_EQ(acked.changed[0].done_ms, now_ + 9);
  EXPECT_EQ(acked.changed[0].deliveries, 1u);
}

TEST_P(InboxStoreTest, CountsDeliveriesWithBackoff) {
  Publish("inbox:#42", "{}");
  auto d = store_->MarkDelivered("inbox:#42", {1, 2}, 100, now_);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].deliveries, 1u);
  EXPECT_EQ(d[0].due_ms, now_ + 100);
  d = store_->MarkDelivered("inbox:#42", {1}, 100, now_);
  EXPECT_EQ(d[0].deliveries, 2u);
  EXPECT_EQ(d[0].due_ms, now_ + 200);
  for (int i = 0; i < 8; ++i) d = store_->MarkDelivered("inbox:#42", {1}, 100, now_);
  EXPECT_EQ(d[0].due_ms, now_ + 1600);  // at most 16 × ack_timeout
  EXPECT_EQ(store_->Unacked("inbox:#42")[0].state, InboxState::kDelivered);
}

TEST_P(InboxStoreTest, DeadLettersPageRedriveAndRemove) {
  for (int i = 0; i < 3; ++i) Publish("inbox:#42", "{}");
  for (int i = 0; i < 2; ++i) Publish("inbox:#7", "{}");
  auto dead = Stored([&](core::InboxStored s) {
    return store_->DeadLetter("inbox:#42", {1, 3}, "bad payload", now_, std::move(s));
  });
  ASSERT_TRUE(dead) << dead.error;
  EXPECT_FALSE(store_->DeadLetter("inbox:#42", {1}, "again", now_, nullptr));
  Stored([&](core::InboxStored s) {
    return store_->DeadLetter("inbox:#7", {2}, "max_deliveries", now_, std::move(s));
  });
  EXPECT_EQ(store_->DeadCount(), 3u);
  // Paging by cursor, all channels, then filtered.
  auto page = store_->DeadLetters({"", "", 0, 2});
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_NE(page.next_cursor, 0u);
  EXPECT_EQ(page.entries[0].reason, "bad payload");
  auto rest = store_->DeadLetters({"", "", page.next_cursor, 2});
  ASSERT_EQ(rest.entries.size(), 1u);
  EXPECT_EQ(rest.next_cursor, 0u);
  EXPECT_EQ(rest.entries[0].channel, "inbox:#7");
  EXPECT_EQ(store_->DeadLetters({"", "7", 0, 10}).entries.size(), 1u);
  EXPECT_EQ(store_->DeadLetters({"inbox:#42", "", 0, 10}).entries.size(), 2u);
  // Redrive: back in the inbox, count reset, same offset.
  auto back = Stored(
      [&](core::InboxStored s) { return store_->Redrive("inbox:#42", {3}, now_, std::move(s)); });
  ASSERT_TRUE(back) << back.error;
  EXPECT_FALSE(store_->Redrive("inbox:#42", {2}, now_, nullptr));
  const auto unacked = store_->Unacked("inbox:#42");
  EXPECT_EQ(Offsets(unacked), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(unacked[1].deliveries, 0u);
  auto removed = Stored(
      [&](core::InboxStored s) { return store_->RemoveDead("inbox:#42", {}, std::move(s)); });
  ASSERT_TRUE(removed) << removed.error;
  EXPECT_EQ(Offsets(removed.changed), (std::vector<uint64_t>{1}));
  EXPECT_EQ(store_->DeadCount(), 1u);
}

TEST_P(InboxStoreTest, FullInboxRefusesOrDeadLettersTheOldest) {
  core::InboxLimits limits;
  limits.size = 2;
  Publish("inbox:#42", "{}", limits);
  Publish("inbox:#42", "{}", limits);
  auto full = store_->Append("inbox:#42", "{}", {}, limits, now_, nullptr);
  EXPECT_EQ(full.status, core::InboxAppended::Status::kFull);
  EXPECT_EQ(store_->Unacked("inbox:#42").size(), 2u);
  limits.dead_letter_oldest = true;
  auto r = Stored([&](core::InboxStored s) {
    return store_->Append("inbox:#42", "{}", {}, limits, now_, std::move(s));
  });
  ASSERT_EQ(r.status, core::InboxAppended::Status::kOk);
  EXPECT_EQ(r.position.offset, 3u);
  ASSERT_EQ(r.dead.size(), 1u);
  EXPECT_EQ(r.dead[0].offset, 1u);
  EXPECT_EQ(r.dead[0].reason, "overflow");
  EXPECT_EQ(Offsets(store_->Unacked("inbox:#42")), (std::vector<uint64_t>{2, 3}));
}

TEST_P(InboxStoreTest, ExpiresUnackedIntoDeadLetters) {
  core::InboxLimits limits;
  limits.ttl_ms = 1000;
  Publish("inbox:#42", "{}", limits);
  EXPECT_TRUE(store_->Expire(now_ + 999).empty());
  const auto died = store_->Expire(now_ + 1000);
  ASSERT_EQ(died.size(), 1u);
  EXPECT_EQ(died[0].reason, "expired");
  EXPECT_TRUE(store_->Unacked("inbox:#42").empty());
  // The dead letter goes a ttl after it died.
  EXPECT_EQ(store_->DeadCount(), 1u);
  store_->Expire(now_ + 2000);
  EXPECT_EQ(store_->DeadCount(), 0u);
}

TEST_P(InboxStoreTest, KeepsWhatWasStoredAcrossARestart) {
  if (!GetParam().durable) GTEST_SKIP() << "not durable";
  for (int i = 0; i < 4; ++i) Publish("inbox:#42", "{\"i\":" + std::to_string(i) + "}");
  const std::string epoch = store_->Position("inbox:#42").epoch;
  Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {1, 3}, std::nullopt, now_, std::move(s));
  });
  Stored([&](core::InboxStored s) {
    return store_->DeadLetter("inbox:#42", {4}, "rejected", now_, std::move(s));
  });
  store_->MarkDelivered("inbox:#42", {2}, 100, now_);
  Reopen();
  const auto unacked = store_->Unacked("inbox:#42");
  ASSERT_EQ(Offsets(unacked), (std::vector<uint64_t>{2}));
  EXPECT_EQ(unacked[0].data, R"({"i":1})");
  EXPECT_EQ(unacked[0].deliveries, 1u);  // the writer stored it before the later commits
  EXPECT_EQ(store_->Status("inbox:#42", {1})[0].state, InboxState::kAcked);
  EXPECT_EQ(store_->DeadLetters({}).entries.size(), 1u);
  EXPECT_EQ(store_->Position("inbox:#42").epoch, epoch);
  EXPECT_EQ(Publish("inbox:#42", "{}"), 5u);
}

// A scheduled firing repeated after a crash (the same fire key) stores nothing and answers
// the first one's position, also once the entry was delivered and acked before the restart.
TEST_P(InboxStoreTest, AFiringRepeatedAfterARestartIsADuplicate) {
  if (!GetParam().durable) GTEST_SKIP() << "not durable";
  auto fire = [&](std::string_view key) {
    return Stored([&](core::InboxStored s) {
      return store_->Append("inbox:#42", "{\"s\":1}", key, {}, now_, std::move(s));
    });
  };
  const auto first = fire("hermod-schedule:s1");
  ASSERT_EQ(first.position.offset, 1u);
  EXPECT_FALSE(first.duplicate);
  store_->MarkDelivered("inbox:#42", {1}, 100, now_);
  Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {1}, std::nullopt, now_, std::move(s));
  });
  Reopen();
  const auto again = fire("hermod-schedule:s1");
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.position.offset, 1u);
  EXPECT_EQ(again.position.epoch, first.position.epoch);
  EXPECT_EQ(Offsets(store_->Status("inbox:#42", {})), (std::vector<uint64_t>{1}));
  EXPECT_EQ(store_->Position("inbox:#42").offset, 1u);
  EXPECT_EQ(fire("hermod-schedule:s2").position.offset, 2u);
}

// An offset is never handed out twice in an epoch, even when a restart finds none of the
// inbox's rows (all acked, then expired): the top is kept with the deletes.
TEST_P(InboxStoreTest, OffsetsGoOnAfterARestartThatFindsNoRows) {
  if (!GetParam().durable) GTEST_SKIP() << "not durable";
  core::InboxLimits limits;
  limits.ttl_ms = 10;
  for (int i = 0; i < 3; ++i) Publish("inbox:#42", "{}", limits);
  const std::string epoch = store_->Position("inbox:#42").epoch;
  Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {1, 2, 3}, std::nullopt, now_, std::move(s));
  });
  store_->Expire(now_ + 100);
  ASSERT_TRUE(store_->Status("inbox:#42", {}).empty());
  Reopen();
  EXPECT_TRUE(store_->Status("inbox:#42", {}).empty());
  EXPECT_EQ(store_->Position("inbox:#42").offset, 3u);
  EXPECT_EQ(store_->Position("inbox:#42").epoch, epoch);
  EXPECT_EQ(Publish("inbox:#42", "{}"), 4u);
}

// Deliveries, acks and dead letters write the entry's state alone: the data stays as it was
// published (a dead letter's, to redrive it), an ack's is dropped, and a state write for a
// row that is gone from the file does not bring it back.
TEST_P(InboxStoreTest, StateWritesKeepDataAndNeverBringBackARemovedRow) {
  if (!GetParam().durable || std::string_view(GetParam().name) != "sqlite") {
    GTEST_SKIP() << "sqlite rows";
  }
  for (int i = 0; i < 4; ++i) Publish("inbox:#42", "{\"i\":" + std::to_string(i) + "}");
  store_->MarkDelivered("inbox:#42", {1, 2, 3}, 100, now_);
  Stored([&](core::InboxStored s) {
    return store_->Ack("inbox:#42", {1}, std::nullopt, now_, std::move(s));
  });
  Stored([&](core::InboxStored s) {
    return store_->DeadLetter("inbox:#42", {2}, "rejected", now_, std::move(s));
  });
  // Offset 3's row removed from the file behind the store's back, then written as delivered.
  auto removed = std::make_shared<std::promise<bool>>();
  ASSERT_TRUE(engine_->Exec(
      [](sqlite3* db) {
        return sqlite3_exec(db, "DELETE FROM inbox WHERE offset=3", nullptr, nullptr, nullptr) ==
               SQLITE_OK;
      },
      [removed](bool ok) { removed->set_value(ok); }));
  ASSERT_TRUE(removed->get_future().get());
  store_->MarkDelivered("inbox:#42", {3}, 100, now_);
  // Offset 4 dead-lettered, redriven, delivered twice: its data and count as they were.
  Stored([&](core::InboxStored s) {
    return store_->DeadLetter("inbox:#42", {4}, "later", now_, std::move(s));
  });
  Stored(
      [&](core::InboxStored s) { return store_->Redrive("inbox:#42", {4}, now_, std::move(s)); });
  store_->MarkDelivered("inbox:#42", {4}, 100, now_);
  store_->MarkDelivered("inbox:#42", {4}, 100, now_);
  Reopen();
  const auto status = store_->Status("inbox:#42", {});
  ASSERT_EQ(Offsets(status), (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(status[0].state, InboxState::kAcked);
  EXPECT_EQ(status[0].data, "");
  EXPECT_EQ(status[1].state, InboxState::kDead);
  EXPECT_EQ(status[1].data, R"({"i":1})");
  EXPECT_EQ(status[1].reason, "rejected");
  EXPECT_EQ(status[1].deliveries, 1u);
  EXPECT_EQ(status[2].state, InboxState::kDelivered);
  EXPECT_EQ(status[2].data, R"({"i":3})");
  EXPECT_EQ(status[2].deliveries, 2u);
  EXPECT_EQ(store_->DeadLetters({}).entries.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, InboxStoreTest, ::testing::ValuesIn(kEngines),
                         [](const auto& info) { return std::string(info.param.name); });

// Two nats stores on one bucket: two nodes of a cluster.
class NatsInboxNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
    a_ = NatsStore(CaseBucket());
    b_ = NatsStore(CaseBucket());
    ASSERT_TRUE(a_ && b_);
    b_->OnRemotePending([this](const std::string& channel) {
      std::lock_guard lock(mutex_);
      pending_.insert(channel);
      changed_.notify_all();
    });
  }
  void TearDown() override {
    if (b_) b_->OnRemotePending(nullptr);
  }
  // Waits until b was told of a publication to channel that A stored (at most 5 s).
  bool ToldB(const std::string& channel) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(5),
                             [&] { return pending_.count(channel) > 0; });
  }
  static bool Stored(const std::function<bool(core::InboxStored)>& call) {
    auto promise = std::make_shared<std::promise<bool>>();
    auto future = promise->get_future();
    if (!call([promise](bool ok) { promise->set_value(ok); })) return false;
    return future.get();
  }

  std::unique_ptr<core::InboxStore> a_, b_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::string> pending_;
  uint64_t now_ = 1'700'000'000'000;
};

TEST_F(NatsInboxNodes, WhatOneNodeStoresTheOtherDeliversAndAcks) {
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return a_->Append("inbox:#42", "{\"n\":1}", {}, {}, now_, std::move(s)).status ==
           core::InboxAppended::Status::kOk;
  }));
  ASSERT_TRUE(ToldB("inbox:#42"));
  const auto unacked = b_->Unacked("inbox:#42");
  ASSERT_EQ(unacked.size(), 1u);
  EXPECT_EQ(unacked[0].data, "{\"n\":1}");
  EXPECT_EQ(b_->Position("inbox:#42").epoch, a_->Position("inbox:#42").epoch);
  ASSERT_EQ(b_->MarkDelivered("inbox:#42", {1}, 100, now_).size(), 1u);
  // A has not seen B's delivery yet or has: either way it cannot count it a second time
  // with its older revision, and once it read the key back its count is B's.
  const auto again = a_->MarkDelivered("inbox:#42", {1}, 100, now_);
  if (!again.empty()) {
    EXPECT_EQ(again[0].deliveries, 2u);
  }
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return static_cast<bool>(b_->Ack("inbox:#42", {1}, std::nullopt, now_, std::move(s)));
  }));
  // Acked twice, from the other node: an error (it reads the entry back), nothing changes.
  EXPECT_FALSE(a_->Ack("inbox:#42", {1}, std::nullopt, now_, nullptr));
  EXPECT_EQ(a_->Status("inbox:#42", {1})[0].state, InboxState::kAcked);
}

// inbox_status on one node right after an ack on the other: ReadThrough reads the entries
// from NATS, so it is current though this node's watcher has not brought the ack (held back
// here until the end); asked by offset and for the whole inbox.
TEST_F(NatsInboxNodes, AStatusReadThroughShowsTheOtherNodesAckBeforeItsWatcherDoes) {
  std::mutex held_mutex;
  std::condition_variable released;
  bool hold = false;
  auto c = NatsStore(CaseBucket(), {}, [&] {
    std::unique_lock lock(held_mutex);
    released.wait(lock, [&] { return !hold; });
  });
  ASSERT_TRUE(c);
  auto release = [&] {
    {
      std::lock_guard lock(held_mutex);
      hold = false;
    }
    released.notify_all();
  };
  // Before c goes, however the test ends: its watcher's thread is joined then.
  std::unique_ptr<void, std::function<void(void*)>> guard(&hold, [&](void*) { release(); });
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return a_->Append("inbox:#3", "{}", {}, {}, now_, std::move(s)).status ==
           core::InboxAppended::Status::kOk;
  }));
  {
    std::lock_guard lock(held_mutex);
    hold = true;  // C's watcher stops at its next update
  }
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return a_->Append("inbox:#3", "{}", {}, {}, now_, std::move(s)).status ==
           core::InboxAppended::Status::kOk;
  }));
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return static_cast<bool>(a_->Ack("inbox:#3", {1, 2}, std::nullopt, now_, std::move(s)));
  }));
  c->ReadThrough("inbox:#3", {1});
  const auto one = c->Status("inbox:#3", {1});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].state, InboxState::kAcked);
  c->ReadThrough("inbox:#3", {});
  const auto all = c->Status("inbox:#3", {});
  ASSERT_EQ(all.size(), 2u);  // the second one too, which the watcher has not brought
  EXPECT_EQ(all[1].state, InboxState::kAcked);
  EXPECT_EQ(c->Position("inbox:#3").offset, 2u);
}

TEST_F(NatsInboxNodes, ConcurrentPublishesOnTwoNodesTakeDistinctOffsets) {
  constexpr int kEach = 40;
  std::vector<uint64_t> offsets_a, offsets_b;
  auto run = [&](core::InboxStore& store, std::vector<uint64_t>* out) {
    for (int i = 0; i < kEach; ++i) {
      auto promise = std::make_shared<std::promise<bool>>();
      auto future = promise->get_future();
      auto r = store.Append("inbox:#7", "{}", {}, {}, now_,
                            [promise](bool ok) { promise->set_value(ok); });
      ASSERT_EQ(r.status, core::InboxAppended::Status::kOk);
      ASSERT_TRUE(future.get());
      out->push_back(r.position.offset);
    }
  };
  std::thread ta([&] { run(*a_, &offsets_a); });
  std::thread tb([&] { run(*b_, &offsets_b); });
  ta.join();
  tb.join();
  std::set<uint64_t> all(offsets_a.begin(), offsets_a.end());
  all.insert(offsets_b.begin(), offsets_b.end());
  EXPECT_EQ(all.size(), 2u * kEach);
}

TEST_F(NatsInboxNodes, NoDeliveryIsCountedByTwoNodes) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Stored([&](core::InboxStored s) {
      return a_->Append("inbox:#9", "{}", {}, {}, now_, std::move(s)).status ==
             core::InboxAppended::Status::kOk;
    }));
  }
  // Until B holds all 20 (each publication tells it).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (b_->Unacked("inbox:#9").size() < 20 && std::chrono::steady_clock::now() < deadline) {
    ToldB("inbox:#9");
    std::lock_guard lock(mutex_);
    pending_.clear();
  }
  ASSERT_EQ(b_->Unacked("inbox:#9").size(), 20u);
  std::vector<uint64_t> offsets;
  for (uint64_t o = 1; o <= 20; ++o) offsets.push_back(o);
  std::vector<core::InboxEntry> got_a, got_b;
  std::thread ta([&] { got_a = a_->MarkDelivered("inbox:#9", offsets, 1000, now_); });
  std::thread tb([&] { got_b = b_->MarkDelivered("inbox:#9", offsets, 1000, now_); });
  ta.join();
  tb.join();
  // No delivery is counted twice: each count of an entry (1, 2, ...) was taken by one node
  // only, whatever the interleaving (a node that already saw the other's count takes the
  // next one; one that had not loses the write and leaves the entry out).
  std::map<uint64_t, std::vector<uint32_t>> counts;
  for (const auto& e : got_a) counts[e.offset].push_back(e.deliveries);
  for (const auto& e : got_b) counts[e.offset].push_back(e.deliveries);
  EXPECT_EQ(counts.size(), 20u);
  for (auto& [offset, values] : counts) {
    std::sort(values.begin(), values.end());
    std::vector<uint32_t> expected(values.size());
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<uint32_t>(i + 1);
    EXPECT_EQ(values, expected) << offset;
  }
}

// A user connected to both nodes: node B's redelivery tick reads the entry due, then A's
// redelivery of it reaches B before B counts its own. B leaves it out (A's was the
// redelivery), rather than count a third delivery on top of A's second.
TEST_F(NatsInboxNodes, ARedeliveryIsMadeByOneNodeWhenTheOtherSawItLate) {
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return a_->Append("inbox:#3", "{}", {}, {}, now_, std::move(s)).status ==
           core::InboxAppended::Status::kOk;
  }));
  ASSERT_EQ(a_->MarkDelivered("inbox:#3", {1}, 1000, now_).size(), 1u);
  // Until B holds the count A stored (the watcher's latency), at most 5 s.
  auto b_counts = [&](uint32_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto status = b_->Status("inbox:#3", {1});
      if (!status.empty() && status[0].deliveries == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  };
  ASSERT_TRUE(b_counts(1));
  const auto seen = b_->Unacked("inbox:#3");  // B's tick: delivered once, due
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(seen[0].deliveries, 1u);
  const auto by_a = a_->MarkDelivered("inbox:#3", {1}, 1000, now_ + 2000);
  ASSERT_EQ(by_a.size(), 1u);
  EXPECT_EQ(by_a[0].deliveries, 2u);
  ASSERT_TRUE(b_counts(2));
  EXPECT_TRUE(b_->MarkDelivered("inbox:#3", {1}, 1000, now_ + 2000).empty());
  EXPECT_EQ(b_->Status("inbox:#3", {1})[0].deliveries, 2u);
  EXPECT_EQ(a_->Status("inbox:#3", {1})[0].deliveries, 2u);
  // Read afresh, the entry is B's to deliver again (a connect, or its next due time).
  ASSERT_EQ(b_->Unacked("inbox:#3").size(), 1u);
  const auto again = b_->MarkDelivered("inbox:#3", {1}, 1000, now_ + 9000);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].deliveries, 3u);
}

// KV writes one key at a time: an ack of offsets 1..3 on A that loses the race on offset 2
// (B changed it, A had not seen it yet) has written offset 1 already. It acks the rest on
// its retry and answers all three; it never answers an error while offset 1 is acked.
// Whether A saw B's write in time is up to the watcher: many inboxes, so the race is hit.
TEST_F(NatsInboxNodes, AnAckThatLosesARacePartWayAcksTheRestAndAnswersEveryOffset) {
  constexpr int kInboxes = 20;
  const auto filled = [&](const std::string& channel) {
    for (int i = 0; i < 3; ++i) {
      if (!Stored([&](core::InboxStored s) {
            return a_->Append(channel, "{}", {}, {}, now_, std::move(s)).status ==
                   core::InboxAppended::Status::kOk;
          })) {
        return false;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (b_->Unacked(channel).size() < 3 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return b_->Unacked(channel).size() == 3;
  };
  for (int i = 0; i < kInboxes; ++i) {
    const std::string channel = "inbox:#race" + std::to_string(i);
    ASSERT_TRUE(filled(channel));
    ASSERT_EQ(b_->MarkDelivered(channel, {2}, 1000, now_).size(), 1u);
    auto promise = std::make_shared<std::promise<bool>>();
    auto future = promise->get_future();
    const core::InboxChange change = a_->Ack(channel, {1, 2, 3}, std::nullopt, now_,
                                             [promise](bool ok) { promise->set_value(ok); });
    ASSERT_TRUE(change) << channel << ": " << change.error;
    ASSERT_TRUE(future.get()) << channel;
    std::vector<uint64_t> offsets;
    for (const auto& e : change.changed) offsets.push_back(e.offset);
    EXPECT_EQ(offsets, (std::vector<uint64_t>{1, 2, 3})) << channel;
    for (const auto& e : a_->Status(channel, {1, 2, 3})) {
      EXPECT_EQ(e.state, InboxState::kAcked) << channel << " offset " << e.offset;
    }
  }
  // The same when B acked offset 2 itself: A answers exactly what it acked (1 and 3), or,
  // when it had seen B's ack, an error with nothing changed.
  for (int i = 0; i < kInboxes; ++i) {
    const std::string channel = "inbox:#both" + std::to_string(i);
    ASSERT_TRUE(filled(channel));
    ASSERT_TRUE(Stored([&](core::InboxStored s) {
      return static_cast<bool>(b_->Ack(channel, {2}, std::nullopt, now_, std::move(s)));
    }));
    auto promise = std::make_shared<std::promise<bool>>();
    auto future = promise->get_future();
    const core::InboxChange change = a_->Ack(channel, {1, 2, 3}, std::nullopt, now_,
                                             [promise](bool ok) { promise->set_value(ok); });
    const auto status = a_->Status(channel, {1, 3});
    ASSERT_EQ(status.size(), 2u);
    if (!change) {
      for (const auto& e : status) {
        EXPECT_NE(e.state, InboxState::kAcked)
            << channel << ": an error, yet offset " << e.offset << " is acked";
      }
      continue;
    }
    ASSERT_TRUE(future.get()) << channel;
    std::vector<uint64_t> offsets;
    for (const auto& e : change.changed) offsets.push_back(e.offset);
    EXPECT_EQ(offsets, (std::vector<uint64_t>{1, 3})) << channel;
    for (const auto& e : status) EXPECT_EQ(e.state, InboxState::kAcked) << channel;
  }
}

// A firing stored by node A and repeated by node B (A died before forgetting its schedule):
// B answers it as a duplicate from the key A stored with the entry, even before B's watcher
// brought A's entry (B reads the inbox's newer keys before a firing). The key lives in the
// entry's record: once the entry is removed (acked and expired), nothing of it is left.
TEST_F(NatsInboxNodes, AFiringStoredByOneNodeIsADuplicateOnTheOtherWhileItsEntryIsHeld) {
  auto fire = [&](core::InboxStore& store) {
    core::InboxAppended r;
    EXPECT_TRUE(Stored([&](core::InboxStored s) {
      r = store.Append("inbox:#4", "{}", "hermod-schedule:s1", {}, now_, std::move(s));
      return r.status == core::InboxAppended::Status::kOk;
    }));
    return r;
  };
  const auto first = fire(*a_);
  ASSERT_FALSE(first.duplicate);
  // At once: B reads what its watcher has not brought yet.
  const auto again = fire(*b_);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.position.offset, first.position.offset);
  EXPECT_EQ(again.position.epoch, first.position.epoch);
  EXPECT_EQ(b_->Status("inbox:#4", {}).size(), 1u);
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return static_cast<bool>(a_->Ack("inbox:#4", {1}, std::nullopt, now_, std::move(s)));
  }));
  EXPECT_TRUE(fire(*a_).duplicate);
  a_->Expire(now_ + core::InboxLimits{}.ttl_ms + 1);  // the acked entry removed
  ASSERT_TRUE(a_->Status("inbox:#4", {}).empty());
  const auto after = fire(*a_);
  EXPECT_FALSE(after.duplicate);
  EXPECT_EQ(after.position.offset, 2u);
}

TEST_F(NatsInboxNodes, DeadLettersOfBothNodesAreListedByEither) {
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return a_->Append("inbox:#1", "{}", {}, {}, now_, std::move(s)).status ==
           core::InboxAppended::Status::kOk;
  }));
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return b_->Append("inbox:#2", "{}", {}, {}, now_, std::move(s)).status ==
           core::InboxAppended::Status::kOk;
  }));
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return static_cast<bool>(a_->DeadLetter("inbox:#1", {1}, "rejected", now_, std::move(s)));
  }));
  ASSERT_TRUE(ToldB("inbox:#1"));
  ASSERT_TRUE(Stored([&](core::InboxStored s) {
    return static_cast<bool>(b_->DeadLetter("inbox:#2", {1}, "rejected", now_, std::move(s)));
  }));
  // A fresh node reads both from the bucket, with distinct cursors.
  auto c = NatsStore(CaseBucket());
  ASSERT_TRUE(c);
  const auto page = c->DeadLetters({});
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_NE(page.entries[0].dead_id, page.entries[1].dead_id);
  EXPECT_EQ(c->DeadCount(), 2u);
}

// A change waits for NATS holding its inbox's gate, not the engine's lock: while the write of
// an ack of inbox:#slow is held back (before_write, released by the test), an ack of another
// inbox, a read of the stalled one and the expiry sweep of a third complete; a second change
// of the stalled inbox waits for the first, and both complete once it is released.
TEST(NatsInboxGates, AnInboxWaitingForNatsHoldsBackNoOtherInbox) {
  if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
  std::mutex mutex;
  std::condition_variable changed;
  bool hold = false, stalled = false, released = false;
  auto store = NatsStore(CaseBucket(), [&](std::string_view channel) {
    if (channel != "inbox:#slow") return;
    std::unique_lock lock(mutex);
    if (!hold) return;
    stalled = true;
    changed.notify_all();
    changed.wait(lock, [&] { return released; });
  });
  ASSERT_TRUE(store);
  auto release = [&] {
    std::lock_guard lock(mutex);
    released = true;
    changed.notify_all();
  };
  const uint64_t now = 1'700'000'000'000;
  auto publish = [&](const std::string& channel, core::InboxLimits limits) {
    auto promise = std::make_shared<std::promise<bool>>();
    auto future = promise->get_future();
    const auto r = store->Append(channel, "{}", {}, limits, now,
                                 [promise](bool ok) { promise->set_value(ok); });
    return r.status == core::InboxAppended::Status::kOk && future.get();
  };
  core::InboxLimits short_lived;
  short_lived.ttl_ms = 1000;
  ASSERT_TRUE(publish("inbox:#slow", {}));
  ASSERT_TRUE(publish("inbox:#fast", {}));
  ASSERT_TRUE(publish("inbox:#old", short_lived));
  {
    std::lock_guard lock(mutex);
    hold = true;
  }
  auto slow_ack = std::async(std::launch::async, [&] {
    return static_cast<bool>(store->Ack("inbox:#slow", {1}, std::nullopt, now, nullptr));
  });
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return stalled; }));
  }
  auto slow_publish = std::async(std::launch::async, [&] { return publish("inbox:#slow", {}); });
  auto fast_ack = std::async(std::launch::async, [&] {
    auto promise = std::make_shared<std::promise<bool>>();
    auto future = promise->get_future();
    const auto change = store->Ack("inbox:#fast", {1}, std::nullopt, now,
                                   [promise](bool ok) { promise->set_value(ok); });
    return static_cast<bool>(change) && future.get();
  });
  auto sweep = std::async(std::launch::async, [&] { return store->Expire(now + 2000); });
  auto read = std::async(std::launch::async, [&] { return store->Status("inbox:#slow", {}); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const bool fast_done = fast_ack.wait_until(deadline) == std::future_status::ready;
  const bool sweep_done = sweep.wait_until(deadline) == std::future_status::ready;
  const bool read_done = read.wait_until(deadline) == std::future_status::ready;
  // Never ready while the first change of its inbox is held back (a bounded look, not a wait
  // for anything to happen).
  const bool slow_publish_waited =
      slow_publish.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout;
  release();
  EXPECT_TRUE(fast_done) << "an ack of another inbox waited for the stalled one";
  EXPECT_TRUE(sweep_done) << "the expiry sweep waited for the stalled inbox";
  EXPECT_TRUE(read_done) << "a read waited for the stalled inbox";
  EXPECT_TRUE(slow_publish_waited) << "a second change of one inbox overtook the first";
  EXPECT_TRUE(slow_ack.get());
  EXPECT_TRUE(slow_publish.get());
  EXPECT_TRUE(fast_ack.get());
  const auto died = sweep.get();
  ASSERT_EQ(died.size(), 1u);
  EXPECT_EQ(died[0].channel, "inbox:#old");
  EXPECT_EQ(read.get().size(), 1u);
  const auto slow = store->Status("inbox:#slow", {});
  ASSERT_EQ(slow.size(), 2u);
  EXPECT_EQ(slow[0].state, InboxState::kAcked);
  EXPECT_EQ(slow[1].state, InboxState::kPending);
  // Another node reads what both changes stored.
  auto other = NatsStore(CaseBucket());
  ASSERT_TRUE(other);
  EXPECT_EQ(other->Status("inbox:#slow", {1})[0].state, InboxState::kAcked);
  EXPECT_EQ(other->Status("inbox:#fast", {1})[0].state, InboxState::kAcked);
  EXPECT_EQ(other->Status("inbox:#old", {1})[0].state, InboxState::kDead);
}

}  // namespace
}  // namespace hermod::store
