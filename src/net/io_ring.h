// A small io_uring (Linux 5.19+) used as a batch of system calls, not as a completion-driven
// engine: the loop prepares one non-blocking socket operation per connection (MSG_DONTWAIT,
// so the kernel answers EAGAIN at once instead of waiting for the socket), submits them all
// with one io_uring_enter, and reads each result as it would read send's or recv's. Every
// operation completes inside that call, so no buffer outlives it and nothing is in flight
// between iterations. Raw system calls and <linux/io_uring.h> rather than liburing: the
// three calls and two rings below are all the loop needs, with no library to install.
#pragma once

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>

namespace hermod::net {

class IoRing {
 public:
  // entries: the most operations one submission holds. A kernel that refuses io_uring
  // (too old, or disabled by io_uring_disabled / seccomp) leaves the ring !ok().
  explicit IoRing(unsigned entries);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  bool ok() const { return fd_ >= 0; }
  // errno of the failed io_uring_setup (0 when ok).
  int setup_errno() const { return setup_errno_; }
  unsigned capacity() const { return entries_; }
  // The next free entry, zeroed, or null when the ring is full (submit first).
  io_uring_sqe* Prepare();
  // Submits every prepared entry with one io_uring_enter and waits for all of them. False
  // when the kernel refused the call (errno set); the entries are then dropped.
  bool SubmitAndWait();
  // Calls fn(user_data, res) for each completion, oldest first, and frees them.
  template <class Fn>
  void Reap(Fn&& fn) {
    uint32_t head = *cq_head_;
    const uint32_t tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) {
      const io_uring_cqe& cqe = cqes_[head & cq_mask_];
      fn(cqe.user_data, cqe.res);
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }

 private:
  int fd_ = -1;
  int setup_errno_ = 0;
  unsigned entries_ = 0;
  unsigned prepared_ = 0;
  void* sq_ring_ = nullptr;
  size_t sq_ring_bytes_ = 0;
  void* cq_ring_ = nullptr;  // the same mapping as sq_ring_ with IORING_FEAT_SINGLE_MMAP
  size_t cq_ring_bytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_bytes_ = 0;
  uint32_t* sq_tail_ptr_ = nullptr;
  uint32_t sq_tail_ = 0;  // our copy, published at submission
  uint32_t sq_mask_ = 0;
  uint32_t* cq_head_ = nullptr;
  uint32_t* cq_tail_ = nullptr;
  uint32_t cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace hermod::net
