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
  if (has_partial_) partial_.chunk->Unref();
  has_partial_ = false;
  for (LaneQueue& lane : lanes_) {
    for (size_t i = lane.head; i < lane.items.size(); ++i) lane.items[i].chunk->Unref();
    lane.items.clear();
    lane.head = 0;
  }
  bytes_ = 0;
  items_ = 0;
  owned_bytes_ = 0;
  Charge(-static_cast<ptrdiff_t>(freed));
}

OutputQueue::~OutputQueue() { Clear(); }

size_t OutputQueue::DropUnsent() {
  const size_t before = cost();
  const size_t footprint_before = footprint();
  for (LaneQueue& lane : lanes_) {
    for (size_t i = lane.head; i < lane.items.size(); ++i) {
      bytes_ -= lane.items[i].end - lane.items[i].begin;
      if (lane.items[i].stamp == kOwned) owned_bytes_ -= lane.items[i].end - lane.items[i].begin;
      --items_;
      lane.items[i].chunk->Unref();
    }
    lane.items.clear();
    lane.head = 0;
  }
  Charge(-static_cast<ptrdiff_t>(footprint_before - footprint()));
  return before - cost();
}

void OutputQueue::Append(std::string_view head, std::string_view body, Lane lane_id) {
  const size_t total = head.size() + body.size();
  if (total == 0) return;
  bytes_ += total;
  LaneQueue& lane = lanes_[static_cast<size_t>(lane_id)];
  if (!lane.empty()) {
    Item& tail = lane.items.back();
    // Grow the tail item in place when this queue alone owns its chunk, the item ends where
    // the chunk's bytes end, and everything fits.
    if (!tail.chunk->shared() && tail.end == tail.chunk->size() && tail.chunk->room() >= total) {
      tail.chunk->Append(head);
      tail.chunk->Append(body);
      tail.end += static_cast<uint32_t>(total);
      owned_bytes_ += total;
      Charge(static_cast<ptrdiff_t>(total));
      return;
    }
  }
  Chunk* chunk = Chunk::Create(std::max(kChunkBytes, total));
  chunk->Append(head);
  chunk->Append(body);
  lane.items.push_back({chunk, 0, static_cast<uint32_t>(total), 0, kOwned});
  ++items_;
  owned_bytes_ += total;
  Charge(static_cast<ptrdiff_t>(total + kItemOverhead));
}

void OutputQueue::AppendShared(Chunk* chunk, size_t offset, size_t len, Lane lane_id, uint64_t key,
                               uint64_t now_ms) {
  if (len == 0) return;
  chunk->Ref();
  lanes_[static_cast<size_t>(lane_id)].items.push_back(
      {chunk, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset + len), key, now_ms});
  bytes_ += len;
  ++items_;
  Charge(static_cast<ptrdiff_t>(kItemOverhead));  // the frame is shared, not this queue's
}

bool OutputQueue::Replace(Lane lane_id, uint64_t key, Chunk* chunk, size_t offset, size_t len) {
  LaneQueue& lane = lanes_[static_cast<size_t>(lane_id)];
  const size_t stop = lane.size() > kReplaceScan ? lane.items.size() - kReplaceScan : lane.head;
  for (size_t i = lane.items.size(); i > stop; --i) {
    Item& item = lane.items[i - 1];
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

size_t OutputQueue::lane_items(Lane lane) const { return lanes_[static_cast<size_t>(lane)].size(); }

uint64_t OutputQueue::UrgentSinceMs() const {
  uint64_t since = 0;
  for (Lane id : {Lane::kCritical, Lane::kHigh}) {
    const LaneQueue& lane = lanes_[static_cast<size_t>(id)];
    if (lane.empty()) continue;
    const uint64_t stamp = lane.items[lane.head].stamp;
    if (since == 0 || stamp < since) since = stamp;
  }
  return since;
}

int OutputQueue::Gather(iovec* iov, int max_iov) const {
  int n = 0;
  auto add = [&](const Item& item) {
    iov[n].iov_base = const_cast<char*>(item.chunk->data()) + item.begin;
    iov[n].iov_len = item.end - item.begin;
    ++n;
  };
  if (has_partial_ && n < max_iov) add(partial_);
  for (const LaneQueue& lane : lanes_) {
    for (size_t i = lane.head; i < lane.items.size() && n < max_iov; ++i) add(lane.items[i]);
  }
  return n;
}

void OutputQueue::PopFront(LaneQueue& lane) {
  ++lane.head;
  if (lane.head == lane.items.size()) {
    lane.items.clear();
    lane.head = 0;
  } else if (lane.head > 64 && lane.head * 2 > lane.items.size()) {
    lane.items.erase(lane.items.begin(), lane.items.begin() + static_cast<ptrdiff_t>(lane.head));
    lane.head = 0;
  }
}

void OutputQueue::Consume(size_t n) {
  const size_t before = footprint();
  bytes_ -= n;
  if (has_partial_ && n > 0) {
    const size_t len = partial_.end - partial_.begin;
    const size_t take = std::min(n, len);
    if (partial_.stamp == kOwned) owned_bytes_ -= take;
    if (n < len) {
      partial_.begin += static_cast<uint32_t>(n);
      n = 0;
    } else {
      n -= len;
      partial_.chunk->Unref();
      has_partial_ = false;
      --items_;
    }
  }
  for (LaneQueue& lane : lanes_) {
    while (n > 0 && !lane.empty()) {
      Item& item = lane.items[lane.head];
      const size_t len = item.end - item.begin;
      if (item.stamp == kOwned) owned_bytes_ -= std::min(n, len);
      if (n < len) {
        // The write stopped inside this item: it becomes the half-sent one, written first
        // from now on whatever is queued ahead of its lane later.
        partial_ = item;
        partial_.begin += static_cast<uint32_t>(n);
        has_partial_ = true;
        n = 0;
        PopFront(lane);
        break;
      }
      n -= len;
      item.chunk->Unref();
      --items_;
      PopFront(lane);
    }
  }
  Charge(static_cast<ptrdiff_t>(footprint()) - static_cast<ptrdiff_t>(before));
}

}  // namespace hermod::net
