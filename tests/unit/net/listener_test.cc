#include "net/listener.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace hermod::net {
namespace {

// Real sockets in this process stand for two servers: "theirs" joined the port's
// SO_REUSEPORT group, as a second hermod that passed the probe at the same instant would.
TEST(Listener, PortOwnedSeesAnotherListenerInTheReusePortGroup) {
  std::string error;
  uint16_t port = 0;
  int theirs = BindListener("127.0.0.1", 0, 16, &port, &error);
  ASSERT_GE(theirs, 0) << error;
  int ours = BindListener("127.0.0.1", port, 16, &port, &error);
  ASSERT_GE(ours, 0) << error;

  EXPECT_FALSE(ProbePortFree("127.0.0.1", port, &error));
  error.clear();
  EXPECT_FALSE(PortOwned("127.0.0.1", port, {ours}, &error));
  EXPECT_NE(error.find(std::to_string(port)), std::string::npos) << error;
  // A wildcard overlaps every address.
  EXPECT_FALSE(PortOwned("0.0.0.0", port, {ours}, &error));
  EXPECT_TRUE(PortOwned("127.0.0.1", port, {ours, theirs}, &error)) << error;
  close(theirs);
  EXPECT_TRUE(PortOwned("127.0.0.1", port, {ours}, &error)) << error;
  close(ours);
  EXPECT_TRUE(ProbePortFree("127.0.0.1", port, &error)) << error;
}

TEST(Listener, PortOwnedIgnoresOtherPortsAndOtherAddresses) {
  std::string error;
  uint16_t a = 0;
  uint16_t b = 0;
  int fa = BindListener("127.0.0.1", 0, 16, &a, &error);
  int fb = BindListener("127.0.0.1", 0, 16, &b, &error);
  ASSERT_GE(fa, 0);
  ASSERT_GE(fb, 0);
  EXPECT_TRUE(PortOwned("127.0.0.1", a, {fa}, &error)) << error;
  // 127.0.0.2 is another address on the loopback: a listener there does not share ours.
  uint16_t c = b;
  int fc = BindListener("127.0.0.2", b, 16, &c, &error);
  if (fc >= 0) {
    EXPECT_TRUE(PortOwned("127.0.0.1", b, {fb}, &error)) << error;
    close(fc);
  }
  close(fa);
  close(fb);
}

}  // namespace
}  // namespace hermod::net
