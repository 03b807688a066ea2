#include "net/timer_wheel.h"

#include <algorithm>
#include <bit>

namespace hermod::net {

TimerWheel::TimerWheel(uint64_t now_ms) : current_tick_(now_ms / kTickMs) {
  for (Head& head : slots_) {
    head.prev_ = &head;
    head.next_ = &head;
  }
}

void TimerWheel::Link(TimerNode* node) {
  Head& head = slots_[node->expiry_tick_ % kSlots];
  node->prev_ = head.prev_;
  node->next_ = &head;
  head.prev_->next_ = node;
  head.prev_ = node;
  const size_t slot = node->expiry_tick_ % kSlots;
  occupied_[slot / 64] |= uint64_t{1} << (slot % 64);
  ++count_;
}

void TimerWheel::Schedule(TimerNode* node, uint64_t delay_ms) {
  Cancel(node);
  node->expiry_tick_ = current_tick_ + std::max<uint64_t>(1, (delay_ms + kTickMs - 1) / kTickMs);
  Link(node);
}

void TimerWheel::Cancel(TimerNode* node) {
  if (!node->scheduled()) return;
  node->prev_->next_ = node->next_;
  node->next_->prev_ = node->prev_;
  node->prev_ = node->next_ = nullptr;
  --count_;
  // A node of FireDue's local list has left its slot already; settling it again is harmless.
  Settle(node->expiry_tick_ % kSlots);
}

void TimerWheel::CollectDue(size_t index, Head& due) {
  Head& slot = slots_[index];
  for (TimerNode* node = slot.next_; node != &slot;) {
    TimerNode* next = node->next_;
    if (node->expiry_tick_ <= current_tick_) {
      node->prev_->next_ = node->next_;
      node->next_->prev_ = node->prev_;
      node->prev_ = due.prev_;
      node->next_ = &due;
      due.prev_->next_ = node;
      due.prev_ = node;
    }
    node = next;
  }
  Settle(index);
}

void TimerWheel::FireDue(Head& due) {
  while (due.next_ != &due) {
    TimerNode* node = due.next_;
    Cancel(node);
    node->OnTimer();
  }
}

void TimerWheel::Advance(uint64_t now_ms) {
  const uint64_t target = now_ms / kTickMs;
  if (count_ == 0 || target <= current_tick_) {
    current_tick_ = std::max(current_tick_, target);
    return;
  }
  // Due nodes move to a local list before any fires: a callback may reschedule into the
  // slot being walked or cancel any other timer, and both must stay safe.
  Head due;
  due.prev_ = due.next_ = &due;
  if (target - current_tick_ >= kSlots) {
    // More than a lap behind (a stalled loop): one sweep of every slot, not one per tick.
    current_tick_ = target;
    for (size_t slot = 0; slot < kSlots; ++slot) CollectDue(slot, due);
    FireDue(due);
    return;
  }
  while (current_tick_ < target) {
    ++current_tick_;
    CollectDue(current_tick_ % kSlots, due);
    FireDue(due);
  }
}

int TimerWheel::NextTimeoutMs(uint64_t now_ms) const {
  if (count_ == 0) return -1;
  // The first marked slot after the current tick: the bits from there to the end of its
  // word, then the next word (64 more slots, past the look-ahead).
  const size_t start = (current_tick_ + 1) % kSlots;
  const size_t word = start / 64;
  const size_t bit = start % 64;
  uint64_t distance;
  if (const uint64_t here = occupied_[word] >> bit; here != 0) {
    distance = static_cast<uint64_t>(std::countr_zero(here));
  } else if (const uint64_t next = occupied_[(word + 1) % kWords]; next != 0) {
    distance = 64 - bit + static_cast<uint64_t>(std::countr_zero(next));
  } else {
    distance = kLookAhead - 1;
  }
  const uint64_t tick = current_tick_ + 1 + std::min<uint64_t>(distance, kLookAhead - 1);
  const uint64_t next_ms = tick * kTickMs;
  return next_ms > now_ms ? static_cast<int>(next_ms - now_ms) : 0;
}

}  // namespace hermod::net
