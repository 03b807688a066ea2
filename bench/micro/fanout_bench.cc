// Fan-out of one publication to N local subscribers through core's real code path: one
// net::Loop on its own thread, N proto::WebSocketTransports (the client protocol's
// WebSocket connections, whose sessions never connect) on real TCP loopback sockets, a
// core::Hub with proto's JSON codec, as the server wires them (one loop, no deflate). The
// sockets' far ends live in a forked child that reads and discards everything, as clients
// would: one process may hold 20,000 files here, fewer than 10,000 socket pairs need.
//
// BM_HubPublish/N, the whole path: Hub::Publish (shard lock, the publication encoded once
// into a shared PreparedPush, posted to the loop), then on the loop the mailbox,
// LoopChannels::Deliver (the frame queued to N connections by reference) and the end of
// iteration flush (one send per connection). Timed from Publish until the loop has flushed,
// so it includes the cross-thread wake-up and, with the default push coalescing, the one
// extra mailbox run after which a batch leaves.
// BM_LoopDeliver/N, the per-loop dispatch step alone: LoopChannels::Deliver of one shared
// push to N connections, timed on the loop thread; the flush follows, untimed.
// BM_ConnectionChannels/K/J, one connection subscribed to K channels that each deliver one
// push in the same loop iteration, timed from the first Deliver until the iteration's flush
// has written them (to the next iteration's first task): with J=1 the K pushes leave joined
// as one message (websocket.join_max_bytes, the default 16 KiB), with J=0 as K messages by
// reference in one writev.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "auth/token_verifier.h"
#include "config/config.h"
#include "core/channel_rules.h"
#include "core/hub.h"
#include "core/loop_channels.h"
#include "core/push.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "proto/client_session.h"
#include "proto/prepared_push.h"
#include "proto/websocket_transport.h"
#include "store/engines.h"
#include "ws/websocket_connection.h"

namespace {

using namespace hermod;

constexpr std::string_view kChannel = "bench";
// The size of hermod-bench's stamped 64-byte payload.
constexpr std::string_view kData =
    R"({"seq":123456,"t":1795435123456789,"pad":"xxxxxxxxxxxxxxxxxxxxxx"})";

// The HTTP connection a WebSocket takes its transport from (here: no handshake).
class Transport final : public net::Connection {
 public:
  using net::Connection::Connection;
  void OnData(uint8_t*, size_t) override {}
};

// The child: connects n sockets to port, reads and discards until control closes.
[[noreturn]] void DrainChild(uint16_t port, int n, int control) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int epoll = epoll_create1(0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = control;
  epoll_ctl(epoll, EPOLL_CTL_ADD, control, &ev);
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(1);
    ev.data.fd = fd;
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev);
  }
  static char buffer[256 * 1024];
  epoll_event events[256];
  for (;;) {
    int count = epoll_wait(epoll, events, 256, -1);
    for (int i = 0; i < count; ++i) {
      int fd = events[i].data.fd;
      if (fd == control) _exit(0);
      if (recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) == 0) close(fd);
    }
  }
}

