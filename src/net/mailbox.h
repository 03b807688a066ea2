// The one way into a loop from another thread: a lock-free multi-producer, single-consumer
// queue of tasks plus an eventfd that wakes the loop. Producers push with one CAS onto a
// Treiber stack; the loop takes the whole stack with one exchange and runs it in FIFO order.
// The eventfd is written only on the empty -> non-empty edge, so a burst of posts costs one
// wake-up.
#pragma once

#include <atomic>
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
  // Loop thread only: reads the eventfd and runs every task posted so far.
  void Drain();
  int fd() const { return event_fd_; }

 private:
  struct Node {
    Node* next;
    std::function<void()> task;
  };
  std::atomic<Node*> head_{nullptr};
  int event_fd_;
};

}  // namespace hermod::net
