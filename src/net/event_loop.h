// One event loop per core (Redis's ae, uWebSockets' Loop): an epoll set, a timer wheel, a
// mailbox for other threads, and the state every connection on this loop shares, above all
// one read buffer. A connection lives on one loop for its life, so nothing here is locked:
// everything but Mailbox::Post runs on the loop's own thread.
//
// One iteration: wait for events (or the next timer); fire due timers; dispatch the events,
// the mailbox's eventfd among them (its tasks run then; tasks the loop posted to itself
// during the last iteration run first, with no eventfd: Post); then flush every connection that
// queued output during the iteration, each with one writev (corking); then free the
// connections closed during the iteration.
#pragma once

#include <sys/epoll.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/io_ring.h"
#include "net/mailbox.h"
#include "net/timer_wheel.h"
#include "stats/reasons.h"

namespace hermod::net {

class Connection;

// Anything registered with epoll: data.ptr points at one of these.
class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual void OnEvents(uint32_t events) = 0;
  // The connection behind this, if it is one (batched reads).
  virtual Connection* AsConnection() { return nullptr; }
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
  uint64_t writes = 0;  // write syscalls on sockets (send, sendmsg, SSL_write), EAGAIN included
  // Per-connection joining (OutputQueue's joining Gather): joined messages written, and the
  // queued messages they carried (messages_joined - frames_joined: messages saved).
  uint64_t frames_joined = 0;
  uint64_t messages_joined = 0;
  // Where the loop's time goes: blocked in epoll_wait, or working (events, mailbox, timers,
  // flushes). busy / (busy + wait) is the loop's load.
  uint64_t wait_us = 0;
  uint64_t busy_us = 0;
  // Slow consumers (SendLimits): shared pushes not queued or left unsent, by reason and
  // priority (index: Priority), and connections cut, by reason (stats/reasons.h).
  stats::ByReason<stats::DropReason, std::array<uint64_t, 4>> send_dropped;
  stats::ByReason<stats::SlowReason> slow_consumer_disconnects;
  // Admission and rate-limit refusals of the rooms above, counted on the loop that refused.
  stats::GuardStats guard;
  // Connections whose reads were paused (Connection::PauseReading): a publisher held back
  // while a store's writer is behind.
  uint64_t read_pauses = 0;
};

// How much a slow consumer may hold (config send_queue.*, websocket.max_write_buffer_bytes).
// A connection's queue cost (OutputQueue::cost) decides what happens to a shared push:
// past drop_low_bytes low pushes are not queued, past drop_normal_bytes normal ones neither;
// critical and high always queue, but a queue past max_bytes, or whose oldest critical or
// high item has waited urgent_deadline_ms, or whose oldest normal or low push has waited
// normal_deadline_ms, cuts the connection (a slow consumer). While the loop's queues
// together hold more than loop_budget_bytes of their own (OutputQueue::footprint: copied
// bytes and item records; shared frames are counted once per frame, by the largest queue
// that holds them), low and normal pushes go only to connections with nothing queued.
// A push left out is dropped silently only when it is droppable (PushClass); otherwise the
// sender learns it (SendStatus::kMissed) and must tell the subscriber.
struct SendLimits {
  size_t drop_low_bytes = 512 * 1024;
  size_t drop_normal_bytes = 1 << 20;
  size_t max_bytes = 4 << 20;
  uint64_t urgent_deadline_ms = 5000;
  uint64_t normal_deadline_ms = 10000;
  size_t loop_budget_bytes = size_t{256} << 20;
  // Joinable messages queued to one connection leave joined into messages of at most this
  // payload (websocket.join_max_bytes); 0: never joined.
  size_t join_max_bytes = 16 * 1024;
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
  // For debug assertions of the threading rule (state of a loop is touched by its thread
  // only): true on the thread inside Run, and on any thread while the loop is not running
  // (set-up and tear-down are single-threaded).
  bool InThisThread() const {
    const std::thread::id owner = owner_.load(std::memory_order_relaxed);
    return owner == std::thread::id() || owner == std::this_thread::get_id();
  }
  // Thread-safe. Runs in a later iteration, after every task posted before it. From the
  // loop's own thread while it runs: in the next iteration, which does not block, with no
  // eventfd write and read (Mailbox::PostQuiet); from any other, when the eventfd wakes it.
  void Post(std::function<void()> task);
  const Mailbox& mailbox() const { return mailbox_; }

