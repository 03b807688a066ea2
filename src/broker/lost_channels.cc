#include "broker/lost_channels.h"

#include <utility>

namespace hermod::broker {

void LostChannels::Add(std::string_view channel) {
  if (all_ || channels_.find(channel) != channels_.end()) return;
  if (channels_.size() >= max_) {
    AddAll();
    return;
  }
  channels_.emplace(channel);
}

void LostChannels::AddAll() {
  all_ = true;
  Set().swap(channels_);
}

void LostChannels::Merge(LostChannels& other) {
  if (other.all_) {
    AddAll();
  } else {
    for (const std::string& channel : other.channels_) Add(channel);
  }
  other.all_ = false;
  other.channels_.clear();
}

LostChannels LostChannels::Take() {
  LostChannels out(max_);
  std::swap(out.all_, all_);
  out.channels_.swap(channels_);
  return out;
}

}  // namespace hermod::broker
