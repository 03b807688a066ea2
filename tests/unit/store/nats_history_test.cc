// The `nats` history engine (JetStream) through the store interface, against a real
// nats-server -js: the contract cases the memory engine passes (append and read, offsets and
// epochs, size and TTL trimming, remove, recovery, idempotency), plus what only a shared
// engine has: two engines ("nodes") appending to one channel at once, an epoch that
// survives a nats-server restart, deliveries in offset order, refusals while JetStream is
// gone, and a conflicting stream refused at start.
#include "store/nats_history.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/store/nats_server.h"

namespace hermod::store {
namespace {

std::string Encode(std::string_view data, std::string_view, uint64_t offset, std::string_view) {
  return std::string(data) + "@" + std::to_string(offset);
}
const core::PublicationEncoder kEncode = &Encode;

// One test's engine options: its own stream and subjects, so tests never see each other.
NatsHistoryOptions OptionsFor(const test::NatsServer& server, const std::string& name) {
  NatsHistoryOptions o;
  o.url = server.url();
  o.prefix = "t" + name;
  o.stream = "T_" + name;
  o.max_msgs_per_subject = 100;
  o.timeout_ms = 1000;
  o.workers = 2;
  return o;
}

core::HistoryAppended Append(core::HistoryStore::Stream& s, std::string_view data,
                             uint64_t size = 10, uint64_t ttl = 60000, std::string_view key = {}) {
  core::HistoryAppend a;
  a.data = data;
  a.size = size;
  a.ttl_ms = ttl;
  a.idempotency_key = key;
  std::promise<core::HistoryAppended> p;
  auto f = p.get_future();
  auto now =
      s.Append(a, kEncode, core::Completion<core::HistoryAppended>([&p](core::HistoryAppended r) {
                 p.set_value(std::move(r));
               }));
  if (now) return *now;
  return f.get();
}

core::HistoryPage Read(core::HistoryStore::Stream& s, std::optional<core::StreamPosition> since,
                       int64_t limit = -1, bool reverse = false) {
  core::HistoryQuery q;
  q.since = std::move(since);
  q.limit = limit;
  q.reverse = reverse;
  std::promise<core::HistoryPage> p;
  auto f = p.get_future();
  auto now = s.Read(q, core::Completion<core::HistoryPage>(
                           [&p](core::HistoryPage r) { p.set_value(std::move(r)); }));
  if (now) return *now;
  return f.get();
}

core::HistoryStream::Recovery Recover(core::HistoryStore::Stream& s, core::StreamPosition since,
                                      uint64_t until, size_t max = 300) {
  core::RecoveryQuery q;
  q.since = std::move(since);
  q.until = until;
  q.max_publications = max;
  std::promise<core::HistoryStream::Recovery> p;
  auto f = p.get_future();
  auto now =
      s.Recover(q, core::Completion<core::HistoryStream::Recovery>(
                       [&p](core::HistoryStream::Recovery r) { p.set_value(std::move(r)); }));
  if (now) return *now;
  return f.get();
}

class NatsHistoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::NatsServer::Available()) return;
    server_ = new test::NatsServer();
    ASSERT_TRUE(server_->Start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_ == nullptr) GTEST_SKIP() << "no nats-server";
  }
  std::unique_ptr<NatsHistoryStore> Make(const std::string& name) {
    std::string error;
    auto store = MakeNatsHistoryStore(OptionsFor(*server_, name), &error);
    EXPECT_TRUE(store) << error;
    return store;
  }
  static test::NatsServer* server_;
};
test::NatsServer* NatsHistoryTest::server_ = nullptr;

TEST(NatsSubjectToken, PlainNamesStayEncodedNamesRoundTrip) {
  EXPECT_EQ(SubjectToken("news"), "news");
  EXPECT_EQ(SubjectToken("chat:room-1_a"), "chat:room-1_a");
  for (const std::string& name :
       std::vector<std::string>{"a.b", "a b", "*", ">", "~x", "ü", "a\nb", "#user,42", "x.y.z>",
                                std::string("\0\xff", 2)}) {
    const std::string token = SubjectToken(name);
    EXPECT_EQ(token[0], '~') << name;
    for (char c : token) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '~')
          << name;
    }
    EXPECT_EQ(ChannelOfToken(token), name);
  }
  EXPECT_EQ(ChannelOfToken("news"), "news");
  EXPECT_FALSE(ChannelOfToken(""));
  EXPECT_FALSE(ChannelOfToken("~"));
  EXPECT_FALSE(ChannelOfToken("~!!"));
  EXPECT_FALSE(ChannelOfToken("~bmV3cw"));  // "news" is never encoded
  EXPECT_FALSE(ChannelOfToken("a.b"));
}

