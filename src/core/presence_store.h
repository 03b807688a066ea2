// Channel presence behind an interface: who is subscribed to a channel (client id, user and
// ClientInfo), for the `presence` and `presence_stats` command and API methods. Implemented
// in store/ (`memory`: this node's clients; `nats`: a NATS KV bucket, the clients of every
// node, which lists later).
//
// As with history_store.h, the hub holds one Set per channel with presence, in the channel's
// state, and calls it under the shard lock: Add and Remove must not block (an engine that
// writes elsewhere queues the write and returns), List and Stats answer at once or complete
// later through the caller's loop (completion.h). empty() answers from memory whether this
// process still has entries there, so that the hub keeps the channel while it does. An
// engine that lists later may be asked through a set opened for the call alone (a channel
// with no entries on this node): its List and Stats must not need the set to live on.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/completion.h"

namespace hermod::core {

struct PresenceEntry {
  std::string user;
  std::string info;  // ClientInfo JSON
};

// By client id. failed: the engine could not answer (its server unreachable): the caller
// answers an error, never an empty list.
struct PresenceList : std::vector<std::pair<std::string, PresenceEntry>> {
  using vector::vector;
  bool failed = false;
};

struct PresenceCounts {
  size_t clients = 0;
  size_t users = 0;  // distinct
  bool failed = false;
};

class PresenceStore {
 public:
  class Set {
   public:
    virtual ~Set() = default;
    virtual void Add(std::string_view client, std::string_view user, std::string_view info) = 0;
    virtual void Remove(std::string_view client) = 0;
    virtual std::optional<PresenceList> List(Completion<PresenceList> done) = 0;
    virtual std::optional<PresenceCounts> Stats(Completion<PresenceCounts> done) = 0;
    // This process's entries (reclaim, /metrics).
    virtual size_t size() const = 0;
    bool empty() const { return size() == 0; }
  };

  virtual ~PresenceStore() = default;
  virtual const char* name() const = 0;
  // Under the channel's shard lock.
  virtual std::unique_ptr<Set> Open(std::string_view channel) = 0;
};

}  // namespace hermod::core
