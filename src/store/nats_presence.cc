#include "store/nats_presence.h"

#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/nats_kv.h"
#include "store/nats_tls.h"

namespace hermod::store {

namespace {

bool Kept(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '/';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is never written: one spelling per byte keeps the mapping injective
}

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string StatusText(natsStatus s) {
  std::string text = natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += std::string(" (") + last + ")";
  return text;
}

}  // namespace

std::string PresenceKeyToken(std::string_view s) {
  if (s.empty()) return "=";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (Kept(c)) {
      out += ch;
    } else {
      out += '=';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> ParsePresenceKeyToken(std::string_view token) {
  if (token == "=") return std::string();
  if (token.empty()) return std::nullopt;
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (Kept(c)) {
      out += token[i];
      continue;
    }
    if (c != '=' || token.size() - i < 3) return std::nullopt;
    const int high = HexValue(token[i + 1]), low = HexValue(token[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    const auto byte = static_cast<unsigned char>(high * 16 + low);
    if (Kept(byte)) return std::nullopt;  // written as itself, never escaped
    out += static_cast<char>(byte);
    i += 2;
  }
  return out;
}

std::string EncodePresenceValue(std::string_view user, std::string_view info) {
  std::string out = std::to_string(user.size());
  out += ':';
  out += user;
  out += info;
  return out;
}

std::optional<core::PresenceEntry> DecodePresenceValue(std::string_view value) {
  const size_t colon = value.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 10) return std::nullopt;
  size_t length = 0;
  for (size_t i = 0; i < colon; ++i) {
    if (value[i] < '0' || value[i] > '9') return std::nullopt;
    length = length * 10 + static_cast<size_t>(value[i] - '0');
  }
  if (length > value.size() - colon - 1) return std::nullopt;
  return core::PresenceEntry{std::string(value.substr(colon + 1, length)),
                             std::string(value.substr(colon + 1 + length))};
}

// The engine's thread and its NATS objects, shared by the store and its sets (a set may
// outlive the store: the hub destroys its engines before its channels).
class NatsPresenceStore::Engine {
 public:
  explicit Engine(Options options)
      : options_(std::move(options)),
        counters_(std::make_shared<Counters>()),
        subject_prefix_("$KV." + options_.bucket + ".") {}
  ~Engine() { Stop(); }

  bool Start(std::string* error);
  void Stop();

  void Put(std::string key, std::string value) {
    Enqueue(Op{Op::kPut, std::move(key), std::move(value), {}, {}, 0});
  }
  void Delete(std::string key) { Enqueue(Op{Op::kDelete, std::move(key), {}, {}, {}, 0}); }
  void List(std::string token, core::Completion<core::PresenceList> done) {
    Enqueue(Op{Op::kList, std::move(token), {}, std::move(done), {}, 0});
  }
  void Stats(std::string token, core::Completion<core::PresenceCounts> done) {
    Enqueue(Op{Op::kStats, std::move(token), {}, {}, std::move(done), 0});
  }

  const Options& options() const { return options_; }
  std::shared_ptr<const Counters> counters() const { return counters_; }

 private:
  struct Op {
    enum Kind : uint8_t { kPut, kDelete, kList, kStats } kind;
    std::string key;  // a list's or stats': the channel's token
    std::string value;
    core::Completion<core::PresenceList> list;
    core::Completion<core::PresenceCounts> stats;
    uint64_t after = 0;  // a read: the writes queued before it (it waits until they settled)
  };

  void Enqueue(Op op);
  // An operation that will not run: reads answer failed.
  void Refuse(Op& op);
  void Run();
  // A reader thread: takes a read (and the reads of the same channel queued with it), waits
  // until the writes queued before them are acknowledged, reads, answers.
  void ReadLoop();
  void Answer(std::vector<Op>& reads, bool ok, const core::PresenceList& list);
  // On the engine's thread (or in Start, before it runs): connection, JetStream, bucket.
  bool Connect(std::string* error);
  bool EnsureBucket(std::string* error);
  void Close();
  bool Connected() const {
    return nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
  }
  void Execute(Op& op);  // a write
  // False when the write was not handed to libnats (not connected, or refused).
  bool Write(const std::string& key, const std::string* value);
  // A delete that could not be sent is kept (bounded) and sent once connected again, so a
  // client that left during a NATS outage is not listed until presence_ttl.
  void KeepDelete(std::string key);
  void SendPendingDeletes();
  // Waits for this node's writes to be acknowledged (bounded by request_timeout_ms).
  void Settle();
  bool Read(const std::string& token, core::PresenceList* out);
  void Refresh();

  static void OnConnectionEvent(natsConnection* nc, void* self);
  static void OnClosed(natsConnection* nc, void* self);
  static void OnPublishError(jsCtx* js, jsPubAckErr* error, void* self);

  const Options options_;
  const std::shared_ptr<Counters> counters_;
  const std::string subject_prefix_;  // "$KV.<bucket>."

  // Guards queue_, reads_, the write counts, stopping_, started_, reconnected_,
  // unacked_deletes_.
  std::mutex mutex_;
  std::condition_variable wake_;      // the engine's thread
  std::condition_variable readable_;  // the readers: a read queued, or writes settled
  std::deque<Op> queue_;              // writes, for the engine's thread
  std::deque<Op> reads_;              // lists and stats, for the readers
  uint64_t writes_queued_ = 0;        // writes ever queued
  uint64_t writes_taken_ = 0;         // of those, taken by the engine's thread
  uint64_t writes_settled_ = 0;       // of those, sent and acknowledged (or failed)
  uint64_t settle_wanted_ = 0;        // the most writes a queued read waits for
  std::vector<std::thread> readers_;
  // nc_, js_ and kv_: the readers use them shared, the engine's thread replaces them (a
  // connect, a bucket made again, the close) exclusive.
  std::shared_mutex connection_mutex_;
  bool started_ = false;
  bool stopping_ = false;
  bool reconnected_ = false;                  // libnats reconnected: refresh now
  bool closed_ = false;                       // libnats's last callback for the connection has run
  std::vector<std::string> unacked_deletes_;  // keys of deletes sent and not acknowledged
  std::thread thread_;

  // Written by the engine's thread only (Start's first attempt before it runs), under
  // connection_mutex_ for the three the readers use.
  natsOptions* nats_options_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* kv_ = nullptr;
  // A write failed, or the connection came back (a server restarted with memory storage
  // lost the bucket): the next refresh makes sure of the bucket first.
  std::atomic<bool> bucket_failed_{false};
  std::unordered_map<std::string, std::string> local_;  // this node's entries, key -> value
  std::unordered_set<std::string> pending_deletes_;     // not sent yet (KeepDelete)
  uint64_t refresh_due_ms_ = 0;
  uint64_t connect_due_ms_ = 0;
};

void NatsPresenceStore::Engine::OnConnectionEvent(natsConnection* nc, void* self) {
  auto* engine = static_cast<Engine*>(self);
  const bool up = natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
  engine->counters_->connected.store(up);
  if (up) {
    {
      std::lock_guard lock(engine->mutex_);
      engine->reconnected_ = true;
    }
    engine->wake_.notify_one();
  }
}

// libnats's last callback for a connection: after it, none touches this engine.
void NatsPresenceStore::Engine::OnClosed(natsConnection*, void* self) {
  auto* engine = static_cast<Engine*>(self);
  std::lock_guard lock(engine->mutex_);
  engine->closed_ = true;
  engine->wake_.notify_all();  // under the lock: the engine is not freed before it returns
}

void NatsPresenceStore::Engine::OnPublishError(jsCtx*, jsPubAckErr* error, void* self) {
  auto* engine = static_cast<Engine*>(self);
  engine->counters_->write_errors.fetch_add(1, std::memory_order_relaxed);
  engine->bucket_failed_.store(true);
  const char* operation = nullptr;
  if (error->Msg != nullptr &&
      natsMsgHeader_Get(error->Msg, "KV-Operation", &operation) == NATS_OK &&
      operation != nullptr && std::string_view(operation) == "DEL") {
    const std::string_view subject = natsMsg_GetSubject(error->Msg);
    if (subject.size() > engine->subject_prefix_.size()) {
      std::lock_guard lock(engine->mutex_);
      engine->unacked_deletes_.emplace_back(subject.substr(engine->subject_prefix_.size()));
    }
  }
  spdlog::debug("presence: a write to NATS KV failed: {}",
                error->ErrText != nullptr ? error->ErrText : natsStatus_GetText(error->Err));
}

bool NatsPresenceStore::Engine::Connect(std::string* error) {
  auto fail = [&](natsStatus s, const char* what) {
    if (error != nullptr) *error = std::string("presence: ") + what + ": " + StatusText(s);
    return false;
  };
  natsStatus s;
  if (nats_options_ == nullptr) {
    if ((s = natsOptions_Create(&nats_options_)) != NATS_OK) return fail(s, "natsOptions_Create");
    natsOptions* o = nats_options_;
    if ((s = natsOptions_SetURL(o, options_.url.c_str())) != NATS_OK) {
      return fail(s, "config key nats.url");
    }
    natsOptions_SetName(o, "hermod-presence");
    if (std::string why; !ApplyNatsTls(o, options_.url, options_.tls, &why)) {
      if (error != nullptr) *error = "presence: " + why;
      natsOptions_Destroy(nats_options_);
      nats_options_ = nullptr;
      return false;
    }
    natsOptions_SetTimeout(o, static_cast<int64_t>(options_.dial_timeout_ms));
    natsOptions_SetWriteDeadline(o, static_cast<int64_t>(options_.dial_timeout_ms));
    natsOptions_SetAllowReconnect(o, true);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, static_cast<int64_t>(options_.reconnect_wait_ms));
    natsOptions_SetDisconnectedCB(o, &Engine::OnConnectionEvent, this);
    natsOptions_SetReconnectedCB(o, &Engine::OnConnectionEvent, this);
    natsOptions_SetClosedCB(o, &Engine::OnClosed, this);
  }
  if (nc_ == nullptr) {
    s = natsConnection_Connect(&nc_, nats_options_);
    if (s != NATS_OK) {
      nc_ = nullptr;
      return fail(s, ("connect to " + options_.url).c_str());
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = static_cast<int64_t>(options_.request_timeout_ms);
    jo.PublishAsync.MaxPending = 65536;
    jo.PublishAsync.ErrHandler = &Engine::OnPublishError;
    jo.PublishAsync.ErrHandlerClosure = this;
    jo.PublishAsync.StallWait = static_cast<int64_t>(options_.request_timeout_ms);
    if ((s = natsConnection_JetStream(&js_, nc_, &jo)) != NATS_OK) {
      Close();
      return fail(s, "JetStream context");
    }
  }
  counters_->connected.store(Connected());
  return EnsureBucket(error);
}

bool NatsPresenceStore::Engine::EnsureBucket(std::string* error) {
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = options_.bucket.c_str();
  config.Description = "hermod presence: <channel>.<client> -> user and ClientInfo";
  config.History = 1;
  config.TTL = static_cast<int64_t>(options_.ttl_ms) * 1000000;  // nanoseconds
  config.StorageType = options_.memory_storage ? js_MemoryStorage : js_FileStorage;
  config.Replicas = options_.replicas;
  kvStore* kv = nullptr;
  natsStatus s = js_CreateKeyValue(&kv, js_, &config);
  if (s != NATS_OK) {
    if (error != nullptr) {
      *error = "presence: NATS KV bucket \"" + options_.bucket + "\": " + StatusText(s) +
               " (is JetStream enabled, nats-server -js? A bucket of that name made with "
               "another presence_ttl, replicas or storage must be removed first: "
               "`nats kv rm " +
               options_.bucket + "`, or set nats.presence.bucket to another name)";
      // libnats gives no error code for a bucket: more than one replica is named as a cause.
      if (options_.replicas > 1) {
        *error += "; if nats-server refused the replicas: " +
                  NatsReplicasRefused("nats.presence.replicas", options_.replicas, options_.url);
      }
    }
    return false;
  }
  if (kv_ != nullptr) kvStore_Destroy(kv_);
  kv_ = kv;
  bucket_failed_ = false;
  return true;
}

void NatsPresenceStore::Engine::Close() {
  if (kv_ != nullptr) kvStore_Destroy(kv_);
  kv_ = nullptr;
  if (js_ != nullptr) jsCtx_Destroy(js_);
  js_ = nullptr;
  if (nc_ != nullptr) {
    {
      std::lock_guard lock(mutex_);
      closed_ = false;
    }
    natsConnection_Close(nc_);
    // libnats calls back on its own thread (disconnected, then closed): wait for the last.
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(2000), [this] { return closed_; });
    lock.unlock();
    natsConnection_Destroy(nc_);
  }
  nc_ = nullptr;
  counters_->connected.store(false);
}

bool NatsPresenceStore::Engine::Start(std::string* error) {
  std::string first;
  if (!Connect(&first)) {
    if (nc_ != nullptr || nats_options_ == nullptr) {
      // The server answered but the bucket is not usable, or the options are bad: loudly.
      if (error != nullptr) *error = first;
      Close();
      return false;
    }
    spdlog::warn("{}; retrying every {} ms", first, options_.reconnect_wait_ms);
  } else {
    spdlog::info("presence: NATS KV bucket {} at {} (ttl {} ms)", options_.bucket, options_.url,
                 options_.ttl_ms);
  }
  {
    std::lock_guard lock(mutex_);
    started_ = true;
  }
  thread_ = std::thread([this] { Run(); });
  for (int i = 0; i < std::max(1, options_.readers); ++i) {
    readers_.emplace_back([this] { ReadLoop(); });
  }
  return true;
}

void NatsPresenceStore::Engine::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  readable_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (std::thread& reader : readers_) reader.join();
  readers_.clear();
  std::unique_lock connection(connection_mutex_);
  Close();
  if (nats_options_ != nullptr) natsOptions_Destroy(nats_options_);
  nats_options_ = nullptr;
}

void NatsPresenceStore::Engine::Enqueue(Op op) {
  {
    std::lock_guard lock(mutex_);
    if (started_ && !stopping_) {
      if (op.kind == Op::kPut || op.kind == Op::kDelete) {
        ++writes_queued_;
        queue_.push_back(std::move(op));
        wake_.notify_one();
      } else {
        op.after = writes_queued_;
        if (op.after > writes_settled_) {
          settle_wanted_ = std::max(settle_wanted_, op.after);
          wake_.notify_one();
        }
        reads_.push_back(std::move(op));
        readable_.notify_one();
      }
      counters_->queued.store(queue_.size() + reads_.size(), std::memory_order_relaxed);
      return;
    }
  }
  Refuse(op);
}

void NatsPresenceStore::Engine::Refuse(Op& op) {
  if (op.kind == Op::kList) {
    core::PresenceList failed;
    failed.failed = true;
    counters_->read_errors.fetch_add(1, std::memory_order_relaxed);
    op.list(std::move(failed));
  } else if (op.kind == Op::kStats) {
    core::PresenceCounts failed;
    failed.failed = true;
    counters_->read_errors.fetch_add(1, std::memory_order_relaxed);
    op.stats(failed);
  }
}

void NatsPresenceStore::Engine::Run() {
  const uint64_t refresh_every = std::max<uint64_t>(1, options_.ttl_ms / 3);
  std::deque<Op> ops;
  std::vector<std::string> unacked;
  for (;;) {
    bool refresh_now = false, settle = false;
    uint64_t taken = 0;
    {
      std::unique_lock lock(mutex_);
      const uint64_t now = NowMs();
      uint64_t due = refresh_due_ms_;
      if (kv_ == nullptr) due = std::min(due, connect_due_ms_);
      if (due > now) {
        wake_.wait_for(lock, std::chrono::milliseconds(due - now), [&] {
          return stopping_ || !queue_.empty() || reconnected_ || settle_wanted_ > writes_settled_;
        });
      }
      ops.swap(queue_);  // stopping too: the writes still queued go out (a clean stop
                         // removes what its clients' leaving removed)
      writes_taken_ += ops.size();
      taken = writes_taken_;
      settle = settle_wanted_ > writes_settled_;
      counters_->queued.store(reads_.size(), std::memory_order_relaxed);
      refresh_now = std::exchange(reconnected_, false);
      if (refresh_now) bucket_failed_.store(true);
      unacked.swap(unacked_deletes_);
    }
    // A delete not acknowledged is sent again with the next refresh, unless put again since.
    for (std::string& key : unacked) {
      if (local_.count(key) == 0) KeepDelete(std::move(key));
    }
    if (!unacked.empty()) {
      counters_->pending_deletes.store(pending_deletes_.size(), std::memory_order_relaxed);
    }
    unacked.clear();
    const uint64_t now = NowMs();
    if (kv_ == nullptr && now >= connect_due_ms_) {
      std::string error;
      std::unique_lock connection(connection_mutex_);
      if (Connect(&error)) {
        spdlog::info("presence: NATS KV bucket {} at {} (ttl {} ms)", options_.bucket, options_.url,
                     options_.ttl_ms);
        refresh_now = true;
      } else {
        connect_due_ms_ = now + options_.reconnect_wait_ms;
      }
    }
    for (Op& op : ops) Execute(op);
    ops.clear();
    if (settle) {
      // A read waits for these writes: once acknowledged, they are in what it reads.
      if (js_ != nullptr) Settle();
      std::lock_guard lock(mutex_);
      writes_settled_ = taken;
      readable_.notify_all();
    }
    if (refresh_now || NowMs() >= refresh_due_ms_) {
      Refresh();
      refresh_due_ms_ = NowMs() + refresh_every;
    }
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && queue_.empty()) break;
    }
  }
  if (js_ != nullptr) Settle();
  // Reads still queued: nobody waits for them any more (their loops stop).
}

