// The nats presence engine against a real `nats-server -js` (free port, temporary store
// directory; skipped when nats-server is not installed): entries of two stores (two nodes)
// seen by both, odd channel names and client ids kept apart, entries not refreshed expire,
// refreshed ones stay, an unreachable server answers failed, never an empty list, and a
// server that comes back without the bucket gets it again with this node's entries.
#include "store/nats_presence.h"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "tests/unit/store/nats_server.h"

namespace hermod::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

NatsPresenceStore::Options Options(const std::string& url, uint64_t ttl_ms = 60000,
                                   std::function<void(std::string_view)> before_read = {}) {
  NatsPresenceStore::Options o;
  o.before_read = std::move(before_read);
  o.url = url;
  o.ttl_ms = ttl_ms;
  o.reconnect_wait_ms = 100;
  o.request_timeout_ms = 2000;
  return o;
}

// A list as a map, read through the completion (run on the engine's thread).
struct Listed {
  bool failed = false;
  std::map<std::string, core::PresenceEntry> clients;
};
Listed List(core::PresenceStore& store, std::string_view channel) {
  auto set = store.Open(channel);
  std::promise<core::PresenceList> promise;
  auto future = promise.get_future();
  EXPECT_FALSE(set->List(core::Completion<core::PresenceList>(
      [&promise](core::PresenceList l) { promise.set_value(std::move(l)); })));
  set.reset();  // a set opened for the call alone: the answer does not need it
  EXPECT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  core::PresenceList list = future.get();
  Listed out;
  out.failed = list.failed;
  for (auto& [client, entry] : list) out.clients[client] = entry;
  EXPECT_EQ(out.clients.size(), list.size()) << "a client listed twice";
  return out;
}
core::PresenceCounts Stats(core::PresenceStore& store, std::string_view channel) {
  auto set = store.Open(channel);
  std::promise<core::PresenceCounts> promise;
  auto future = promise.get_future();
  EXPECT_FALSE(set->Stats(core::Completion<core::PresenceCounts>(
      [&promise](core::PresenceCounts c) { promise.set_value(c); })));
  EXPECT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  return future.get();
}

TEST(PresenceKeyToken, IsInjectiveIntoKeyCharactersWithoutDots) {
  std::mt19937 random(7);
  std::map<std::string, std::string> seen;  // token -> input
  auto check = [&](const std::string& input) {
    const std::string token = PresenceKeyToken(input);
    ASSERT_FALSE(token.empty());
    for (char c : token) {
      ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '/' || c == '=')
          << "'" << c << "' in " << token;
    }
    ASSERT_EQ(ParsePresenceKeyToken(token), input);
    auto [it, added] = seen.emplace(token, input);
    ASSERT_TRUE(added || it->second == input) << it->second << " and " << input << ": " << token;
  };
  for (const char* s : {"", "=", "==", "a", "a.b", "a=2Eb", "_kv", "*", ">", "chat:room #1",
                        "x/y-z", "=3D", "\xff"}) {
    check(s);
  }
  check(std::string("\0", 1));
  check(std::string("\0a", 2));
  for (int i = 0; i < 20000; ++i) {
    std::string s(random() % 6, '\0');
    for (char& c : s) c = "a=.3D_*>\xc3\xa9-/ "[random() % 14];
    check(s);
  }
  // Tokens that are no escaping's output parse to nothing.
  for (const char* bad : {"", "a=", "a=4", "=41", "=2e", "=zz", "a.b", "a b"}) {
    EXPECT_FALSE(ParsePresenceKeyToken(bad)) << bad;
  }
  EXPECT_EQ(DecodePresenceValue(EncodePresenceValue("u:1", "{\"x\":1}"))->user, "u:1");
  EXPECT_FALSE(DecodePresenceValue("x:"));
  EXPECT_FALSE(DecodePresenceValue("9:ab"));
}

class NatsPresenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::NatsServer::Available()) GTEST_SKIP() << "nats-server not installed";
    server_ = std::make_unique<test::NatsServer>();
    ASSERT_TRUE(server_->Start());
  }
  std::unique_ptr<test::NatsServer> server_;
};

TEST_F(NatsPresenceTest, TwoNodesSeeEachOthersEntriesAndRemovals) {
  NatsPresenceStore a(Options(server_->url())), b(Options(server_->url()));
  std::string error;
  ASSERT_TRUE(a.Start(&error)) << error;
  ASSERT_TRUE(b.Start(&error)) << error;
  auto on_a = a.Open("chat:room");
  auto on_b = b.Open("chat:room");
  on_a->Add("c1", "alice", "{\"user\":\"alice\"}");
  on_a->Add("c2", "alice", "{}");
  on_b->Add("c3", "bob", "{\"b\":true}");
  on_b->Add("c3", "bob", "{\"b\":2}");  // a client is one entry: the latest info
  EXPECT_EQ(on_a->size(), 2u);
  EXPECT_EQ(on_b->size(), 1u);

  // Each node reads its own writes at once; the other node's come within moments.
  Listed listed = List(a, "chat:room");
  const auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (listed.clients.size() < 3 && steady_clock::now() < deadline) {
    listed = List(a, "chat:room");
  }
  ASSERT_FALSE(listed.failed);
  ASSERT_EQ(listed.clients.size(), 3u);
  EXPECT_EQ(listed.clients["c1"].user, "alice");
  EXPECT_EQ(listed.clients["c1"].info, "{\"user\":\"alice\"}");
  EXPECT_EQ(listed.clients["c3"].user, "bob");
  EXPECT_EQ(listed.clients["c3"].info, "{\"b\":2}");
  const core::PresenceCounts counts = Stats(b, "chat:room");
  EXPECT_FALSE(counts.failed);
  EXPECT_EQ(counts.clients, 3u);
  EXPECT_EQ(counts.users, 2u);

  on_a->Remove("c1");
  on_a->Remove("nobody");
  EXPECT_EQ(on_a->size(), 1u);
  listed = List(a, "chat:room");
  EXPECT_EQ(listed.clients.count("c1"), 0u);
  EXPECT_EQ(listed.clients.size(), 2u);
  // A channel nobody is in, on a node that never opened it.
  listed = List(b, "chat:empty");
  EXPECT_FALSE(listed.failed);
  EXPECT_TRUE(listed.clients.empty());
}

// A list holds every entry even while the entries are being put again (each node refreshes
// its own every ttl/3): libnats's watcher counts its initial values from the first message's
// pending count, which re-puts during the read make too small, so it used to end a list early.
TEST_F(NatsPresenceTest, AListIsWholeWhileItsEntriesArePutAgain) {
  constexpr int kClients = 60;
  NatsPresenceStore writer(Options(server_->url())), reader(Options(server_->url()));
  std::string error;
  ASSERT_TRUE(writer.Start(&error)) << error;
  ASSERT_TRUE(reader.Start(&error)) << error;
  auto set = writer.Open("room");
  for (int i = 0; i < kClients; ++i) set->Add("c" + std::to_string(i), "u", "{}");
  ASSERT_EQ(List(writer, "room").clients.size(), static_cast<size_t>(kClients));

  // Another connection puts the same entries again, as fast as it can, as a refresh does.
  std::atomic<bool> stop{false};
  std::atomic<int> puts{0};
  std::thread refresher([&] {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    kvStore* kv = nullptr;
    if (natsConnection_ConnectTo(&nc, server_->url().c_str()) != NATS_OK ||
        natsConnection_JetStream(&js, nc, nullptr) != NATS_OK ||
        js_KeyValue(&kv, js, "hermod_presence") != NATS_OK) {
      ADD_FAILURE() << "refresher: no connection";
      stop = true;
    }
    const std::string value = EncodePresenceValue("u", "{}");
    while (!stop) {
      for (int i = 0; i < kClients && !stop; ++i) {
        const std::string key =
            PresenceKeyToken("room") + "." + PresenceKeyToken("c" + std::to_string(i));
        uint64_t revision = 0;
        if (kvStore_PutString(&revision, kv, key.c_str(), value.c_str()) == NATS_OK) ++puts;
      }
    }
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  });
  for (int round = 0; round < 150 && !HasFailure(); ++round) {
    const Listed listed = List(reader, "room");
    EXPECT_FALSE(listed.failed) << "round " << round;
    EXPECT_EQ(listed.clients.size(), static_cast<size_t>(kClients)) << "round " << round;
    EXPECT_EQ(Stats(reader, "room").clients, static_cast<size_t>(kClients)) << "round " << round;
  }
  stop = true;
  refresher.join();
  EXPECT_GT(puts.load(), kClients) << "the entries were not put again during the reads";
}

