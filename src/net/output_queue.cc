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
  partial_since_ = 0;
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

void OutputQueue::Append(std::string_view head, std::string_view body, Lane lane, bool joinable) {
  const size_t total = head.size() + body.size();
  if (total == 0) return;
  bytes_ += total;
  owned_bytes_ += total;
  const uint8_t join = joinable ? static_cast<uint8_t>(head.size()) : 0;
  if (lane_count_[static_cast<size_t>(lane)] > 0) {
    Item& tail = items_[items_.size() - ItemsAfter(static_cast<size_t>(lane)) - 1];
    // The lane's tail item holds this queue's own bytes and ends where its chunk's bytes end
    // (owned chunks are referenced by this queue's items only, and none holds later bytes).
    if (tail.stamp == kOwned && tail.end == tail.chunk->size() && tail.chunk->room() >= total) {
      if (join == 0 && tail.join == 0) {
        // Grow it in place: one item for a run of frames none of which may be joined.
        tail.chunk->Append(head);
        tail.chunk->Append(body);
        tail.end += static_cast<uint32_t>(total);
        Charge(static_cast<ptrdiff_t>(total));
        return;
      }
      // A joinable message (or one behind it) is an item of its own: in the same chunk.
      Chunk* chunk = tail.chunk;
      const uint32_t begin = static_cast<uint32_t>(chunk->size());
      chunk->Ref();
      chunk->Append(head);
      chunk->Append(body);
      Insert(lane, {chunk, begin, static_cast<uint32_t>(begin + total), 0, kOwned, join});
      Charge(static_cast<ptrdiff_t>(total + kItemOverhead));
      return;
    }
  }
  Chunk* chunk = Chunk::Create(std::max(kChunkBytes, total));
  chunk->Append(head);
  chunk->Append(body);
  Insert(lane, {chunk, 0, static_cast<uint32_t>(total), 0, kOwned, join});
  Charge(static_cast<ptrdiff_t>(total + kItemOverhead));
}

void OutputQueue::AppendShared(Chunk* chunk, size_t offset, size_t len, Lane lane, uint64_t key,
                               uint64_t now_ms, uint8_t join_head) {
  if (len == 0) return;
  chunk->Ref();
  Insert(lane, {chunk, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset + len), key,
                now_ms, join_head});
  bytes_ += len;
  Charge(static_cast<ptrdiff_t>(kItemOverhead));  // the frame is shared, not this queue's
}