TEST_F(NatsHistoryTest, AppendReadOffsetsAndEpoch) {
  auto store = Make("read");
  auto s = store->Open("chat", 0);
  EXPECT_EQ(s->Position().offset, 0u);
  // Named at once (its first subscriber gets it), kept by the first append.
  const std::string named = s->Position().epoch;
  EXPECT_FALSE(named.empty());
  std::string epoch;
  for (int i = 1; i <= 5; ++i) {
    core::HistoryAppended a = Append(*s, "m" + std::to_string(i));
    ASSERT_FALSE(a.failed);
    EXPECT_FALSE(a.duplicate);
    EXPECT_EQ(a.position.offset, static_cast<uint64_t>(i));
    EXPECT_EQ(a.publication, "m" + std::to_string(i) + "@" + std::to_string(i));
    if (i == 1) epoch = a.position.epoch;
    EXPECT_EQ(a.position.epoch, named);
    EXPECT_EQ(a.position.epoch, epoch);
    EXPECT_FALSE(epoch.empty());
  }
  EXPECT_EQ(s->Position().offset, 5u);
  EXPECT_EQ(s->Position().epoch, epoch);

  core::HistoryPage all = Read(*s, std::nullopt);
  ASSERT_FALSE(all.failed);
  EXPECT_EQ(all.position.offset, 5u);
  EXPECT_EQ(all.position.epoch, epoch);
  EXPECT_EQ(all.publications, (std::vector<std::string>{"m1@1", "m2@2", "m3@3", "m4@4", "m5@5"}));
  EXPECT_EQ(Read(*s, std::nullopt, 2).publications, (std::vector<std::string>{"m1@1", "m2@2"}));
  EXPECT_EQ(Read(*s, std::nullopt, 2, true).publications,
            (std::vector<std::string>{"m5@5", "m4@4"}));
  EXPECT_EQ(Read(*s, core::StreamPosition{3, epoch}).publications,
            (std::vector<std::string>{"m4@4", "m5@5"}));
  EXPECT_EQ(Read(*s, core::StreamPosition{3, epoch}, -1, true).publications,
            (std::vector<std::string>{"m2@2", "m1@1"}));
  EXPECT_TRUE(Read(*s, core::StreamPosition{3, "other"}).unrecoverable);

  // Another stream object (another node, or the channel opened again) sees the same.
  auto again = store->Open("chat", 0);
  EXPECT_EQ(again->Position().offset, 5u);
  EXPECT_EQ(again->Position().epoch, epoch);
  EXPECT_EQ(store->Kept("chat", 0)->offset, 5u);
  EXPECT_FALSE(store->Kept("never", 0));
  // Channels are separate streams of offsets.
  auto other = store->Open("other.channel with spaces", 0);
  EXPECT_EQ(Append(*other, "x").position.offset, 1u);
  EXPECT_EQ(Read(*other, std::nullopt).publications, (std::vector<std::string>{"x@1"}));
}

TEST_F(NatsHistoryTest, TrimsBySizeAndTtlAndKeepsThePosition) {
  auto store = Make("trim");
  auto s = store->Open("sized", 0);
  for (int i = 1; i <= 5; ++i) ASSERT_FALSE(Append(*s, "s" + std::to_string(i), 2).failed);
  core::HistoryPage page = Read(*s, std::nullopt);
  EXPECT_EQ(page.publications, (std::vector<std::string>{"s4@4", "s5@5"}));
  EXPECT_EQ(page.position.offset, 5u);

  auto t = store->Open("timed", 0);
  ASSERT_FALSE(Append(*t, "t1", 10, 150).failed);
  const std::string epoch = t->Position().epoch;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the TTL passes
  page = Read(*t, std::nullopt);
  EXPECT_TRUE(page.publications.empty());
  EXPECT_EQ(page.position.offset, 1u);  // the position outlives the publications
  EXPECT_EQ(page.position.epoch, epoch);
  core::HistoryAppended next = Append(*t, "t2", 10, 60000);
  EXPECT_EQ(next.position.offset, 2u);
  EXPECT_EQ(next.position.epoch, epoch);
  EXPECT_EQ(Read(*t, std::nullopt).publications, (std::vector<std::string>{"t2@2"}));
}

TEST_F(NatsHistoryTest, RecoversOnlyWhatIsWhole) {
  auto store = Make("recover");
  auto s = store->Open("r", 0);
  for (int i = 1; i <= 4; ++i) ASSERT_FALSE(Append(*s, "r" + std::to_string(i), 3).failed);
  const std::string epoch = s->Position().epoch;
  core::HistoryStream::Recovery r = Recover(*s, {2, epoch}, 4);
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.publications, (std::vector<std::string>{"r3@3", "r4@4"}));
  r = Recover(*s, {2, epoch}, 3);  // stops at until
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.publications, (std::vector<std::string>{"r3@3"}));
  EXPECT_TRUE(Recover(*s, {4, epoch}, 4).recovered);
  EXPECT_FALSE(Recover(*s, {0, epoch}, 4).recovered);  // r1 was trimmed (size 3)
  EXPECT_FALSE(Recover(*s, {2, "other"}, 4).recovered);
  EXPECT_FALSE(Recover(*s, {1, epoch}, 4, 2).recovered);  // more than max_publications
}

TEST_F(NatsHistoryTest, RemoveKeepsThePosition) {
  auto store = Make("remove");
  auto s = store->Open("gone", 0);
  for (int i = 1; i <= 3; ++i) ASSERT_FALSE(Append(*s, "g").failed);
  const std::string epoch = s->Position().epoch;
  s->Remove();
  core::HistoryPage page = Read(*s, std::nullopt);  // after Remove: one worker, in order
  EXPECT_TRUE(page.publications.empty());
  EXPECT_EQ(page.position.offset, 3u);
  EXPECT_EQ(page.position.epoch, epoch);
  core::HistoryAppended a = Append(*s, "after");
  EXPECT_EQ(a.position.offset, 4u);
  EXPECT_EQ(a.position.epoch, epoch);
  EXPECT_EQ(Read(*s, std::nullopt).publications, (std::vector<std::string>{"after@4"}));
}

