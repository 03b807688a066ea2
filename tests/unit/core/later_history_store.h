// A history engine that completes later, as a disk or network engine will, for tests of
// the hub and of the session over it: a real engine (publications kept in a HistoryStream)
// whose appends are done by a writer thread and whose reads and recoveries by a reader
// thread, each one at a time in call order, answered through the completion. Each thread
// has a gate a test may close to hold its calls. Like JetStream's Nats-Msg-Id, it
// deduplicates as it stores: an append with an idempotency key it stored before is answered
// as a duplicate with the original position (idempotency_store.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/history_store.h"
#include "core/history_stream.h"
#include "core/hub.h"
#include "store/memory_idempotency.h"
#include "store/memory_presence.h"

namespace hermod::core {

// Runs its tasks on one thread, in order; a closed gate holds them.
class Worker {
 public:
  Worker() : thread_([this] { Run(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
      open_ = true;
    }
    ready_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_all();
  }
  void SetOpen(bool open) {
    {
      std::lock_guard lock(mutex_);
      open_ = open;
    }
    ready_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return stop_ || (open_ && !tasks_.empty()); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool open_ = true;
  bool stop_ = false;
  std::thread thread_;
};

class LaterHistoryStore final : public HistoryStore {
 public:
  // A channel's publications, as the engine's storage holds them: they outlive the Stream
  // (a channel freed and used again finds them).
  struct State {
    State(std::string epoch, uint64_t top) : stream(std::move(epoch), top) {}
    std::mutex mutex;
    HistoryStream stream;
    std::map<std::string, StreamPosition, std::less<>> keys;  // idempotency key -> position
  };
  class LaterStream final : public Stream {
   public:
    LaterStream(Worker& worker, Worker& reader, std::shared_ptr<State> state)
        : worker_(worker), reader_(reader), state_(std::move(state)) {}
    StreamPosition Position() const override {
      std::lock_guard lock(state_->mutex);
      return {state_->stream.top(), state_->stream.epoch()};
    }
    std::optional<HistoryAppended> Append(const HistoryAppend& a, const PublicationEncoder& encode,
                                          Completion<HistoryAppended> done) override {
      worker_.Post([state = state_, data = std::string(a.data), info = std::string(a.info),
                    tags = std::string(a.tags), key = std::string(a.idempotency_key), size = a.size,
                    ttl = a.ttl_ms, now = a.now_ms, &encode, done = std::move(done)]() mutable {
        HistoryAppended r;
        {
          std::lock_guard lock(state->mutex);
          if (auto seen = state->keys.find(key); !key.empty() && seen != state->keys.end()) {
            r.duplicate = true;
            r.position = seen->second;
          } else {
            r.position = {state->stream.next_offset(), state->stream.epoch()};
            r.publication = encode(data, info, r.position.offset, tags);
            state->stream.Append(r.publication, now, size, ttl);
            if (!key.empty()) state->keys.emplace(key, r.position);
          }
        }
        done(std::move(r));
      });
      return std::nullopt;
    }
    std::optional<HistoryPage> Read(const HistoryQuery& q, Completion<HistoryPage> done) override {
      reader_.Post([state = state_, q, done = std::move(done)]() mutable {
        HistoryPage page;
        {
          std::lock_guard lock(state->mutex);
          page.position = {state->stream.top(), state->stream.epoch()};
          page.publications = state->stream.Read(q.since ? &*q.since : nullptr, q.limit, q.reverse,
                                                 q.now_ms, q.max_bytes, &page.cut);
        }
        done(std::move(page));
      });
      return std::nullopt;
    }
    // Stops at query.until, as the contract says: what the stream holds past it, the hub is
    // fanning out (the subscriber holds it until its reply is out).
    std::optional<HistoryStream::Recovery> Recover(
        const RecoveryQuery& q, Completion<HistoryStream::Recovery> done) override {
      reader_.Post([state = state_, q, done = std::move(done)]() mutable {
        HistoryStream::Recovery r;
        {
          std::lock_guard lock(state->mutex);
          // All it holds past since, then cut at until, then the limits.
          r = state->stream.Recover(q.since, SIZE_MAX, q.now_ms);
        }
        const uint64_t wanted = q.until > q.since.offset ? q.until - q.since.offset : 0;
        if (r.recovered && r.publications.size() > wanted) r.publications.resize(wanted);
        size_t bytes = 0;
        for (const std::string& p : r.publications) bytes += p.size() + 1;
        if (r.publications.size() > q.max_publications || bytes > q.max_bytes) r = {};
        done(std::move(r));
      });
      return std::nullopt;
    }
    void Remove() override {
      std::lock_guard lock(state_->mutex);
      state_->stream.Clear();
    }
    // Durable: nothing of it needs this process's memory.
    void Expire(uint64_t) override {}
    size_t entries() const override { return 0; }
    size_t bytes() const override { return 0; }
    uint64_t expires_ms() const override { return 0; }

   private:
    Worker& worker_;
    Worker& reader_;
    std::shared_ptr<State> state_;
  };

  const char* name() const override { return "later"; }
  void SetMetaLimits(uint64_t, size_t) override {}
  std::unique_ptr<Stream> Open(std::string_view channel, uint64_t) override {
    std::lock_guard lock(mutex_);
    std::shared_ptr<State>& state = stored_[std::string(channel)];
    if (!state) state = std::make_shared<State>("later", 0);
    return std::make_unique<LaterStream>(worker_, reader_, state);
  }
  void Close(std::string_view, std::unique_ptr<Stream>, uint64_t) override {}  // all stored
  std::optional<StreamPosition> Kept(std::string_view channel, uint64_t) override {
    std::lock_guard lock(mutex_);
    auto it = stored_.find(std::string(channel));
    if (it == stored_.end()) return std::nullopt;
    std::lock_guard stream_lock(it->second->mutex);
    return StreamPosition{it->second->stream.top(), it->second->stream.epoch()};
  }
  void ExpireKept(uint64_t) override {}
  Worker& worker() { return worker_; }  // appends
  Worker& reader() { return reader_; }  // reads and recovery

 private:
  Worker worker_;
  Worker reader_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<State>> stored_;
};

inline Stores LaterStores(LaterHistoryStore** history) {
  Stores stores;
  auto later = std::make_unique<LaterHistoryStore>();
  *history = later.get();
  stores.history = std::move(later);
  stores.presence = std::make_unique<store::MemoryPresenceStore>();
  stores.idempotency = std::make_unique<store::MemoryIdempotencyStore>();
  stores.history_inline = false;
  return stores;
}

}  // namespace hermod::core