bool OutputQueue::Replace(Lane lane, uint64_t key, Chunk* chunk, size_t offset, size_t len,
                          uint8_t join_head) {
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
    item.join = join_head;
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

uint64_t OutputQueue::PushSinceMs() const {
  uint64_t since = partial_ ? partial_since_ : 0;
  size_t begin = LaneBegin(static_cast<size_t>(Lane::kNormal));
  for (Lane lane : {Lane::kNormal, Lane::kLow}) {
    // FIFO within a lane: its first shared item is its oldest. Owned items are few (one
    // notice per subscription told), so the scan past them is short.
    const size_t end = begin + lane_count_[static_cast<size_t>(lane)];
    for (size_t i = begin; i < end; ++i) {
      if (items_[i].stamp == kOwned) continue;
      if (since == 0 || items_[i].stamp < since) since = items_[i].stamp;
      break;
    }
    begin = end;  // kLow's run follows kNormal's
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

char* JoinPlan::Reserve(size_t size) {
  if (used_ + size > capacity_) {
    const size_t capacity = std::max(used_ + size, capacity_ * 2);
    auto grown = std::make_unique<char[]>(capacity);
    if (used_ > 0) std::memcpy(grown.get(), scratch_.get(), used_);
    scratch_ = std::move(grown);
    capacity_ = capacity;
  }
  return scratch_.get() + used_;
}

int OutputQueue::Gather(iovec* iov, int max_iov, const JoinSpec& spec, JoinPlan& plan) const {
  plan.used_ = 0;
  plan.runs_.clear();
  if (spec.max_bytes == 0 || spec.header == nullptr) return Gather(iov, max_iov);
  int n = 0;
  size_t i = head_;
  if (partial_ && i < items_.size() && n < max_iov) {
    // The half-sent item finishes first, as it is.
    iov[n].iov_base = const_cast<char*>(items_[i].chunk->data()) + items_[i].begin;
    iov[n++].iov_len = items_[i].end - items_[i].begin;
    ++i;
  }
  while (i < items_.size() && n < max_iov) {
    const Item& first = items_[i];
    if (first.join != 0 && plan.used_ < kJoinScratchBytes) {
      // The longest run of joinable items whose payloads, '\n'-separated, fit the bound.
      size_t payload = first.end - first.begin - first.join;
      size_t original = first.end - first.begin;
      size_t j = i + 1;
      for (; j < items_.size() && items_[j].join != 0; ++j) {
        const Item& next = items_[j];
        const size_t more = next.end - next.begin - next.join;
        if (payload + 1 + more > spec.max_bytes) break;
        payload += 1 + more;
        original += next.end - next.begin;
      }
      if (j - i >= 2) {
        // One new header, then the payloads separated by '\n', copied once.
        char* const start = plan.Reserve(JoinSpec::kMaxJoinHeader + payload + 1);
        char* out = start + spec.header(payload, start);
        for (size_t k = i; k < j; ++k) {
          const Item& item = items_[k];
          const size_t len = item.end - item.begin - item.join;
          std::memcpy(out, item.chunk->data() + item.begin + item.join, len);
          out += len;
          *out++ = '\n';
        }
        const size_t length = static_cast<size_t>(out - start) - 1;  // no '\n' after the last
        plan.runs_.push_back({n, static_cast<uint32_t>(j - i), original, plan.used_, length});
        plan.used_ += length;
        iov[n++].iov_len = length;  // iov_base once the scratch stops growing
        i = j;
        continue;
      }
    }
    iov[n].iov_base = const_cast<char*>(first.chunk->data()) + first.begin;
    iov[n++].iov_len = first.end - first.begin;
    ++i;
  }
  for (const JoinPlan::Run& run : plan.runs_) {
    iov[run.iov].iov_base = plan.scratch_.get() + run.offset;
  }
  return n;
}

void OutputQueue::PushFrontPartial(const char* data, size_t len, uint64_t stamp) {
  Chunk* chunk = Chunk::Create(std::max(kChunkBytes, len));
  chunk->Append({data, len});
  const Item item{chunk, 0, static_cast<uint32_t>(len), 0, kOwned, 0};
  if (head_ > 0) {
    items_[--head_] = item;
  } else {
    items_.insert(items_.begin(), item);
  }
  partial_ = true;  // begun: it is in no lane and is written first
  partial_since_ = stamp;
  bytes_ += len;
  owned_bytes_ += len;
  Charge(static_cast<ptrdiff_t>(len + kItemOverhead));
}

void OutputQueue::Consume(size_t n, JoinPlan& plan) {
  // Gather's output is the queue's items in order, each run of joined items as one iovec:
  // between runs, one iovec is the item then at the head.
  int next_iov = 0;
  for (const JoinPlan::Run& run : plan.runs_) {
    for (; next_iov < run.iov; ++next_iov) {
      const Item& item = items_[head_];
      const size_t len = item.end - item.begin;
      if (n < len) {
        Consume(n);
        return;
      }
      Consume(len);
      n -= len;
    }
    if (n == 0) return;
    ++plan.frames_;
    plan.messages_ += run.items;
    uint64_t oldest = 0;  // of the pushes joined: the tail left keeps their deadline
    for (size_t i = head_; i < head_ + run.items && i < items_.size(); ++i) {
      const uint64_t stamp = items_[i].stamp;
      if (stamp != kOwned && stamp != 0 && (oldest == 0 || stamp < oldest)) oldest = stamp;
    }
    Consume(run.original_bytes);  // whole items: they leave their lanes
    if (n < run.length) {
      // The write ended inside the joined message: its tail, owned now, finishes first.
      PushFrontPartial(plan.scratch_.get() + run.offset + n, run.length - n, oldest);
      return;
    }
    n -= run.length;
    next_iov = run.iov + 1;
  }
  Consume(n);
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
    const bool begun = partial_;
    if (!partial_) {
      // The first item leaves its lane (the first one holding any): begun, it is written
      // first from now on whatever is queued ahead of its lane later.
      size_t lane = 0;
      while (lane_count_[lane] == 0) ++lane;
      --lane_count_[lane];
    }
    if (n < len) {
      item.begin += static_cast<uint32_t>(n);
      if (!begun) partial_since_ = item.stamp == kOwned ? 0 : item.stamp;
      partial_ = true;
      break;
    }
    n -= len;
    item.chunk->Unref();
    partial_ = false;
    partial_since_ = 0;
    PopFront();
  }
  Charge(static_cast<ptrdiff_t>(footprint()) - static_cast<ptrdiff_t>(before));
}

}  // namespace hermod::net
