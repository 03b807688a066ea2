#include "core/loop_channels.h"

namespace hermod::core {

bool LoopChannels::Add(std::string_view channel, Subscription* s) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) it = channels_.emplace(std::string(channel), 0).first;
  std::vector<Subscription*>& list = it->second;
  s->slot = static_cast<uint32_t>(list.size());
  list.push_back(s);
  return list.size() == 1;
}

bool LoopChannels::Remove(std::string_view channel, Subscription* s) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return true;
  std::vector<Subscription*>& list = it->second;
  if (s->slot >= list.size() || list[s->slot] != s) return list.empty();
  list[s->slot] = list.back();
  list[s->slot]->slot = s->slot;
  list.pop_back();
  if (!list.empty()) return false;
  if (!delivering_) channels_.erase(it);
  return true;
}

void LoopChannels::Deliver(std::string_view channel, net::Chunk* frame, uint64_t offset,
                           bool join_leave) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  std::vector<Subscription*>& list = it->second;
  delivering_ = true;
  for (size_t i = 0; i < list.size();) {
    Subscription* s = list[i];
    bool wanted = join_leave ? s->wants_join_leave : offset == 0 || offset > s->delivered_offset;
    if (wanted && !s->connection->closing()) s->connection->SendShared(frame, 0, frame->size());
    // A send that overflowed closed the connection, which removed s: slot i now holds the
    // next subscriber.
    if (i < list.size() && list[i] == s) ++i;
  }
  delivering_ = false;
  if (list.empty()) channels_.erase(it);
}

}  // namespace hermod::core
