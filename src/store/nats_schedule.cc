#include "store/nats_schedule.h"

#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "store/nats_kv.h"

namespace hermod::store {

namespace {

// "<deliver_at> <created> <method> <channels bytes>\n<channels, NUL-separated><params>"
std::string Encode(const core::ScheduledPublication& s) {
  std::string channels;
  for (size_t i = 0; i < s.channels.size(); ++i) {
    if (i > 0) channels += '\0';
    channels += s.channels[i];
  }
  return std::to_string(s.deliver_at_ms) + " " + std::to_string(s.created_ms) + " " + s.method +
         " " + std::to_string(channels.size()) + "\n" + channels + s.params;
}

bool Decode(std::string_view id, std::string_view v, core::ScheduledPublication* s) {
  const size_t nl = v.find('\n');
  if (nl == std::string_view::npos) return false;
  std::string_view head = v.substr(0, nl);
  std::string_view fields[4];
  for (auto& f : fields) {
    const size_t sp = head.find(' ');
    f = head.substr(0, sp);
    head = sp == std::string_view::npos ? std::string_view() : head.substr(sp + 1);
  }
  size_t channels_len = 0;
  auto num = [](std::string_view t, auto* out) {
    return std::from_chars(t.data(), t.data() + t.size(), *out).ec == std::errc();
  };
  if (!num(fields[0], &s->deliver_at_ms) || !num(fields[1], &s->created_ms) ||
      !num(fields[3], &channels_len) || v.size() - nl - 1 < channels_len) {
    return false;
  }
  s->id = std::string(id);
  s->method = std::string(fields[2]);
  std::string_view channels = v.substr(nl + 1, channels_len);
  s->channels.clear();
  for (;;) {
    const size_t end = channels.find('\0');
    s->channels.emplace_back(channels.substr(0, end));
    if (end == std::string_view::npos) break;
    channels = channels.substr(end + 1);
  }
  s->params = std::string(v.substr(nl + 1 + channels_len));
  return true;
}

class NatsScheduleStore final : public core::ScheduleStore {
 public:
  explicit NatsScheduleStore(NatsScheduleOptions options) : options_(std::move(options)) {}
  ~NatsScheduleStore() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (watcher_thread_.joinable()) watcher_thread_.join();
    if (watcher_ != nullptr) kvWatcher_Destroy(watcher_);
    if (claims_ != nullptr) kvStore_Destroy(claims_);
    if (kv_ != nullptr) kvStore_Destroy(kv_);
    if (js_ != nullptr) jsCtx_Destroy(js_);
    if (nc_ != nullptr) natsConnection_Destroy(nc_);
  }

  bool Connect(std::string* error) {
    NatsKvOptions o{options_.url,
                    "hermod-schedules",
                    options_.dial_timeout_ms,
                    options_.reconnect_wait_ms,
                    options_.request_timeout_ms,
                    options_.tls};
    if (!ConnectNatsKv(o, "nats schedules", &nc_, &js_, error)) return false;
    natsStatus s = OpenNatsBucket(js_, options_.bucket, 0, &kv_);
    if (s != NATS_OK) {
      *error = NatsKvError("nats schedules", "KV bucket", options_.url, s);
      return false;
    }
    const auto lease = static_cast<int64_t>(options_.lease_ms);
    if ((s = OpenNatsBucket(js_, options_.claims_bucket, lease, &claims_)) != NATS_OK) {
      *error = NatsKvError("nats schedules", "KV claims bucket", options_.url, s);
      return false;
    }
    Retime(claims_, options_.claims_bucket, lease);
    return true;
  }

  const char* name() const override { return "nats"; }
  bool durable() const override { return true; }
  uint64_t lease_ms() const override { return options_.lease_ms; }
  void Watch(Changes changes) override { changes_ = std::move(changes); }

  // The watcher's initial values are what is stored; its updates are the other nodes'.
  bool Load(std::vector<core::ScheduledPublication>* out, std::string* error) override {
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.Timeout = static_cast<int64_t>(options_.request_timeout_ms);
    natsStatus s = kvStore_WatchAll(&watcher_, kv_, &wo);
    while (s == NATS_OK) {
      kvEntry* e = nullptr;
      s = kvWatcher_Next(&e, watcher_, static_cast<int64_t>(options_.request_timeout_ms));
      if (s != NATS_OK || e == nullptr) break;  // nullptr: every current value seen
      core::ScheduledPublication p;
      if (kvEntry_Operation(e) == kvOp_Put && Decode(kvEntry_Key(e), Value(e), &p)) {
        out->push_back(std::move(p));
      }
      kvEntry_Destroy(e);
    }
    if (s != NATS_OK) {
      *error = std::string("nats schedules: reading bucket ") + options_.bucket + ": " +
               natsStatus_GetText(s);
      return false;
    }
    watcher_thread_ = std::thread([this] { WatchLoop(); });
    writer_ = std::thread([this] { WriteLoop(); });
    return true;
  }

