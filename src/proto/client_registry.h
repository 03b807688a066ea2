// The connected client sessions of this process: how many clients and distinct users (the
// API's `info`), and for the API's per-user actions (disconnect, subscribe, unsubscribe,
// refresh a user's clients) the sessions of one user on one loop, found directly instead of
// by a walk over every connection; entering and leaving are O(1). A session enters at
// connect and leaves at disconnect or close, on its loop's thread.
//
// Two parts, two rules: the node-wide counts take one mutex (leaf, /LOCKS.md), at connect
// and close only, never on a message path; each loop's by-user index is the loop's alone
// (its thread only, no lock), like everything else a loop owns.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/pointer_set.h"
#include "net/event_loop.h"

namespace hermod::proto {

class ClientSession;

class ClientRegistry {
 public:
  // loops: how many loops may hold sessions (net::Loop::index() below it).
  explicit ClientRegistry(size_t loops = 1);

  // On the session's loop: at connect, and at its disconnect or close.
  void Add(ClientSession& session);
  void Remove(ClientSession& session);
  std::pair<size_t, size_t> Get() const;  // {clients, users}; any thread

  // On loop's thread: calls fn for each connected session of user on that loop (of one
  // client id when client is not empty). fn may disconnect the session.
  void ForEachOfUser(net::Loop& loop, std::string_view user, std::string_view client,
                     const std::function<void(ClientSession&)>& fn);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // A set, not a list: a loop's anonymous clients are all under "", and a list's erase made
  // each disconnect scan them (a mass disconnect O(n^2)).
  using ByUser =
      std::unordered_map<std::string, core::PointerSet<ClientSession>, Hash, std::equal_to<>>;
  ByUser& OnLoop(net::Loop& loop);

  mutable std::mutex mutex_;
  size_t clients_ = 0;                             // guarded by mutex_
  std::unordered_map<std::string, size_t> users_;  // guarded by mutex_
  std::vector<std::unique_ptr<ByUser>> loops_;     // [i]: loop i's thread only
};

}  // namespace hermod::proto
