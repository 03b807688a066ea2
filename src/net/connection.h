// A TCP (or TLS) connection on one loop: reading into the loop's buffer, corked writes, one
// timer, and the close paths. Protocols are subclasses (http::HttpConnection,
// ws::WebSocketConnection). An HTTP connection that upgrades hands its transport to a new
// object of another subclass (the hand-over constructor), so a connection is always exactly
// one allocation, and an idle WebSocket costs that object and nothing else.
//
// Backpressure: every send lands in the output queue's lanes (output_queue.h) and is judged
// against the loop's SendLimits. A shared push of low or normal priority that finds the queue
// past its watermark is not queued: a droppable one (its channel accepts losses) silently
// (kShed), any other with kMissed, and the caller must tell the subscriber at once (no
// publication is lost silently). Critical and high pushes always queue. A connection that
// lets them wait past the urgent deadline, or lets a normal or low push wait past the normal
// deadline, or whose queue passes max_bytes, is a slow consumer: its unsent items are
// dropped at once (the half-sent frame stays, so framing holds) and OnSlowConsumer decides
// how it ends (the WebSocket layer sends a Close; the default closes at once).
//
// The direct path. What a plain connection sends while it handles a read (its replies, in
// the control lane) is copied into the loop's cork buffer and written with one send right
// after the read is handled: no queue, no flush list. It applies while nothing of this
// connection is queued; the first send that must wait or be judged (a push, a Close frame,
// a reply that does not fit the cork) moves the corked bytes into the queue first, and
// everything after it goes to the queue too, so the wire order is the queue's (replies,
// then pushes by priority, the Close last). A send that leaves bytes over queues them as
// the half-sent item, written first. Joinable replies are joined in the cork as the queue
// would join them. TLS connections always queue.
//
// Closing is always deferred: Close() unregisters and closes the fd at once but the object
// is freed at the end of the loop iteration, so a call stack that still holds it stays valid.
#pragma once

#include <openssl/ssl.h>
#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "net/event_loop.h"
#include "net/output_queue.h"
#include "net/timer_wheel.h"

namespace hermod::net {

// What happened to bytes handed to Send (uWebSockets' SendStatus).
enum class SendStatus : uint8_t {
  kQueued,    // will leave with this iteration's flush
  kDropped,   // the connection is closing or closed; nothing was queued
  kOverflow,  // a slow consumer (limit or deadline passed): the connection is ending
  kShed,      // backpressure: this droppable push was not queued (by design, nobody is told)
  kMissed,    // backpressure: this push, which may not be dropped, was not queued; the
              // connection stays open and the caller must tell the subscriber now
};

// How a shared push is queued: its priority, and for "latest value wins" delivery a key
// (not 0) under which a newer push replaces a queued, unsent one. droppable: its channel
// accepts losses under backpressure (a ticker, a cursor); low-priority and latest-value
// pushes are droppable whatever it says.
struct PushClass {
  Priority priority = Priority::kNormal;
  uint64_t latest_key = 0;
  bool droppable = false;
  bool may_drop() const { return droppable || latest_key != 0 || priority == Priority::kLow; }
};

class Connection : public Pollable, public TimerNode {
 public:
  Connection(Loop& loop, int fd, SSL* ssl);
  // Takes over from's socket, TLS session, pending output, timer slot and place in the
  // loop's lists; `from` is left closed and buried.
  explicit Connection(Connection& from);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Queues head then body, contiguous (a frame header and its payload).
  // lane: kControl (replies, control frames) or kFinal (a Close frame, after everything).
  // joinable: one whole message the flush may join with its neighbours (output_queue.h).
  SendStatus Send(std::string_view head, std::string_view body = {}, Lane lane = Lane::kControl,
                  bool joinable = false);
  // One whole shared frame (a push). join_head: the frame's header length when the protocol
  // lets it be joined with its neighbours (output_queue.h); 0: never joined.
  SendStatus SendShared(Chunk* chunk, size_t offset, size_t len, PushClass push = {},
                        uint8_t join_head = 0);
  // Stops reading requests; when the queue drains, half-closes and waits for the peer's FIN
  // before closing, so the peer reads the last bytes. deadline_ms bounds drain and linger
  // together: a peer that stops reading cannot hold the connection open.
  void CloseAfterFlush(uint64_t deadline_ms = 2000);
  // Closes at once; pending output is dropped.
  void Close();
  // Read pause: stops reading this connection (the rest of the read being handled still
  // runs) until the loop's read gate opens (Loop::set_read_gate), which resumes it; output
  // and the peer's hang-up are still seen. For a producer faster than what it feeds (a
  // store's writer): its socket fills and TCP holds the peer back. False: no gate, nothing
  // paused.
  bool PauseReading();
  bool reading_paused() const { return state_ & kReadPaused; }