TEST_F(NatsHistoryTest, IdempotencyKeyAnswersTheFirstOffset) {
  auto store = Make("idem");
  auto s = store->Open("pay", 0);
  ASSERT_FALSE(Append(*s, "a").failed);
  core::HistoryAppended first = Append(*s, "b", 10, 60000, "k1");
  ASSERT_FALSE(first.failed);
  EXPECT_EQ(first.position.offset, 2u);
  EXPECT_FALSE(first.duplicate);
  // From another engine (another node), the same key on the same channel: a duplicate.
  auto other = Make("idem");
  auto s2 = other->Open("pay", 0);
  core::HistoryAppended again = Append(*s2, "b", 10, 60000, "k1");
  ASSERT_FALSE(again.failed);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.position.offset, 2u);
  EXPECT_EQ(again.position.epoch, first.position.epoch);
  // The same key on another channel is another publication.
  auto elsewhere = store->Open("pay2", 0);
  EXPECT_FALSE(Append(*elsewhere, "b", 10, 60000, "k1").duplicate);
  EXPECT_EQ(Append(*s, "c").position.offset, 3u);
  EXPECT_EQ(Read(*s, std::nullopt).publications, (std::vector<std::string>{"a@1", "b@2", "c@3"}));
  // Keys live in JetStream: the idempotency store keeps none of a caller's.
  NatsIdempotencyStore keys;
  auto k = keys.Open("pay");
  k->Put("k1", {2, "e"}, 0, 1000);
  EXPECT_FALSE(k->Find("k1", 0));
  EXPECT_TRUE(k->empty());
}

// A firing's keys (core::FireKey) are kept, node-wide at most the bound, until they expire;
// a repeat found is counted, one past the bound is not kept and counted.
TEST(NatsIdempotencyStore, KeepsFireKeysWithinItsBoundUntilTheyExpire) {
  NatsIdempotencyStore keys(2);
  auto a = keys.Open("a");
  auto b = keys.Open("b");
  a->Put("hermod-schedule:1", {}, 0, 1000);
  EXPECT_TRUE(a->Find("hermod-schedule:1", 999));
  EXPECT_FALSE(b->Find("hermod-schedule:1", 0));  // per channel
  a->Put("hermod-schedule:1", {}, 0, 1000);       // again: still one key
  b->Put("hermod-schedule:2", {}, 0, 1000);
  b->Put("hermod-schedule:3", {}, 0, 1000);  // past the bound
  EXPECT_FALSE(b->Find("hermod-schedule:3", 0));
  NatsIdempotencyStore::Counts c = keys.counts();
  EXPECT_EQ(c.kept, 2u);
  EXPECT_EQ(c.repeats, 1u);
  EXPECT_EQ(c.unkept, 1u);
  EXPECT_FALSE(a->Find("hermod-schedule:1", 1000));  // expired
  a->Expire(1000);
  EXPECT_TRUE(a->empty());
  b.reset();  // a channel reclaimed gives its keys' room back
  EXPECT_EQ(keys.counts().kept, 0u);
  NatsIdempotencyStore none(0);
  auto n = none.Open("c");
  n->Put("hermod-schedule:1", {}, 0, 1000);
  EXPECT_TRUE(n->empty());
}

TEST_F(NatsHistoryTest, TwoNodesAppendingAtOnceGetContiguousUniqueOffsets) {
  auto a = Make("race");
  auto b = Make("race");
  auto sa = a->Open("hot", 0);
  auto sb = b->Open("hot", 0);
  constexpr int kEach = 45;  // 90 in all, within the stream's 100 per channel
  std::vector<uint64_t> offsets_a, offsets_b;
  std::thread ta([&] {
    for (int i = 0; i < kEach; ++i) offsets_a.push_back(Append(*sa, "a", 1000).position.offset);
  });
  std::thread tb([&] {
    for (int i = 0; i < kEach; ++i) offsets_b.push_back(Append(*sb, "b", 1000).position.offset);
  });
  ta.join();
  tb.join();
  std::set<uint64_t> all(offsets_a.begin(), offsets_a.end());
  all.insert(offsets_b.begin(), offsets_b.end());
  EXPECT_EQ(all.size(), 2u * kEach);  // never one offset twice
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), 2u * kEach);  // contiguous
  EXPECT_TRUE(std::is_sorted(offsets_a.begin(), offsets_a.end()));
  EXPECT_EQ(sa->Position().epoch, sb->Position().epoch);
  core::HistoryPage page = Read(*sb, std::nullopt);
  ASSERT_EQ(page.publications.size(), 2u * kEach);
  for (size_t i = 0; i < page.publications.size(); ++i) {
    EXPECT_TRUE(page.publications[i].ends_with("@" + std::to_string(i + 1)));
  }
  EXPECT_EQ(Read(*sa, std::nullopt).publications, page.publications);
}

// Appends made without waiting are stored together (one message per batch) and complete
// in call order, each with its own offset; reads and deliveries split the batches again,
// each publication delivered with its own delta flag (Hermod-Delta).
TEST_F(NatsHistoryTest, AppendsInFlightCompleteInOrderWithTheirOwnOffsets) {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<std::string, uint64_t>> delivered;
  std::vector<bool> delivered_delta;
  NatsHistoryStore receiver(OptionsFor(*server_, "burst"));
  receiver.SetDelivered([&](std::string_view, const core::StreamPosition& p,
                            std::string_view publication, bool delta) {
    std::lock_guard lock(mutex);
    delivered.emplace_back(std::string(publication), p.offset);
    delivered_delta.push_back(delta);
    changed.notify_all();
  });
  std::string error;
  ASSERT_TRUE(receiver.Start(&error)) << error;
  auto store = Make("burst");
  auto s = store->Open("burst", 0);
  constexpr int kCount = 500;
  std::vector<uint64_t> completed;
  core::HistoryAppend a;
  a.size = 1000;
  a.ttl_ms = 60000;
  std::vector<std::string> datas;
  for (int i = 0; i < kCount; ++i) datas.push_back("b" + std::to_string(i));
  for (int i = 0; i < kCount; ++i) {
    a.data = datas[static_cast<size_t>(i)];
    a.delta = i % 3 == 1;
    EXPECT_FALSE(
        s->Append(a, kEncode, core::Completion<core::HistoryAppended>([&](core::HistoryAppended r) {
                    std::lock_guard lock(mutex);
                    completed.push_back(r.failed ? 0 : r.position.offset);
                    changed.notify_all();
                  })));
  }
  std::unique_lock lock(mutex);
  ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(20), [&] {
    return completed.size() == kCount && delivered.size() == kCount;
  }));
  for (int i = 0; i < kCount; ++i) {
    const size_t k = static_cast<size_t>(i);
    EXPECT_EQ(completed[k], k + 1);
    EXPECT_EQ(delivered[k].second, k + 1);
    EXPECT_EQ(delivered[k].first, "b" + std::to_string(i) + "@" + std::to_string(i + 1));
    EXPECT_EQ(delivered_delta[k], i % 3 == 1) << i;
  }
  lock.unlock();
  core::HistoryPage page = Read(*s, std::nullopt);
  ASSERT_EQ(page.publications.size(), static_cast<size_t>(kCount));
  EXPECT_EQ(page.publications.back(), "b499@500");
  EXPECT_EQ(Read(*s, core::StreamPosition{490, page.position.epoch}, 3).publications,
            (std::vector<std::string>{"b490@491", "b491@492", "b492@493"}));
  // A fresh engine (another node) finds the top of the last batch.
  auto other = Make("burst");
  EXPECT_EQ(other->Open("burst", 0)->Position().offset, static_cast<uint64_t>(kCount));
}

