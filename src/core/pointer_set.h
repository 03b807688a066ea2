// A set of pointers with O(1) insert and erase in about a vector's memory: open addressing
// with linear probing and backward-shift deletion (no tombstones), a power-of-two table kept
// between 3/16 and 3/4 full. For an index whose entries leave in any order, such as a loop's
// anonymous sessions: a vector's erase scans and shifts the whole list, so a mass disconnect of
// n clients cost O(n^2); an entry here costs no more bytes than a vector's amortised 8-16.
// Not thread-safe; order of iteration is unspecified.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace hermod::core {

template <class T>
class PointerSet {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return slots_ ? mask_ + 1 : 0; }

  // p must not be null nor already in the set.
  void Insert(T* p) {
    assert(p != nullptr);
    if ((size_ + 1) * 4 > capacity() * 3) Resize(capacity() == 0 ? 2 : capacity() * 2);
    Place(p);
    ++size_;
  }

  // false when p is not in the set.
  bool Erase(T* p) {
    if (size_ == 0) return false;
    size_t i = Home(p);
    while (slots_[i] != p) {
      if (slots_[i] == nullptr) return false;
      i = (i + 1) & mask_;
    }
    // Backward shift: each later entry of the run that may sit in the hole moves into it, so
    // that a probe never stops early at an emptied slot.
    for (size_t j = (i + 1) & mask_; slots_[j] != nullptr; j = (j + 1) & mask_) {
      const size_t home = Home(slots_[j]);
      // The entry at j may move to i only if its home is not in the cyclic range (i, j].
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = nullptr;
    --size_;
    // Give memory back after a mass departure (a quarter of the 3/4 bound; never below 2).
    if (capacity() > 2 && size_ * 16 < capacity() * 3) Resize(capacity() / 2);
    return true;
  }

  bool Contains(T* p) const {
    if (size_ == 0) return false;
    for (size_t i = Home(p); slots_[i] != nullptr; i = (i + 1) & mask_) {
      if (slots_[i] == p) return true;
    }
    return false;
  }

  // A copy of the members, for a walk during which members may leave.
  std::vector<T*> Members() const {
    std::vector<T*> out;
    out.reserve(size_);
    for (size_t i = 0; size_ != 0 && i <= mask_; ++i) {
      if (slots_[i] != nullptr) out.push_back(slots_[i]);
    }
    return out;
  }

 private:
  size_t Home(const T* p) const {
    // Fibonacci hashing of the address: its low bits are alignment, its high bits shared.
    const uint64_t h = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)) * 0x9E3779B97F4A7C15u;
    return static_cast<size_t>(h >> 32) & mask_;
  }

  void Place(T* p) {
    size_t i = Home(p);
    while (slots_[i] != nullptr) i = (i + 1) & mask_;
    slots_[i] = p;
  }

  void Resize(size_t capacity) {
    std::unique_ptr<T*[]> old = std::move(slots_);
    const size_t old_capacity = old ? mask_ + 1 : 0;
    slots_ = std::make_unique<T*[]>(capacity);  // value-initialised: all null
    mask_ = capacity - 1;
    for (size_t i = 0; i < old_capacity; ++i) {
      if (old[i] != nullptr) Place(old[i]);
    }
  }

  std::unique_ptr<T*[]> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace hermod::core
