#include "core/channel_rules.h"

#include <gtest/gtest.h>

namespace hermod::core {
namespace {

TEST(ChannelRules, ChannelsWithoutNamespaceTakeTopLevelOptions) {
  config::Config c;
  c.channel.presence = true;
  ChannelRules rules(c);
  const config::ChannelOptions* o = rules.Find("news");
  ASSERT_NE(o, nullptr);
  EXPECT_TRUE(o->presence);
}

TEST(ChannelRules, NamespacedChannelsTakeTheirNamespacesOptions) {
  config::Config c;
  config::Namespace chat;
  chat.name = "chat";
  chat.options.history_size = 7;
  c.namespaces.push_back(chat);
  ChannelRules rules(c);
  const config::ChannelOptions* o = rules.Find("chat:room:1");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->history_size, 7u);
  EXPECT_EQ(rules.Find("chatx:1"), nullptr);
  EXPECT_EQ(rules.Find(":1"), nullptr);
}

TEST(ChannelRules, PrivateChannelsStartWithTheConfiguredPrefix) {
  config::Config c;
  EXPECT_TRUE(ChannelRules(c).IsPrivate("$secret"));
  EXPECT_FALSE(ChannelRules(c).IsPrivate("public"));
  c.channel_private_prefix = "private:";
  EXPECT_TRUE(ChannelRules(c).IsPrivate("private:x"));
  EXPECT_FALSE(ChannelRules(c).IsPrivate("$secret"));
}

TEST(ChannelRules, UserLimitedChannelsListTheirUsersAfterTheHash) {
  EXPECT_TRUE(ChannelRules::IsUserLimited("dialog#1,2"));
  EXPECT_FALSE(ChannelRules::IsUserLimited("dialog"));
  EXPECT_TRUE(ChannelRules::UserListed("dialog#1,22", "1"));
  EXPECT_TRUE(ChannelRules::UserListed("dialog#1,22", "22"));
  EXPECT_FALSE(ChannelRules::UserListed("dialog#1,22", "2"));
  EXPECT_FALSE(ChannelRules::UserListed("dialog#1,22", ""));
  EXPECT_FALSE(ChannelRules::UserListed("dialog#", ""));
}

// Centrifugo strips the private prefix before it looks up the namespace.
TEST(ChannelRules, PrivateChannelTakesItsNamespaceWithoutThePrefix) {
  config::Config c;
  config::Namespace rw;
  rw.name = "rw";
  rw.options.history_size = 3;
  c.namespaces.push_back(rw);
  ChannelRules rules(c);
  const config::ChannelOptions* o = rules.Find("$rw:x");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->history_size, 3u);
  EXPECT_TRUE(rules.IsPrivate("$rw:x"));
  EXPECT_EQ(rules.Find("$nope:x"), nullptr);
  EXPECT_NE(rules.Find("$plain"), nullptr);  // top-level options
}

TEST(ChannelRules, NamesAreAsciiByDefaultAsCentrifugoDocuments) {
  config::Config c;
  c.channel_max_length = 8;
  ChannelRules rules(c);
  EXPECT_TRUE(rules.NameAllowed("news"));
  EXPECT_FALSE(rules.NameAllowed("caf\xc3\xa9"));
  EXPECT_FALSE(rules.NameAllowed(""));
  EXPECT_FALSE(rules.NameAllowed("123456789"));
  c.channel_name_ascii_only = false;
  ChannelRules any(c);
  EXPECT_TRUE(any.NameAllowed("caf\xc3\xa9"));
  EXPECT_FALSE(any.NameAllowed("123456789"));
}

}  // namespace
}  // namespace hermod::core