  void SetTimeout(uint64_t ms) {
    if (!closed()) loop_.timers().Schedule(this, ms);
  }
  void CancelTimeout() { loop_.timers().Cancel(this); }

  Loop& loop() const { return loop_; }
  int fd() const { return fd_; }
  bool tls() const { return ssl_ != nullptr; }
  bool closed() const { return state_ & kClosed; }
  bool closing() const { return state_ & (kClosed | kDraining | kLingering); }
  size_t queued_bytes() const {
    return (out_ ? out_->bytes() : 0) + (loop_.cork_owner_ == this ? loop_.cork_len_ : 0);
  }
  // The peer's IP address as text (the per-IP admission key, the logs' `remote`); empty once
  // the socket is closed.
  std::string PeerIp() const;

  // Called for every read; data is the loop's buffer (mutable) and valid during the call.
  virtual void OnData(uint8_t* data, size_t len) = 0;
  // The one timer (SetTimeout) fired.
  virtual void OnTimeout() {}
  // The transport is gone (peer closed, error, or Close()); called once.
  virtual void OnClosed() {}
  // The server is shutting down gracefully.
  virtual void OnShutdown() { CloseAfterFlush(); }
  // A slow consumer: the queue's unsent items are already dropped. Must end the connection.
  virtual void OnSlowConsumer() { Close(); }
  // Cuts the connection as a slow consumer (SlowReason::kMissed): for a protocol that cannot tell a
  // subscriber about a missed push any other way. Unsent items go at once.
  void CutSlow();
  // The socket took everything queued (not while closing): a protocol that writes a long
  // answer a window at a time (http::HttpConnection) queues its next piece. True when it
  // queued more, which the same flush then writes.
  virtual bool OnDrained() { return false; }
  // Reads resumed after a read pause (the loop's read gate opened): a protocol that kept
  // what it had read but not served while paused (http::HttpConnection) serves it now.
  virtual void OnReadResumed() {}
  // How joined output is framed (JoinSpec::header); null: this connection never joins. Asked
  // once per flush; the bound is the loop's SendLimits::join_max_bytes.
  virtual decltype(JoinSpec::header) JoinHeader() const { return nullptr; }

 private:
  friend class Loop;
  enum State : uint16_t {
    kClosed = 1,
    kDraining = 2,   // CloseAfterFlush: waiting for the queue to drain
    kLingering = 4,  // half-closed, discarding input until FIN or the linger timer
    kWantWrite = 8,  // EPOLLOUT registered
    kInFlushList = 16,
    kTlsWriteWantsRead = 32,  // SSL_write returned WANT_READ: retry the flush on readable
    kTlsReadWantsWrite = 64,  // SSL_read returned WANT_WRITE: retry the read on writable
    kSlow = 128,              // cut as a slow consumer: no more pushes, only the closing output
    kReadPaused = 256,        // PauseReading: EPOLLIN not registered, in Loop::paused_
    kSendPrepared = 512,      // io_uring: the cork's send waits in the loop's ring
  };
  // io_uring: before anything else writes to, shuts or closes the socket, the send this
  // connection prepared is made and its result handled, so the wire order is unchanged.
  void LandSend() {
    if (state_ & kSendPrepared) loop_.SubmitSends();
  }

