// A listening socket per loop (SO_REUSEPORT: the kernel spreads accepts over the loops, so
// no loop hands connections to another). When the process runs out of file descriptors,
// the listener sheds load as libuv does: it closes a spare descriptor kept for this, accepts
// and closes the waiting connections, and reopens the spare; each shed connection is
// counted. When another loop took the freed descriptor first, so that there is nothing
// left to shed with, the listener stops polling for 100 ms (as nginx does) rather than spin.
//
// Accept throttle: with an accept rate set, each loop accepts at most that many
// connections per second (a bucket of a tenth of a second's worth, in milli-tokens on the
// loop clock); when it runs dry the listener stops polling until the next token is due, and
// the connections wait in the kernel's backlog. A reconnect storm then arrives as a steady
// stream the loops can serve instead of a spike that starves the connected clients; nothing
// is refused here (the backlog's own bound still applies).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "net/event_loop.h"
#include "net/timer_wheel.h"

namespace hermod::net {

class TlsContext;

// False, with *error naming the port, when a socket already listens on addr:port. Our own
// listeners set SO_REUSEPORT, which would let them join another process's listening group
// on that port (another hermod of the same user: the kernel would then split connections
// between two servers), so the server probes before it binds, for a clear message, and
// checks again with PortOwned once bound, for the race the probe cannot see.
bool ProbePortFree(const std::string& addr, uint16_t port, std::string* error);

// After our listeners are bound (before anything is accepted): false, with *error, when any
// TCP socket but ours listens on port at an address that overlaps addr (the same address,
// or a wildcard on either side), as the kernel's socket table says (sock_diag). This closes
// the probe's race: of two servers that bind the port at the same instant, each sees the
// other, so neither serves half of it. ours: our listening fds.
bool PortOwned(const std::string& addr, uint16_t port, const std::vector<int>& ours,
               std::string* error);

// Binds addr:port with SO_REUSEPORT; port 0 picks a free one. Returns the fd, or -1 with
// *error set. *bound_port receives the actual port.
int BindListener(const std::string& addr, uint16_t port, int backlog, uint16_t* bound_port,
                 std::string* error);

class Listener final : public Pollable, public TimerNode {
 public:
  // Called for each accepted socket (non-blocking, TCP_NODELAY set) with its TLS session
  // (null without TLS); it creates the first Connection.
  using Accept = std::function<void(Loop&, int fd, SSL* ssl)>;

  Listener(Loop& loop, int fd, TlsContext* tls, Accept accept);
  ~Listener() override;
  // Stops accepting (graceful shutdown); closes the socket.
  void Stop();
  // Accepts per second on this loop; 0: unlimited.
  void SetAcceptRate(uint64_t per_second) { accept_rate_ = per_second; }

 private:
  void OnEvents(uint32_t events) override;
  // Re-arms accepting after a pause (see ShedOne).
  void OnTimer() override;
  // Returns false when even shedding fails (no spare descriptor): then accepting pauses.
  bool ShedOne();
  // The accept throttle: takes a token, or pauses the listener until one is due.
  bool TakeAcceptToken();
  void Pause(uint64_t ms);

  Loop& loop_;
  int fd_;
  int spare_fd_;
  TlsContext* tls_;
  Accept accept_;
  bool paused_ = false;
  uint64_t accept_rate_ = 0;
  uint64_t accept_debt_ = 0;  // milli-tokens
  uint64_t accept_last_ms_ = 0;
};

}  // namespace hermod::net
