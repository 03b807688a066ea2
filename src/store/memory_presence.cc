#include "store/memory_presence.h"

#include <string>
#include <unordered_map>
#include <unordered_set>

namespace hermod::store {

namespace {

class MemorySet final : public core::PresenceStore::Set {
 public:
  void Add(std::string_view client, std::string_view user, std::string_view info) override {
    clients_[std::string(client)] = core::PresenceEntry{std::string(user), std::string(info)};
  }
  void Remove(std::string_view client) override { clients_.erase(std::string(client)); }
  std::optional<core::PresenceList> List(core::Completion<core::PresenceList>) override {
    return core::PresenceList(clients_.begin(), clients_.end());
  }
  std::optional<core::PresenceCounts> Stats(core::Completion<core::PresenceCounts>) override {
    std::unordered_set<std::string_view> users;
    for (const auto& [client, entry] : clients_) users.insert(entry.user);
    return core::PresenceCounts{clients_.size(), users.size()};
  }
  size_t size() const override { return clients_.size(); }

 private:
  std::unordered_map<std::string, core::PresenceEntry> clients_;
};

}  // namespace

std::unique_ptr<core::PresenceStore::Set> MemoryPresenceStore::Open(std::string_view) {
  return std::make_unique<MemorySet>();
}

}  // namespace hermod::store
