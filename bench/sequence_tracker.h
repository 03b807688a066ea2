// Loss and duplicate detection for one receiving connection.
//
// Each publisher numbers its messages 0, 1, 2, ... and every transport measured here (one TCP
// connection per publisher and per subscriber, a server that keeps per-publisher order) keeps
// that order. So a receiver only needs the next sequence number it expects from each
// publisher: a higher one means the messages in between were lost, a lower one means a
// message came again. A receiver hears from few publishers (one in fan-out and echo, one per
// channel otherwise), so the state is a small flat vector searched linearly.
#pragma once

#include <cstdint>
#include <vector>

namespace hermod::bench {

class SequenceTracker {
 public:
  struct Outcome {
    uint64_t lost = 0;       // sequence numbers skipped before this one
    bool duplicate = false;  // this one (or a later one) was seen before
  };

  Outcome Observe(uint32_t publisher, uint64_t seq);

 private:
  struct Expected {
    uint32_t publisher;
    uint64_t next;
  };
  std::vector<Expected> expected_;
};

}  // namespace hermod::bench
