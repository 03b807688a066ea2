#include "net/event_loop.h"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "net/connection.h"
#include "net/syscalls.h"

namespace hermod::net {

uint64_t Loop::MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t Loop::MonotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

Loop::Loop(int index, size_t read_buffer_bytes, Clock clock)
    : index_(index),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      clock_(clock),
      now_ms_(clock()),
      timers_(now_ms_),
      read_buffer_(new uint8_t[read_buffer_bytes]),
      read_buffer_size_(read_buffer_bytes),
      cork_(new char[kCorkBytes]) {
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  if (!Add(mailbox_.fd(), EPOLLIN, &wakeup_)) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl add (mailbox)");
  }
  if (io_uring_by_default_) {
    std::string error;
    if (!EnableIoUring(&error)) throw std::runtime_error(error);
  }
}

bool Loop::EnableIoUring(std::string* error) {
  if (ring_) return true;
  auto ring = std::make_unique<IoRing>(kRingEntries);
  if (!ring->ok()) {
    *error = std::string("io_uring: the kernel refused a ring: ") +
             std::generic_category().message(ring->setup_errno());
    return false;
  }
  ring_ = std::move(ring);
  send_arena_.reset(new char[kSendArenaBytes]);
  sends_.reserve(ring_->capacity());
  return true;
}

void Loop::PrepareSend(Connection* c) {
  if (sends_.size() == ring_->capacity() || send_arena_used_ + cork_len_ > kSendArenaBytes) {
    SubmitSends();
  }
  char* data = send_arena_.get() + send_arena_used_;
  std::memcpy(data, cork_.get(), cork_len_);
  send_arena_used_ += cork_len_;
  sends_.push_back({c, data, cork_len_, 0});
  c->state_ |= Connection::kSendPrepared;
  cork_len_ = 0;
}

void Loop::ReadBatch(const epoll_event* events, int n) {
  reads_.clear();
  next_read_ = 0;
  read_reserved_ = 0;
  if (!ring_ || n == 0) return;
  SubmitSends();  // the ring holds one kind of batch at a time
  const size_t half = read_buffer_size_ / 2;
  const size_t most = std::min<size_t>(ring_->capacity(), half / kMinReadSlice);
  for (int i = 0; i < n && reads_.size() < most; ++i) {
    Connection* c = static_cast<Pollable*>(events[i].data.ptr)->AsConnection();
    if (c != nullptr && c->MayReadInBatch(events[i].events)) {
      reads_.push_back({c, nullptr, 0, i});
    }
  }
  // One read gains nothing from a batch: recv costs the same system call, less work.
  if (reads_.size() < 2) {
    reads_.clear();
    return;
  }
  const size_t slice = half / reads_.size();
  for (size_t k = 0; k < reads_.size(); ++k) {
    BatchedRead& read = reads_[k];
    read.data = read_buffer_.get() + k * slice;
    io_uring_sqe* sqe = ring_->Prepare();
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = read.connection->fd_;
    sqe->addr = reinterpret_cast<uint64_t>(read.data);
    sqe->len = static_cast<uint32_t>(std::min<size_t>(slice, UINT32_MAX));
    sqe->msg_flags = MSG_DONTWAIT;  // an empty socket answers EAGAIN, as recv does
    sqe->user_data = k;
  }
  if (!ring_->SubmitAndWait()) {
    throw std::system_error(errno, std::generic_category(), "io_uring_enter");
  }
  ring_->Reap([this](uint64_t k, int result) { reads_[k].result = result; });
  read_reserved_ = half;
}

bool Loop::TakeBatchedRead(const Connection* c, int event, uint8_t** data, int* result) {
  // Reads of connections closed before their event came are skipped (their bytes are
  // moot, as unread bytes of a closed socket are).
  while (next_read_ < reads_.size() && reads_[next_read_].event < event) ++next_read_;
  if (next_read_ == reads_.size()) return false;
  const BatchedRead& read = reads_[next_read_];
  if (read.connection != c || read.event != event) return false;
  ++next_read_;
  *data = read.data;
  *result = read.result;
  return true;
}

