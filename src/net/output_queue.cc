#include "net/output_queue.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace hermod::net {

namespace {
// Standard-size chunks freed on this thread, reused before asking malloc: a busy connection
// takes and returns one every loop iteration. Bounded, so an idle server holds little.
struct ChunkCache {
  static constexpr size_t kMax = 8;
  void* free[kMax];
  size_t count = 0;
  ~ChunkCache() {
    while (count > 0) ::operator delete(free[--count]);
  }
};
thread_local ChunkCache chunk_cache;
}  // namespace

Chunk* Chunk::Create(size_t capacity) {
  void* memory;
  if (capacity == OutputQueue::kChunkBytes && chunk_cache.count > 0) {
    memory = chunk_cache.free[--chunk_cache.count];
  } else {
    memory = ::operator new(sizeof(Chunk) + capacity);
  }
  return new (memory) Chunk(capacity);
}

void Chunk::Destroy(Chunk* chunk) {
  const bool standard = chunk->capacity_ == OutputQueue::kChunkBytes;
  chunk->~Chunk();
  if (standard && chunk_cache.count < ChunkCache::kMax) {
    chunk_cache.free[chunk_cache.count++] = chunk;
  } else {
    ::operator delete(chunk);
  }
}

void Chunk::Append(std::string_view bytes) {
  if (bytes.empty()) return;  // an empty view may carry a null pointer
  std::memcpy(data() + size_, bytes.data(), bytes.size());
  size_ += static_cast<uint32_t>(bytes.size());
}

namespace {
struct QueuePool {
  static constexpr size_t kMax = 1024;
  std::vector<OutputQueue*> free;
  ~QueuePool() {
    for (OutputQueue* q : free) delete q;
  }
};
thread_local QueuePool queue_pool;
}  // namespace

void OutputQueueRecycler::operator()(OutputQueue* queue) const {
  queue->Clear();
  queue->set_account(nullptr);
  if (queue_pool.free.size() < QueuePool::kMax) {
    queue_pool.free.push_back(queue);
  } else {
    delete queue;
  }
}

OutputQueuePtr NewOutputQueue() {
  if (!queue_pool.free.empty()) {
    OutputQueue* q = queue_pool.free.back();
    queue_pool.free.pop_back();
    return OutputQueuePtr(q);
  }
  return OutputQueuePtr(new OutputQueue());
}

void OutputQueue::Clear() {
  const size_t freed = footprint();
  for (size_t i = head_; i < items_.size(); ++i) items_[i].chunk->Unref();
  items_.clear();
  head_ = 0;
  partial_ = false;
  lane_count_.fill(0);
  bytes_ = 0;
  owned_bytes_ = 0;
  Charge(-static_cast<ptrdiff_t>(freed));
}

OutputQueue::~OutputQueue() { Clear(); }

size_t OutputQueue::DropUnsent() {
  const size_t before = cost();
  const size_t footprint_before = footprint();
  const size_t keep = partial_ ? head_ + 1 : head_;
  for (size_t i = keep; i < items_.size(); ++i) {
    const Item& item = items_[i];
    bytes_ -= item.end - item.begin;
    if (item.stamp == kOwned) owned_bytes_ -= item.end - item.begin;
    item.chunk->Unref();
  }
  if (partial_) {
    items_.resize(keep);
  } else {
    items_.clear();
    head_ = 0;
  }
  lane_count_.fill(0);
  Charge(-static_cast<ptrdiff_t>(footprint_before - footprint()));
  return before - cost();
}

size_t OutputQueue::LaneBegin(size_t lane) const {
  size_t begin = partial_ ? head_ + 1 : head_;
  for (size_t l = 0; l < lane; ++l) begin += lane_count_[l];
  return begin;
}

// Inlined into the appends: as a call it cost 4 ns a push (BM_LoopDeliver/100).
[[gnu::always_inline]] inline void OutputQueue::Insert(Lane lane, const Item& item) {
  const size_t after = ItemsAfter(static_cast<size_t>(lane));
  ++lane_count_[static_cast<size_t>(lane)];
  if (after == 0) {
    items_.push_back(item);  // the common case: nothing of lower priority is waiting
  } else {
    items_.insert(items_.end() - static_cast<ptrdiff_t>(after), item);
  }
}

