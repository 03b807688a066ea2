// The loop's hot system calls (recv, send, sendmsg, epoll_wait, io_uring_enter) issued
// directly. glibc makes the first four thread-cancellation points: in a process with more than one
// thread (every server: a thread per loop) it enables and disables asynchronous cancellation around
// the call, about 100 instructions per echoed message, which is a sixth of what the rest of the
// echo costs. hermod never cancels a thread, so the loop skips that bookkeeping. errno is set
// as libc sets it. Other architectures use libc.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace hermod::net::sys {

#if defined(__x86_64__) && defined(__linux__)

inline long Call(long nr, long a, long b, long c, long d = 0, long e = 0, long f = 0) {
  long result;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  if (result < 0 && result > -4096) {
    errno = static_cast<int>(-result);
    return -1;
  }
  return result;
}

inline ssize_t Recv(int fd, void* buffer, size_t len) {
  return Call(SYS_recvfrom, fd, reinterpret_cast<long>(buffer), static_cast<long>(len), 0);
}

inline ssize_t Send(int fd, const void* data, size_t len, int flags) {
  return Call(SYS_sendto, fd, reinterpret_cast<long>(data), static_cast<long>(len), flags);
}

inline ssize_t SendMsg(int fd, const msghdr* message, int flags) {
  return Call(SYS_sendmsg, fd, reinterpret_cast<long>(message), flags);
}

inline int EpollWait(int epoll_fd, epoll_event* events, int max, int timeout_ms) {
  return static_cast<int>(
      Call(SYS_epoll_wait, epoll_fd, reinterpret_cast<long>(events), max, timeout_ms));
}

// Returns how many entries were submitted; waits for min_complete completions.
inline int IoUringEnter(int ring_fd, unsigned submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(Call(SYS_io_uring_enter, ring_fd, submit, min_complete, flags, 0, 0));
}

#else

inline ssize_t Recv(int fd, void* buffer, size_t len) { return recv(fd, buffer, len, 0); }
inline ssize_t Send(int fd, const void* data, size_t len, int flags) {
  return send(fd, data, len, flags);
}
inline ssize_t SendMsg(int fd, const msghdr* message, int flags) {
  return sendmsg(fd, message, flags);
}
inline int EpollWait(int epoll_fd, epoll_event* events, int max, int timeout_ms) {
  return epoll_wait(epoll_fd, events, max, timeout_ms);
}
inline int IoUringEnter(int ring_fd, unsigned submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_io_uring_enter, ring_fd, submit, min_complete, flags, nullptr, 0));
}

#endif

}  // namespace hermod::net::sys
