// Ctrl-C ends a run early and the run still reports what it measured. No code runs in a
// signal handler: SIGINT is blocked before any thread starts (so every client loop and every
// forked worker inherits the mask and none of them sees EINTR), and the runner reads it from a
// signalfd between its ticks, where it may do anything. Once read, the interrupt stays
// latched for the rest of the process.
//
// A forked worker inherits the signalfd and reads its own SIGINTs from it: a terminal's
// Ctrl-C reaches every process of the group; the parent forwards a SIGINT sent to it alone.
#pragma once

#include <chrono>

namespace hermod::bench {

// Blocks SIGINT and opens the signalfd. Call first thing in main, before any thread exists.
// Without it (tests), nothing is caught and WaitForInterrupt only waits.
void CatchInterrupts();

// Waits up to timeout for SIGINT; true if one has arrived, now or earlier (then at once).
bool WaitForInterrupt(std::chrono::milliseconds timeout);
inline bool Interrupted() { return WaitForInterrupt(std::chrono::milliseconds(0)); }

// The signalfd, readable when a SIGINT is pending, for poll sets (-1 when not catching).
int InterruptFd();

}  // namespace hermod::bench
