// A history engine that completes later, as a disk or network engine will, for tests of
// what waits for one (the hub, the server API): a real engine (publications kept in a
// HistoryStream) whose every call is done by its own worker thread, one at a time in call
// order, and answered through the completion.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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
  class LaterStream final : public Stream {
   public:
    LaterStream(Worker& worker, std::string epoch, uint64_t top)
        : worker_(worker), state_(std::make_shared<State>(std::move(epoch), top)) {}
    StreamPosition Position() const override {
      std::lock_guard lock(state_->mutex);
      return {state_->stream.top(), state_->stream.epoch()};
    }
    std::optional<HistoryAppended> Append(const HistoryAppend& a, const PublicationEncoder& encode,
                                          Completion<HistoryAppended> done) override {
      worker_.Post([state = state_, data = std::string(a.data), info = std::string(a.info),
                    tags = std::string(a.tags), size = a.size, ttl = a.ttl_ms, now = a.now_ms,
                    &encode, done = std::move(done)]() mutable {
        HistoryAppended r;
        {
          std::lock_guard lock(state->mutex);
          r.position = {state->stream.next_offset(), state->stream.epoch()};
          r.publication = encode(data, info, r.position.offset, tags);
          state->stream.Append(r.publication, now, size, ttl);
        }
        done(std::move(r));
      });
      return std::nullopt;
    }
    std::optional<HistoryPage> Read(const HistoryQuery& q, Completion<HistoryPage> done) override {
      worker_.Post([state = state_, q, done = std::move(done)]() mutable {
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
    std::optional<HistoryStream::Recovery> Recover(const RecoveryQuery&,
                                                   Completion<HistoryStream::Recovery>) override {
      return std::nullopt;  // the hub does not wait for it: recovered=false
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
    struct State {
      State(std::string epoch, uint64_t top) : stream(std::move(epoch), top) {}
      std::mutex mutex;
      HistoryStream stream;
    };
    Worker& worker_;
    std::shared_ptr<State> state_;
  };

  const char* name() const override { return "later"; }
  void SetMetaLimits(uint64_t, size_t) override {}
  std::unique_ptr<Stream> Open(std::string_view channel, uint64_t) override {
    std::lock_guard lock(mutex_);
    auto it = kept_.find(std::string(channel));
    if (it != kept_.end()) {
      return std::make_unique<LaterStream>(worker_, it->second.epoch, it->second.offset);
    }
    return std::make_unique<LaterStream>(worker_, "later", 0);
  }
  void Close(std::string_view channel, std::unique_ptr<Stream> stream, uint64_t) override {
    std::lock_guard lock(mutex_);
    kept_[std::string(channel)] = stream->Position();
  }
  std::optional<StreamPosition> Kept(std::string_view channel, uint64_t) override {
    std::lock_guard lock(mutex_);
    auto it = kept_.find(std::string(channel));
    if (it == kept_.end()) return std::nullopt;
    return it->second;
  }
  void ExpireKept(uint64_t) override {}
  Worker& worker() { return worker_; }

 private:
  Worker worker_;
  std::mutex mutex_;
  std::map<std::string, StreamPosition> kept_;
};

// Stores with the later history engine (its pointer in *history) and memory presence and
// idempotency.
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
