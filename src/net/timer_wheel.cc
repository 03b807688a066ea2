#include "net/timer_wheel.h"

#include <algorithm>

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
}

void TimerWheel::Advance(uint64_t now_ms) {
  const uint64_t target = now_ms / kTickMs;
  while (current_tick_ < target) {
    ++current_tick_;
    Head& head = slots_[current_tick_ % kSlots];
    // Move the due nodes to a local list first: a callback may reschedule into this slot or
    // cancel any other timer, and both must stay safe.
    Head due;
    due.prev_ = due.next_ = &due;
    for (TimerNode* node = head.next_; node != &head;) {
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
    while (due.next_ != &due) {
      TimerNode* node = due.next_;
      Cancel(node);
      node->OnTimer();
    }
    if (count_ == 0) current_tick_ = target;
  }
}

int TimerWheel::NextTimeoutMs(uint64_t now_ms) const {
  if (count_ == 0) return -1;
  // The next tick boundary; the loop wakes once per tick while timers exist. Cheap: one
  // wake-up per 10 ms per loop, not per timer.
  const uint64_t next_ms = (current_tick_ + 1) * kTickMs;
  return next_ms > now_ms ? static_cast<int>(next_ms - now_ms) : 0;
}

}  // namespace hermod::net