// Reads of one channel queued together share one NATS read; a write queued between two of
// them is in the later ones' answer.
// A read answers at least every write queued before it (a node reads its own writes); reads
// run on several threads, so one queued before a write may also hold it.
TEST_F(NatsPresenceTest, ReadsQueuedTogetherShareOneReadAndHoldEveryWriteQueuedBefore) {
  NatsPresenceStore store(Options(server_->url()));
  std::string error;
  ASSERT_TRUE(store.Start(&error)) << error;
  auto set = store.Open("room");
  set->Add("c1", "u1", "{}");
  ASSERT_EQ(List(store, "room").clients.size(), 1u);
  constexpr int kReads = 40;
  std::vector<std::promise<size_t>> answers(2 * kReads);
  auto list = [&](int i) {
    EXPECT_FALSE(set->List(core::Completion<core::PresenceList>(
        [&answers, i](core::PresenceList l) { answers[i].set_value(l.failed ? 0 : l.size()); })));
  };
  // Queued in a burst, while the engine's thread is busy with the first of them.
  for (int i = 0; i < kReads; ++i) list(i);
  set->Add("c2", "u2", "{}");
  for (int i = kReads; i < 2 * kReads; ++i) list(i);
  for (int i = 0; i < 2 * kReads; ++i) {
    auto answer = answers[i].get_future();
    ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    const size_t listed = answer.get();
    if (i < kReads) {
      EXPECT_TRUE(listed == 1u || listed == 2u) << "read " << i << ": " << listed;
    } else {
      EXPECT_EQ(listed, 2u) << "read " << i;
    }
  }
  EXPECT_GT(store.counters()->reads_shared.load(), 0u);
  EXPECT_LT(store.counters()->reads_shared.load(), static_cast<uint64_t>(2 * kReads));
}

