// What a connection has yet to write. Frames are appended during a loop iteration and leave
// together in one writev at its end (corking). Bytes a connection owns are copied into
// chunks; a frame shared by many connections (a fan-out publication) is referenced, not
// copied: Chunk carries an atomic refcount because the same frame may sit in the queues of
// connections on every loop.
//
// An idle connection holds no queue at all: the Connection keeps a null pointer until it
// has something to send and drops the queue once it drains.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace hermod::net {

// A refcounted byte buffer; the bytes follow the header in one allocation.
class Chunk {
 public:
  static Chunk* Create(size_t capacity);
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) Destroy(this);
  }
  bool shared() const { return refs_.load(std::memory_order_acquire) > 1; }
  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  size_t room() const { return capacity_ - size_; }
  void Append(std::string_view bytes);

 private:
  explicit Chunk(size_t capacity) : capacity_(static_cast<uint32_t>(capacity)) {}
  static void Destroy(Chunk* chunk);
  std::atomic<uint32_t> refs_{1};
  uint32_t capacity_;
  uint32_t size_ = 0;
};

class OutputQueue {
 public:
  static constexpr size_t kChunkBytes = 16 * 1024;
  static constexpr int kMaxIov = 64;

  OutputQueue() = default;
  ~OutputQueue();
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;

  // Copies head then body into the tail chunk, or into one new chunk when they do not both
  // fit: a frame header and its payload stay contiguous (one iovec, one copy).
  void Append(std::string_view head, std::string_view body = {});
  // References [offset, offset+len) of a shared chunk; takes a reference.
  void AppendShared(Chunk* chunk, size_t offset, size_t len);

  // Fills iov with the pending bytes; returns the count.
  int Gather(iovec* iov, int max_iov) const;
  // Drops the first n pending bytes (after a write took them).
  void Consume(size_t n);
  size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  // Drops everything pending.
  void Clear();

 private:
  struct Segment {
    Chunk* chunk;
    uint32_t begin;
    uint32_t end;
  };
  std::vector<Segment> segments_;
  size_t head_ = 0;  // first segment with pending bytes
  size_t bytes_ = 0;
};

// A busy connection's queue empties and refills every loop iteration: drained queues go back
// to a bounded per-thread pool (keeping their segment storage) instead of to malloc.
struct OutputQueueRecycler {
  void operator()(OutputQueue* queue) const;
};
using OutputQueuePtr = std::unique_ptr<OutputQueue, OutputQueueRecycler>;
OutputQueuePtr NewOutputQueue();

}  // namespace hermod::net
