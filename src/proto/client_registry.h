// Connected clients and distinct users in this process (the API's `info`), counted at
// connect and close only, so one mutex is no cost on any message path.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace hermod::proto {

class ClientRegistry {
 public:
  void Add(const std::string& user);
  void Remove(const std::string& user);
  std::pair<size_t, size_t> Get() const;  // {clients, users}

 private:
  mutable std::mutex mutex_;
  size_t clients_ = 0;                             // guarded by mutex_
  std::unordered_map<std::string, size_t> users_;  // guarded by mutex_
};

}  // namespace hermod::proto
