// What the nodes of a cluster know of each other: every node tells the others about itself
// once a second on its own subject, `<prefix>.nodes` (never mixed with publications, so the
// publication wire format stays as it is), and keeps the last word of every other node. A
// node not heard from for kExpiryMs has left (stopped, or cut off) and is forgotten. This is
// what the admin dashboard lists as the cluster's nodes, as Centrifugo's node-info messages.
//
// Payload: the sending node's id, 8 bytes little endian, then one JSON object (what the
// server fills in: version, uptime, clients, memory, ...; at most kMaxInfoBytes). The JSON
// comes from a peer of the same cluster; it is still checked to be one JSON object before
// it is kept, since the dashboard embeds it as is.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace hermod::broker {

class ClusterNodes {
 public:
  static constexpr uint64_t kIntervalMs = 1000;
  static constexpr uint64_t kExpiryMs = 5 * kIntervalMs;
  static constexpr size_t kMaxInfoBytes = 4096;
  static constexpr size_t kMaxNodes = 1024;  // a bound on what garbage on the subject costs

  static std::string Encode(uint64_t node, std::string_view info_json);
  // Any thread: keeps a peer's message; false (and nothing kept) when it does not decode,
  // is this node's own, or would pass kMaxNodes.
  bool Receive(uint64_t self, std::string_view bytes, uint64_t now_ms);
  // Any thread: the other nodes heard from within kExpiryMs, as their JSON, in id order.
  std::vector<std::string> Alive(uint64_t now_ms);

 private:
  struct Entry {
    std::string json;
    uint64_t seen_ms = 0;
  };
  std::mutex mutex_;  // guards nodes_; a leaf
  std::map<uint64_t, Entry> nodes_;
};

}  // namespace hermod::broker
