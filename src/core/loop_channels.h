// The subscribers one loop holds, by channel: the last step of fan-out. A publication's
// frame arrives here once per loop (through the loop's mailbox) and is queued to each local
// subscriber by reference (Connection::SendShared): no copy and no allocation per
// subscriber. Everything here runs on its loop's thread; nothing is locked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "net/connection.h"
#include "net/output_queue.h"

namespace hermod::core {

// One connection's subscription to one channel, owned by the connection; the loop's list
// points at it while it is subscribed.
struct Subscription {
  net::Connection* connection = nullptr;
  // Publications at or below this offset were in the subscribe reply (recovery): a frame
  // still in the mailbox when the subscriber joined is not delivered twice.
  uint64_t delivered_offset = 0;
  bool wants_join_leave = false;
  uint32_t slot = 0;  // index in LoopChannels' list for its channel
};

class LoopChannels {
 public:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // Returns true when s is the loop's first subscriber of the channel.
  bool Add(std::string_view channel, Subscription* s);
  // Returns true when the loop has no subscriber of the channel left.
  bool Remove(std::string_view channel, Subscription* s);
  // Queues frame to every local subscriber. offset: the publication's (0 for none);
  // join_leave: a join or leave push, only for subscribers that asked for them.
  void Deliver(std::string_view channel, net::Chunk* frame, uint64_t offset, bool join_leave);
  size_t channel_count() const { return channels_.size(); }

 private:
  std::unordered_map<std::string, std::vector<Subscription*>, Hash, std::equal_to<>> channels_;
  bool delivering_ = false;  // Deliver may close connections, which Remove themselves
};

}  // namespace hermod::core