  void OnEvents(uint32_t events) override;
  Connection* AsConnection() final { return this; }
  // Loop::ReadBatch: may this event's read be made in the batch? Plain, readable, not
  // paused, and not also writable (its flush comes first).
  bool MayReadInBatch(uint32_t events) const {
    return ssl_ == nullptr && !(state_ & (kClosed | kReadPaused)) && (events & EPOLLIN) &&
           !(events & EPOLLOUT);
  }
  void OnTimer() final;
  void HandleReadable();
  void Flush();  // by the loop, at the end of the iteration
  // After a write: linger once drained, watch deadlines, ask for EPOLLOUT while output waits.
  void Settle();
  // Adaptive coalescing (the corking of uWebSockets, Nagle's rule for a socket): output
  // queued to a connection whose socket is full (EPOLLOUT registered) does not try a write
  // at the end of the iteration, which would find the socket still full or take a sliver;
  // it waits in the queue and leaves when the socket is writable again, joined with what
  // queued before it (one message, one send). A connection with nothing waiting is flushed
  // in the iteration that queued its output, so an idle path is never delayed. Nothing is
  // lost by waiting: the queue's watermarks, deadlines and bound judge each push as before.
  void FlushSoon() {
    if (!(state_ & kWantWrite)) loop_.NeedsFlush(this);
  }
  // The loop is behind (Loop::FlushPending): may this connection's flush wait one more
  // iteration? Only when all it holds are normal or low pushes (no reply, control frame,
  // urgent push, Close or half-sent bytes) on a plain socket that is not closing.
  bool MayWaitForMore() const {
    return ssl_ == nullptr && !(state_ & (kClosed | kDraining | kLingering | kSlow)) && out_ &&
           !out_->empty() &&
           out_->items() == out_->lane_items(Lane::kNormal) + out_->lane_items(Lane::kLow);
  }
  // The direct path (see the top of the file).
  bool Corked() const { return loop_.cork_owner_ == this; }
  void CorkAppend(std::string_view head, std::string_view body, bool joinable);
  // Moves the corked bytes into the queue and ends the cork: later sends queue behind them.
  [[gnu::noinline]] void SpillCork();
  void DropCork();
  // Writes the corked bytes with one send (with io_uring: prepares it in the loop's batch);
  // what the socket does not take is queued.
  void WriteCork();
  // The cork's send returned result (bytes, or -errno) for these len bytes.
  void CorkWritten(const char* data, size_t len, ssize_t result);
  // A queue past a watermark or the bound only because its flush has not come yet (it waits
  // for the iteration's end, or one more while the loop is behind) is no slow reader: before
  // a push tells or cuts for it, the socket is offered what the queue holds, unless it was
  // full at the last write. (A reply past the bound is the client's own: it is cut, as
  // before.) False when the write closed the connection.
  bool OfferBacklog();
  void FlushPlain();
  // FlushPlain when the queue's messages may be joined (output_queue.h).
  [[gnu::noinline]] void FlushJoined(const JoinSpec& spec);
  // One send (one iovec) or sendmsg; errno as they leave it.
  inline ssize_t WriteV(const iovec* iov, int count);
  void FlushTls();
  void StartLinger();
  void UpdateInterest();
  // EPOLLIN | EPOLLRDHUP unless paused, EPOLLOUT when wanted.
  uint32_t Interest() const;
  void ResumeReading();  // by the loop, when its read gate opens
  // For the loop's sweep and every flush: cuts the connection when its oldest critical or
  // high output has waited past the urgent deadline, or its oldest normal or low push past
  // the normal deadline; true while such output still waits.
  bool CheckDeadlines();
  // Drops what is unsent, counts, and hands over to OnSlowConsumer.
  void SlowConsumer(stats::SlowReason reason);
  OutputQueue& Queue();
  ssize_t ReadSome(uint8_t* buffer, size_t size, bool* again);

  Loop& loop_;
  int fd_;
  uint16_t state_ = 0;
  SSL* ssl_;
  OutputQueuePtr out_;
  // Loop::connections_ and Loop::flush_head_ lists.
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  Connection* flush_next_ = nullptr;
};

}  // namespace hermod::net
