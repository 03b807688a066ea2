// The hub with a history engine that delivers itself (Stores::history_delivers: JetStream's
// RePublish brings every stored publication back to every node). What must hold: an
// append's completion answers its publisher and fans nothing out; Hub::Deliver fans out
// with the offset given, in the order given, skipping what the channel's position covers,
// and moves the position a new subscriber gets; a duplicate (an engine's idempotency) is
// answered with the first offset and never fanned out.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "chunk_push.h"
#include "core/hub.h"
#include "later_history_store.h"
#include "net/connection.h"

namespace hermod::core {
namespace {

std::string Publication(std::string_view data, std::string_view, uint64_t offset,
                        std::string_view) {
  return std::string(data) + "@" + std::to_string(offset);
}
Push* Frame(std::string_view channel, std::string_view publication) {
  return new ChunkPush(std::string(channel) + "|" + std::string(publication) + "\n");
}
Push* JoinLeave(std::string_view channel, bool join, std::string_view) {
  return Frame(channel, join ? "join" : "leave");
}

class Sink final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

Stores DeliveringStores(LaterHistoryStore** history) {
  Stores stores = LaterStores(history);
  stores.history_delivers = true;
  return stores;
}

class HubDeliverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = std::make_unique<net::Loop>(0, 4096);
    hub_.AttachLoop(*loop_);
    thread_ = std::thread([this] { loop_->Run(); });
    options_.history_size = 100;
    options_.history_ttl.ms = 60000;
  }
  void TearDown() override {
    net::Loop* loop = loop_.get();
    loop->Post([loop] { loop->Stop(); });
    thread_.join();
    for (int fd : peers_) close(fd);
  }
  template <class F>
  auto On(F fn) {
    std::packaged_task<decltype(fn())()> task(fn);
    auto result = task.get_future();
    loop_->Post([&task] { task(); });
    return result.get();
  }
  // A subscriber of "ch"; its peer's fd and the position it got.
  std::pair<int, uint64_t> Subscribe(Subscription* s) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peers_.push_back(fds[1]);
    const uint64_t offset = On([&] {
      s->connection = new Sink(*loop_, fds[0], nullptr);
      Hub::SubscribeRequest r;
      r.channel = "ch";
      r.options = &options_;
      r.client = "c";
      r.recoverable = true;
      return hub_.Subscribe(*loop_, r, s).position.offset;
    });
    return {fds[1], offset};
  }
  static std::string Read(int fd, size_t lines, int wait_ms = 10000) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (static_cast<size_t>(std::count(out.begin(), out.end(), '\n')) < lines &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buffer[4096];
      ssize_t n = read(fd, buffer, sizeof buffer);
      if (n > 0) out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
  Hub::PublishResult PublishAndWait(std::string_view data) {
    std::promise<Hub::PublishResult> p;
    auto f = p.get_future();
    Hub::PublishRequest r;
    r.channel = "ch";
    r.options = &options_;
    r.data = data;
    r.done = Completion<Hub::PublishResult>([&p](Hub::PublishResult x) { p.set_value(x); });
    Hub::PublishResult now = hub_.Publish(std::move(r));
    if (now.refusal != Hub::Refusal::kPending) return now;
    return f.get();
  }

  LaterHistoryStore* history_ = nullptr;
  Hub hub_{1, PushCodec{&Publication, &Frame, &JoinLeave, {}}, DeliveringStores(&history_)};
  std::unique_ptr<net::Loop> loop_;
  std::thread thread_;
  std::vector<int> peers_;
  config::ChannelOptions options_;
};

