// How a store engine answers: at once, or later through the caller's loop.
//
// The store interfaces (history_store.h, presence_store.h, idempotency_store.h) return an
// answer they have at once as a value (the memory engine always does, under the hub's shard
// lock, with no allocation for the callback's sake), and otherwise return nothing and call
// the Completion they were given, later, from whatever thread the engine runs on (a SQLite
// writer, libnats's threads). A Completion made with a loop runs the callback on that loop,
// through its mailbox (net::Loop::Post), so the caller's state is touched only by its own
// thread; one made with a liveness handle runs it only while the handle's owner is alive (a
// connection may close while a read is in flight). One made without a loop runs the
// callback on the completing thread: the hub uses that to fan out in offset order.
#pragma once

#include <functional>
#include <memory>
#include <utility>

#include "net/event_loop.h"

namespace hermod::core {

template <class T>
class Completion {
 public:
  using Fn = std::function<void(T)>;
  Completion() = default;
  // Runs fn on the thread that completes.
  explicit Completion(Fn fn) : fn_(std::move(fn)) {}
  // Runs fn on loop; with alive, only if its owner still lives when the task runs.
  Completion(net::Loop& loop, Fn fn) : loop_(&loop), fn_(std::move(fn)) {}
  Completion(net::Loop& loop, std::weak_ptr<const void> alive, Fn fn)
      : loop_(&loop), alive_(std::move(alive)), guarded_(true), fn_(std::move(fn)) {}

  explicit operator bool() const { return static_cast<bool>(fn_); }

  // Once. From any thread.
  void operator()(T result) {
    if (!fn_) return;
    if (loop_ == nullptr) {
      std::exchange(fn_, nullptr)(std::move(result));
      return;
    }
    loop_->Post([alive = std::move(alive_), guarded = guarded_, fn = std::exchange(fn_, nullptr),
                 result = std::move(result)]() mutable {
      if (guarded && alive.expired()) return;  // the requester is gone: nobody to tell
      fn(std::move(result));
    });
  }

 private:
  net::Loop* loop_ = nullptr;
  std::weak_ptr<const void> alive_;
  bool guarded_ = false;
  Fn fn_;
};

}  // namespace hermod::core