TEST_F(NatsHistoryTest, DeliversEveryStoredPublicationInOffsetOrder) {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<std::pair<std::string, uint64_t>> seen;
  std::string error;
  NatsHistoryOptions o = OptionsFor(*server_, "deliver");
  NatsHistoryStore receiver(o);
  receiver.SetDelivered([&](std::string_view channel, const core::StreamPosition& p,
                            std::string_view publication, bool) {
    std::lock_guard lock(mutex);
    seen.emplace_back(std::string(channel) + " " + std::string(publication), p.offset);
    done.notify_all();
  });
  ASSERT_TRUE(receiver.Start(&error)) << error;
  auto sender = Make("deliver");
  auto s = sender->Open("d.1", 0);
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(Append(*s, "p").failed);
  s->Remove();  // a mark: not a publication
  ASSERT_FALSE(Append(*s, "q").failed);
  std::unique_lock lock(mutex);
  ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(10), [&] { return seen.size() >= 6; }));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(seen[i].first, "d.1 p@" + std::to_string(i + 1));
    EXPECT_EQ(seen[i].second, i + 1);
  }
  EXPECT_EQ(seen[5].first, "d.1 q@6");
  EXPECT_EQ(seen.size(), 6u);
}

TEST_F(NatsHistoryTest, ConflictingStreamStopsStart) {
  // A stream of hermod's name made by someone else, with memory storage.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, server_->url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "T_conflict";
  const char* subjects[] = {"tconflict.history.>"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_MemoryStorage;
  jsStreamInfo* si = nullptr;
  ASSERT_EQ(js_AddStream(&si, js, &cfg, nullptr, nullptr), NATS_OK);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  std::string error;
  EXPECT_FALSE(MakeNatsHistoryStore(OptionsFor(*server_, "conflict"), &error));
  EXPECT_NE(error.find("T_conflict"), std::string::npos) << error;
  EXPECT_NE(error.find("storage"), std::string::npos) << error;
  EXPECT_NE(error.find("fix"), std::string::npos) << error;
  // With the storage config asks for, still refused: it does not RePublish (which a stream
  // cannot be changed to have).
  NatsHistoryOptions memory = OptionsFor(*server_, "conflict");
  memory.file_storage = false;
  EXPECT_FALSE(MakeNatsHistoryStore(memory, &error));
  EXPECT_NE(error.find("RePublish"), std::string::npos) << error;
  // A stream hermod made is accepted again, its limits brought to config's.
  NatsHistoryOptions mine = OptionsFor(*server_, "conflict2");
  ASSERT_TRUE(MakeNatsHistoryStore(mine, &error)) << error;
  mine.max_msgs_per_subject = 50;
  mine.duplicates_ms = 10000;
  EXPECT_TRUE(MakeNatsHistoryStore(mine, &error)) << error;
}

TEST(NatsHistoryNoServer, StartFailsWithoutJetStream) {
  test::NatsServer nobody;  // never started: nothing listens on its port
  NatsHistoryOptions o;
  o.url = nobody.url();
  o.timeout_ms = 500;
  std::string error;
  EXPECT_FALSE(MakeNatsHistoryStore(o, &error));
  EXPECT_NE(error.find("history_engine nats"), std::string::npos) << error;
}

// Restarts its own server: the epoch and offsets survive (file storage); while the server
// is gone, appends fail (the hub refuses the publication) and are counted.
TEST(NatsHistoryRestart, EpochSurvivesAndAppendsFailWhileGone) {
  if (!test::NatsServer::Available()) GTEST_SKIP() << "no nats-server";
  test::NatsServer server;
  ASSERT_TRUE(server.Start());
  std::string error;
  auto store = MakeNatsHistoryStore(OptionsFor(server, "restart"), &error);
  ASSERT_TRUE(store) << error;
  auto s = store->Open("keep", 0);
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(Append(*s, "k").failed);
  const core::StreamPosition before = s->Position();

  server.Stop(/*kill=*/true);
  core::HistoryAppended refused = Append(*s, "lost");
  EXPECT_TRUE(refused.failed);
  EXPECT_GE(store->store_errors(), 1u);
  EXPECT_TRUE(Read(*s, std::nullopt).failed);

  ASSERT_TRUE(server.Start());
  // A fresh engine (a node started after the restart) and the old one (reconnected) agree.
  auto fresh = MakeNatsHistoryStore(OptionsFor(server, "restart"), &error);
  ASSERT_TRUE(fresh) << error;
  auto f = fresh->Open("keep", 0);
  EXPECT_EQ(f->Position().offset, before.offset);
  EXPECT_EQ(f->Position().epoch, before.epoch);
  EXPECT_EQ(Read(*f, std::nullopt).publications, (std::vector<std::string>{"k@1", "k@2", "k@3"}));
  core::HistoryAppended next;
  for (int attempt = 0; attempt < 100; ++attempt) {  // the old connection reconnects
    next = Append(*s, "k");
    if (!next.failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(next.failed);
  EXPECT_EQ(next.position.offset, 4u);
  EXPECT_EQ(next.position.epoch, before.epoch);
}

// A TCP proxy in front of the nats-server that the test can cut (every connection closed,
// new ones refused) and restore: a node's NATS connection drops while the others go on.
class CutProxy {
 public:
  explicit CutProxy(int target) : target_(target) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(listener_, 16);
    thread_ = std::thread([this] { Run(); });
  }
  ~CutProxy() {
    stop_ = true;
    thread_.join();
    for (auto [a, b] : pairs_) close(a), close(b);
    close(listener_);
  }
  // Returns once every connection is closed.
  void Cut() {
    std::unique_lock lock(mutex_);
    cut_ = true;
    ++cut_requests_;
    done_.wait(lock, [&] { return cut_done_ == cut_requests_; });
  }
  void Restore() { cut_ = false; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  void Run() {
    while (!stop_) {
      {
        std::lock_guard lock(mutex_);
        if (cut_done_ != cut_requests_) {
          for (auto [a, b] : pairs_) close(a), close(b);
          pairs_.clear();
          cut_done_ = cut_requests_;
          done_.notify_all();
        }
      }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto [a, b] : pairs_) fds.push_back({a, POLLIN, 0}), fds.push_back({b, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 10) <= 0) continue;  // 10 ms: to see Cut and stop
      const size_t polled = pairs_.size();                  // an accepted pair is polled next time
      if (fds[0].revents & POLLIN) {
        const int client = accept(listener_, nullptr, nullptr);
        if (cut_) {
          close(client);
        } else {
          const int upstream = socket(AF_INET, SOCK_STREAM, 0);
          sockaddr_in addr{};
          addr.sin_family = AF_INET;
          addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          addr.sin_port = htons(static_cast<uint16_t>(target_));
          if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            pairs_.emplace_back(client, upstream);
          } else {
            close(client), close(upstream);
          }
        }
      }
      std::vector<size_t> dead;
      for (size_t i = 0; i < polled; ++i) {
        for (int side = 0; side < 2; ++side) {
          if ((fds[1 + 2 * i + side].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          const int from = side == 0 ? pairs_[i].first : pairs_[i].second;
          const int to = side == 0 ? pairs_[i].second : pairs_[i].first;
          char buffer[65536];
          const ssize_t n = read(from, buffer, sizeof buffer);
          if (n <= 0 || write(to, buffer, static_cast<size_t>(n)) != n) {
            dead.push_back(i);
            break;
          }
        }
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        if (*it >= pairs_.size()) continue;
        close(pairs_[*it].first), close(pairs_[*it].second);
        pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(*it));
      }
    }
  }
  const int target_;
  int listener_ = -1;
  int port_ = 0;
  std::vector<std::pair<int, int>> pairs_;  // the proxy thread's
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::mutex mutex_;
  std::condition_variable done_;
  uint64_t cut_requests_ = 0, cut_done_ = 0;
  std::thread thread_;
};

// What a node's hub would get: offsets delivered, in order, and channels told of a loss.
struct Deliveries {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<uint64_t> offsets;
  int lost = 0;
  uint64_t Max() {
    std::lock_guard lock(mutex);
    return offsets.empty() ? 0 : offsets.back();
  }
  bool WaitFor(const std::function<bool()>& ready,
               std::chrono::milliseconds within = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, within, ready);
  }
};

// Node A's NATS connection drops while node B publishes (RePublish does not replay what A
// missed); the first delivery A gets after reconnecting shows the gap, which A reads back
// from the stream and hands on first: its subscribers see every offset, in order, once.
// When the missed publications are trimmed already, A's channel is told instead (Lost).
TEST_F(NatsHistoryTest, DeliveriesMissedWhileDisconnectedAreFilledFromTheStreamOrToldLost) {
  for (const bool trimmed : {false, true}) {
    SCOPED_TRACE(trimmed ? "trimmed" : "kept");
    const std::string name = trimmed ? "gaplost" : "gap";
    NatsHistoryOptions options = OptionsFor(*server_, name);
    if (trimmed) options.max_msgs_per_subject = 2;
    std::string error;
    auto b = MakeNatsHistoryStore(options, &error);
    ASSERT_TRUE(b) << error;
    CutProxy proxy(server_->port());
    NatsHistoryOptions via = options;
    via.url = proxy.url();
    NatsHistoryStore a(via);
    Deliveries got;
    a.SetDelivered([&](std::string_view, const core::StreamPosition& p, std::string_view, bool) {
      std::lock_guard lock(got.mutex);
      got.offsets.push_back(p.offset);
      got.changed.notify_all();
    });
    a.SetLost([&](std::string_view channel) {
      std::lock_guard lock(got.mutex);
      EXPECT_EQ(channel, "g");
      ++got.lost;
      got.changed.notify_all();
    });
    ASSERT_TRUE(a.Start(&error)) << error;
    auto on_a = a.Open("g", 0);
    auto on_b = b->Open("g", 0);
    ASSERT_FALSE(Append(*on_b, "p").failed);
    ASSERT_TRUE(got.WaitFor([&] { return got.offsets.size() == 1; }));

    proxy.Cut();
    for (int i = 0; i < 4; ++i) ASSERT_FALSE(Append(*on_b, "p").failed);  // 2..5, A misses
    proxy.Restore();
    // Until A is connected again its deliveries are missed too: publish until one arrives.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    uint64_t top = 5;
    while (got.Max() <= 1 && std::chrono::steady_clock::now() < deadline) {
      core::HistoryAppended r = Append(*on_b, "p");
      ASSERT_FALSE(r.failed);
      top = r.position.offset;
      // Not yet reconnected, the delivery is missed: publish again after a while.
      got.WaitFor([&] { return !got.offsets.empty() && got.offsets.back() > 1; },
                  std::chrono::milliseconds(200));
    }
    ASSERT_GT(top, 5u);
    // The last publication's delivery ends it (a filled gap comes before it).
    ASSERT_TRUE(got.WaitFor([&] { return got.offsets.back() == top; }));
    std::lock_guard lock(got.mutex);
    if (!trimmed) {
      std::vector<uint64_t> every(top);
      for (uint64_t i = 0; i < top; ++i) every[i] = i + 1;
      EXPECT_EQ(got.offsets, every) << "a gap, or a duplicate";
      EXPECT_EQ(a.gaps_filled(), 1u);
      EXPECT_EQ(got.lost, 0);
    } else {
      EXPECT_EQ(got.lost, 1);
      EXPECT_EQ(a.gaps_lost(), 1u);
      EXPECT_EQ(got.offsets, (std::vector<uint64_t>{1, top}));
    }
  }
}

// Reads through the workers' caches (store/nats_read_cache.h): each case reads, lets another
// engine (another node) change the channel's messages, and reads again; the answers must be
// what a read of every message gives.
class NatsReadCacheTest : public NatsHistoryTest {
 protected:
  // One worker, so every channel shares one cache; JetStream keeps max_msgs per channel.
  NatsHistoryOptions Options(const std::string& name, int64_t max_msgs = 100,
                             uint64_t cache_bytes = 64 << 20) {
    NatsHistoryOptions o = OptionsFor(*server_, name);
    o.workers = 1;
    o.max_msgs_per_subject = max_msgs;
    o.read_cache_bytes = cache_bytes;
    return o;
  }
  std::unique_ptr<NatsHistoryStore> MakeWith(const NatsHistoryOptions& o) {
    std::string error;
    auto store = MakeNatsHistoryStore(o, &error);
    EXPECT_TRUE(store) << error;
    return store;
  }
  // Two nodes on one stream, each with channel "c" open: the reader whose cache is tested and
  // the writer that appends behind its back. Members go in the order the tests need them
  // destroyed: the streams before their stores.
  struct TwoNodes {
    std::unique_ptr<NatsHistoryStore> reader, writer;
    std::unique_ptr<core::HistoryStore::Stream> r, w;
  };
  TwoNodes MakeTwo(const NatsHistoryOptions& o) {
    TwoNodes n{MakeWith(o), MakeWith(o), nullptr, nullptr};
    n.r = n.reader->Open("c", 0);
    n.w = n.writer->Open("c", 0);
    return n;
  }
};

// "d<i>@<i>" for i in from..to: what Append(..., "d<i>") stores at offset i.
std::vector<std::string> Pubs(uint64_t from, uint64_t to, const std::string& data = "d") {
  std::vector<std::string> out;
  for (uint64_t i = from; i <= to; ++i) {
    out.push_back(data + std::to_string(i) + "@" + std::to_string(i));
  }
  return out;
}

// A plain JetStream client, to change the stream under the engines as an operator (or a race
// between two engines) would.
struct RawJetStream {
  explicit RawJetStream(const std::string& url) {
    EXPECT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  }
  ~RawJetStream() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  // Every message of subject but the last one removed.
  void PurgeKeepingLast(const std::string& stream, const std::string& subject) {
    jsOptions po;
    jsOptions_Init(&po);
    po.Stream.Purge.Subject = subject.c_str();
    po.Stream.Purge.Keep = 1;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    EXPECT_EQ(js_PurgeStream(js, stream.c_str(), &po, &jerr), NATS_OK);
  }
  // history_remove's mark, without the purge that follows it.
  void Mark(const std::string& subject, uint64_t offset, const std::string& epoch) {
    natsMsg* msg = nullptr;
    ASSERT_EQ(natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0), NATS_OK);
    natsMsgHeader_Set(msg, "Hermod-Offset", std::to_string(offset).c_str());
    natsMsgHeader_Set(msg, "Hermod-Epoch", epoch.c_str());
    natsMsgHeader_Set(msg, "Hermod-Mark", "remove");
    jsPubAck* ack = nullptr;
    EXPECT_EQ(js_PublishMsg(&ack, js, msg, nullptr, nullptr), NATS_OK);
    if (ack != nullptr) jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
  }
  void DeleteStream(const std::string& stream) {
    EXPECT_EQ(js_DeleteStream(js, stream.c_str(), nullptr, nullptr), NATS_OK);
  }
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
};