void NatsPresenceStore::Engine::ReadLoop() {
  for (;;) {
    std::vector<Op> reads;
    {
      std::unique_lock lock(mutex_);
      readable_.wait(lock, [&] { return stopping_ || !reads_.empty(); });
      if (stopping_) return;
      // The reads of one channel queued meanwhile share this read: made after all of them
      // were queued, it holds every write queued before any of them.
      const std::string token = reads_.front().key;
      uint64_t after = 0;
      for (auto it = reads_.begin(); it != reads_.end();) {
        if (it->key != token) {
          ++it;
          continue;
        }
        after = std::max(after, it->after);
        reads.push_back(std::move(*it));
        it = reads_.erase(it);
      }
      counters_->queued.store(queue_.size() + reads_.size(), std::memory_order_relaxed);
      readable_.wait(lock, [&] { return stopping_ || writes_settled_ >= after; });
      if (stopping_) return;
    }
    core::PresenceList list;
    bool ok = false;
    if (options_.before_read) options_.before_read(reads.front().key);
    {
      std::shared_lock connection(connection_mutex_);
      ok = Read(reads.front().key, &list);
    }
    Answer(reads, ok, list);
  }
}

void NatsPresenceStore::Engine::Answer(std::vector<Op>& reads, bool ok,
                                       const core::PresenceList& list) {
  for (size_t i = 0; i < reads.size(); ++i) {
    Op& op = reads[i];
    if (!ok) {
      Refuse(op);
      continue;
    }
    counters_->reads.fetch_add(1, std::memory_order_relaxed);
    if (i > 0) counters_->reads_shared.fetch_add(1, std::memory_order_relaxed);
    if (op.kind == Op::kList) {
      op.list(list);
    } else {
      std::unordered_set<std::string_view> users;
      for (const auto& [client, entry] : list) users.insert(entry.user);
      op.stats(core::PresenceCounts{list.size(), users.size(), false});
    }
  }
}

