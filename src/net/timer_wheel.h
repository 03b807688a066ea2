// A hashed timer wheel (Varghese & Lauck): O(1) schedule and cancel, and each tick touches
// one slot. Every connection has exactly one timer (its next deadline: handshake, ping,
// pong or idle), so tens of thousands of timers cost one intrusive node each and no heap.
//
// The next deadline is found in O(1): a bitmap marks the slots that hold timers, and the
// search for the next non-empty slot reads at most two of its words (the loop asks on every
// iteration; walking empty slots cost a busy loop ~460 instructions a message).
//
// Time is passed in, never read here: the loop supplies its clock, tests supply theirs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace hermod::net {

class TimerNode {
 public:
  virtual ~TimerNode() = default;
  virtual void OnTimer() = 0;
  bool scheduled() const { return prev_ != nullptr; }

 private:
  friend class TimerWheel;
  TimerNode* prev_ = nullptr;
  TimerNode* next_ = nullptr;
  uint64_t expiry_tick_ = 0;
};

class TimerWheel {
 public:
  static constexpr uint64_t kTickMs = 10;
  static constexpr size_t kSlots = 1024;  // one lap: 10.24 s; longer timers wait for laps

  explicit TimerWheel(uint64_t now_ms);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // (Re)schedules node to fire delay_ms from now (rounded up to the next tick).
  void Schedule(TimerNode* node, uint64_t delay_ms);
  void Cancel(TimerNode* node);
  // Fires every timer due at or before now_ms. A fired timer may reschedule itself.
  void Advance(uint64_t now_ms);
  // Milliseconds until the next tick whose slot holds a timer, looking kLookAhead - 1 ticks
  // ahead at most (an idle loop with timers far away wakes once per kLookAhead ticks; a
  // slot's timer may belong to a later lap, which only wakes the loop early); -1 when no
  // timer is scheduled.
  int NextTimeoutMs(uint64_t now_ms) const;
  static constexpr uint64_t kLookAhead = 64;
  size_t size() const { return count_; }

 private:
  struct Head final : TimerNode {
    void OnTimer() override {}
  };
  static constexpr size_t kWords = kSlots / 64;
  static_assert(kSlots % 64 == 0 && kLookAhead <= 64 + 1);
  void Link(TimerNode* node);
  void CollectDue(size_t slot, Head& due);
  void FireDue(Head& due);
  // Clears the slot's bit once its list is empty.
  void Settle(size_t slot) {
    if (slots_[slot].next_ == &slots_[slot]) occupied_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  }

  std::array<Head, kSlots> slots_;
  std::array<uint64_t, kWords> occupied_{};  // bit s: slots_[s] holds a timer
  uint64_t current_tick_;
  size_t count_ = 0;
};

}  // namespace hermod::net