TEST_F(NatsReadCacheTest, ReadsFetchOnlyWhatAnotherNodeStoredSince) {
  const NatsHistoryOptions o = Options("cfold");
  auto [reader, writer, r, w] = MakeTwo(o);
  uint64_t top = 40;
  for (uint64_t i = 1; i <= top; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i), 100).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(1, top));
  const std::string epoch = w->Position().epoch;
  for (uint64_t added = 0; added <= 4; ++added) {
    for (uint64_t i = 0; i < added; ++i) {
      ++top;
      ASSERT_FALSE(Append(*w, "d" + std::to_string(top), 100).failed);
    }
    const NatsHistoryStore::ReadCounts before = reader->read_counts();
    core::HistoryPage page = Read(*r, std::nullopt);
    const NatsHistoryStore::ReadCounts after = reader->read_counts();
    EXPECT_EQ(page.publications, Pubs(1, top));
    EXPECT_EQ(page.position.offset, top);
    EXPECT_EQ(page.position.epoch, epoch);
    EXPECT_EQ(after.folded, before.folded + 1);
    EXPECT_EQ(after.rebuilt, before.rebuilt);
    // The last message, the new ones, the channel's first stored: not the 40 before.
    EXPECT_LE(after.messages - before.messages, added + 2);
    EXPECT_EQ(Read(*r, core::StreamPosition{top - 2, epoch}, 1).publications,
              Pubs(top - 1, top - 1));
    EXPECT_EQ(Read(*r, std::nullopt, 2, true).publications,
              (std::vector<std::string>{Pubs(top, top)[0], Pubs(top - 1, top - 1)[0]}));
    core::HistoryStream::Recovery rec = Recover(*r, {top - 3, epoch}, top);
    EXPECT_TRUE(rec.recovered);
    EXPECT_EQ(rec.publications, Pubs(top - 2, top));
  }
  EXPECT_EQ(reader->read_counts().rebuilt, 1u);
  EXPECT_GT(reader->read_counts().cache_bytes, 0u);
}