  // False when epoll refuses the fd (e.g. max_user_watches reached).
  [[nodiscard]] bool Add(int fd, uint32_t events, Pollable* target);
  void Modify(int fd, uint32_t events, Pollable* target);
  void Remove(int fd);

  TimerWheel& timers() { return timers_; }
  // A connection whose queued output passes this is closed (a slow consumer).
  size_t max_write_buffer_bytes() const { return send_limits_.max_bytes; }
  void set_max_write_buffer_bytes(size_t n) { send_limits_.max_bytes = n; }
  const SendLimits& send_limits() const { return send_limits_; }
  void set_send_limits(const SendLimits& limits) { send_limits_ = limits; }
  // A push waits (critical or high output queued, or a flush left pushes unsent): within
  // a tenth of the shorter deadline the loop looks at every connection whose output waits, so a
  // peer that stopped reading is cut at its deadline even when nothing else is sent to it
  // (no send, no writable event would notice).
  void ArmSendSweep();
  // The footprint of every connection's output queue on this loop, summed.
  size_t queued_cost() const { return queued_cost_; }
  uint64_t now_ms() const { return now_ms_; }
  int index() const { return index_; }
  LoopStats& stats() { return stats_; }

  // The part of the loop's read buffer free for a read now, valid until the next read on this
  // loop: while an iteration's batched reads (io_uring) hold the buffer's start for their
  // connections' events, the rest, so no socket's read lands on another's batched bytes.
  uint8_t* read_buffer() { return read_buffer_.get() + read_reserved_; }
  size_t read_buffer_size() const { return read_buffer_size_ - read_reserved_; }

  // The direct write path (Connection::Send): replies a connection produces while it reads
  // are copied here and written with one send when the read is handled, with no output
  // queue. At most this much; more, or anything that must wait, goes to the queue.
  static constexpr size_t kCorkBytes = 16 * 1024;

  // Adaptive coalescing when the loop is behind (docs/delivery.md): once the loop has
  // worked this long without finding itself idle (or an epoll_wait returned a full batch),
  // connections holding only normal or low pushes are flushed after the input that is
  // already waiting has been read, so pushes it produces leave in the same write. 0: never
  // by time. The default; config send_queue.coalesce_when_busy_us sets it.
  static constexpr uint64_t kBehindUs = 1000;
  void set_behind_threshold_us(uint64_t us) { behind_us_ = us; }

  // Batched I/O (config io_uring, net/io_ring.h). Reads: the plain connections epoll found
  // readable are read with one system call before the events are handled, each into its
  // own slice of the first half of the read buffer (the rest serves the other reads).
  // Writes: the direct path's sends (a read's replies) are prepared in the ring and
  // submitted together, with one system call, before the iteration's flushes. Bytes reach
  // each socket in the order they would without it: any other write, shutdown or close of a
  // connection whose send is prepared submits the batch first. False (and error set) when
  // the kernel refuses io_uring; the loop then reads and writes as before. Call before Run.
  bool EnableIoUring(std::string* error);
  bool io_uring() const { return ring_ != nullptr; }
  // For the net unit tests' second run (HERMOD_TEST_IO_URING): loops made after this call
  // start with io_uring on.
  static void EnableIoUringByDefault(bool on) { io_uring_by_default_ = on; }
  // Submits the prepared sends and hands each result to its connection.
  void SubmitSends();

  // Connection bookkeeping (called by Connection).
  void Attach(Connection* c);
  void Detach(Connection* c);
  void NeedsFlush(Connection* c);
  void Bury(Connection* c);  // delete at the end of this iteration
  size_t connection_count() const { return connection_count_; }
  // Calls fn for every open connection; fn may close them.
  void ForEachConnection(const std::function<void(Connection*)>& fn);

  // Read pause (Connection::PauseReading): while connections are paused the loop asks the
  // gate each iteration, at least every millisecond, and resumes them all once it opens.
  // Without a gate a pause is refused. Set before Run.
  void set_read_gate(std::function<bool()> open) { read_gate_ = std::move(open); }
  bool has_read_gate() const { return static_cast<bool>(read_gate_); }
  size_t paused_count() const { return paused_.size(); }

