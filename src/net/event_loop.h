// One event loop per core (Redis's ae, uWebSockets' Loop): an epoll set, a timer wheel, a
// mailbox for other threads, and the state every connection on this loop shares, above all
// one read buffer. A connection lives on one loop for its life, so nothing here is locked:
// everything but Mailbox::Post runs on the loop's own thread.
//
// One iteration: wait for events; read and dispatch them; run the mailbox; fire due timers;
// then flush every connection that queued output during the iteration, each with one
// writev (corking); then free the connections closed during the iteration.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "net/mailbox.h"
#include "net/timer_wheel.h"

namespace hermod::net {

class Connection;

// Anything registered with epoll: data.ptr points at one of these.
class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual void OnEvents(uint32_t events) = 0;
};

// Admission and rate-limit refusals (issue 6), counted on the loop that refused; the
// metrics room reports them as hermod_connections_rejected_total{reason} and
// hermod_client_commands_rate_limited_total{kind}.
struct GuardStats {
  uint64_t rejected_capacity = 0;    // 503: client_connection_limit
  uint64_t rejected_node_rate = 0;   // 503: client_connection_rate_limit
  uint64_t rejected_ip_limit = 0;    // 429: admission.ip_connection_limit
  uint64_t rejected_ip_rate = 0;     // 429: admission.ip_connection_rate
  uint64_t rejected_soft_limit = 0;  // connect without a recovery position in the soft band
  uint64_t rejected_user_limit = 0;  // disconnect 3504: client_user_connection_limit
  uint64_t accept_throttled = 0;     // listener pauses for admission.accept_rate_per_loop
  // Commands answered with error 111, by bucket: publish, subscribe, history, presence, rpc,
  // total (core::CommandKind order), then the namespaces' publish_rate_limit.
  uint64_t commands_limited[7] = {};
  uint64_t rate_limit_disconnects = 0;  // disconnect 3013
};

// Counters one loop keeps; read by the metrics room through the mailbox.
struct LoopStats {
  uint64_t accepted = 0;
  uint64_t accept_emfile = 0;  // connections shed because the process ran out of fds
  uint64_t closed = 0;
  uint64_t write_overflow = 0;   // closed for passing the write buffer limit
  uint64_t register_failed = 0;  // accepted sockets epoll would not take
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  // Where the loop's time goes: blocked in epoll_wait, or working (events, mailbox, timers,
  // flushes). busy / (busy + wait) is the loop's load.
  uint64_t wait_us = 0;
  uint64_t busy_us = 0;
  GuardStats guard;
};

class Loop {
 public:
  using Clock = uint64_t (*)();  // milliseconds, monotonic
  static uint64_t MonotonicMs();
  static uint64_t MonotonicUs();

  explicit Loop(int index, size_t read_buffer_bytes = 512 * 1024, Clock clock = &MonotonicMs);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Runs until Stop() is called on the loop's thread.
  void Run();
  void Stop() { running_ = false; }
  // Thread-safe.
  void Post(std::function<void()> task) { mailbox_.Post(std::move(task)); }

  // False when epoll refuses the fd (e.g. max_user_watches reached).
  [[nodiscard]] bool Add(int fd, uint32_t events, Pollable* target);
  void Modify(int fd, uint32_t events, Pollable* target);
  void Remove(int fd);

  TimerWheel& timers() { return timers_; }
  // A connection whose queued output passes this is closed (a slow consumer).
  size_t max_write_buffer_bytes() const { return max_write_buffer_bytes_; }
  void set_max_write_buffer_bytes(size_t n) { max_write_buffer_bytes_ = n; }
  uint64_t now_ms() const { return now_ms_; }
  int index() const { return index_; }
  LoopStats& stats() { return stats_; }

  // The loop's read buffer: valid until the next read on this loop.
  uint8_t* read_buffer() { return read_buffer_.get(); }
  size_t read_buffer_size() const { return read_buffer_size_; }

  // Connection bookkeeping (called by Connection).
  void Attach(Connection* c);
  void Detach(Connection* c);
  void NeedsFlush(Connection* c);
  void Bury(Connection* c);  // delete at the end of this iteration
  size_t connection_count() const { return connection_count_; }
  // Calls fn for every open connection; fn may close them.
  void ForEachConnection(const std::function<void(Connection*)>& fn);

 private:
  friend class Connection;
  void FlushPending();
  void FreeClosed();

  class Wakeup final : public Pollable {
   public:
    explicit Wakeup(Mailbox& mailbox) : mailbox_(mailbox) {}
    void OnEvents(uint32_t) override { mailbox_.Drain(); }

   private:
    Mailbox& mailbox_;
  };

  int index_;
  int epoll_fd_;
  Clock clock_;
  uint64_t now_ms_;
  bool running_ = false;
  Mailbox mailbox_;
  Wakeup wakeup_{mailbox_};
  TimerWheel timers_;
  std::unique_ptr<uint8_t[]> read_buffer_;
  size_t read_buffer_size_;
  size_t max_write_buffer_bytes_ = 4 << 20;
  LoopStats stats_;
  // Intrusive lists threaded through Connection (no allocation per connection).
  Connection* connections_ = nullptr;  // all open connections (doubly linked)
  size_t connection_count_ = 0;
  Connection* flush_head_ = nullptr;  // connections with output queued this iteration
  std::vector<Connection*> graveyard_;
};

}  // namespace hermod::net
