// The channels whose publications this node may have failed to get to the other nodes: the
// breaker skipped them, the send queue or the connection's output bound was full, more than
// nats.reconnect_buffer_bytes were held while disconnected, or they were written to a
// connection that died before the server answered a PING written after them. Only the
// publishing node sees such a loss, so it names the channels to the others in a lost notice
// (wire.h, kind 4) once it can send again, and each tells its subscribers of those channels
// as it does after its own reconnect (docs/cluster.md, "Lost on the publishing node").
//
// A bounded set: past max channels it becomes "all" (every channel), which costs the
// receivers a tell for every channel they hold, never a silent gap. Not thread-safe: its
// owner guards it.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace hermod::broker {

class LostChannels {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

 public:
  using Set = std::unordered_set<std::string, Hash, std::equal_to<>>;

  explicit LostChannels(size_t max) : max_(max) {}

  void Add(std::string_view channel);
  void AddAll();
  // Moves everything of other in here (other ends empty).
  void Merge(LostChannels& other);
  // Moves everything out into a new set with the same bound.
  LostChannels Take();

  bool empty() const { return !all_ && channels_.empty(); }
  bool all() const { return all_; }
  const Set& channels() const { return channels_; }  // empty when all

 private:
  size_t max_;
  bool all_ = false;
  Set channels_;
};

}  // namespace hermod::broker
