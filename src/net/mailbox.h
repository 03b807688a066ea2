// The one way into a loop from another thread: a lock-free multi-producer, single-consumer
// queue of tasks plus an eventfd that wakes the loop. Producers push with one CAS onto a
// Treiber stack; the loop takes the whole stack with one exchange and runs it in FIFO order.
// The eventfd is written only on the empty -> non-empty edge, so a burst of posts costs one
// wake-up. The loop's own posts (a client's publication fanned out to its own loop) need
// none: PostQuiet queues without the eventfd, and the loop runs them in its next iteration
// (Loop::Post), which saves a write and a read per publication.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace hermod::net {

class Mailbox {
 public:
  Mailbox();
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Thread-safe.
  void Post(std::function<void()> task);
  // Consumer thread only: queues without waking; the caller must RunPosted before it
  // waits on fd() again (tasks other threads post meanwhile may rely on that run too).
  void PostQuiet(std::function<void()> task);
  // Loop thread only: reads the eventfd and runs every task posted so far.
  void Drain();
  // Loop thread only: runs every task posted so far, the eventfd left as it is.
  void RunPosted();
  int fd() const { return event_fd_; }
  // eventfd writes so far (tests, and counting wake-ups per message).
  uint64_t wakes() const { return wakes_.load(std::memory_order_relaxed); }

 private:
  struct Node {
    Node* next;
    std::function<void()> task;
  };
  // Pushes node; true when the stack was empty before.
  bool Push(Node* node);

  std::atomic<Node*> head_{nullptr};
  std::atomic<uint64_t> wakes_{0};
  int event_fd_;
};

}  // namespace hermod::net
