#include "broker/cluster_nodes.h"

#include <gtest/gtest.h>

namespace hermod::broker {
namespace {

TEST(ClusterNodes, KeepsTheLastWordOfEachOtherNodeUntilItExpires) {
  ClusterNodes nodes;
  const uint64_t self = 1;
  EXPECT_TRUE(nodes.Receive(self, ClusterNodes::Encode(2, "{\"id\":\"two\",\"n\":1}"), 1000));
  EXPECT_TRUE(nodes.Receive(self, ClusterNodes::Encode(3, "{\"id\":\"three\"}"), 1000));
  EXPECT_TRUE(nodes.Receive(self, ClusterNodes::Encode(2, "{\"id\":\"two\",\"n\":2}"), 2000));
  EXPECT_EQ(nodes.Alive(2000),
            (std::vector<std::string>{"{\"id\":\"two\",\"n\":2}", "{\"id\":\"three\"}"}));
  // Node 3 fell silent: gone once the expiry has passed; node 2 is still heard.
  EXPECT_EQ(nodes.Alive(1000 + ClusterNodes::kExpiryMs + 1),
            (std::vector<std::string>{"{\"id\":\"two\",\"n\":2}"}));
}

TEST(ClusterNodes, DropsItsOwnWordAndAnythingThatIsNotOneJsonObject) {
  ClusterNodes nodes;
  EXPECT_FALSE(nodes.Receive(7, ClusterNodes::Encode(7, "{}"), 0));  // its own
  EXPECT_FALSE(nodes.Receive(7, "short", 0));
  EXPECT_FALSE(nodes.Receive(7, ClusterNodes::Encode(8, ""), 0));
  EXPECT_FALSE(nodes.Receive(7, ClusterNodes::Encode(8, "[1]"), 0));
  EXPECT_FALSE(nodes.Receive(7, ClusterNodes::Encode(8, "{\"a\":"), 0));
  EXPECT_FALSE(nodes.Receive(7, ClusterNodes::Encode(8, "{}x"), 0));
  EXPECT_FALSE(nodes.Receive(
      7,
      ClusterNodes::Encode(8, "{\"a\":\"" + std::string(ClusterNodes::kMaxInfoBytes, 'x') + "\"}"),
      0));
  EXPECT_TRUE(nodes.Alive(0).empty());
}

}  // namespace
}  // namespace hermod::broker
