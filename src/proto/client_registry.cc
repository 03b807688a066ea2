#include "proto/client_registry.h"

namespace hermod::proto {

void ClientRegistry::Add(const std::string& user) {
  std::lock_guard lock(mutex_);
  ++clients_;
  ++users_[user];
}

void ClientRegistry::Remove(const std::string& user) {
  std::lock_guard lock(mutex_);
  --clients_;
  auto it = users_.find(user);
  if (it != users_.end() && --it->second == 0) users_.erase(it);
}

std::pair<size_t, size_t> ClientRegistry::Get() const {
  std::lock_guard lock(mutex_);
  return {clients_, users_.size()};
}

}  // namespace hermod::proto
