// A push encoded once for every subscriber: the unit the hub fans out. The hub makes one per
// publication (or join/leave) through PushCodec, posts it to each loop with subscribers, and
// each loop queues it to every local subscriber by reference. It is immutable once built and
// shared across loops, so its refcount is atomic (intrusive, like net::Chunk, which it
// usually wraps).
//
// Why an interface here: how a push is queued depends on the subscriber's transport and is
// not core's business (core never includes ws/ or proto/). proto's PreparedPush holds the
// JSON once and its form per transport kind (the WebSocket frame and its deflated form,
// compressed once for every permessage-deflate receiver on every loop); the subscriber
// knows its transport (proto/transport.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "net/connection.h"

namespace hermod::core {

struct Subscription;

class Push {
 public:
  Push(const Push&) = delete;
  Push& operator=(const Push&) = delete;

  void Ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // Queues the push to a subscriber (on its connection's loop), by reference, with its
  // priority (kShed: backpressure left it out).
  virtual net::SendStatus SendTo(Subscription& subscriber, net::PushClass push = {}) const = 0;
  // The message's length (its JSON), which bounds coalescing.
  virtual size_t size() const = 0;
  // For the publish-to-queue latency metric: when Hub::Publish began, on
  // net::Loop::MonotonicUs's clock; 0 for a push that is no publication (join, leave). Set
  // before the push is shared, read-only after.
  uint64_t published_us() const { return published_us_; }
  void set_published_us(uint64_t us) { published_us_ = us; }
  // Unique per push (an address may be reused once a push is freed): the metrics tell one
  // push's run of deliveries from the next by it. One relaxed increment per push made.
  uint64_t id() const { return id_; }

 protected:
  Push() = default;
  virtual ~Push() = default;

 private:
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  mutable std::atomic<uint32_t> refs_{1};
  uint64_t published_us_ = 0;
  const uint64_t id_ = NextId();
};

}  // namespace hermod::core
