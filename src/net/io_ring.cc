#include "net/io_ring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/syscalls.h"

namespace hermod::net {

namespace {

template <class T>
T* At(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

}  // namespace

IoRing::IoRing(unsigned entries) {
  io_uring_params params{};
  // Completions need no interrupt of the loop's thread (every operation completes inside
  // its submission). The flag also sets a floor on the kernel, 5.19: with MSG_DONTWAIT a
  // socket operation there answers EAGAIN instead of waiting for the socket (the net unit
  // tests' io_uring run checks it on full sockets); an older kernel refuses the flag, and
  // so the ring, rather than risk a loop stalled on one socket. Not
  // IORING_SETUP_SINGLE_ISSUER: the ring is made on the thread that builds the loop, and
  // the loop's own thread submits.
  params.flags = IORING_SETUP_COOP_TASKRUN;
  const int fd = static_cast<int>(syscall(SYS_io_uring_setup, entries, &params));
  if (fd < 0) {
    setup_errno_ = errno;
    return;
  }
  sq_ring_bytes_ = params.sq_off.array + params.sq_entries * sizeof(uint32_t);
  cq_ring_bytes_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  const bool single = params.features & IORING_FEAT_SINGLE_MMAP;
  if (single && cq_ring_bytes_ > sq_ring_bytes_) sq_ring_bytes_ = cq_ring_bytes_;
  sq_ring_ = mmap(nullptr, sq_ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                  IORING_OFF_SQ_RING);
  cq_ring_ = single ? sq_ring_
                    : mmap(nullptr, cq_ring_bytes_, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
  sqes_bytes_ = params.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_SQES);
  if (sq_ring_ == MAP_FAILED || cq_ring_ == MAP_FAILED || sqes == MAP_FAILED) {
    setup_errno_ = errno;
    if (sq_ring_ != MAP_FAILED) munmap(sq_ring_, sq_ring_bytes_);
    if (!single && cq_ring_ != MAP_FAILED) munmap(cq_ring_, cq_ring_bytes_);
    if (sqes != MAP_FAILED) munmap(sqes, sqes_bytes_);
    sq_ring_ = cq_ring_ = nullptr;
    close(fd);
    return;
  }
  fd_ = fd;
  sqes_ = static_cast<io_uring_sqe*>(sqes);
  entries_ = params.sq_entries;
  sq_tail_ptr_ = At<uint32_t>(sq_ring_, params.sq_off.tail);
  sq_tail_ = *sq_tail_ptr_;
  sq_mask_ = *At<uint32_t>(sq_ring_, params.sq_off.ring_mask);
  // Entry i of the ring is always sqes_[i]: the indirection array is the identity.
  uint32_t* array = At<uint32_t>(sq_ring_, params.sq_off.array);
  for (uint32_t i = 0; i < params.sq_entries; ++i) array[i] = i;
  cq_head_ = At<uint32_t>(cq_ring_, params.cq_off.head);
  cq_tail_ = At<uint32_t>(cq_ring_, params.cq_off.tail);
  cq_mask_ = *At<uint32_t>(cq_ring_, params.cq_off.ring_mask);
  cqes_ = At<io_uring_cqe>(cq_ring_, params.cq_off.cqes);
}

IoRing::~IoRing() {
  if (fd_ < 0) return;
  munmap(sqes_, sqes_bytes_);
  if (cq_ring_ != sq_ring_) munmap(cq_ring_, cq_ring_bytes_);
  munmap(sq_ring_, sq_ring_bytes_);
  close(fd_);
}

io_uring_sqe* IoRing::Prepare() {
  if (prepared_ == entries_) return nullptr;
  io_uring_sqe* sqe = &sqes_[sq_tail_ & sq_mask_];
  std::memset(sqe, 0, sizeof *sqe);
  ++sq_tail_;
  ++prepared_;
  return sqe;
}

bool IoRing::SubmitAndWait() {
  const unsigned count = prepared_;
  if (count == 0) return true;
  prepared_ = 0;
  __atomic_store_n(sq_tail_ptr_, sq_tail_, __ATOMIC_RELEASE);
  // The completion queue holds twice the submission queue's entries and is emptied after
  // every submission, so it cannot overflow.
  unsigned done = 0;
  while (done < count) {
    const int n = sys::IoUringEnter(fd_, count - done, count - done, IORING_ENTER_GETEVENTS);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<unsigned>(n);
  }
  return true;
}

}  // namespace hermod::net
