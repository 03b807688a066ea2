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

OutputQueue::~OutputQueue() { Clear(); }

void OutputQueue::Clear() {
  for (size_t i = head_; i < segments_.size(); ++i) segments_[i].chunk->Unref();
  segments_.clear();
  head_ = 0;
  bytes_ = 0;
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

void OutputQueue::Append(std::string_view head, std::string_view body) {
  const size_t total = head.size() + body.size();
  if (total == 0) return;
  bytes_ += total;
  if (head_ < segments_.size()) {
    Segment& tail = segments_.back();
    // Grow the tail segment in place when this queue alone owns its chunk, the segment ends
    // where the chunk's bytes end, and everything fits.
    if (!tail.chunk->shared() && tail.end == tail.chunk->size() && tail.chunk->room() >= total) {
      tail.chunk->Append(head);
      tail.chunk->Append(body);
      tail.end += static_cast<uint32_t>(total);
      return;
    }
  }
  Chunk* chunk = Chunk::Create(std::max(kChunkBytes, total));
  chunk->Append(head);
  chunk->Append(body);
  segments_.push_back({chunk, 0, static_cast<uint32_t>(total)});
}

void OutputQueue::AppendShared(Chunk* chunk, size_t offset, size_t len) {
  if (len == 0) return;
  chunk->Ref();
  segments_.push_back({chunk, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset + len)});
  bytes_ += len;
}

int OutputQueue::Gather(iovec* iov, int max_iov) const {
  int n = 0;
  for (size_t i = head_; i < segments_.size() && n < max_iov; ++i, ++n) {
    const Segment& s = segments_[i];
    iov[n].iov_base = const_cast<char*>(s.chunk->data()) + s.begin;
    iov[n].iov_len = s.end - s.begin;
  }
  return n;
}

void OutputQueue::Consume(size_t n) {
  bytes_ -= n;
  while (n > 0) {
    Segment& s = segments_[head_];
    size_t len = s.end - s.begin;
    if (n < len) {
      s.begin += static_cast<uint32_t>(n);
      return;
    }
    n -= len;
    s.chunk->Unref();
    ++head_;
  }
  if (head_ == segments_.size()) {
    segments_.clear();
    head_ = 0;
  } else if (head_ > 64 && head_ * 2 > segments_.size()) {
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
}

}  // namespace hermod::net