class Rig {
 public:
  explicit Rig(int n) : n_(n), subscriptions_(n), direct_(n) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener, 4096) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::abort();
    }
    int control[2];
    if (pipe2(control, O_CLOEXEC) != 0) std::abort();
    child_ = fork();
    if (child_ == 0) {
      close(control[1]);
      DrainChild(ntohs(addr.sin_port), n, control[0]);
    }
    close(control[0]);
    control_ = control[1];

    loop_ = std::make_unique<net::Loop>(0);
    hub_ = std::make_unique<core::Hub>(1, proto::JsonPushCodec(), store::MemoryStores());
    hub_->AttachLoop(*loop_);
    proto::ClientOptions client_options;
    client_options.stale_close_ms = 0;  // the sessions never connect
    client_context_ = std::make_unique<proto::ClientContext>(
        proto::ClientContext{*hub_, rules_, tokens_, client_options});
    ws::WebSocketOptions options;
    options.ping_interval_ms = 0;
    ws::HandshakeResult handshake;
    for (int i = 0; i < n; ++i) {
      int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) std::abort();
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // The loop owns connections and frees them; the transport is buried by the hand-over.
      auto* transport = new Transport(*loop_, fd, nullptr);
      auto* connection =
          new proto::WebSocketTransport(*transport, options, handshake, stats_, *client_context_);
      core::Hub::SubscribeRequest request;
      request.channel = kChannel;
      request.options = &channel_options_;
      request.client = "c";
      request.user = "";
      request.info = "{}";
      subscriptions_[i].connection = connection;
      subscriptions_[i].transport = connection;
      hub_->Subscribe(*loop_, request, &subscriptions_[i]);
      direct_[i].connection = connection;
      direct_[i].transport = connection;
      local_.Add(kChannel, &direct_[i]);
    }
    close(listener);
    thread_ = std::thread([this] { loop_->Run(); });
  }

  ~Rig() {
    loop_->Post([loop = loop_.get()] { loop->Stop(); });
    thread_.join();
    hub_.reset();
    loop_.reset();
    close(control_);
    waitpid(child_, nullptr, 0);
  }

  int size() const { return n_; }
  core::Hub& hub() { return *hub_; }
  const config::ChannelOptions& channel_options() const { return channel_options_; }
  core::LoopChannels& local() { return local_; }
  net::Loop& loop() { return *loop_; }
  // Subscribes the first connection to channels "c0".."c<k-1>" of local() (on the loop).
  void SubscribeChannels(int k) {
    OnLoop([this, k] {
      while (static_cast<int>(extra_.size()) < k) {
        extra_.emplace_back();
        extra_.back().connection = direct_[0].connection;
        extra_.back().transport = direct_[0].transport;
        local_.Add("c" + std::to_string(extra_.size() - 1), &extra_.back());
      }
    });
  }

  // Runs fn on the loop, then returns once the loop has finished that iteration's flush.
  template <class F>
  void OnLoop(F fn) {
    loop_->Post(std::move(fn));
    WaitFlushed();
  }
  // Returns once everything posted to the loop so far has run and been flushed: a task
  // posted from the loop runs in the next iteration, after this one's flush. Two hops, as
  // a coalesced batch (the default: push_coalesce_max_bytes) leaves one mailbox run after
  // its pushes arrived, and is written at the end of that iteration.
  void WaitFlushed() {
    const uint64_t target = ++requested_;
    loop_->Post([this] {
      loop_->Post([this] {
        loop_->Post([this] {
          flushed_.store(flushed_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
          flushed_.notify_one();
        });
      });
    });
    for (uint64_t seen = flushed_.load(std::memory_order_acquire); seen < target;
         seen = flushed_.load(std::memory_order_acquire)) {
      flushed_.wait(seen, std::memory_order_acquire);
    }
  }
  // Subscribers still open, and those closed for passing the write buffer limit.
  std::pair<size_t, uint64_t> Health() {
    std::pair<size_t, uint64_t> health;
    OnLoop([&] { health = {loop_->connection_count(), loop_->stats().write_overflow}; });
    return health;
  }

 private:
  int n_;
  pid_t child_ = -1;
  int control_ = -1;
  config::ChannelOptions channel_options_;  // no history, no presence: bench/peers/hermod.json
  ws::WebSocketStats stats_;
  std::vector<proto::TransportSubscription> subscriptions_;  // the hub's
  std::vector<proto::TransportSubscription> direct_;         // local_'s, on the same connections
  std::deque<proto::TransportSubscription> extra_;           // SubscribeChannels'
  config::Config config_;
  core::ChannelRules rules_{config_};
  auth::TokenVerifier tokens_{auth::TokenKeys{}};
  std::unique_ptr<proto::ClientContext> client_context_;
  core::LoopChannels local_;  // touched on the loop thread only
  std::unique_ptr<net::Loop> loop_;
  std::unique_ptr<core::Hub> hub_;
  std::thread thread_;
  uint64_t requested_ = 0;
  std::atomic<uint64_t> flushed_{0};
};

Rig& RigOf(int n) {
  static std::unique_ptr<Rig> rig;
  if (!rig || rig->size() != n) {
    rig.reset();
    rig = std::make_unique<Rig>(n);
  }
  return *rig;
}