void Loop::SubmitSends() {
  if (sends_.empty()) return;
  if (sends_handled_ == 0 && sends_.size() == 1) {
    // One send gains nothing from a batch: send costs the same system call, less work.
    PreparedSend& send = sends_[0];
    const ssize_t n = sys::Send(send.connection->fd_, send.data, send.len, MSG_NOSIGNAL);
    send.result = n < 0 ? -errno : static_cast<int>(n);
  } else if (sends_handled_ == 0) {
    for (size_t i = 0; i < sends_.size(); ++i) {
      io_uring_sqe* sqe = ring_->Prepare();
      sqe->opcode = IORING_OP_SEND;
      sqe->fd = sends_[i].connection->fd_;
      sqe->addr = reinterpret_cast<uint64_t>(sends_[i].data);
      sqe->len = static_cast<uint32_t>(sends_[i].len);
      // MSG_DONTWAIT: a full socket answers EAGAIN at once, as the direct send does,
      // instead of the ring waiting for it to drain.
      sqe->msg_flags = MSG_NOSIGNAL | MSG_DONTWAIT;
      sqe->user_data = i;
    }
    if (!ring_->SubmitAndWait()) {
      throw std::system_error(errno, std::generic_category(), "io_uring_enter");
    }
    ring_->Reap([this](uint64_t i, int result) { sends_[i].result = result; });
  }
  // In ring order. A result's handling that writes to another connection whose result
  // waits (a cut that tells another) comes back here and handles the rest first; handling
  // never prepares a send (only a read's cork does), so the list and the arena hold still.
  while (sends_handled_ < sends_.size()) {
    const PreparedSend send = sends_[sends_handled_++];
    send.connection->state_ &= ~Connection::kSendPrepared;
    send.connection->CorkWritten(send.data, send.len, send.result);
  }
  sends_.clear();
  sends_handled_ = 0;
  send_arena_used_ = 0;
}

Loop::~Loop() {
  ForEachConnection([](Connection* c) { c->Close(); });
  FreeClosed();
  close(epoll_fd_);
}

void Loop::Post(std::function<void()> task) {
  if (owner_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    mailbox_.PostQuiet(std::move(task));
    posted_quietly_ = true;
    return;
  }
  mailbox_.Post(std::move(task));
}

