// The stand scenario's layout: every held client in one personal channel of its own and in a
// group of group_size; publishers after them, churners last (only they skip the setup); the
// expected count of a worker result survives the JSON that carries it to the parent.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "report.h"
#include "run_config.h"

namespace hermod::bench {
namespace {

RunConfig Stand(uint32_t connections, uint32_t publishers, double connect_rate,
                uint32_t churners = 0) {
  RunConfig c;
  c.scenario = Scenario::kStand;
  c.protocol = Protocol::kHermod;
  c.connections = connections;
  c.publishers = publishers;
  c.group_size = 10;
  c.connect_rate = connect_rate;
  c.churners = churners;
  return c;
}

TEST(StandPlanTest, HeldClientsHaveAPersonalChannelAndAGroupOfTen) {
  const RunConfig c = Stand(95, 4, 20, 10);
  ASSERT_EQ(StandGroups(c), 10u);
  ASSERT_EQ(StandChurners(c), 10u);
  ASSERT_EQ(TotalConnections(c), 95u + 4u + 10u);
  std::set<int32_t> personal;
  std::map<int32_t, uint32_t> members;
  for (uint32_t i = 0; i < 95; ++i) {
    const ConnectionPlan p = PlanFor(c, i);
    EXPECT_FALSE(p.churner);
    EXPECT_FALSE(p.stand_publisher);
    EXPECT_TRUE(personal.insert(p.subscribe).second) << "personal channel shared: " << i;
    EXPECT_GE(p.group, 95);
    ++members[p.group];
  }
  ASSERT_EQ(members.size(), 10u);
  for (uint32_t g = 0; g < 10; ++g) {
    EXPECT_EQ(members[static_cast<int32_t>(95 + g)], StandGroupMembers(c, g)) << g;
  }
  EXPECT_EQ(StandGroupMembers(c, 9), 5u);  // the last group is partial
  EXPECT_EQ(StandGroupMembers(c, 10), 0u);
  for (uint32_t j = 0; j < 4; ++j) {
    const ConnectionPlan p = PlanFor(c, 95 + j);
    EXPECT_TRUE(p.stand_publisher);
    EXPECT_EQ(p.publisher_id, j);
    EXPECT_LT(p.subscribe, 0);
  }
  for (uint32_t k = 0; k < 10; ++k) {
    const ConnectionPlan p = PlanFor(c, 99 + k);
    EXPECT_TRUE(p.churner);
    EXPECT_EQ(personal.count(p.subscribe), 0u) << "a churner's personal channel is its own";
    EXPECT_GE(p.subscribe, 105);
    EXPECT_TRUE(members.count(p.group)) << "a churner joins a held group";
  }
}

TEST(StandPlanTest, OnlyTheChurnersSkipTheSetup) {
  const RunConfig c = Stand(100, 6, 40, 20);  // 20 churners: indices 106..125
  EXPECT_EQ(SetupConnections(c, 0, 126), 106u);
  EXPECT_EQ(SetupConnections(c, 100, 126), 6u);
  EXPECT_EQ(SetupConnections(c, 110, 126), 0u);
  RunConfig no_churn = Stand(100, 6, 0);
  EXPECT_EQ(StandChurners(no_churn), 0u);
  EXPECT_EQ(TotalConnections(no_churn), 106u);
}

// A slot reconnects only once its last cycle is over: the default slots are enough for 10 s
// per cycle at the rate, so a server slow to answer still gets the rate asked.
TEST(StandPlanTest, DefaultChurnSlotsCoverTenSecondsOfTheRate) {
  EXPECT_EQ(StandChurners(Stand(100, 6, 40)), 400u);
  EXPECT_EQ(StandChurners(Stand(100000, 60, 20000.0 / 60)), 3333u);
  EXPECT_EQ(StandChurners(Stand(100, 6, 0.01)), 1u);
  EXPECT_EQ(StandChurners(Stand(100, 6, 40, 7)), 7u);  // --churners wins
}

TEST(StandPlanTest, SeveralUrlsAreTargetsInOrder) {
  RunConfig c;
  std::string error;
  ASSERT_TRUE(ParseUrl("ws://127.0.0.1:8001/connection/websocket", c, &error)) << error;
  ASSERT_TRUE(ParseUrl("ws://localhost:8002/x", c, &error)) << error;
  ASSERT_EQ(c.targets.size(), 2u);
  EXPECT_EQ(c.port, 8001);
  EXPECT_EQ(c.path, "/connection/websocket");
  EXPECT_EQ(c.targets[1].host, "127.0.0.1");
  EXPECT_EQ(c.targets[1].port, 8002);
  EXPECT_EQ(c.targets[1].path, "/x");
}

TEST(StandPlanTest, ExpectedDeliveriesSurviveTheWorkerResult) {
  RunResult r;
  r.stats.sent = 7;
  r.stats.expected = 43;  // some to personal channels (1 each), some to groups
  RunResult back;
  std::string error;
  ASSERT_TRUE(ResultFromJson(ResultToJson(r), back, &error)) << error;
  EXPECT_EQ(back.stats.expected, 43u);
  const Summary m = Summarize(Stand(10, 1, 0), back);
  EXPECT_EQ(m.expected, 43u);
  EXPECT_EQ(m.undelivered, 43u);
}

}  // namespace
}  // namespace hermod::bench
