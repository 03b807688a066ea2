// What a connection has yet to write. Frames are appended during a loop iteration and leave
// together in one writev at its end (corking). Bytes a connection owns are copied into
// chunks; a frame shared by many connections (a fan-out publication) is referenced, not
// copied: Chunk carries an atomic refcount because the same frame may sit in the queues of
// connections on every loop.
//
// Priority lanes. Every queued item is one whole frame (or, for owned bytes, a run of whole
// frames) in one of six lanes, written in this order: the item a write left half-sent (it
// always finishes first, so framing is never broken), kControl (the connection's own bytes:
// replies to its commands, pings, anything not a shared push; never dropped), the shared
// pushes by priority (critical, high, normal, low), then kFinal (a Close frame: nothing may
// follow it). Within a lane the order is FIFO. A push may therefore overtake a push of lower
// priority queued before it; pushes of one priority keep their order.
//
// The items live in one vector in writing order: the half-sent one first, then each lane's
// items as one run, runs in lane order, and a count per lane marks where its run ends. So an
// append is a push_back unless a lower lane already holds items; only then is it inserted
// before them, moving just their records (32 bytes each, a backlog the connection's bounds
// already limit). Why one vector, not one per lane: a queue exists whenever a connection has
// something to send, so a fan-out to N idle connections creates N queues; six lane vectors
// made each ~270 bytes and doubled that fan-out's cost, one makes it 88.
//
// The queue decides nothing about dropping: it reports its cost (payload bytes plus a fixed
// per-item overhead, which is what a backlog of small shared frames really costs: the
// segments, not the shared bytes) and the age of its oldest urgent item, and lets the
// connection drop unsent items (DropUnsent, Replace) without ever touching the half-sent one.
// Every change of its footprint (own bytes and item overhead, not the shared frames) is also
// added to an optional counter: the loop's total, which its budget bounds.
//
// An idle connection holds no queue at all: the Connection keeps a null pointer until it
// has something to send and drops the queue once it drains.
//
// Joining (per connection). An item may be marked joinable: exactly one whole message whose
// payload may share a message with its neighbours (the JSON client protocol's replies and
// pushes: newline-delimited objects). The queue knows no framing: the mark is the length of
// the item's frame header, and JoinSpec (from the protocol) writes the header of a joined
// message. The joining Gather turns each run of consecutive joinable items that are not
// begun into ONE message: a new header and the payloads separated by '\n', written into the
// per-thread JoinPlan's scratch (uWebSockets' cork buffer: no allocation per connection),
// bounded by JoinSpec::max_bytes. It runs after every decision about dropping and priority
// (those act on the queued items, which stay as they are until written), so it changes only
// the bytes on the wire. A lone joinable item leaves as it is, by reference. When a write ends
// inside a joined message, Consume(n, plan) drops the run's items and queues the unsent tail
// of the joined message as an owned, half-sent item in their place: nothing is lost or
// reordered, and the next write continues it.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
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

// A shared push's priority (the server API's `priority`, or its namespace's default).
enum class Priority : uint8_t { kCritical = 0, kHigh = 1, kNormal = 2, kLow = 3 };
inline constexpr size_t kPriorities = 4;

enum class Lane : uint8_t { kControl = 0, kCritical, kHigh, kNormal, kLow, kFinal };
inline constexpr size_t kLanes = 6;
inline Lane LaneOf(Priority p) { return static_cast<Lane>(static_cast<uint8_t>(p) + 1); }

// How the joining Gather may join joinable items (the protocol sets it: net knows no framing).
struct JoinSpec {
  size_t max_bytes = 0;  // a joined message's payload at most; 0: never join
  // Writes the header of a message of payload_len bytes into out (kMaxJoinHeader bytes at
  // most) and returns its length.
  size_t (*header)(size_t payload_len, char* out) = nullptr;
  static constexpr size_t kMaxJoinHeader = 14;
};

// What one joining Gather built, for the Consume that follows it. One per thread (the
// Connection's flush keeps it thread_local): its scratch is the loop's cork buffer.
class JoinPlan {
 public:
  // Joined messages written (whole or in part) and the queued messages they carried, since
  // the last TakeCounts.
  std::pair<uint64_t, uint64_t> TakeCounts() {
    auto counts = std::pair{frames_, messages_};
    frames_ = messages_ = 0;
    return counts;
  }

 private:
  friend class OutputQueue;
  struct Run {
    int iov;                // its iovec in Gather's output
    uint32_t items;         // queued items it joins
    size_t original_bytes;  // their bytes in the queue
    size_t offset;          // where its joined message starts in scratch_
    size_t length;          // the joined message's length
  };
  // Room for size more bytes after used_ (grows, never shrinks: the loop's cork buffer);
  // returns where they go. Not std::string: its resize would zero what is overwritten.
  char* Reserve(size_t size);
  std::unique_ptr<char[]> scratch_;
  size_t capacity_ = 0;
  size_t used_ = 0;
  std::vector<Run> runs_;
  uint64_t frames_ = 0;
  uint64_t messages_ = 0;
};

class OutputQueue {
 public:
  static constexpr size_t kChunkBytes = 16 * 1024;
  static constexpr int kMaxIov = 64;
  // What one queued item costs beyond its bytes (the item record and its share of the
  // queue's storage), counted against the connection's bound.
  static constexpr size_t kItemOverhead = 32;
  // A joining Gather stops joining once it has written this much into the plan's scratch
  // (later items go by reference): more than a socket takes in one write would be copied
  // only to be joined again at the next flush.
  static constexpr size_t kJoinScratchBytes = 256 * 1024;

  OutputQueue() = default;
  ~OutputQueue();
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;