bool Loop::Add(int fd, uint32_t events, Pollable* target) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = target;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Loop::Modify(int fd, uint32_t events, Pollable* target) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = target;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void Loop::Remove(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void Loop::Attach(Connection* c) {
  c->prev_ = nullptr;
  c->next_ = connections_;
  if (connections_ != nullptr) connections_->prev_ = c;
  connections_ = c;
  ++connection_count_;
}

void Loop::Detach(Connection* c) {
  if (c->prev_ != nullptr) {
    c->prev_->next_ = c->next_;
  } else {
    connections_ = c->next_;
  }
  if (c->next_ != nullptr) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --connection_count_;
}

void Loop::NeedsFlush(Connection* c) {
  if (c->state_ & Connection::kInFlushList) return;
  c->state_ |= Connection::kInFlushList;
  c->flush_next_ = flush_head_;
  flush_head_ = c;
}

void Loop::Bury(Connection* c) { graveyard_.push_back(c); }

void Loop::ArmSendSweep() {
  if (send_sweep_.scheduled()) return;
  const uint64_t shorter =
      std::min(send_limits_.urgent_deadline_ms, send_limits_.normal_deadline_ms);
  // A tenth of it: a connection is cut at most 10% past its deadline (every half deadline cut
  // a stalled reader up to 15 s after its oldest push at the 10 s default).
  timers_.Schedule(&send_sweep_, std::max<uint64_t>(shorter / 10, TimerWheel::kTickMs));
}

void Loop::SendSweep::OnTimer() {
  bool again = false;
  loop_.ForEachConnection([&again](Connection* c) { again = c->CheckDeadlines() || again; });
  if (again) loop_.ArmSendSweep();
}

void Loop::ForEachConnection(const std::function<void(Connection*)>& fn) {
  for (Connection* c = connections_; c != nullptr;) {
    Connection* next = c->next_;  // fn may close c, which unlinks it
    fn(c);
    c = next;
  }
}

void Loop::FlushPending(bool behind) {
  Connection* kept = nullptr;  // behind: flushes that wait for the input already waiting
  // A flush may queue more (a TLS retry), so take the list before walking it.
  while (flush_head_ != nullptr) {
    Connection* c = flush_head_;
    flush_head_ = nullptr;
    while (c != nullptr) {
      Connection* next = c->flush_next_;
      if (behind && c->MayWaitForMore()) {
        c->flush_next_ = kept;  // stays kInFlushList: later pushes find it listed
        kept = c;
      } else {
        c->flush_next_ = nullptr;
        c->state_ &= ~Connection::kInFlushList;
        if (!c->closed()) c->Flush();
      }
      c = next;
    }
  }
  // A flush above may have closed one that waits: the graveyard frees it this iteration.
  for (Connection** link = &kept; *link != nullptr;) {
    Connection* c = *link;
    if (c->closed()) {
      *link = c->flush_next_;
      c->flush_next_ = nullptr;
      c->state_ &= ~Connection::kInFlushList;
    } else {
      link = &c->flush_next_;
    }
  }
  flush_head_ = kept;
}

bool Loop::Behind(int events, int max_events, uint64_t now_us) const {
  if (!running_) return false;  // the last iteration writes everything
  // Flushes that waited one iteration leave now: waiting on while input keeps coming would
  // walk every waiting connection each iteration (at 10,000 subscribers that walk cost more
  // than the writes it saved).
  if (deferred_since_us_ != 0) return false;
  return events == max_events || (behind_us_ != 0 && now_us - busy_since_us_ >= behind_us_);
}

void Loop::FreeClosed() {
  for (Connection* c : graveyard_) delete c;
  graveyard_.clear();
}

void Loop::Run() {
  constexpr int kMaxEvents = 512;
  epoll_event events[kMaxEvents];
  running_ = true;
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  // Two clock reads per iteration (vDSO, no syscall) give the busy ratio.
  uint64_t mark_us = MonotonicUs();
  // A wait this long was idle: the loop is not behind (Behind).
  constexpr uint64_t kIdleWaitUs = 50;
  busy_since_us_ = mark_us;
  while (running_) {
    // Flushes that wait for more input (Behind) wait for what is ready now, never for a timer.
    // Tasks the loop posted to itself run in the next iteration, as if its eventfd had
    // woken it: that iteration only looks at what is ready now. Taken before the wait, so a
    // task that posts itself again runs once per iteration and never starves the events.
    const bool run_posted = posted_quietly_;
    posted_quietly_ = false;
    int timeout = flush_head_ != nullptr || run_posted ? 0 : timers_.NextTimeoutMs(now_ms_);
    if (!paused_.empty() && (timeout < 0 || timeout > 1)) timeout = 1;
    int n = sys::EpollWait(epoll_fd_, events, kMaxEvents, timeout);
    uint64_t woke_us = MonotonicUs();
    stats_.wait_us += woke_us - mark_us;
    if (woke_us - mark_us >= kIdleWaitUs) busy_since_us_ = woke_us;
    // The loop's clock is the monotonic one unless a test injected its own: then the read
    // just made gives it without another call.
    now_ms_ = clock_ == &MonotonicMs ? woke_us / 1000 : clock_();
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll");
    // Timers first: the wheel must stand at now before any event schedules a new timer, or
    // a timer set after an idle spell would count from a stale tick and fire at once.
    timers_.Advance(now_ms_);
    if (run_posted) mailbox_.RunPosted();
    if (ring_) ReadBatch(events, n);
    for (int i = 0; i < n; ++i) {
      event_ = i;
      static_cast<Pollable*>(events[i].data.ptr)->OnEvents(events[i].events);
    }
    read_reserved_ = 0;
    if (!paused_.empty() && read_gate_()) ResumePaused();
    if (!sends_.empty()) SubmitSends();
    if (flush_head_ != nullptr) {
      const uint64_t now_us = MonotonicUs();
      FlushPending(Behind(n, kMaxEvents, now_us));
      if (flush_head_ == nullptr) {
        deferred_since_us_ = 0;
      } else if (deferred_since_us_ == 0) {
        deferred_since_us_ = now_us;
      }
    }
    FreeClosed();
    mark_us = MonotonicUs();
    stats_.busy_us += mark_us - woke_us;
  }
  owner_.store(std::thread::id(), std::memory_order_relaxed);
}

void Loop::ResumePaused() {
  // Resuming reads, which may pause connections again: take the list first.
  std::vector<Connection*> paused;
  paused.swap(paused_);
  for (Connection* c : paused) c->ResumeReading();
}

}  // namespace hermod::net