TEST_F(HubDeliverTest, AppendAnswersThePublisherAndDeliverFansOut) {
  Subscription s;
  const auto [peer, position] = Subscribe(&s);
  EXPECT_EQ(position, 0u);
  const Hub::PublishResult r = PublishAndWait("a");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.position.offset, 1u);
  // Stored, answered, not fanned out: that is Deliver's.
  EXPECT_EQ(Read(peer, 1, 200), "");
  // What the engine brings back: this node's publication and another node's, in order; a
  // repeat at or below the position is skipped.
  hub_.Deliver("ch", options_, {1, "later"}, "a@1");
  hub_.Deliver("ch", options_, {2, "later"}, "b@2");
  hub_.Deliver("ch", options_, {2, "later"}, "b@2");
  hub_.Deliver("ch", options_, {1, "later"}, "a@1");
  hub_.Deliver("ch", options_, {3, "later"}, "c@3");
  EXPECT_EQ(Read(peer, 3), "ch|a@1\nch|b@2\nch|c@3\n");
  EXPECT_EQ(Read(peer, 1, 200), "");
  // A new subscriber's position is what was delivered last.
  Subscription t;
  EXPECT_EQ(Subscribe(&t).second, 3u);
  // A channel nobody here uses: nothing to do, nothing kept.
  hub_.Deliver("elsewhere", options_, {9, "e"}, "x@9");
}

// An engine that deduplicates as it stores answers the first offset; nothing goes out.
class DuplicateStream final : public HistoryStore::Stream {
 public:
  StreamPosition Position() const override { return {5, "e"}; }
  std::optional<HistoryAppended> Append(const HistoryAppend&, const PublicationEncoder&,
                                        Completion<HistoryAppended> done) override {
    std::thread([done = std::move(done)]() mutable {
      HistoryAppended a;
      a.duplicate = true;
      a.position = {3, "e"};
      done(std::move(a));
    }).detach();
    return std::nullopt;
  }
  std::optional<HistoryPage> Read(const HistoryQuery&, Completion<HistoryPage>) override {
    return HistoryPage{};
  }
  std::optional<HistoryStream::Recovery> Recover(const RecoveryQuery&,
                                                 Completion<HistoryStream::Recovery>) override {
    return HistoryStream::Recovery{};
  }
  void Remove() override {}
  void Expire(uint64_t) override {}
  size_t entries() const override { return 0; }
  size_t bytes() const override { return 0; }
  uint64_t expires_ms() const override { return 0; }
};
class DuplicateStore final : public HistoryStore {
 public:
  const char* name() const override { return "duplicate"; }
  void SetMetaLimits(uint64_t, size_t) override {}
  std::unique_ptr<Stream> Open(std::string_view, uint64_t) override {
    return std::make_unique<DuplicateStream>();
  }
  void Close(std::string_view, std::unique_ptr<Stream>, uint64_t) override {}
  std::optional<StreamPosition> Kept(std::string_view, uint64_t) override { return {}; }
  void ExpireKept(uint64_t) override {}
};

TEST(HubDuplicate, ADuplicateIsAnsweredWithTheFirstOffsetAndNotFannedOut) {
  for (bool delivers : {false, true}) {
    LaterHistoryStore* unused = nullptr;
    Stores stores = LaterStores(&unused);
    stores.history = std::make_unique<DuplicateStore>();
    stores.history_delivers = delivers;
    Hub hub(1, PushCodec{&Publication, &Frame, &JoinLeave, {}}, std::move(stores));
    config::ChannelOptions options;
    options.history_size = 10;
    options.history_ttl.ms = 60000;
    std::promise<Hub::PublishResult> p;
    auto f = p.get_future();
    Hub::PublishRequest r;
    r.channel = "ch";
    r.options = &options;
    r.data = "again";
    r.idempotency_key = "k";
    r.done = Completion<Hub::PublishResult>([&p](Hub::PublishResult x) { p.set_value(x); });
    ASSERT_EQ(hub.Publish(std::move(r)).refusal, Hub::Refusal::kPending);
    const Hub::PublishResult result = f.get();
    EXPECT_TRUE(result.ok());
    EXPECT_EQ(result.position.offset, 3u);
    EXPECT_EQ(result.position.epoch, "e");
  }
}

}  // namespace
}  // namespace hermod::core
