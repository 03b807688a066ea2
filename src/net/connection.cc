#include "net/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/syscalls.h"

namespace hermod::net {

Connection::Connection(Loop& loop, int fd, SSL* ssl) : loop_(loop), fd_(fd), ssl_(ssl) {
  loop_.Attach(this);
  if (!loop_.Add(fd_, EPOLLIN | EPOLLRDHUP, this)) {
    // epoll refused the socket (max_user_watches): shed it; the loop frees this object.
    ++loop_.stats().register_failed;
    Close();
  }
}

Connection::Connection(Connection& from)
    : loop_(from.loop_),
      fd_(from.fd_),
      ssl_(from.ssl_),
      // What `from` corked (the handshake's answer) leaves first, from the queue taken over.
      out_((from.LandSend(), from.SpillCork(), std::move(from.out_))) {
  state_ = from.state_ & (kWantWrite | kTlsWriteWantsRead | kTlsReadWantsWrite | kReadPaused);
  if (state_ & kReadPaused) std::replace(loop_.paused_.begin(), loop_.paused_.end(), &from, this);
  from.fd_ = -1;
  from.ssl_ = nullptr;
  from.CancelTimeout();
  loop_.Detach(&from);
  from.state_ = kClosed;
  loop_.Bury(&from);
  loop_.Attach(this);
  loop_.Modify(fd_, Interest(), this);
  if (out_ && !out_->empty()) loop_.NeedsFlush(this);
}

Connection::~Connection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) close(fd_);
}

OutputQueue& Connection::Queue() {
  if (!out_) {
    out_ = NewOutputQueue();
    out_->set_account(&loop_.queued_cost_);
  }
  return *out_;
}

bool Connection::CheckDeadlines() {
  if (!out_ || (state_ & (kClosed | kDraining | kLingering | kSlow))) return false;
  const SendLimits& limits = loop_.send_limits();
  const uint64_t urgent_since = out_->UrgentSinceMs();
  const uint64_t push_since = out_->PushSinceMs();
  if (urgent_since == 0 && push_since == 0) return false;
  const uint64_t now = loop_.now_ms();
  // A reader that stopped reading with only normal pushes queued is cut too: left alone it
  // would stay subscribed and half-alive, holding its backlog, for as long as it likes.
  if ((urgent_since != 0 && now >= urgent_since + limits.urgent_deadline_ms) ||
      (push_since != 0 && now >= push_since + limits.normal_deadline_ms)) {
    SlowConsumer(stats::SlowReason::kDeadline);
    return false;
  }
  return true;
}

void Connection::CutSlow() {
  if (state_ & (kClosed | kLingering | kSlow)) return;
  SlowConsumer(stats::SlowReason::kMissed);
}

std::string Connection::PeerIp() const {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  char text[INET6_ADDRSTRLEN] = "";
  if (fd_ < 0 || getpeername(fd_, reinterpret_cast<sockaddr*>(&storage), &len) != 0) return "";
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&storage)->sin_addr, text, sizeof text);
  } else if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&storage)->sin6_addr, text, sizeof text);
  }
  return text;
}

void Connection::SlowConsumer(stats::SlowReason reason) {
  state_ |= kSlow;
  DropCork();  // replies not begun, dropped as the queue's unsent items are
  ++loop_.stats().slow_consumer_disconnects[reason];
  if (reason == stats::SlowReason::kOverflow) ++loop_.stats().write_overflow;
  if (out_) {
    // Pushes that will never leave, by priority, so a lost critical or high push is counted
    // (the half-sent item is in no lane: it still leaves).
    for (size_t p = 0; p < kPriorities; ++p) {
      loop_.stats().send_dropped[stats::DropReason::kCut][p] +=
          out_->lane_items(LaneOf(static_cast<Priority>(p)));
    }
    out_->DropUnsent();  // the memory goes now, not when the close completes
  }
  OnSlowConsumer();
}

