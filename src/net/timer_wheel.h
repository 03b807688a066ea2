// A hashed timer wheel (Varghese & Lauck): O(1) schedule and cancel, and each tick touches
// one slot. Every connection has exactly one timer (its next deadline: handshake, ping,
// pong or idle), so tens of thousands of timers cost one intrusive node each and no heap.
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
  // Milliseconds until the next tick that has work, or -1 when no timer is scheduled.
  int NextTimeoutMs(uint64_t now_ms) const;
  size_t size() const { return count_; }

 private:
  struct Head final : TimerNode {
    void OnTimer() override {}
  };
  void Link(TimerNode* node);
  void CollectDue(Head& slot, Head& due);
  void FireDue(Head& due);

  std::array<Head, kSlots> slots_;
  uint64_t current_tick_;
  size_t count_ = 0;
};

}  // namespace hermod::net