void NatsPresenceStore::Engine::Execute(Op& op) {
  switch (op.kind) {
    case Op::kPut:
      pending_deletes_.erase(op.key);  // put again: the put replaces the delete
      Write(op.key, &op.value);
      local_[op.key] = std::move(op.value);
      break;
    case Op::kDelete:
      if (local_.erase(op.key) != 0 && !Write(op.key, nullptr)) KeepDelete(std::move(op.key));
      break;
    case Op::kList:
    case Op::kStats:
      break;  // the readers' (ReadLoop)
  }
  counters_->entries.store(local_.size(), std::memory_order_relaxed);
  counters_->pending_deletes.store(pending_deletes_.size(), std::memory_order_relaxed);
}

void NatsPresenceStore::Engine::KeepDelete(std::string key) {
  if (pending_deletes_.size() >= kMaxPendingDeletes) {
    // Past the bound the entry is left to expire (presence_ttl): counted, not silent.
    counters_->deletes_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_deletes_.insert(std::move(key));
}

void NatsPresenceStore::Engine::SendPendingDeletes() {
  for (auto it = pending_deletes_.begin(); it != pending_deletes_.end();) {
    if (!Write(*it, nullptr)) break;  // down again: the next reconnect's refresh retries
    it = pending_deletes_.erase(it);
  }
  counters_->pending_deletes.store(pending_deletes_.size(), std::memory_order_relaxed);
}

bool NatsPresenceStore::Engine::Write(const std::string& key, const std::string* value) {
  // Not connected: the refresh after the (re)connect puts (or deletes) it.
  if (js_ == nullptr || !Connected()) return false;
  const std::string subject = subject_prefix_ + key;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = static_cast<int64_t>(options_.request_timeout_ms);
  natsStatus s;
  if (value != nullptr) {
    s = js_PublishAsync(js_, subject.c_str(), value->data(), static_cast<int>(value->size()), &po);
  } else {
    natsMsg* msg = nullptr;
    s = natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "KV-Operation", "DEL");
    if (s == NATS_OK) s = js_PublishMsgAsync(js_, &msg, &po);
    natsMsg_Destroy(msg);  // nothing when the library took it
  }
  counters_->writes.fetch_add(1, std::memory_order_relaxed);
  if (s != NATS_OK) {
    counters_->write_errors.fetch_add(1, std::memory_order_relaxed);
    bucket_failed_ = true;
    return false;
  }
  return true;
}

