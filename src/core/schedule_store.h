// Scheduled delivery behind an interface: a server API publish or broadcast held until its
// time (`delay` or `deliver_at`), then published as if the API call came then. Implemented
// in store/ (`memory`: lost on restart; `sqlite`: in the engine's file, written by its
// writer thread). core::Scheduler keeps every pending one in memory, orders them by time
// and fires them; the store only keeps them across restarts, so it is asked for all of them
// once at start (Load), then told of each new one (Put) and each fired or cancelled (Remove).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hermod::core {

struct ScheduledPublication {
  std::string id;
  std::string method;                 // "publish" or "broadcast"
  std::vector<std::string> channels;  // publish's one, broadcast's all (for `scheduled`)
  std::string params;                 // the API call's body, as it came
  int64_t deliver_at_ms = 0;          // Unix time
  int64_t created_ms = 0;             // Unix time
};

// The idempotency key a firing publishes with when its call has none of its own. A durable
// engine keeps such a key with the publication (in the append's transaction), not for
// idempotency_window: sqlite until the schedule is forgotten, nats as long as the publication
// is stored (the channel's stream, the inbox entry's record). A firing repeated after a crash
// then publishes nothing; one to a channel without history has nothing to keep it with but
// memory: with nats, each node that delivered it keeps the key for idempotency_window
// (README, Scheduled delivery). The API refuses it as a caller's key.
inline constexpr std::string_view kFireKeyPrefix = "hermod-schedule:";
inline std::string FireKey(std::string_view id) {
  return std::string(kFireKeyPrefix) + std::string(id);
}
inline bool IsFireKey(std::string_view key) { return key.starts_with(kFireKeyPrefix); }

class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;
  virtual const char* name() const = 0;
  // false: kept in this process only (a restart loses them).
  virtual bool durable() const = 0;
  // Every stored one, at start, before any Put. false with *error when the store fails.
  virtual bool Load(std::vector<ScheduledPublication>* out, std::string* error) = 0;
  // done(stored) from any thread, once stored (on disk for a durable store); never blocks.
  virtual void Put(const ScheduledPublication& s, std::function<void(bool)> done) = 0;
  // Forgets one (fired or cancelled), with the fire keys (FireKey) its publications kept;
  // done(removed) as Put's, done may be empty.
  virtual void Remove(const std::string& id, std::function<void(bool)> done) = 0;

  // A store shared by a cluster's nodes (`nats`): what the other nodes add and remove,
  // told from the store's thread after Load. Called once, before Load; the others ignore it.
  struct Changes {
    std::function<void(ScheduledPublication)> added;
    std::function<void(const std::string& id)> removed;
  };
  virtual void Watch(Changes) {}
  // Right before firing id, on the scheduler's thread (may block briefly): kTaken when
  // another node has claimed it (it fires there; asked again after lease_ms, in case that
  // node died before it was done), kGone when it is no longer stored (fired or cancelled).
  enum class Claimed { kMine, kTaken, kGone };
  virtual Claimed Claim(const std::string&) { return Claimed::kMine; }
  virtual uint64_t lease_ms() const { return 0; }
};

}  // namespace hermod::core
