#include "histogram.h"

#include <algorithm>
#include <cmath>

namespace hermod::bench {

Histogram::Histogram() : counts_(kBuckets, 0) {}

size_t Histogram::IndexOf(uint64_t value) {
  if (value < 2 * kSubCount) return static_cast<size_t>(value);
  int msb = 63 - __builtin_clzll(value);
  int shift = msb - kSubBits;          // >= 1 here
  uint64_t mantissa = value >> shift;  // in [kSubCount, 2 * kSubCount)
  return static_cast<size_t>(shift) * kSubCount + static_cast<size_t>(mantissa);
}

uint64_t Histogram::LowestIn(size_t index) {
  if (index < 2 * kSubCount) return index;
  size_t shift = index / kSubCount - 1;
  uint64_t mantissa = index - shift * kSubCount;
  return mantissa << shift;
}

uint64_t Histogram::WidthOf(size_t index) {
  if (index < 2 * kSubCount) return 1;
  return uint64_t{1} << (index / kSubCount - 1);
}

void Histogram::RecordN(uint64_t value, uint64_t n) {
  if (n == 0) return;
  counts_[IndexOf(value)] += n;
  count_ += n;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value) * static_cast<double>(n);
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::Clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

double Histogram::mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

uint64_t Histogram::ValueAt(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      uint64_t mid = LowestIn(i) + (WidthOf(i) - 1) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::vector<std::pair<uint32_t, uint64_t>> Histogram::NonZero() const {
  std::vector<std::pair<uint32_t, uint64_t>> out;
  for (size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i]) out.emplace_back(static_cast<uint32_t>(i), counts_[i]);
  }
  return out;
}

bool Histogram::Restore(const std::vector<std::pair<uint32_t, uint64_t>>& buckets, uint64_t min,
                        uint64_t max, double sum) {
  Clear();
  for (const auto& [index, n] : buckets) {
    if (index >= kBuckets) return false;
    counts_[index] += n;
    count_ += n;
  }
  if (count_ == 0) return true;
  min_ = min;
  max_ = max;
  sum_ = sum;
  return true;
}

}  // namespace hermod::bench