void Report(benchmark::State& state, Rig& rig) {
  auto [open, overflowed] = rig.Health();
  if (open != static_cast<size_t>(rig.size())) state.SkipWithError("a subscriber was closed");
  state.counters["overflow_closes"] = static_cast<double>(overflowed);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_HubPublish(benchmark::State& state) {
  Rig& rig = RigOf(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    rig.hub().Publish({kChannel, &rig.channel_options(), kData, {}, {}, {}, {}, {}});
    rig.WaitFlushed();
  }
  Report(state, rig);
}
// Fixed iteration counts: at 10,000 subscribers one publication takes about 0.1 s.
BENCHMARK(BM_HubPublish)->Arg(1)->Iterations(20000)->UseRealTime();
BENCHMARK(BM_HubPublish)->Arg(100)->Iterations(2000)->UseRealTime();
BENCHMARK(BM_HubPublish)->Arg(10000)->Iterations(20)->UseRealTime();

void BM_LoopDeliver(benchmark::State& state) {
  Rig& rig = RigOf(static_cast<int>(state.range(0)));
  core::PushCodec codec = proto::JsonPushCodec();
  core::Push* push = codec.publication_push(kChannel, codec.publication(kData, {}, 0, {}));
  for (auto _ : state) {
    double seconds = 0;
    rig.OnLoop([&] {
      auto start = std::chrono::steady_clock::now();
      rig.local().Deliver(kChannel, *push, 0, false);
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    });
    state.SetIterationTime(seconds);
  }
  push->Unref();
  Report(state, rig);
}
// Each iteration also waits for the untimed flush (about 10 us per subscriber, mostly the
// kernel's loopback send), which manual time would not count: fixed iteration counts keep
// the run to seconds.
BENCHMARK(BM_LoopDeliver)->Arg(1)->Iterations(20000)->UseManualTime();
BENCHMARK(BM_LoopDeliver)->Arg(100)->Iterations(2000)->UseManualTime();
BENCHMARK(BM_LoopDeliver)->Arg(10000)->Iterations(50)->UseManualTime();

void BM_ConnectionChannels(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  Rig& rig = RigOf(1);
  rig.SubscribeChannels(k);
  net::SendLimits limits = rig.loop().send_limits();
  limits.join_max_bytes = state.range(1) != 0 ? 16 * 1024 : 0;
  rig.OnLoop([&] { rig.loop().set_send_limits(limits); });
  core::PushCodec codec = proto::JsonPushCodec();
  std::vector<core::Push*> pushes;
  std::vector<std::string> channels;
  for (int i = 0; i < k; ++i) {
    channels.push_back("c" + std::to_string(i));
    pushes.push_back(codec.publication_push(channels.back(), codec.publication(kData, {}, 0, {})));
  }
  const net::LoopStats before = [&] {
    net::LoopStats stats;
    rig.OnLoop([&] { stats = rig.loop().stats(); });
    return stats;
  }();
  for (auto _ : state) {
    std::atomic<bool> done{false};
    std::chrono::steady_clock::time_point start, end;
    rig.loop().Post([&] {
      start = std::chrono::steady_clock::now();
      for (int i = 0; i < k; ++i) rig.local().Deliver(channels[i], *pushes[i], 0, false);
      // Runs in the next iteration, after this one's flush.
      rig.loop().Post([&] {
        end = std::chrono::steady_clock::now();
        done.store(true, std::memory_order_release);
        done.notify_one();
      });
    });
    done.wait(false, std::memory_order_acquire);
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
  }
  net::LoopStats after;
  rig.OnLoop([&] {
    after = rig.loop().stats();
    rig.loop().set_send_limits(net::SendLimits{});
  });
  for (core::Push* push : pushes) push->Unref();
  state.counters["joined_per_iter"] =
      static_cast<double>(after.messages_joined - before.messages_joined) /
      static_cast<double>(state.iterations());
  state.counters["bytes_per_iter"] =
      static_cast<double>(after.bytes_written - before.bytes_written) /
      static_cast<double>(state.iterations());
  Report(state, rig);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * k);
}
BENCHMARK(BM_ConnectionChannels)
    ->ArgsProduct({{1, 8, 64}, {0, 1}})
    ->Iterations(5000)
    ->UseManualTime();

}  // namespace