TEST_F(NatsReadCacheTest, RemoveOnAnotherNodeBetweenReads) {
  const NatsHistoryOptions o = Options("cremove");
  auto [reader, writer, r, w] = MakeTwo(o);
  for (int i = 1; i <= 5; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i)).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(1, 5));
  const std::string epoch = w->Position().epoch;
  w->Remove();
  ASSERT_TRUE(Read(*w, std::nullopt).publications.empty());  // done: one worker, in order
  const uint64_t folded = reader->read_counts().folded;
  core::HistoryPage page = Read(*r, std::nullopt);
  EXPECT_TRUE(page.publications.empty());
  EXPECT_EQ(page.position.offset, 5u);
  EXPECT_EQ(page.position.epoch, epoch);
  EXPECT_EQ(reader->read_counts().folded, folded + 1);  // the mark folded in, not a rebuild
  EXPECT_FALSE(Recover(*r, {3, epoch}, 5).recovered);
  for (int i = 6; i <= 7; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i)).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(6, 7));
  EXPECT_EQ(Recover(*r, {5, epoch}, 7).publications, Pubs(6, 7));

  // A mark whose purge has not come yet (history_remove is two steps): nothing before the
  // mark is answered, though JetStream still holds it.
  RawJetStream raw(server_->url());
  raw.Mark("tcremove.history.c", 7, epoch);
  page = Read(*r, std::nullopt);
  EXPECT_TRUE(page.publications.empty());
  EXPECT_EQ(page.position.offset, 7u);
  ASSERT_FALSE(Append(*w, "d8").failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(8, 8));
}

