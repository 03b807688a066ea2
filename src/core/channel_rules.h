// Channel names and the options that apply to them: `namespace:rest` takes the options of
// the namespace called `namespace` (an unknown one is error 102, unknown channel); a name
// without ':' takes the top-level options. Built once from the config, then read by every
// loop at once. Also the name rules: private channels (a prefix, "$" by default) and
// user-limited channels (`name#user1,user2`).
//
// As Centrifugo, a private channel's prefix is not part of its namespace: `$rw:x` is the
// private channel `rw:x` of namespace `rw`. Names are ASCII unless channel_name_ascii_only
// is off (Centrifugo documents ASCII-only names and answers 107 to others).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace hermod::core {

class ChannelRules {
 public:
  explicit ChannelRules(const config::Config& config);

  // Null when the channel's namespace is not configured.
  const config::ChannelOptions* Find(std::string_view channel) const;
  size_t max_length() const { return max_length_; }
  // Not empty, at most max_length bytes, and ASCII when the config says so: else 107.
  bool NameAllowed(std::string_view channel) const;
  // Channels with channel_private_prefix need a subscription token.
  bool IsPrivate(std::string_view channel) const {
    return !private_prefix_.empty() && channel.starts_with(private_prefix_);
  }
  // User-limited channels `name#u1,u2`: is user one of those after the '#'?
  static bool IsUserLimited(std::string_view channel) {
    return channel.find('#') != std::string_view::npos;
  }
  static bool UserListed(std::string_view channel, std::string_view user);

 private:
  config::ChannelOptions top_;
  std::vector<config::Namespace> namespaces_;
  size_t max_length_;
  std::string private_prefix_;
  bool ascii_only_;
};

}  // namespace hermod::core