void Connection::CorkAppend(std::string_view head, std::string_view body, bool joinable) {
  char* const cork = loop_.cork_.get();
  size_t& len = loop_.cork_len_;
  const size_t at = loop_.cork_join_at_;
  const size_t old_head = loop_.cork_join_head_;
  const size_t old_payload = len - at - old_head;  // meaningful when at != kNoJoin
  const size_t payload = old_payload + 1 + body.size();
  const auto join_header =
      joinable && at != Loop::kNoJoin && payload <= loop_.send_limits().join_max_bytes
          ? JoinHeader()
          : nullptr;
  if (join_header != nullptr) {
    // The last corked frame is a joinable message: this one joins it, newline-separated, as
    // the queue's joining gather would have joined the two (a new header, the payloads).
    char header[JoinSpec::kMaxJoinHeader];
    const size_t new_head = join_header(payload, header);
    if (new_head != old_head) std::memmove(cork + at + new_head, cork + at + old_head, old_payload);
    std::memcpy(cork + at, header, new_head);
    char* out = cork + at + new_head + old_payload;
    *out++ = '\n';
    if (!body.empty()) std::memcpy(out, body.data(), body.size());
    len = at + new_head + payload;
    loop_.cork_join_head_ = new_head;
    // As the joining flush counts: a joined message, and every message it carries.
    if (++loop_.cork_join_messages_ == 2) {
      ++loop_.stats_.frames_joined;
      ++loop_.stats_.messages_joined;
    }
    ++loop_.stats_.messages_joined;
    return;
  }
  loop_.cork_join_at_ = joinable ? len : Loop::kNoJoin;
  loop_.cork_join_head_ = head.size();
  loop_.cork_join_messages_ = 1;
  if (!head.empty()) std::memcpy(cork + len, head.data(), head.size());
  if (!body.empty()) std::memcpy(cork + len + head.size(), body.data(), body.size());
  len += head.size() + body.size();
}

void Connection::SpillCork() {
  if (!Corked()) return;
  loop_.cork_owner_ = nullptr;
  const size_t len = loop_.cork_len_;
  loop_.cork_len_ = 0;
  if (len == 0) return;
  // The queue is empty (the cork exists only while it is): the bytes go first.
  Queue().Append({loop_.cork_.get(), len});
  loop_.NeedsFlush(this);
}

void Connection::DropCork() {
  if (!Corked()) return;
  loop_.cork_owner_ = nullptr;
  loop_.cork_len_ = 0;
}

void Connection::WriteCork() {
  const size_t len = loop_.cork_len_;
  ++loop_.stats().writes;
  if (loop_.ring_) {
    LandSend();
    loop_.PrepareSend(this);
    return;
  }
  loop_.cork_len_ = 0;
  ssize_t n = sys::Send(fd_, loop_.cork_.get(), len, MSG_NOSIGNAL);
  CorkWritten(loop_.cork_.get(), len, n < 0 ? -errno : n);
}

void Connection::CorkWritten(const char* data, size_t len, ssize_t result) {
  if (result < 0) {
    if (result != -EAGAIN && result != -EINTR) {
      Close();
      return;
    }
    result = 0;
  }
  const size_t n = static_cast<size_t>(result);
  loop_.stats().bytes_written += n;
  if (n == len) {
    // As a flush that drained the queue: a protocol writing a long answer queues more.
    if (!(state_ & (kDraining | kLingering | kSlow)) && OnDrained() && !(state_ & kClosed)) {
      Flush();
    }
    return;
  }
  // The socket is full: the rest waits in the queue, a begun frame as the half-sent item.
  const char* rest = data + n;
  if (n == 0) {
    Queue().Append({rest, len});
  } else {
    Queue().AppendBegun(rest, len - n);
  }
  Settle();
}

