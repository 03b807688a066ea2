// A socket filled as a peer that stopped reading leaves it, for tests of what a connection
// queues once its socket takes nothing more.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <string>

namespace hermod::testing {

// Shrinks fd's send buffer and writes 'f' bytes into it until it takes no more (fd is
// non-blocking); returns how many it took, which the peer reads first.
inline size_t FillSocket(int fd) {
  int small = 4096;
  EXPECT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  const std::string filler(4096, 'f');
  size_t filled = 0;
  ssize_t n;
  while ((n = write(fd, filler.data(), filler.size())) > 0) filled += static_cast<size_t>(n);
  return filled;
}

}  // namespace hermod::testing