  // Copies head then body into the lane's tail chunk, or into one new chunk when they do not
  // both fit: a frame header and its payload stay contiguous (one iovec, one copy).
  // joinable: head + body is one whole message that may be joined (its own item then).
  void Append(std::string_view head, std::string_view body = {}, Lane lane = Lane::kControl,
              bool joinable = false);
  // Queues bytes a write has begun (the rest of what the direct path could not send) as
  // the half-sent item: written first, never dropped. Only into an empty queue.
  void AppendBegun(const char* data, size_t len) { PushFrontPartial(data, len); }
  // References [offset, offset+len) of a shared chunk (one whole frame); takes a reference.
  // now_ms stamps the item (UrgentSinceMs); key, when not 0, lets Replace find it.
  // join_head: the frame's header length when it may be joined; 0: never joined.
  void AppendShared(Chunk* chunk, size_t offset, size_t len, Lane lane = Lane::kNormal,
                    uint64_t key = 0, uint64_t now_ms = 0, uint8_t join_head = 0);
  // "Latest value wins": when the lane holds an unsent item with this key (among its last
  // kReplaceScan), it now references the new frame instead; returns false when none does.
  bool Replace(Lane lane, uint64_t key, Chunk* chunk, size_t offset, size_t len,
               uint8_t join_head = 0);
  static constexpr size_t kReplaceScan = 64;

  // Fills iov with the pending bytes in writing order; returns the count.
  int Gather(iovec* iov, int max_iov) const;
  // The same bytes, with each run of joinable items joined into one message in plan's
  // scratch (see the top of the file); the iovecs are valid until plan's next Gather.
  int Gather(iovec* iov, int max_iov, const JoinSpec& spec, JoinPlan& plan) const;
  // Drops the first n pending bytes, in Gather's order (after a write took them).
  void Consume(size_t n);
  // The same after the joining Gather that built plan (n counts its output's bytes).
  void Consume(size_t n, JoinPlan& plan);
  // Drops every item not yet begun; the half-sent one stays. Returns the cost freed.
  size_t DropUnsent();
  size_t bytes() const { return bytes_; }
  // bytes() plus kItemOverhead per item: what the connection's bound counts.
  size_t cost() const { return bytes_ + item_count() * kItemOverhead; }
  // What this queue alone holds: its own bytes (replies, frames it compressed for itself)
  // and kItemOverhead per item, not the shared frames it references (every queue holds a
  // suffix of the same frames, which are bounded by the largest queue). What the loop's
  // account sums.
  size_t footprint() const { return owned_bytes_ + item_count() * kItemOverhead; }
  bool empty() const { return bytes_ == 0; }
  size_t items() const { return item_count(); }
  size_t lane_items(Lane lane) const { return lane_count_[static_cast<size_t>(lane)]; }
  // When the oldest queued critical or high item was appended (its now_ms); 0: none.
  uint64_t UrgentSinceMs() const;
  // The same for the normal and low lanes' shared pushes and a half-sent one (owned bytes
  // queued there, such as a protocol's notice that a push was not queued, carry no stamp);
  // 0: none.
  uint64_t PushSinceMs() const;
  // Drops everything pending.
  void Clear();
  // Every later change of footprint() is also applied to *total (the loop's sum, read on the
  // loop's thread only); null: none.
  void set_account(size_t* total) { account_ = total; }

 private:
  struct Item {
    Chunk* chunk;
    uint32_t begin;
    uint32_t end;
    uint64_t key;         // Replace's key, 0: none
    uint64_t stamp : 56;  // now_ms when appended (shared items); kOwned: the queue's own bytes
    uint64_t join : 8;    // joinable: its frame header's length; 0: not joinable
  };
  static_assert(sizeof(Item) == 32);
  static constexpr uint64_t kOwned = (uint64_t{1} << 56) - 1;
  size_t item_count() const { return items_.size() - head_; }
  // Items of the lanes after lane (lower priority), which sit behind lane's run.
  size_t ItemsAfter(size_t lane) const {
    size_t n = 0;
    for (size_t l = lane + 1; l < kLanes; ++l) n += lane_count_[l];
    return n;
  }
  // Where lane's run starts in items_.
  size_t LaneBegin(size_t lane) const;
  void Insert(Lane lane, const Item& item);
  void PopFront();
  // Queues bytes (the unsent tail of a joined message) as the half-sent item, first; stamp:
  // the oldest push joined into it (0: none).
  void PushFrontPartial(const char* data, size_t len, uint64_t stamp = 0);
  void Charge(ptrdiff_t delta) {
    if (account_) *account_ += static_cast<size_t>(delta);  // modulo 2^64: a negative delta
  }

  std::vector<Item> items_;  // writing order, see the top of the file
  size_t head_ = 0;          // first item with pending bytes
  size_t bytes_ = 0;
  size_t owned_bytes_ = 0;
  size_t* account_ = nullptr;
  std::array<uint32_t, kLanes> lane_count_{};  // items per lane, the half-sent one in none
  bool partial_ = false;                       // items_[head_] is half-sent
  // When the oldest push in the half-sent item was appended (0: none, or a reply): it is in
  // no lane, and a reader that stopped in the middle of it is still cut at its deadline.
  uint64_t partial_since_ = 0;
};

// A busy connection's queue empties and refills every loop iteration: drained queues go back
// to a bounded per-thread pool (keeping their item storage) instead of to malloc.
struct OutputQueueRecycler {
  void operator()(OutputQueue* queue) const;
};
using OutputQueuePtr = std::unique_ptr<OutputQueue, OutputQueueRecycler>;
OutputQueuePtr NewOutputQueue();

}  // namespace hermod::net