SendStatus Connection::Send(std::string_view head, std::string_view body, Lane lane,
                            bool joinable) {
  if (state_ & (kClosed | kLingering)) return SendStatus::kDropped;
  if (Corked()) {
    const size_t total = head.size() + body.size();
    if (total == 0) {  // nothing to write, but a flush (and OnDrained) as a queued send gets
      loop_.NeedsFlush(this);
      return SendStatus::kQueued;
    }
    // Joining may grow the joined message's header by up to kMaxJoinHeader bytes.
    const size_t room = loop_.cork_len_ + total + JoinSpec::kMaxJoinHeader;
    if (lane == Lane::kControl && room <= Loop::kCorkBytes &&
        loop_.cork_len_ + total + OutputQueue::kItemOverhead <= loop_.send_limits().max_bytes) {
      CorkAppend(head, body, joinable);
      return SendStatus::kQueued;
    }
    SpillCork();
  }
  OutputQueue& out = Queue();
  out.Append(head, body, lane, joinable);
  if (out.cost() > loop_.send_limits().max_bytes) {
    if (state_ & kSlow) {  // its closing output alone passes the bound: no more chances
      Close();
      return SendStatus::kOverflow;
    }
    SlowConsumer(stats::SlowReason::kOverflow);
    return SendStatus::kOverflow;
  }
  FlushSoon();
  return SendStatus::kQueued;
}

SendStatus Connection::SendShared(Chunk* chunk, size_t offset, size_t len, PushClass push,
                                  uint8_t join_head) {
  if (state_ & (kClosed | kLingering | kSlow)) return SendStatus::kDropped;
  if (Corked()) SpillCork();  // a push to the connection reading now: judged with its replies
  const SendLimits& limits = loop_.send_limits();
  const Lane lane = LaneOf(push.priority);
  const size_t p = static_cast<size_t>(push.priority);
  size_t cost = out_ ? out_->cost() : 0;
  if (cost > 0) {
    if (push.latest_key != 0 &&
        out_->Replace(lane, push.latest_key, chunk, offset, len, join_head)) {
      ++loop_.stats().send_dropped[stats::DropReason::kReplaced][p];
      return SendStatus::kQueued;
    }
    if (push.priority >= Priority::kNormal) {
      const size_t watermark =
          push.priority == Priority::kLow ? limits.drop_low_bytes : limits.drop_normal_bytes;
      if (cost >= watermark) {
        if (!OfferBacklog()) return SendStatus::kDropped;
        cost = out_ ? out_->cost() : 0;
      }
      stats::DropReason why = stats::DropReason::kCount;
      if (cost >= watermark) {
        why = stats::DropReason::kWatermark;
      } else if (cost > 0 && loop_.queued_cost() >= limits.loop_budget_bytes) {
        why = stats::DropReason::kLoopBudget;
      }
      if (why != stats::DropReason::kCount) {
        // Only a channel that accepts losses loses a push silently; any other push left out
        // is the caller's to tell.
        if (push.may_drop()) {
          ++loop_.stats().send_dropped[why][p];
          return SendStatus::kShed;
        }
        ++loop_.stats().send_dropped[stats::DropReason::kTold][p];
        return SendStatus::kMissed;
      }
    }
  }
  Queue().AppendShared(chunk, offset, len, lane, push.latest_key, loop_.now_ms(), join_head);
  if (out_->cost() > limits.max_bytes) {
    if (!OfferBacklog()) return SendStatus::kDropped;
    if (out_ && out_->cost() > limits.max_bytes) {
      SlowConsumer(stats::SlowReason::kOverflow);
      return SendStatus::kOverflow;
    }
  }
  if (cost > 0) {
    // Only a backlog can hold an item past its deadline (this one was stamped now).
    CheckDeadlines();
    if (state_ & (kClosed | kSlow)) return SendStatus::kOverflow;
    loop_.ArmSendSweep();  // a backlog: the sweep cuts it if the reader stopped for good
  } else if (push.priority <= Priority::kHigh) {
    loop_.ArmSendSweep();
  }
  FlushSoon();
  return SendStatus::kQueued;
}