void OutputQueue::Append(std::string_view head, std::string_view body, Lane lane) {
  const size_t total = head.size() + body.size();
  if (total == 0) return;
  bytes_ += total;
  owned_bytes_ += total;
  if (lane_count_[static_cast<size_t>(lane)] > 0) {
    Item& tail = items_[items_.size() - ItemsAfter(static_cast<size_t>(lane)) - 1];
    // Grow the lane's tail item in place when it holds this queue's own bytes, it alone owns
    // its chunk, the item ends where the chunk's bytes end, and everything fits.
    if (tail.stamp == kOwned && !tail.chunk->shared() && tail.end == tail.chunk->size() &&
        tail.chunk->room() >= total) {
      tail.chunk->Append(head);
      tail.chunk->Append(body);
      tail.end += static_cast<uint32_t>(total);
      Charge(static_cast<ptrdiff_t>(total));
      return;
    }
  }
  Chunk* chunk = Chunk::Create(std::max(kChunkBytes, total));
  chunk->Append(head);
  chunk->Append(body);
  Insert(lane, {chunk, 0, static_cast<uint32_t>(total), 0, kOwned});
  Charge(static_cast<ptrdiff_t>(total + kItemOverhead));
}

void OutputQueue::AppendShared(Chunk* chunk, size_t offset, size_t len, Lane lane, uint64_t key,
                               uint64_t now_ms) {
  if (len == 0) return;
  chunk->Ref();
  Insert(lane,
         {chunk, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset + len), key, now_ms});
  bytes_ += len;
  Charge(static_cast<ptrdiff_t>(kItemOverhead));  // the frame is shared, not this queue's
}

bool OutputQueue::Replace(Lane lane, uint64_t key, Chunk* chunk, size_t offset, size_t len) {
  const size_t id = static_cast<size_t>(lane);
  const size_t end = items_.size() - ItemsAfter(id);
  const size_t stop = end - std::min<size_t>(lane_count_[id], kReplaceScan);
  for (size_t i = end; i > stop; --i) {
    Item& item = items_[i - 1];
    if (item.key != key) continue;
    const ptrdiff_t delta = static_cast<ptrdiff_t>(len) - (item.end - item.begin);
    chunk->Ref();
    item.chunk->Unref();
    item.chunk = chunk;
    item.begin = static_cast<uint32_t>(offset);
    item.end = static_cast<uint32_t>(offset + len);
    bytes_ = static_cast<size_t>(static_cast<ptrdiff_t>(bytes_) + delta);
    return true;
  }
  return false;
}

uint64_t OutputQueue::UrgentSinceMs() const {
  uint64_t since = 0;
  size_t begin = LaneBegin(static_cast<size_t>(Lane::kCritical));
  for (Lane lane : {Lane::kCritical, Lane::kHigh}) {
    const size_t count = lane_count_[static_cast<size_t>(lane)];
    if (count > 0 && (since == 0 || items_[begin].stamp < since)) since = items_[begin].stamp;
    begin += count;  // kHigh's run follows kCritical's
  }
  return since;
}

int OutputQueue::Gather(iovec* iov, int max_iov) const {
  int n = 0;
  for (size_t i = head_; i < items_.size() && n < max_iov; ++i, ++n) {
    iov[n].iov_base = const_cast<char*>(items_[i].chunk->data()) + items_[i].begin;
    iov[n].iov_len = items_[i].end - items_[i].begin;
  }
  return n;
}

void OutputQueue::PopFront() {
  ++head_;
  if (head_ == items_.size()) {
    items_.clear();
    head_ = 0;
  } else if (head_ > 64 && head_ * 2 > items_.size()) {
    items_.erase(items_.begin(), items_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
}

void OutputQueue::Consume(size_t n) {
  const size_t before = footprint();
  bytes_ -= n;
  while (n > 0) {
    Item& item = items_[head_];
    const size_t len = item.end - item.begin;
    if (item.stamp == kOwned) owned_bytes_ -= std::min(n, len);
    if (!partial_) {
      // The first item leaves its lane (the first one holding any): begun, it is written
      // first from now on whatever is queued ahead of its lane later.
      size_t lane = 0;
      while (lane_count_[lane] == 0) ++lane;
      --lane_count_[lane];
    }
    if (n < len) {
      item.begin += static_cast<uint32_t>(n);
      partial_ = true;
      break;
    }
    n -= len;
    item.chunk->Unref();
    partial_ = false;
    PopFront();
  }
  Charge(static_cast<ptrdiff_t>(footprint()) - static_cast<ptrdiff_t>(before));
}

}  // namespace hermod::net
