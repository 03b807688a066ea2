#include "core/channel_rules.h"

namespace hermod::core {

ChannelRules::ChannelRules(const config::Config& config)
    : top_(config.channel),
      namespaces_(config.namespaces),
      max_length_(config.channel_max_length),
      private_prefix_(config.channel_private_prefix),
      ascii_only_(config.channel_name_ascii_only) {}

bool ChannelRules::NameAllowed(std::string_view channel) const {
  if (channel.empty() || channel.size() > max_length_) return false;
  if (!ascii_only_) return true;
  for (char ch : channel) {
    if (static_cast<unsigned char>(ch) >= 0x80) return false;
  }
  return true;
}

bool ChannelRules::UserListed(std::string_view channel, std::string_view user) {
  size_t hash = channel.find('#');
  if (hash == std::string_view::npos || user.empty()) return false;
  std::string_view users = channel.substr(hash + 1);
  while (!users.empty()) {
    size_t comma = users.find(',');
    if (users.substr(0, comma) == user) return true;
    if (comma == std::string_view::npos) break;
    users.remove_prefix(comma + 1);
  }
  return false;
}

const config::ChannelOptions* ChannelRules::Find(std::string_view channel) const {
  if (IsPrivate(channel)) channel.remove_prefix(private_prefix_.size());
  size_t colon = channel.find(':');
  if (colon == std::string_view::npos) return &top_;
  std::string_view name = channel.substr(0, colon);
  for (const config::Namespace& ns : namespaces_) {
    if (ns.name == name) return &ns.options;
  }
  return nullptr;
}

}  // namespace hermod::core