void NatsPresenceStore::Engine::Settle() {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = static_cast<int64_t>(options_.request_timeout_ms);
  if (js_PublishAsyncComplete(js_, &po) != NATS_OK) bucket_failed_ = true;
}

// A list is exact: it holds every entry put (and acknowledged) before the read began and not
// removed since. A watcher alone is not: libnats ends its initial values after as many
// messages as the first one's pending count, and entries put again during the read (every
// node refreshes its own) make that count too small, so a list could stop early. So the keys
// under the channel are taken first from the stream's subjects (one request); the watcher
// then brings their values, and any key it did not bring is read directly.
bool NatsPresenceStore::Engine::Read(const std::string& token, core::PresenceList* out) {
  if (kv_ == nullptr || !Connected()) return false;
  const uint64_t deadline = NowMs() + options_.request_timeout_ms;
  const std::string filter = token + ".*";
  std::unordered_set<std::string> expected;  // keys, without the "$KV.<bucket>." prefix
  {
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = static_cast<int64_t>(options_.request_timeout_ms);
    const std::string subjects = subject_prefix_ + filter;
    o.Stream.Info.SubjectsFilter = subjects.c_str();
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const std::string stream = "KV_" + options_.bucket;
    natsStatus s = js_GetStreamInfo(&info, js_, stream.c_str(), &o, &code);
    if (s != NATS_OK) {
      spdlog::debug("presence: stream info {}: {}", subjects, StatusText(s));
      return false;
    }
    if (info->State.Subjects != nullptr) {
      for (int i = 0; i < info->State.Subjects->Count; ++i) {
        const std::string_view subject = info->State.Subjects->List[i].Subject;
        if (subject.size() > subject_prefix_.size()) {
          expected.emplace(subject.substr(subject_prefix_.size()));
        }
      }
    }
    jsStreamInfo_Destroy(info);
  }
  auto add = [&](std::string_view key, kvEntry* entry) {
    std::optional<std::string> client;
    if (key.size() > token.size() + 1) client = ParsePresenceKeyToken(key.substr(token.size() + 1));
    const auto* data = static_cast<const char*>(kvEntry_Value(entry));
    const int length = kvEntry_ValueLen(entry);
    std::optional<core::PresenceEntry> value;
    if (data != nullptr && length > 0) {
      value = DecodePresenceValue(std::string_view(data, static_cast<size_t>(length)));
    }
    if (client && value) out->emplace_back(std::move(*client), std::move(*value));
  };
  if (expected.empty()) return true;

  kvWatchOptions wo;
  kvWatchOptions_Init(&wo);
  wo.Timeout = static_cast<int64_t>(options_.request_timeout_ms);
  kvWatcher* watcher = nullptr;
  natsStatus s = kvStore_Watch(&watcher, kv_, filter.c_str(), &wo);
  if (s != NATS_OK) {
    spdlog::debug("presence: watch {}: {}", filter, StatusText(s));
    return false;
  }
  std::unordered_set<std::string> seen;
  bool ok = true;
  for (;;) {
    const uint64_t now = NowMs();
    if (now >= deadline) {
      ok = false;
      break;
    }
    kvEntry* entry = nullptr;
    s = kvWatcher_Next(&entry, watcher, static_cast<int64_t>(deadline - now));
    if (s != NATS_OK) {
      ok = false;
      break;
    }
    if (entry == nullptr) break;  // libnats's end of the initial values (not always all)
    const std::string_view key = kvEntry_Key(entry);
    // A key seen twice (put again during the read) is listed once, with its first value.
    if (seen.emplace(key).second && kvEntry_Operation(entry) == kvOp_Put) add(key, entry);
    kvEntry_Destroy(entry);
  }
  kvWatcher_Destroy(watcher);
  if (!ok) return false;
  for (const std::string& key : expected) {
    if (seen.count(key) != 0) continue;
    kvEntry* entry = nullptr;
    s = kvStore_Get(&entry, kv_, key.c_str());
    if (s == NATS_NOT_FOUND) continue;  // removed (or expired) since: not listed
    if (s != NATS_OK) {
      spdlog::debug("presence: get {}: {}", key, StatusText(s));
      return false;
    }
    add(key, entry);
    kvEntry_Destroy(entry);
  }
  return true;
}