  void Put(const core::ScheduledPublication& s, std::function<void(bool)> done) override {
    Queue([this, id = s.id, value = Encode(s), done = std::move(done)] {
      uint64_t rev = 0;
      const natsStatus st =
          kvStore_Put(&rev, kv_, id.c_str(), value.data(), static_cast<int>(value.size()));
      if (st != NATS_OK) spdlog::warn("nats schedules: put {}: {}", id, natsStatus_GetText(st));
      done(st == NATS_OK);
    });
  }

  void Remove(const std::string& id, std::function<void(bool)> done) override {
    Queue([this, id, done = std::move(done)] {
      // The claim stays until it expires: a node that saw the schedule a moment before
      // this delete then finds the claim taken, and later the schedule gone.
      const natsStatus st = kvStore_Delete(kv_, id.c_str());
      if (done) done(st == NATS_OK);
    });
  }

  Claimed Claim(const std::string& id) override {
    kvEntry* e = nullptr;
    natsStatus s = kvStore_Get(&e, kv_, id.c_str());
    if (s == NATS_NOT_FOUND) return Claimed::kGone;
    if (e != nullptr) kvEntry_Destroy(e);
    if (s != NATS_OK) return Claimed::kTaken;  // NATS unreachable: asked again later
    uint64_t rev = 0;
    s = kvStore_Create(&rev, claims_, id.c_str(), "1", 1);
    return s == NATS_OK ? Claimed::kMine : Claimed::kTaken;
  }

 private:
  static std::string_view Value(kvEntry* e) {
    const auto* data = static_cast<const char*>(kvEntry_Value(e));
    const int n = kvEntry_ValueLen(e);
    return data == nullptr || n <= 0 ? std::string_view()
                                     : std::string_view(data, static_cast<size_t>(n));
  }

  // A bucket made with another TTL (the claims' lease changed since) takes this one: the
  // entries' expiry is the bucket stream's MaxAge. Nodes with different leases take turns;
  // a failure keeps the bucket's own and says so.
  void Retime(kvStore* kv, const std::string& name, int64_t ttl_ms) {
    kvStatus* status = nullptr;
    if (kvStore_Status(&status, kv) != NATS_OK) return;
    const int64_t current = kvStatus_TTL(status);
    kvStatus_Destroy(status);
    if (current == ttl_ms * 1000000) return;
    const std::string stream = "KV_" + name;
    jsStreamInfo* info = nullptr;
    natsStatus s = js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, nullptr);
    if (s == NATS_OK) {
      info->Config->MaxAge = ttl_ms * 1000000;
      jsStreamInfo* updated = nullptr;
      s = js_UpdateStream(&updated, js_, info->Config, nullptr, nullptr);
      if (updated != nullptr) jsStreamInfo_Destroy(updated);
      jsStreamInfo_Destroy(info);
    }
    if (s != NATS_OK) {
      spdlog::warn("nats schedules: bucket {} keeps its TTL of {} ms, not {} ms: {}", name,
                   current / 1000000, ttl_ms, natsStatus_GetText(s));
    }
  }

  void Queue(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        tasks_.push_back(std::move(task));
        ready_.notify_one();
        return;
      }
    }
    task();  // stopping: done on the caller's thread
  }

  void WriteLoop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  void WatchLoop() {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      kvEntry* e = nullptr;
      const natsStatus s = kvWatcher_Next(&e, watcher_, 200);
      if (s != NATS_OK || e == nullptr) continue;  // a timeout: look at stopping_ again
      const std::string id = kvEntry_Key(e);
      core::ScheduledPublication p;
      if (kvEntry_Operation(e) == kvOp_Put) {
        if (changes_.added && Decode(id, Value(e), &p)) changes_.added(std::move(p));
      } else if (changes_.removed) {
        changes_.removed(id);
      }
      kvEntry_Destroy(e);
    }
  }

  NatsScheduleOptions options_;
  Changes changes_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* kv_ = nullptr;
  kvStore* claims_ = nullptr;
  kvWatcher* watcher_ = nullptr;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread writer_;
  std::thread watcher_thread_;
};

}  // namespace

std::unique_ptr<core::ScheduleStore> MakeNatsSchedules(const NatsScheduleOptions& options,
                                                       std::string* error) {
  auto store = std::make_unique<NatsScheduleStore>(options);
  if (!store->Connect(error)) return nullptr;
  return store;
}

}  // namespace hermod::store