void Connection::CloseAfterFlush(uint64_t deadline_ms) {
  if (closing()) return;
  SpillCork();
  state_ |= kDraining;
  SetTimeout(deadline_ms);
  if (out_ && !out_->empty()) {
    loop_.NeedsFlush(this);
  } else {
    StartLinger();
  }
}

void Connection::StartLinger() {
  LandSend();
  if (state_ & kClosed) return;
  state_ = static_cast<uint16_t>((state_ & ~kDraining) | kLingering);
  out_.reset();
  if (ssl_ != nullptr) SSL_shutdown(ssl_);  // close_notify; the peer's is not awaited
  shutdown(fd_, SHUT_WR);
  UpdateInterest();
}

void Connection::Close() {
  LandSend();
  if (state_ & kClosed) return;
  state_ |= kClosed;
  DropCork();
  CancelTimeout();
  loop_.Remove(fd_);
  close(fd_);
  fd_ = -1;
  out_.reset();
  loop_.Detach(this);
  if (state_ & kReadPaused) std::erase(loop_.paused_, this);
  ++loop_.stats().closed;
  loop_.Bury(this);
  OnClosed();
}

void Connection::OnTimer() {
  if (state_ & (kDraining | kLingering)) {
    Close();
    return;
  }
  OnTimeout();
}

void Connection::OnEvents(uint32_t events) {
  if (state_ & kClosed) return;
  if (events & EPOLLOUT) {
    Flush();
    if (state_ & kClosed) return;
    if ((state_ & kTlsReadWantsWrite) && !(state_ & kReadPaused)) {
      // SSL_read needed to write (a handshake or key update); now it can.
      state_ &= ~kTlsReadWantsWrite;
      HandleReadable();
      if (state_ & kClosed) return;
      UpdateInterest();
      return;
    }
  }
  if (state_ & kReadPaused) {
    // Not reading: a peer that is gone ends the connection now (what it sent is moot).
    if (events & (EPOLLHUP | EPOLLERR)) Close();
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    if ((state_ & kTlsWriteWantsRead) && ssl_ != nullptr) {
      Flush();
      if (state_ & kClosed) return;
    }
    HandleReadable();
  }
}

ssize_t Connection::ReadSome(uint8_t* buffer, size_t size, bool* again) {
  *again = false;
  if (ssl_ == nullptr) {
    ssize_t n = sys::Recv(fd_, buffer, size);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) *again = true;
    return n;
  }
  ERR_clear_error();
  int n = SSL_read(ssl_, buffer, static_cast<int>(size > INT32_MAX ? INT32_MAX : size));
  if (n > 0) return n;
  switch (SSL_get_error(ssl_, n)) {
    case SSL_ERROR_WANT_READ:
      *again = true;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      // Handshake output is pending: flush it, then read again on the next event.
      state_ |= kTlsReadWantsWrite;
      UpdateInterest();
      *again = true;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    default:
      return -1;
  }
}

