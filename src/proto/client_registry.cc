#include "proto/client_registry.h"

#include <algorithm>
#include <cassert>

#include "proto/client_session.h"

namespace hermod::proto {

ClientRegistry::ClientRegistry(size_t loops) {
  for (size_t i = 0; i < std::max<size_t>(loops, 1); ++i) {
    loops_.push_back(std::make_unique<ByUser>());
  }
}

ClientRegistry::ByUser& ClientRegistry::OnLoop(net::Loop& loop) {
  assert(loop.InThisThread());
  const auto index = static_cast<size_t>(loop.index());
  assert(index < loops_.size() && "a loop the registry was not sized for");
  return *loops_[index < loops_.size() ? index : 0];
}

void ClientRegistry::Add(ClientSession& session) {
  OnLoop(session.loop())[session.user()].Insert(&session);
  std::lock_guard lock(mutex_);
  ++clients_;
  ++users_[session.user()];
}

void ClientRegistry::Remove(ClientSession& session) {
  ByUser& by_user = OnLoop(session.loop());
  auto found = by_user.find(session.user());
  assert(found != by_user.end() && "a session removed that was not added");
  if (found != by_user.end()) {
    const bool erased = found->second.Erase(&session);
    assert(erased && "a session removed that was not added");
    (void)erased;
    if (found->second.empty()) by_user.erase(found);
  }
  std::lock_guard lock(mutex_);
  --clients_;
  auto it = users_.find(session.user());
  if (it != users_.end() && --it->second == 0) users_.erase(it);
}

std::pair<size_t, size_t> ClientRegistry::Get() const {
  std::lock_guard lock(mutex_);
  return {clients_, users_.size()};
}

void ClientRegistry::ForEachOfUser(net::Loop& loop, std::string_view user, std::string_view client,
                                   const std::function<void(ClientSession&)>& fn) {
  ByUser& by_user = OnLoop(loop);
  auto found = by_user.find(user);
  if (found == by_user.end()) return;
  // A copy: fn may disconnect a session, which leaves the list (the session itself is freed
  // only at the end of the loop's iteration).
  const std::vector<ClientSession*> sessions = found->second.Members();
  for (ClientSession* s : sessions) {
    if (s->connected() && (client.empty() || s->client_id() == client)) fn(*s);
  }
}

}  // namespace hermod::proto