// Reads from many callers on two nodes run at once: while one channel's read is held back
// (before_read), reads of another channel on the same node are answered, each with every
// client of both nodes; the held read answers in full once released.
TEST_F(NatsPresenceTest, ManyConcurrentReadersOnTwoNodesGetTheWholeMembership) {
  std::mutex mutex;
  std::condition_variable changed;
  bool stalled = false, released = false;
  NatsPresenceStore a(Options(server_->url(), 60000, [&](std::string_view token) {
    if (token != PresenceKeyToken("slow")) return;
    std::unique_lock lock(mutex);
    stalled = true;
    changed.notify_all();
    changed.wait(lock, [&] { return released; });
  }));
  NatsPresenceStore b(Options(server_->url()));
  std::string error;
  ASSERT_TRUE(a.Start(&error)) << error;
  ASSERT_TRUE(b.Start(&error)) << error;
  constexpr int kClients = 10;
  auto room_a = a.Open("room"), room_b = b.Open("room"), slow = a.Open("slow");
  for (int i = 0; i < kClients; ++i) {
    room_a->Add("a" + std::to_string(i), "ua" + std::to_string(i), "{}");
    room_b->Add("b" + std::to_string(i), "ub" + std::to_string(i), "{}");
  }
  slow->Add("s", "us", "{}");
  // Each node's first read waits for its own writes: after both, each node's are stored.
  ASSERT_FALSE(List(a, "room").failed);
  ASSERT_FALSE(List(b, "room").failed);
  std::promise<size_t> held;
  auto held_answer = held.get_future();
  EXPECT_FALSE(slow->List(core::Completion<core::PresenceList>(
      [&held](core::PresenceList l) { held.set_value(l.failed ? 0 : l.size()); })));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return stalled; }));
  }
  // A read not answered within 10 s counts as not whole, and its caller stops (an answer
  // after that goes to a promise the caller no longer waits on).
  auto clients_and_users = [](core::PresenceStore& node, bool stats) -> std::pair<size_t, size_t> {
    auto set = node.Open("room");
    auto promise = std::make_shared<std::promise<std::pair<size_t, size_t>>>();
    auto future = promise->get_future();
    if (stats) {
      set->Stats(core::Completion<core::PresenceCounts>([promise](core::PresenceCounts c) {
        promise->set_value(c.failed ? std::pair<size_t, size_t>{} : std::pair{c.clients, c.users});
      }));
    } else {
      set->List(core::Completion<core::PresenceList>([promise](core::PresenceList l) {
        std::set<std::string> users;
        for (const auto& [client, entry] : l) users.insert(entry.user);
        promise->set_value(l.failed ? std::pair<size_t, size_t>{}
                                    : std::pair{l.size(), users.size()});
      }));
    }
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return {};
    return future.get();
  };
  constexpr int kThreads = 8, kEach = 20;
  std::atomic<int> whole{0}, partial{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      core::PresenceStore& node = t % 2 == 0 ? static_cast<core::PresenceStore&>(a) : b;
      for (int i = 0; i < kEach; ++i) {
        const auto [clients, users] = clients_and_users(node, i % 2 == 1);
        if (clients == 2u * kClients && users == 2u * kClients) {
          ++whole;
          continue;
        }
        ++partial;
        if (clients == 0) break;  // failed, or not answered in time
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  const bool held_waited =
      held_answer.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout;
  {
    std::lock_guard lock(mutex);
    released = true;
    changed.notify_all();
  }
  EXPECT_EQ(whole.load(), kThreads * kEach);
  EXPECT_EQ(partial.load(), 0);
  EXPECT_TRUE(held_waited);
  ASSERT_EQ(held_answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(held_answer.get(), 1u);
}

TEST_F(NatsPresenceTest, OddChannelNamesAndClientIdsStayApart) {
  NatsPresenceStore store(Options(server_->url()));
  std::string error;
  ASSERT_TRUE(store.Start(&error)) << error;
  // Channels that a naive key mapping would merge, nest or refuse.
  const std::vector<std::string> channels = {"a",     "a.b", "a.*",
                                             "a.>",   ">",   "*",
                                             "a=2Eb", "_kv", "news:ünïcode room",
                                             "x y",   "a/b", std::string(300, '.')};
  std::vector<std::unique_ptr<core::PresenceStore::Set>> sets;
  for (size_t i = 0; i < channels.size(); ++i) {
    sets.push_back(store.Open(channels[i]));
    sets.back()->Add("client." + std::to_string(i), "user " + std::to_string(i), "{}");
    sets.back()->Add("*.>", "odd", "{\"i\":" + std::to_string(i) + "}");
  }
  for (size_t i = 0; i < channels.size(); ++i) {
    Listed listed = List(store, channels[i]);
    ASSERT_FALSE(listed.failed) << channels[i];
    ASSERT_EQ(listed.clients.size(), 2u) << channels[i];
    EXPECT_EQ(listed.clients["client." + std::to_string(i)].user, "user " + std::to_string(i));
    EXPECT_EQ(listed.clients["*.>"].info, "{\"i\":" + std::to_string(i) + "}");
  }
}

TEST_F(NatsPresenceTest, EntriesNotRefreshedExpireAndRefreshedOnesStay) {
  constexpr uint64_t kTtlMs = 1500;
  NatsPresenceStore dies(Options(server_->url(), kTtlMs)), lives(Options(server_->url(), kTtlMs));
  std::string error;
  ASSERT_TRUE(dies.Start(&error)) << error;
  ASSERT_TRUE(lives.Start(&error)) << error;
  auto gone = dies.Open("room");
  auto kept = lives.Open("room");
  gone->Add("dead", "u1", "{}");
  kept->Add("alive", "u2", "{}");
  ASSERT_EQ(List(dies, "room").clients.count("dead"), 1u);  // acknowledged before it stops
  const auto stopped = steady_clock::now();
  dies.Stop();  // as a killed node: its entry is left, nobody refreshes it
  Listed listed = List(lives, "room");
  EXPECT_EQ(listed.clients.count("dead"), 1u);
  const auto deadline = stopped + milliseconds(3 * kTtlMs + 2000);
  while (listed.clients.count("dead") != 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));  // polling a condition, with a deadline
    listed = List(lives, "room");
  }
  EXPECT_EQ(listed.clients.count("dead"), 0u) << "the dead node's entry did not expire";
  EXPECT_GE(steady_clock::now() - stopped, milliseconds(kTtlMs / 2));
  // Older than the TTL by now: refreshed by its live node.
  EXPECT_EQ(listed.clients.count("alive"), 1u);
  EXPECT_EQ(Stats(lives, "room").clients, 1u);
}