void Connection::HandleReadable() {
  // Batched reads (Loop::ReadBatch) hold the buffer's start until the events are handled.
  uint8_t* buffer = loop_.read_buffer();
  const size_t size = loop_.read_buffer_size();
  // Plain sockets: one read per event keeps loops fair (epoll is level-triggered). TLS: read
  // until OpenSSL has nothing buffered, since epoll cannot see bytes OpenSSL already holds.
  do {
    bool again;
    uint8_t* data = buffer;
    int batched;
    ssize_t n;
    // (read_reserved_: only while this iteration has batched reads.)
    if (loop_.read_reserved_ != 0 && loop_.TakeBatchedRead(this, loop_.event_, &data, &batched)) {
      n = batched < 0 ? -1 : batched;
      again = batched == -EAGAIN || batched == -EINTR;
    } else {
      n = ReadSome(buffer, size, &again);
    }
    if (n > 0) {
      loop_.stats().bytes_read += static_cast<uint64_t>(n);
      if (state_ & kLingering) continue;  // discard until the peer's FIN
      // The direct path: while nothing of this connection waits, its replies are corked and
      // written right after the read is handled (see connection.h).
      const bool cork = ssl_ == nullptr && loop_.cork_owner_ == nullptr &&
                        !(state_ & (kWantWrite | kDraining | kSlow)) && (!out_ || out_->empty());
      if (cork) {
        loop_.cork_owner_ = this;
        loop_.cork_join_at_ = Loop::kNoJoin;  // nothing corked yet to join
      }
      OnData(data, static_cast<size_t>(n));
      if (Corked()) {
        loop_.cork_owner_ = nullptr;
        if (loop_.cork_len_ != 0) WriteCork();
      }
      if (state_ & kClosed) return;
      // What this read produced for this connection (its replies) leaves now, in one
      // writev, so the peer gets its answers while the loop serves the other sockets; output
      // queued for it later in the iteration (fan-out) joins the end-of-iteration flush.
      if (out_ && !out_->empty() && !(state_ & kWantWrite)) Flush();
      if (state_ & (kClosed | kReadPaused)) return;
      continue;
    }
    if (again) return;
    if (n == 0 && out_ && !out_->empty() && !(state_ & (kDraining | kLingering))) {
      // The peer half-closed after its request: it may still read our answer.
      CloseAfterFlush();
      return;
    }
    Close();  // EOF or error
    return;
  } while (ssl_ != nullptr && SSL_pending(ssl_) > 0);
}

void Connection::Flush() {
  if (state_ & kClosed) return;
  for (;;) {
    if (ssl_ == nullptr) {
      FlushPlain();
    } else {
      FlushTls();
    }
    if (state_ & kClosed) return;
    if ((out_ && !out_->empty()) || (state_ & (kDraining | kLingering | kSlow))) break;
    if (!OnDrained() || (state_ & kClosed)) break;
  }
  Settle();
}

bool Connection::OfferBacklog() {
  if (state_ & kWantWrite) return true;  // the socket was full at the last write
  if (ssl_ == nullptr) {
    FlushPlain();
  } else {
    FlushTls();
  }
  if (state_ & kClosed) return false;
  UpdateInterest();  // what the socket did not take waits for EPOLLOUT
  return true;
}

void Connection::Settle() {
  if (state_ & kClosed) return;
  if ((state_ & kDraining) && (!out_ || out_->empty())) {
    StartLinger();
    return;
  }
  // The socket took what it could: output still waiting past its deadline marks a slow
  // consumer; output still waiting at all needs the sweep, as a reader that stopped for
  // good may never make the socket writable again.
  if (CheckDeadlines()) loop_.ArmSendSweep();
  if (state_ & kClosed) return;
  UpdateInterest();
}

void Connection::FlushPlain() {
  LandSend();
  if (!out_) return;
  // Joining needs two queued items: a lone push, the fan-out's usual case, skips it all.
  if (out_->items() >= 2 && loop_.send_limits().join_max_bytes != 0) {
    if (auto header = JoinHeader())
      return FlushJoined({loop_.send_limits().join_max_bytes, header});
  }
  while (out_ && !out_->empty()) {
    iovec iov[OutputQueue::kMaxIov];
    int count = out_->Gather(iov, OutputQueue::kMaxIov);
    // send/sendmsg rather than write/writev: sockets have no file position to lock.
    ssize_t n = WriteV(iov, count);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      Close();
      return;
    }
    loop_.stats().bytes_written += static_cast<uint64_t>(n);
    out_->Consume(static_cast<size_t>(n));
  }
  if (out_ && out_->empty()) out_.reset();
}

void Connection::FlushJoined(const JoinSpec& spec) {
  // The loop's cork buffer for joined messages (output_queue.h): reused by every flush.
  thread_local JoinPlan plan;
  while (out_ && !out_->empty()) {
    iovec iov[OutputQueue::kMaxIov];
    int count = out_->Gather(iov, OutputQueue::kMaxIov, spec, plan);
    ssize_t n = WriteV(iov, count);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      Close();
      break;
    }
    loop_.stats().bytes_written += static_cast<uint64_t>(n);
    out_->Consume(static_cast<size_t>(n), plan);
  }
  const auto [frames, messages] = plan.TakeCounts();
  loop_.stats().frames_joined += frames;
  loop_.stats().messages_joined += messages;
  if (out_ && out_->empty()) out_.reset();
}

