// A log-linear (HDR-style) histogram of nanosecond values.
//
// Values below 256 have a bucket each; above, every power of two is split into 128 equal
// buckets, so a recorded value is known to within 1/128 (< 0.8 %) of itself across the whole
// 64-bit range, in a fixed 7,424-slot array. Recording is an index computation and an
// increment: no allocation, no branch on the value's magnitude beyond a count-leading-zeros.
// Two histograms merge exactly by adding counts, which is how per-loop and per-process results
// are combined; the bucket layout is fixed, so serialised counts from another process merge
// the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace hermod::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSubCount = uint64_t{1} << kSubBits;  // buckets per power of two
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSubCount;

  Histogram();

  void Record(uint64_t value) { RecordN(value, 1); }
  void RecordN(uint64_t value, uint64_t n);
  void Merge(const Histogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const;
  // The value at quantile q in [0, 1]: the middle of the bucket holding the ceil(q * count)-th
  // smallest value, clamped to [min, max]. 0 when empty.
  uint64_t ValueAt(double q) const;

  static size_t IndexOf(uint64_t value);
  static uint64_t LowestIn(size_t index);
  static uint64_t WidthOf(size_t index);

  // Non-zero buckets as (index, count), for reports and for merging across processes.
  std::vector<std::pair<uint32_t, uint64_t>> NonZero() const;
  // Rebuilds from NonZero() output plus the exact extremes and sum; false on a bad index.
  bool Restore(const std::vector<std::pair<uint32_t, uint64_t>>& buckets, uint64_t min,
               uint64_t max, double sum);
  double sum() const { return sum_; }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace hermod::bench