TEST_F(NatsPresenceTest, AnUnreachableServerAnswersFailedNeverAnEmptyList) {
  NatsPresenceStore store(Options(server_->url()));
  std::string error;
  ASSERT_TRUE(store.Start(&error)) << error;
  auto set = store.Open("room");
  set->Add("c1", "u", "{}");
  ASSERT_EQ(List(store, "room").clients.size(), 1u);
  server_->Stop(/*kill=*/true);
  EXPECT_TRUE(List(store, "room").failed);
  EXPECT_TRUE(Stats(store, "room").failed);
  EXPECT_GE(store.counters()->read_errors.load(), 2u);
  // A node that starts while the server is away serves, and answers failed.
  NatsPresenceStore early(Options(server_->url()));
  ASSERT_TRUE(early.Start(&error)) << error;
  EXPECT_TRUE(List(early, "room").failed);
}

TEST_F(NatsPresenceTest, AServerThatComesBackWithoutTheBucketGetsItAndTheEntriesAgain) {
  NatsPresenceStore::Options options = Options(server_->url());
  options.memory_storage = true;  // lost with the server
  NatsPresenceStore store(options);
  std::string error;
  ASSERT_TRUE(store.Start(&error)) << error;
  auto set = store.Open("room");
  set->Add("c1", "u", "{}");
  ASSERT_EQ(List(store, "room").clients.size(), 1u);
  server_->Stop(/*kill=*/true);
  ASSERT_TRUE(server_->Start());  // the same port and store directory
  // Reconnected: the bucket is made again and this node's entries put again.
  Listed listed = List(store, "room");
  const auto deadline = steady_clock::now() + std::chrono::seconds(15);
  while ((listed.failed || listed.clients.count("c1") == 0) && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));  // polling a condition, with a deadline
    listed = List(store, "room");
  }
  EXPECT_FALSE(listed.failed);
  EXPECT_EQ(listed.clients.count("c1"), 1u);
}

TEST_F(NatsPresenceTest, ABucketMadeWithAnotherTtlStopsStartUpNamingIt) {
  NatsPresenceStore first(Options(server_->url(), 60000));
  std::string error;
  ASSERT_TRUE(first.Start(&error)) << error;
  NatsPresenceStore other(Options(server_->url(), 5000));
  EXPECT_FALSE(other.Start(&error));
  EXPECT_NE(error.find("hermod_presence"), std::string::npos) << error;
}

}  // namespace
}  // namespace hermod::store