TEST_F(NatsReadCacheTest, TrimmedPastTheCachedPartBetweenReads) {
  // JetStream keeps 3 messages of the channel; the history size is 3 too.
  const NatsHistoryOptions o = Options("ctrim", 3);
  auto [reader, writer, r, w] = MakeTwo(o);
  for (int i = 1; i <= 5; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i), 3).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(3, 5));
  for (int i = 6; i <= 15; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i), 3).failed);
  const NatsHistoryStore::ReadCounts before = reader->read_counts();
  core::HistoryPage page = Read(*r, std::nullopt);
  EXPECT_EQ(page.publications, Pubs(13, 15));
  EXPECT_EQ(page.position.offset, 15u);
  EXPECT_EQ(reader->read_counts().folded, before.folded + 1);
  const std::string epoch = w->Position().epoch;
  EXPECT_FALSE(Recover(*r, {11, epoch}, 15).recovered);  // 12 is gone
  EXPECT_EQ(Recover(*r, {12, epoch}, 15).publications, Pubs(13, 15));
  // Fewer than the size between reads: the cached part is trimmed by the stream's size.
  for (int i = 16; i <= 17; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i), 3).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(15, 17));
}

TEST_F(NatsReadCacheTest, TtlExpiryBetweenReads) {
  const NatsHistoryOptions o = Options("cttl", 3);
  auto [reader, writer, r, w] = MakeTwo(o);
  for (int i = 1; i <= 2; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i), 3, 300).failed);
  ASSERT_FALSE(Append(*w, "d3", 3, 60000).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(1, 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(450));  // the first two's TTL passes
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(3, 3));
  auto t = reader->Open("t", 0);
  auto tw = writer->Open("t", 0);
  ASSERT_FALSE(Append(*tw, "d1", 3, 300).failed);
  EXPECT_EQ(Read(*t, std::nullopt).publications, Pubs(1, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  core::HistoryPage page = Read(*t, std::nullopt);
  EXPECT_TRUE(page.publications.empty());
  EXPECT_EQ(page.position.offset, 1u);
  // Then more than JetStream keeps: the cached stream (empty) continues at the oldest kept.
  for (int i = 2; i <= 6; ++i) ASSERT_FALSE(Append(*tw, "d" + std::to_string(i), 3).failed);
  page = Read(*t, std::nullopt);
  EXPECT_EQ(page.publications, Pubs(4, 6));
  EXPECT_EQ(page.position.offset, 6u);
}

TEST_F(NatsReadCacheTest, HistorySizeChangeBetweenReads) {
  const NatsHistoryOptions o = Options("csize");
  auto [reader, writer, r, w] = MakeTwo(o);
  for (int i = 1; i <= 5; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i), 3).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(3, 5));
  // A larger history_size (the namespace's config changed): what JetStream kept of the older
  // publications counts again, as for a node reading it the first time.
  ASSERT_FALSE(Append(*w, "d6", 10).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(1, 6));
  ASSERT_FALSE(Append(*w, "d7", 2).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(6, 7));
}

