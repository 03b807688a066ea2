#include "sequence_tracker.h"

namespace hermod::bench {

SequenceTracker::Outcome SequenceTracker::Observe(uint32_t publisher, uint64_t seq) {
  Outcome outcome;
  for (Expected& e : expected_) {
    if (e.publisher != publisher) continue;
    if (seq < e.next) {
      outcome.duplicate = true;
    } else {
      outcome.lost = seq - e.next;
      e.next = seq + 1;
    }
    return outcome;
  }
  // First message from this publisher: everything before it was lost (subscriptions are
  // complete before the first publication, so message 0 is always expected).
  outcome.lost = seq;
  expected_.push_back({publisher, seq + 1});
  return outcome;
}

}  // namespace hermod::bench