void NatsPresenceStore::Engine::Refresh() {
  if (js_ == nullptr) return;
  if (bucket_failed_ && Connected()) {
    std::string error;
    std::unique_lock connection(connection_mutex_);
    if (!EnsureBucket(&error)) spdlog::warn("{}", error);
  }
  SendPendingDeletes();
  for (const auto& [key, value] : local_) Write(key, &value);
}

namespace {

class NatsSet final : public core::PresenceStore::Set {
 public:
  NatsSet(std::shared_ptr<NatsPresenceStore::Engine> engine, std::string_view channel)
      : engine_(std::move(engine)), token_(PresenceKeyToken(channel)) {}

  void Add(std::string_view client, std::string_view user, std::string_view info) override {
    clients_.emplace(client);
    engine_->Put(Key(client), EncodePresenceValue(user, info));
  }
  void Remove(std::string_view client) override {
    auto it = clients_.find(std::string(client));
    if (it == clients_.end()) return;
    clients_.erase(it);
    engine_->Delete(Key(client));
  }
  std::optional<core::PresenceList> List(core::Completion<core::PresenceList> done) override {
    engine_->List(token_, std::move(done));
    return std::nullopt;
  }
  std::optional<core::PresenceCounts> Stats(core::Completion<core::PresenceCounts> done) override {
    engine_->Stats(token_, std::move(done));
    return std::nullopt;
  }
  size_t size() const override { return clients_.size(); }

 private:
  std::string Key(std::string_view client) const { return token_ + "." + PresenceKeyToken(client); }

  const std::shared_ptr<NatsPresenceStore::Engine> engine_;
  const std::string token_;
  std::unordered_set<std::string> clients_;  // this node's, for size()
};

}  // namespace

NatsPresenceStore::NatsPresenceStore(Options options)
    : engine_(std::make_shared<Engine>(std::move(options))) {}

NatsPresenceStore::~NatsPresenceStore() { Stop(); }

bool NatsPresenceStore::Start(std::string* error) { return engine_->Start(error); }

void NatsPresenceStore::Stop() { engine_->Stop(); }

std::unique_ptr<core::PresenceStore::Set> NatsPresenceStore::Open(std::string_view channel) {
  return std::make_unique<NatsSet>(engine_, channel);
}

std::shared_ptr<const NatsPresenceStore::Counters> NatsPresenceStore::counters() const {
  return engine_->counters();
}

const NatsPresenceStore::Options& NatsPresenceStore::options() const { return engine_->options(); }

}  // namespace hermod::store