 private:
  friend class Connection;
  // Flushes the connections that queued output; when behind, those that may wait
  // (Connection::MayWaitForMore) stay in the list for the next iteration.
  void FlushPending(bool behind);
  // Whether this iteration's flush may leave some for the next (see kBehindUs).
  bool Behind(int events, int max_events, uint64_t now_us) const;
  void FreeClosed();

  class SendSweep final : public TimerNode {
   public:
    explicit SendSweep(Loop& loop) : loop_(loop) {}
    void OnTimer() override;

   private:
    Loop& loop_;
  };

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
  std::atomic<std::thread::id> owner_{};  // Run's thread while it runs
  Mailbox mailbox_;
  Wakeup wakeup_{mailbox_};
  bool posted_quietly_ = false;  // the mailbox holds tasks this loop posted to itself
  TimerWheel timers_;
  std::unique_ptr<uint8_t[]> read_buffer_;
  size_t read_buffer_size_;
  SendLimits send_limits_;
  SendSweep send_sweep_{*this};
  size_t queued_cost_ = 0;  // the loop's thread only (metrics read it through the mailbox)
  LoopStats stats_;
  // Intrusive lists threaded through Connection (no allocation per connection).
  Connection* connections_ = nullptr;  // all open connections (doubly linked)
  size_t connection_count_ = 0;
  Connection* flush_head_ = nullptr;  // connections with output queued this iteration
  // Behind: since when the loop has worked without an idle wait; since when flushes wait
  // (0: none waits; else the next epoll_wait does not block and the iteration writes them).
  uint64_t behind_us_ = kBehindUs;
  uint64_t busy_since_us_ = 0;
  uint64_t deferred_since_us_ = 0;
  // The cork (Connection::HandleReadable): the connection reading now, and the replies it
  // produced so far, whole frames in order. The last frame may be a joinable message
  // (output_queue.h) that later joinable replies join: it starts at cork_join_at_
  // (kNoJoin: the last frame is not joinable) with a header of cork_join_head_ bytes and
  // carries cork_join_messages_ messages.
  static constexpr size_t kNoJoin = SIZE_MAX;
  Connection* cork_owner_ = nullptr;
  std::unique_ptr<char[]> cork_;
  size_t cork_len_ = 0;
  size_t cork_join_at_ = kNoJoin;
  size_t cork_join_head_ = 0;
  size_t cork_join_messages_ = 0;
  std::vector<Connection*> graveyard_;
  // Batched writes: copies of the corked bytes of each prepared send (valid until its
  // result is handled), and the sends in ring order.
  struct PreparedSend {
    Connection* connection;
    const char* data;
    size_t len;
    int result;  // send's: bytes, or -errno
  };
  // A batched read: the result (bytes, or -errno) of a recv into data, handed to the
  // connection when its event is handled.
  struct BatchedRead {
    Connection* connection;
    uint8_t* data;
    int result;
    int event;  // its index in the iteration's events
  };
  // Reads the plain readable connections among events with one submission.
  void ReadBatch(const epoll_event* events, int n);
  // The batched read of c for the event being handled, if there is one.
  bool TakeBatchedRead(const Connection* c, int event, uint8_t** data, int* result);
  int event_ = -1;  // the index of the event being handled
  static constexpr size_t kSendArenaBytes = 16 * kCorkBytes;
  // A batched read's slice is at least this (fewer connections are batched when many are
  // ready: the others read as before, with no slice).
  static constexpr size_t kMinReadSlice = 2 * 1024;
  std::vector<BatchedRead> reads_;
  size_t next_read_ = 0;      // the next of reads_ to hand over, in event order
  size_t read_reserved_ = 0;  // bytes at the read buffer's start holding batched reads
  static constexpr unsigned kRingEntries = 256;
  static inline bool io_uring_by_default_ = false;
  void PrepareSend(Connection* c);
  std::unique_ptr<IoRing> ring_;
  std::unique_ptr<char[]> send_arena_;
  size_t send_arena_used_ = 0;
  std::vector<PreparedSend> sends_;
  size_t sends_handled_ = 0;
  void ResumePaused();
  std::function<bool()> read_gate_;
  std::vector<Connection*> paused_;  // read-paused, open connections
};

}  // namespace hermod::net
