#include "broker/cluster_nodes.h"

#include <simdjson.h>

namespace hermod::broker {

namespace {

bool IsJsonObject(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element element;
  return parser.parse(json.data(), json.size()).get(element) == simdjson::SUCCESS &&
         element.is_object();
}

}  // namespace

std::string ClusterNodes::Encode(uint64_t node, std::string_view info_json) {
  std::string out;
  out.reserve(8 + info_json.size());
  for (int i = 0; i < 8; ++i) out += static_cast<char>((node >> (8 * i)) & 0xff);
  out.append(info_json);
  return out;
}

bool ClusterNodes::Receive(uint64_t self, std::string_view bytes, uint64_t now_ms) {
  if (bytes.size() <= 8 || bytes.size() > 8 + kMaxInfoBytes) return false;
  uint64_t node = 0;
  for (int i = 0; i < 8; ++i) {
    node |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(i)])) << (8 * i);
  }
  if (node == self) return false;
  const std::string_view json = bytes.substr(8);
  if (!IsJsonObject(json)) return false;
  std::lock_guard lock(mutex_);
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    it = now_ms > it->second.seen_ms + kExpiryMs ? nodes_.erase(it) : std::next(it);
  }
  if (!nodes_.contains(node) && nodes_.size() >= kMaxNodes) return false;
  Entry& entry = nodes_[node];
  entry.json.assign(json);
  entry.seen_ms = now_ms;
  return true;
}

std::vector<std::string> ClusterNodes::Alive(uint64_t now_ms) {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  for (const auto& [node, entry] : nodes_) {
    if (now_ms <= entry.seen_ms + kExpiryMs) out.push_back(entry.json);
  }
  return out;
}

}  // namespace hermod::broker