ssize_t Connection::WriteV(const iovec* iov, int count) {
  ++loop_.stats().writes;
  if (count == 1) return sys::Send(fd_, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(iov);
  message.msg_iovlen = static_cast<size_t>(count);
  return sys::SendMsg(fd_, &message, MSG_NOSIGNAL);
}

// TLS does not join: a retried SSL_write must be given the same leading bytes, and a joined
// message changes when more output joins its run before the retry.
void Connection::FlushTls() {
  state_ &= ~kTlsWriteWantsRead;
  // Small segments (many queued frames) are gathered into one TLS record of up to 16 KiB,
  // as writev gathers them for plain sockets. A retry after WANT_WRITE gathers the same
  // leading bytes again, which SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows.
  constexpr size_t kRecord = 16 * 1024;
  thread_local char staging[kRecord];
  while (out_ && !out_->empty()) {
    iovec iov[OutputQueue::kMaxIov];
    int count = out_->Gather(iov, OutputQueue::kMaxIov);
    const void* data = iov[0].iov_base;
    size_t len = iov[0].iov_len;
    if (count > 1 && len < kRecord) {
      len = 0;
      for (int i = 0; i < count && len < kRecord; ++i) {
        size_t take = std::min(iov[i].iov_len, kRecord - len);
        std::memcpy(staging + len, iov[i].iov_base, take);
        len += take;
      }
      data = staging;
    }
    ERR_clear_error();
    ++loop_.stats().writes;
    int n = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
    if (n > 0) {
      loop_.stats().bytes_written += static_cast<uint64_t>(n);
      out_->Consume(static_cast<size_t>(n));
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_WANT_READ) {
      state_ |= kTlsWriteWantsRead;
      break;
    }
    Close();
    return;
  }
  if (out_ && out_->empty()) out_.reset();
}

bool Connection::PauseReading() {
  if ((state_ & (kReadPaused | kClosed | kDraining | kLingering)) || !loop_.has_read_gate()) {
    return false;
  }
  state_ |= kReadPaused;
  loop_.paused_.push_back(this);
  ++loop_.stats().read_pauses;
  loop_.Modify(fd_, Interest(), this);
  return true;
}

void Connection::ResumeReading() {
  if ((state_ & kClosed) || !(state_ & kReadPaused)) return;
  state_ &= ~kReadPaused;
  loop_.Modify(fd_, Interest(), this);
  // Bytes OpenSSL already holds raise no event: read them now.
  if (ssl_ != nullptr && (SSL_pending(ssl_) > 0 || (state_ & kTlsReadWantsWrite))) {
    state_ &= ~kTlsReadWantsWrite;
    HandleReadable();
    if (!(state_ & kClosed)) UpdateInterest();
  }
  if (!(state_ & kClosed)) OnReadResumed();
}

uint32_t Connection::Interest() const {
  return ((state_ & kReadPaused) ? 0u : uint32_t{EPOLLIN | EPOLLRDHUP}) |
         ((state_ & kWantWrite) ? uint32_t{EPOLLOUT} : 0u);
}

void Connection::UpdateInterest() {
  if (state_ & kClosed) return;
  bool pending = out_ && !out_->empty();
  // Lingering ignores TLS's wish to write: the close_notify is best effort, and a
  // half-closed socket is always writable.
  bool want = (pending && !(state_ & kTlsWriteWantsRead)) ||
              ((state_ & kTlsReadWantsWrite) && !(state_ & kLingering));
  if (want == static_cast<bool>(state_ & kWantWrite)) return;
  if (want) {
    state_ |= kWantWrite;
  } else {
    state_ &= ~kWantWrite;
  }
  loop_.Modify(fd_, Interest(), this);
}

}  // namespace hermod::net