TEST_F(NatsReadCacheTest, MessagesPurgedUnderTheCacheAreNotAnswered) {
  const NatsHistoryOptions o = Options("cpurge");
  auto [reader, writer, r, w] = MakeTwo(o);
  for (int i = 1; i <= 5; ++i) ASSERT_FALSE(Append(*w, "d" + std::to_string(i)).failed);
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(1, 5));
  ASSERT_FALSE(Append(*w, "d6").failed);
  // As when a publication comes between history_remove's mark and its purge: the purge
  // keeps the publication and removes the mark with the rest.
  RawJetStream raw(server_->url());
  raw.PurgeKeepingLast(o.stream, "tcpurge.history.c");
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(6, 6));
}

TEST_F(NatsReadCacheTest, EpochChangeBetweenReads) {
  const NatsHistoryOptions o = Options("cepoch");
  auto reader = MakeWith(o);
  auto r = reader->Open("c", 0);
  std::string old_epoch;
  {
    auto writer = MakeWith(o);
    auto w = writer->Open("c", 0);
    for (int i = 1; i <= 3; ++i) ASSERT_FALSE(Append(*w, "old" + std::to_string(i)).failed);
    old_epoch = w->Position().epoch;
  }
  EXPECT_EQ(Read(*r, std::nullopt).publications, Pubs(1, 3, "old"));
  // The stream deleted and made again: the channel starts over in a new epoch, with more
  // messages than before so its sequences pass the cached ones.
  RawJetStream raw(server_->url());
  raw.DeleteStream(o.stream);
  auto writer = MakeWith(o);
  auto w = writer->Open("c", 0);
  for (int i = 1; i <= 6; ++i) ASSERT_FALSE(Append(*w, "new" + std::to_string(i)).failed);
  const std::string epoch = w->Position().epoch;
  ASSERT_NE(epoch, old_epoch);
  core::HistoryPage page = Read(*r, std::nullopt);
  EXPECT_EQ(page.publications, Pubs(1, 6, "new"));
  EXPECT_EQ(page.position.offset, 6u);
  EXPECT_EQ(page.position.epoch, epoch);
  EXPECT_FALSE(Recover(*r, {3, old_epoch}, 6).recovered);
}

TEST_F(NatsReadCacheTest, NoBudgetAndATinyOneAnswerTheSame) {
  for (uint64_t budget : {uint64_t{0}, uint64_t{2000}}) {
    SCOPED_TRACE(budget);
    const NatsHistoryOptions o = Options("cbudget" + std::to_string(budget), 100, budget);
    auto reader = MakeWith(o);
    auto writer = MakeWith(o);
    std::vector<std::unique_ptr<core::HistoryStore::Stream>> rs, ws;
    for (const char* name : {"a", "b", "c"}) {
      rs.push_back(reader->Open(name, 0));
      ws.push_back(writer->Open(name, 0));
    }
    std::vector<uint64_t> tops(3, 0);
    for (int round = 0; round < 4; ++round) {
      for (size_t c = 0; c < 3; ++c) {
        for (int i = 0; i < 3; ++i) {
          ++tops[c];
          ASSERT_FALSE(Append(*ws[c], "d" + std::to_string(tops[c]), 100).failed);
        }
        EXPECT_EQ(Read(*rs[c], std::nullopt).publications, Pubs(1, tops[c]));
        EXPECT_LE(reader->read_counts().cache_bytes, budget);
      }
    }
    const NatsHistoryStore::ReadCounts counts = reader->read_counts();
    if (budget == 0) {
      EXPECT_EQ(counts.folded, 0u);
      EXPECT_EQ(counts.rebuilt, 12u);
      EXPECT_EQ(counts.evicted, 0u);
    } else {
      // Room for three channels at first, for one at the end: reads evict.
      EXPECT_GT(counts.evicted, 0u);
      EXPECT_GT(counts.cache_bytes, 0u);
    }
  }
}

TEST(NatsReadCache, KeepsTheMostRecentlyReadWithinItsBudget) {
  NatsReadCacheCounts counts;
  auto entry = [](uint64_t publications) {
    NatsReadCache::Entry e;
    e.stream = core::HistoryStream("e", 0);
    for (uint64_t i = 0; i < publications; ++i) e.stream.Append("x", 0, 100, 1000);
    return e;
  };
  const size_t one = NatsReadCache::Cost("a", entry(2));
  {
    NatsReadCache cache(2 * one, &counts);
    cache.Put("a", entry(2));
    cache.Put("b", entry(2));
    EXPECT_EQ(cache.bytes(), 2 * one);
    EXPECT_EQ(counts.bytes.load(), 2 * one);
    ASSERT_TRUE(cache.Take("a"));  // out: b is the only one
    EXPECT_FALSE(cache.Take("a"));
    cache.Put("a", entry(2));
    cache.Put("c", entry(2));  // b, read least recently, goes
    EXPECT_EQ(counts.evicted.load(), 1u);
    EXPECT_FALSE(cache.Take("b"));
    std::optional<NatsReadCache::Entry> a = cache.Take("a");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->stream.size(), 2u);
    cache.Put("big", entry(50));  // larger than the budget alone: not kept (counted), c stays
    EXPECT_EQ(counts.evicted.load(), 2u);
    EXPECT_TRUE(cache.Take("c"));
    EXPECT_EQ(cache.channels(), 0u);
    EXPECT_EQ(counts.bytes.load(), 0u);
    cache.Put("a", entry(2));
  }
  EXPECT_EQ(counts.bytes.load(), 0u);  // a cache gone takes its bytes with it
  NatsReadCache none(0, &counts);
  none.Put("a", entry(1));
  EXPECT_FALSE(none.Take("a"));
  EXPECT_EQ(counts.evicted.load(), 2u);
}

}  // namespace
}  // namespace hermod::store
