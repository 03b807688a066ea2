#include "interrupt.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace hermod::bench {

namespace {

int signal_fd = -1;
std::atomic<bool> latched{false};

// Reads every pending SIGINT off the signalfd (non-blocking); true if there was one.
bool Drain() {
  signalfd_siginfo info;
  bool any = false;
  while (read(signal_fd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) any = true;
  return any;
}

}  // namespace

void CatchInterrupts() {
  if (signal_fd >= 0) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return;
  signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

bool WaitForInterrupt(std::chrono::milliseconds timeout) {
  if (latched.load(std::memory_order_relaxed)) return true;
  if (signal_fd < 0) {
    if (timeout.count() > 0) std::this_thread::sleep_for(timeout);
    return false;
  }
  pollfd p{signal_fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) > 0 && Drain()) {
    latched.store(true, std::memory_order_relaxed);
  }
  return latched.load(std::memory_order_relaxed);
}

int InterruptFd() { return signal_fd; }

}  // namespace hermod::bench
