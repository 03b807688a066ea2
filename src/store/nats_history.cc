#include "store/nats_history.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

#include "core/loop_channels.h"
#include "core/schedule_store.h"
#include "store/epoch.h"
#include "store/memory_idempotency.h"
#include "store/nats_kv.h"
#include "store/nats_tls.h"

namespace hermod::store {

namespace {

constexpr const char* kOffset = "Hermod-Offset";
constexpr const char* kEpoch = "Hermod-Epoch";
constexpr const char* kSize = "Hermod-Size";
constexpr const char* kTtl = "Hermod-Ttl";
constexpr const char* kMark = "Hermod-Mark";
constexpr const char* kLengths = "Hermod-Lengths";  // a batch: each publication's bytes
constexpr const char* kDelta = "Hermod-Delta";      // "1" per delta publication, else "0"
constexpr size_t kBatchMax = 256;                   // publications in one message, at most
constexpr size_t kBatchBytes = 256 * 1024;          // and their bytes (under max_payload)
constexpr const char* kExpectSubjectSeq = "Nats-Expected-Last-Subject-Sequence";
constexpr const char* kMsgId = "Nats-Msg-Id";
constexpr int kMaxConflicts = 64;  // offset races lost in a row before an append fails

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint64_t ParseU64(const char* text) {
  if (text == nullptr) return 0;
  uint64_t v = 0;
  for (const char* p = text; *p >= '0' && *p <= '9'; ++p)
    v = v * 10 + static_cast<uint64_t>(*p - '0');
  return v;
}

const char* Header(natsMsg* msg, const char* key) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, key, &value) != NATS_OK) return nullptr;
  return value;
}

// A message's publications: one, or a batch (Hermod-Lengths "12,40,33"); empty when the
// lengths do not match the payload.
std::vector<std::string_view> Publications(natsMsg* msg) {
  const std::string_view payload(natsMsg_GetData(msg),
                                 static_cast<size_t>(natsMsg_GetDataLength(msg)));
  const char* lengths = Header(msg, kLengths);
  if (lengths == nullptr) return {payload};
  std::vector<std::string_view> out;
  size_t at = 0;
  for (const char* p = lengths; *p != '\0';) {
    const uint64_t n = ParseU64(p);
    if (n > payload.size() - at) return {};
    out.push_back(payload.substr(at, n));
    at += n;
    while (*p >= '0' && *p <= '9') ++p;
    if (*p == ',') ++p;
  }
  if (at != payload.size()) return {};
  return out;
}

// Whether the i-th publication of msg was published with the API's delta (kDelta).
bool DeltaAt(natsMsg* msg, size_t i) {
  const char* flags = Header(msg, kDelta);
  if (flags == nullptr) return false;
  const std::string_view f(flags);
  return i < f.size() && f[i] == '1';
}

bool PlainTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == ':';
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// A task queue served by one thread, in order.
}  // namespace

class NatsHistoryStore::Worker {
 public:
  Worker(size_t cache_bytes, NatsReadCacheCounts* counts)
      : cache_(cache_bytes, counts), thread_([this] { Run(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    ready_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
  }
  // The histories this worker's channels were last read with: its thread's only.
  NatsReadCache& cache() { return cache_; }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, all done
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
  bool stop_ = false;
  NatsReadCache cache_;  // before thread_, which uses it
  std::thread thread_;
};

std::string SubjectToken(std::string_view channel) {
  bool plain = !channel.empty();
  for (char c : channel) plain = plain && PlainTokenChar(c);
  if (plain) return std::string(channel);
  std::string out = "~";
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : channel) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(kB64[(bits >> count) & 63]);
    }
  }
  if (count > 0) out.push_back(kB64[(bits << (6 - count)) & 63]);
  return out;
}

std::optional<std::string> ChannelOfToken(std::string_view token) {
  if (token.empty()) return std::nullopt;
  if (token[0] != '~') {
    for (char c : token) {
      if (!PlainTokenChar(c)) return std::nullopt;
    }
    return std::string(token);
  }
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : token.substr(1)) {
    const int v = B64Value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  // Unpadded base64: leftover bits are zero and fewer than a byte; a name that maps to
  // itself plainly is never encoded.
  if (count >= 6 || (bits & ((1u << count) - 1)) != 0 || out.empty()) return std::nullopt;
  if (SubjectToken(out) != token) return std::nullopt;
  return out;
}

// A channel's view for the hub: everything goes to the channel's worker.
class NatsHistoryStore::NatsStream final : public core::HistoryStore::Stream {
 public:
  NatsStream(NatsHistoryStore& store, std::shared_ptr<Channel> channel)
      : store_(store), channel_(std::move(channel)) {}

  core::StreamPosition Position() const override {
    std::lock_guard lock(channel_->mutex);
    return {channel_->top, channel_->epoch};
  }

  std::optional<core::HistoryAppended> Append(
      const core::HistoryAppend& a, const core::PublicationEncoder& encode,
      core::Completion<core::HistoryAppended> done) override {
    if (store_.status_.RefuseNow()) {
      // JetStream failed lately (the breaker is open): no request, refused now.
      store_.store_errors_.fetch_add(1, std::memory_order_relaxed);
      core::HistoryAppended refused;
      refused.failed = true;
      return refused;
    }
    bool first;
    {
      std::lock_guard lock(channel_->mutex);
      first = channel_->pending.empty();
      channel_->pending.push_back({std::string(a.data), std::string(a.info), std::string(a.tags),
                                   std::string(a.idempotency_key), a.size, a.ttl_ms, &encode,
                                   std::move(done), false, StatusKeeper::SteadyUs(), a.delta});
    }
    store_.status_.Queued(1);
    // One flush task for what piles up meanwhile: the worker takes it all at once.
    if (first) {
      store_.WorkerOf(*channel_).Post(
          [store = &store_, channel = channel_] { store->Flush(*channel); });
    }
    return std::nullopt;
  }

  std::optional<core::HistoryPage> Read(const core::HistoryQuery& q,
                                        core::Completion<core::HistoryPage> done) override {
    store_.WorkerOf(*channel_).Post([store = &store_, channel = channel_, q, done = std::move(done),
                                     queued = StatusKeeper::SteadyUs()]() mutable {
      core::HistoryPage page;
      const uint64_t now = WallMs();
      const bool ok = store->Snapshot(*channel, now, [&](core::HistoryStream& stream) {
        page.position = {stream.top(), stream.epoch()};
        const core::StreamPosition* since = q.since ? &*q.since : nullptr;
        if (since && !since->epoch.empty() && since->epoch != stream.epoch()) {
          page.unrecoverable = true;
        } else {
          page.publications = stream.Read(since, q.limit, q.reverse, now, q.max_bytes, &page.cut);
        }
      });
      store->status_.Record(StoreStatus::kRead, queued);
      page.failed = !ok;
      done(std::move(page));
    });
    return std::nullopt;
  }

  std::optional<core::HistoryStream::Recovery> Recover(
      const core::RecoveryQuery& q, core::Completion<core::HistoryStream::Recovery> done) override {
    store_.WorkerOf(*channel_).Post([store = &store_, channel = channel_, q, done = std::move(done),
                                     queued = StatusKeeper::SteadyUs()]() mutable {
      core::HistoryStream::Recovery r;
      const uint64_t now = WallMs();
      store->Snapshot(*channel, now, [&](core::HistoryStream& stream) {
        // All it holds past since, cut at until (the hub fans out what is past it), then
        // the limits.
        r = stream.Recover(q.since, SIZE_MAX, now);
      });
      store->status_.Record(StoreStatus::kRecover, queued);
      const uint64_t wanted = q.until > q.since.offset ? q.until - q.since.offset : 0;
      if (r.recovered && r.publications.size() > wanted) r.publications.resize(wanted);
      size_t bytes = 0;
      for (const std::string& p : r.publications) bytes += p.size() + 1;
      if (r.publications.size() > q.max_publications || bytes > q.max_bytes) r = {};
      done(std::move(r));
    });
    return std::nullopt;
  }

  // In the appends' queue: an append made after it is never removed by it.
  void Remove() override {
    bool first;
    {
      std::lock_guard lock(channel_->mutex);
      first = channel_->pending.empty();
      PendingAppend remove;
      remove.remove = true;
      remove.queued_us = StatusKeeper::SteadyUs();
      channel_->pending.push_back(std::move(remove));
    }
    store_.status_.Queued(1);
    if (first) {
      store_.WorkerOf(*channel_).Post(
          [store = &store_, channel = channel_] { store->Flush(*channel); });
    }
  }
  // Durable: nothing of it is in this process's memory.
  void Expire(uint64_t) override {}
  size_t entries() const override { return 0; }
  size_t bytes() const override { return 0; }
  uint64_t expires_ms() const override { return 0; }

 private:
  NatsHistoryStore& store_;
  std::shared_ptr<Channel> channel_;
};

NatsHistoryStore::NatsHistoryStore(NatsHistoryOptions options)
    : options_(std::move(options)),
      status_("nats", options_.breaker),
      history_prefix_(options_.prefix + ".history."),
      deliver_prefix_(options_.prefix + ".deliver.") {}

NatsHistoryStore::~NatsHistoryStore() { Stop(); }

void NatsHistoryStore::Stop() {
  std::unordered_map<std::string, natsSubscription*> subscriptions;
  {
    std::lock_guard lock(subscriptions_mutex_);
    stopped_ = true;  // Interest subscribes no more
    subscriptions.swap(subscriptions_);
  }
  for (auto& [channel, sub] : subscriptions) natsSubscription_Unsubscribe(sub);
  {
    // Each one's completion comes after its last delivery callback: none runs past this
    // (bounded, in case the library is closed under it).
    std::unique_lock lock(done_mutex_);
    done_.wait_for(lock, std::chrono::seconds(5), [this] { return pending_done_ <= 0; });
  }
  for (auto& [channel, sub] : subscriptions) natsSubscription_Destroy(sub);
  if (deliveries_ != nullptr) {
    // Drained: no delivery callback runs once this returns (the hub may be going).
    if (natsSubscription_Drain(deliveries_) == NATS_OK) {
      natsSubscription_WaitForDrainCompletion(deliveries_, 5000);
    }
    natsSubscription_Destroy(deliveries_);
    deliveries_ = nullptr;
  }
  workers_.clear();  // each finishes what it holds (JetStream answers, or times out)
  if (js_ != nullptr) {
    jsCtx_Destroy(js_);
    js_ = nullptr;
  }
  if (connection_ != nullptr) {
    natsConnection_Close(connection_);
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
  }
  if (nats_options_ != nullptr) {
    natsOptions_Destroy(nats_options_);
    nats_options_ = nullptr;
  }
}

void NatsHistoryStore::Failed() { failed_at_ms_.store(WallMs(), std::memory_order_relaxed); }

bool NatsHistoryStore::Down() const {
  const uint64_t at = failed_at_ms_.load(std::memory_order_relaxed);
  return at != 0 && WallMs() < at + 1000;
}

bool NatsHistoryStore::Start(std::string* error) {
  auto fail = [&](natsStatus s, const std::string& what) {
    *error = "history_engine nats: " + what + ": " + natsStatus_GetText(s);
    const char* last = nats_GetLastError(nullptr);
    if (last != nullptr && *last != '\0') *error += std::string(" (") + last + ")";
    return false;
  };
  natsStatus s = natsOptions_Create(&nats_options_);
  if (s != NATS_OK) return fail(s, "natsOptions_Create");
  if ((s = natsOptions_SetURL(nats_options_, options_.url.c_str())) != NATS_OK) {
    return fail(s, "config key nats.url");
  }
  natsOptions_SetName(nats_options_, "hermod-history");
  if (std::string why; !ApplyNatsTls(nats_options_, options_.url, options_.tls, &why)) {
    *error = "history_engine nats: " + why;
    return false;
  }
  natsOptions_SetTimeout(nats_options_, static_cast<int64_t>(options_.timeout_ms));
  natsOptions_SetAllowReconnect(nats_options_, true);
  natsOptions_SetMaxReconnect(nats_options_, -1);
  natsOptions_SetReconnectWait(nats_options_, 250);
  // Appends are requests answered by the server: a publish sent at once, not after the
  // flusher's millisecond.
  natsOptions_SetSendAsap(nats_options_, true);
  natsOptions_SetReconnectedCB(nats_options_, &NatsHistoryStore::OnReconnected, this);
  // A subscription per held channel: one delivery thread for all of them (libnats's pool),
  // not one each. A channel's deliveries stay on one thread, in order.
  if (options_.deliver_by_channel) natsOptions_UseGlobalMessageDelivery(nats_options_, true);
  // While reconnecting, a request is refused at once, never buffered to be sent later: an
  // append the publisher was told failed must not be stored after all.
  natsOptions_SetReconnectBufSize(nats_options_, 0);
  if ((s = natsConnection_Connect(&connection_, nats_options_)) != NATS_OK) {
    return fail(s, "connect to " + options_.url);
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = static_cast<int64_t>(options_.timeout_ms);
  if ((s = natsConnection_JetStream(&js_, connection_, &jo)) != NATS_OK) {
    return fail(s, "JetStream context");
  }
  if (!EnsureStream(error)) return false;
  if (options_.deliver && !options_.deliver_by_channel) {
    const std::string subject = deliver_prefix_ + ">";
    s = natsConnection_Subscribe(&deliveries_, connection_, subject.c_str(),
                                 &NatsHistoryStore::OnDeliver, this);
    if (s != NATS_OK) return fail(s, "subscribe to " + subject);
    // Deliveries must not be dropped for a slow hub: libnats's limits, raised.
    natsSubscription_SetPendingLimits(deliveries_, -1, -1);
    natsConnection_Flush(connection_);
  }
  for (size_t i = 0; i < std::max<size_t>(1, options_.workers); ++i) {
    workers_.push_back(std::make_unique<Worker>(
        options_.read_cache_bytes / std::max<size_t>(1, options_.workers), &read_cache_counts_));
  }
  return true;
}

bool NatsHistoryStore::EnsureStream(std::string* error) {
  const std::string subject = history_prefix_ + ">";
  const std::string republish = deliver_prefix_ + ">";
  const char* subjects[] = {subject.c_str()};
  jsRePublish rp;
  jsRePublish_Init(&rp);
  rp.Source = subject.c_str();
  rp.Destination = republish.c_str();
  jsStreamConfig want;
  jsStreamConfig_Init(&want);
  want.Name = options_.stream.c_str();
  want.Subjects = subjects;
  want.SubjectsLen = 1;
  want.Retention = js_LimitsPolicy;
  want.Storage = options_.file_storage ? js_FileStorage : js_MemoryStorage;
  want.Replicas = options_.replicas;
  want.MaxMsgsPerSubject = std::max<int64_t>(1, options_.max_msgs_per_subject);
  want.MaxAge = static_cast<int64_t>(options_.max_age_ms) * 1000000;
  want.Duplicates =
      static_cast<int64_t>(std::max<uint64_t>(options_.duplicates_ms, 1000)) * 1000000;
  if (want.MaxAge != 0 && want.Duplicates > want.MaxAge) want.Duplicates = want.MaxAge;
  want.AllowDirect = true;
  if (options_.deliver) want.RePublish = &rp;
  const std::string fix =
      "; fix: set nats.jetstream.stream to another name, or remove the stream (`nats stream rm " +
      options_.stream + "`)";

  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, options_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
    s = js_AddStream(&info, js_, &want, nullptr, &jerr);
    if (s != NATS_OK && jerr == JSStreamReplicasNotSupportedErr) {
      *error = "history_engine nats: cannot create JetStream stream " + options_.stream + ": " +
               NatsReplicasRefused("nats.jetstream.replicas", options_.replicas, options_.url);
      return false;
    }
    if (s != NATS_OK) {
      const char* last = nats_GetLastError(nullptr);
      *error = "history_engine nats: cannot create JetStream stream " + options_.stream + ": " +
               natsStatus_GetText(s) + (last ? std::string(" (") + last + ")" : "") +
               " (is nats-server running with -js?)";
      return false;
    }
    jsStreamInfo_Destroy(info);
    return true;
  }
  if (s != NATS_OK) {
    const char* last = nats_GetLastError(nullptr);
    *error = "history_engine nats: JetStream not available at " + options_.url + ": " +
             natsStatus_GetText(s) + (last ? std::string(" (") + last + ")" : "") +
             " (is nats-server running with -js?)";
    return false;
  }
  const jsStreamConfig* have = info->Config;
  std::string conflict;
  auto add = [&conflict](const std::string& why) {
    conflict += (conflict.empty() ? "" : "; ") + why;
  };
  bool has_subject = false;
  for (int i = 0; i < have->SubjectsLen; ++i) has_subject |= subject == have->Subjects[i];
  if (!has_subject) add("its subjects do not include " + subject);
  if (have->Retention != js_LimitsPolicy) add("its retention is not limits");
  if (have->Storage != want.Storage) {
    add(std::string("its storage is ") + (have->Storage == js_FileStorage ? "file" : "memory") +
        " (nats.jetstream.storage says " + (options_.file_storage ? "file" : "memory") + ")");
  }
  if (have->Mirror != nullptr || have->SourcesLen > 0) add("it is a mirror or has sources");
  // RePublish cannot be changed on a stream (nats-server 2.9): it must be hermod's already.
  const bool republishes =
      have->RePublish != nullptr && have->RePublish->Source != nullptr &&
      have->RePublish->Destination != nullptr && subject == have->RePublish->Source &&
      republish == have->RePublish->Destination && !have->RePublish->HeadersOnly;
  if (options_.deliver && !republishes) {
    add("it does not RePublish " + subject + " to " + republish);
  }
  if (have->Discard != js_DiscardOld) add("its discard policy is not old");
  if (have->MaxMsgs > 0 || have->MaxBytes > 0) {
    add("it has MaxMsgs or MaxBytes limits (hermod trims per subject)");
  }
  if (!conflict.empty()) {
    jsStreamInfo_Destroy(info);
    *error = "history_engine nats: JetStream stream " + options_.stream +
             " conflicts: " + conflict + fix;
    return false;
  }
  // Limits hermod sets (per-subject size, age, duplicates window, direct get, republish) are
  // brought to what config says.
  bool update = have->MaxMsgsPerSubject != want.MaxMsgsPerSubject || have->MaxAge != want.MaxAge ||
                have->Duplicates != want.Duplicates || !have->AllowDirect ||
                have->Replicas != want.Replicas;
  jsStreamInfo_Destroy(info);
  if (!update) return true;
  s = js_UpdateStream(&info, js_, &want, nullptr, &jerr);
  if (s != NATS_OK && jerr == JSStreamReplicasNotSupportedErr) {
    *error = "history_engine nats: cannot update JetStream stream " + options_.stream + ": " +
             NatsReplicasRefused("nats.jetstream.replicas", options_.replicas, options_.url);
    return false;
  }
  if (s != NATS_OK) {
    const char* last = nats_GetLastError(nullptr);
    *error = "history_engine nats: JetStream stream " + options_.stream +
             " conflicts and cannot be updated: " + natsStatus_GetText(s) +
             (last ? std::string(" (") + last + ")" : "") + fix;
    return false;
  }
  jsStreamInfo_Destroy(info);
  return true;
}

std::shared_ptr<NatsHistoryStore::Channel> NatsHistoryStore::ChannelOf(std::string_view channel) {
  std::lock_guard lock(mutex_);
  auto it = channels_.find(std::string(channel));
  if (it != channels_.end()) return it->second;
  // Bounded: channels no Stream holds are forgotten first (their next Open reads again).
  if (channels_.size() >= 100000) {
    for (auto e = channels_.begin(); e != channels_.end();) {
      e = e->second.use_count() == 1 ? channels_.erase(e) : std::next(e);
    }
  }
  auto state = std::make_shared<Channel>(std::string(channel));
  channels_.emplace(state->name, state);
  return state;
}

NatsHistoryStore::Worker& NatsHistoryStore::WorkerOf(const Channel& channel) {
  return *workers_[core::LoopChannels::Hash{}(channel.name) % workers_.size()];
}

bool NatsHistoryStore::ReadLast(const Channel& channel, Last* last, natsStatus* status) {
  const std::string subject = history_prefix_ + channel.token;
  jsDirectGetMsgOptions dg;
  jsDirectGetMsgOptions_Init(&dg);
  dg.LastBySubject = subject.c_str();
  natsMsg* msg = nullptr;
  natsStatus s = js_DirectGetMsg(&msg, js_, options_.stream.c_str(), nullptr, &dg);
  *status = s;
  if (s == NATS_NOT_FOUND) {
    *last = {};
    return true;
  }
  if (s != NATS_OK) return false;
  last->found = true;
  // A batch's offset is its first publication's.
  const size_t count =
      Header(msg, kMark) != nullptr ? 1 : std::max<size_t>(1, Publications(msg).size());
  last->position = {ParseU64(Header(msg, kOffset)) + count - 1, ""};
  if (const char* e = Header(msg, kEpoch)) last->position.epoch = e;
  last->seq = natsMsg_GetSequence(msg);
  natsMsg_Destroy(msg);
  return true;
}

bool NatsHistoryStore::Load(Channel& channel) {
  Last last;
  natsStatus s;
  if (!ReadLast(channel, &last, &s)) {
    Failed();
    return false;
  }
  // A channel never written: its epoch is named now, by a mark at offset 0 that only the
  // first node can write, so that its first subscriber already has the cluster's epoch.
  if (!last.found) {
    const std::string subject = history_prefix_ + channel.token;
    const std::string epoch = NewEpoch();
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0) != NATS_OK) return false;
    natsMsgHeader_Set(msg, kOffset, "0");
    natsMsgHeader_Set(msg, kEpoch, epoch.c_str());
    natsMsgHeader_Set(msg, kMark, "epoch");
    natsMsgHeader_Set(msg, kExpectSubjectSeq, "0");
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&ack, js_, msg, nullptr, &jerr);
    natsMsg_Destroy(msg);
    if (s == NATS_OK && ack != nullptr) {
      last.found = true;
      last.position = {0, epoch};
      last.seq = ack->Sequence;
    } else if (jerr != JSStreamWrongLastSequenceErr || !ReadLast(channel, &last, &s)) {
      if (ack != nullptr) jsPubAck_Destroy(ack);
      Failed();
      return false;  // another node named it first: read above, else failed
    }
    if (ack != nullptr) jsPubAck_Destroy(ack);
  }
  std::lock_guard lock(channel.mutex);
  // A delivery may have brought a newer message meanwhile.
  if (!channel.loaded || last.seq >= channel.last_seq) {
    channel.top = last.position.offset;
    channel.epoch = last.position.epoch;
    channel.last_seq = last.seq;
  }
  // Where deliveries start being checked for gaps: what the channel held when first read.
  if (channel.delivered_seq == 0) {
    channel.delivered = last.position.offset;
    channel.delivered_seq = last.seq;
    channel.delivered_epoch = last.position.epoch;
  }
  channel.loaded = true;
  return true;
}

void NatsHistoryStore::Flush(Channel& channel) {
  for (;;) {
    std::vector<PendingAppend> batch;
    bool remove = false;
    uint64_t remove_queued = 0;
    {
      std::lock_guard lock(channel.mutex);
      if (!channel.pending.empty() && channel.pending.front().remove) {
        remove_queued = channel.pending.front().queued_us;
        channel.pending.pop_front();
        remove = true;
      }
      size_t bytes = 0;
      while (!remove && !channel.pending.empty() && batch.size() < kBatchMax) {
        PendingAppend& next = channel.pending.front();
        if (next.remove) break;
        // A keyed publication is a message of its own (the key is the message's id); a
        // batch shares one size and TTL.
        if (!batch.empty() &&
            (!next.key.empty() || !batch.front().key.empty() || next.size != batch.front().size ||
             next.ttl_ms != batch.front().ttl_ms || bytes + next.data.size() > kBatchBytes)) {
          break;
        }
        bytes += next.data.size() + next.info.size() + next.tags.size();
        batch.push_back(std::move(next));
        channel.pending.pop_front();
      }
    }
    if (remove) {
      status_.Queued(-1);
      DoRemove(channel);
      status_.Record(StoreStatus::kRemove, remove_queued);
      continue;
    }
    if (batch.empty()) return;
    status_.Queued(-static_cast<int64_t>(batch.size()));
    std::vector<core::HistoryAppended> results;
    if (!status_.Allow()) {
      // Open (or half-open with its trial out): refused without a request.
      store_errors_.fetch_add(batch.size(), std::memory_order_relaxed);
      results.resize(batch.size());
      for (core::HistoryAppended& r : results) r.failed = true;
    } else {
      std::string error;
      results = DoAppend(channel, batch, &error);
      if (results.front().failed) {
        status_.Failed(StoreStatus::kIo, "JetStream stream " + options_.stream + " at " +
                                             options_.url + ": " + error +
                                             ": publications to channels with history are refused");
      } else {
        status_.Succeeded();
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      status_.Record(StoreStatus::kAppend, batch[i].queued_us);
      batch[i].done(std::move(results[i]));
    }
  }
}

std::vector<core::HistoryAppended> NatsHistoryStore::DoAppend(Channel& channel,
                                                              std::vector<PendingAppend>& batch,
                                                              std::string* error) {
  auto failed = [&] {
    if (error->empty()) {
      const char* last = nats_GetLastError(nullptr);
      *error = last != nullptr && *last != '\0' ? last : "no answer";
    }
    store_errors_.fetch_add(batch.size(), std::memory_order_relaxed);
    std::vector<core::HistoryAppended> out(batch.size());
    for (core::HistoryAppended& r : out) r.failed = true;
    return out;
  };
  bool loaded;
  {
    std::lock_guard lock(channel.mutex);
    loaded = channel.loaded;
  }
  if (!loaded && !Load(channel)) return failed();
  const PendingAppend& head = batch.front();
  const std::string subject = history_prefix_ + channel.token;
  const std::string msg_id = head.key.empty() ? std::string() : channel.token + " " + head.key;
  const std::string size_text = std::to_string(head.size);
  const std::string ttl_text = std::to_string(head.ttl_ms);
  if (core::IsFireKey(head.key)) {
    // A scheduled publication fired again after a crash may come later than JetStream's
    // duplicate window: the channel's stored messages are searched for its id first, so it
    // is published once while the first one is in the channel's history.
    std::optional<core::StreamPosition> seen;
    if (!FindMsgId(channel, msg_id, &seen)) return failed();
    if (seen) {
      duplicates_.fetch_add(1, std::memory_order_relaxed);
      std::vector<core::HistoryAppended> out(batch.size());
      out[0].duplicate = true;
      out[0].position = std::move(*seen);
      return out;
    }
  }
  for (int attempt = 0; attempt < kMaxConflicts; ++attempt) {
    uint64_t first;
    uint64_t expect;
    std::string epoch;
    {
      std::lock_guard lock(channel.mutex);
      // No message at all: this append starts the channel's stream, with a new epoch
      // (whoever appends first names it; the others' appends conflict and adopt it).
      if (channel.last_seq == 0) {
        channel.epoch = NewEpoch();
        channel.top = 0;
      }
      first = channel.top + 1;
      expect = channel.last_seq;
      epoch = channel.epoch;
    }
    // Encoded with their offsets (again after a conflict): one payload, lengths beside it.
    std::vector<std::string> publications;
    publications.reserve(batch.size());
    std::string payload;
    std::string lengths;
    std::string deltas;
    bool any_delta = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      const PendingAppend& a = batch[i];
      publications.push_back((*a.encode)(a.data, a.info, first + i, a.tags));
      payload += publications.back();
      if (i > 0) lengths += ',';
      lengths += std::to_string(publications.back().size());
      deltas += a.delta ? '1' : '0';
      any_delta = any_delta || a.delta;
    }
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), nullptr, payload.data(),
                       static_cast<int>(payload.size())) != NATS_OK) {
      return failed();
    }
    const std::string offset_text = std::to_string(first);
    const std::string expect_text = std::to_string(expect);
    natsMsgHeader_Set(msg, kOffset, offset_text.c_str());
    natsMsgHeader_Set(msg, kEpoch, epoch.c_str());
    natsMsgHeader_Set(msg, kSize, size_text.c_str());
    natsMsgHeader_Set(msg, kTtl, ttl_text.c_str());
    if (batch.size() > 1) natsMsgHeader_Set(msg, kLengths, lengths.c_str());
    if (any_delta) natsMsgHeader_Set(msg, kDelta, deltas.c_str());
    natsMsgHeader_Set(msg, kExpectSubjectSeq, expect_text.c_str());
    if (!msg_id.empty()) natsMsgHeader_Set(msg, kMsgId, msg_id.c_str());
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&ack, js_, msg, nullptr, &jerr);
    natsMsg_Destroy(msg);
    if (s == NATS_OK && ack != nullptr) {
      const uint64_t seq = ack->Sequence;
      const bool duplicate = ack->Duplicate;
      jsPubAck_Destroy(ack);
      std::vector<core::HistoryAppended> out(batch.size());
      if (duplicate) {
        // The first publication with this key (always a message of its own): its position,
        // nothing appended.
        duplicates_.fetch_add(1, std::memory_order_relaxed);
        natsMsg* original = nullptr;
        jsDirectGetMsgOptions dg;
        jsDirectGetMsgOptions_Init(&dg);
        dg.Sequence = seq;
        if (js_DirectGetMsg(&original, js_, options_.stream.c_str(), nullptr, &dg) != NATS_OK) {
          Failed();
          return failed();
        }
        out[0].duplicate = true;
        out[0].position.offset = ParseU64(Header(original, kOffset));
        if (const char* e = Header(original, kEpoch)) out[0].position.epoch = e;
        natsMsg_Destroy(original);
        return out;
      }
      const uint64_t top = first + batch.size() - 1;
      {
        std::lock_guard lock(channel.mutex);
        if (seq > channel.last_seq) {
          channel.top = top;
          channel.epoch = epoch;
          channel.last_seq = seq;
        }
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        out[i].position = {first + i, epoch};
        out[i].publication = std::move(publications[i]);
      }
      return out;
    }
    if (ack != nullptr) jsPubAck_Destroy(ack);
    if (jerr == JSStreamWrongLastSequenceErr) {
      // Another node appended first: its message is the last now; read it and go again.
      conflicts_.fetch_add(1, std::memory_order_relaxed);
      if (!Load(channel)) break;
      continue;
    }
    Failed();
    *error = natsStatus_GetText(s);
    if (jerr != 0) *error += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
    break;
  }
  if (error->empty())
    *error = "offsets taken by other nodes " + std::to_string(kMaxConflicts) +
             " times in a row, or the channel's last message unreadable";
  return failed();
}

natsStatus NatsHistoryStore::NextOf(const std::string& subject, uint64_t seq, natsMsg** msg) {
  jsDirectGetMsgOptions dg;
  jsDirectGetMsgOptions_Init(&dg);
  dg.Sequence = seq;
  dg.NextBySubject = subject.c_str();
  return js_DirectGetMsg(msg, js_, options_.stream.c_str(), nullptr, &dg);
}

bool NatsHistoryStore::FindMsgId(Channel& channel, const std::string& msg_id,
                                 std::optional<core::StreamPosition>* found) {
  // To the stream's end, not the last message this node saw: another node's are searched.
  const std::string subject = history_prefix_ + channel.token;
  for (uint64_t seq = 1;;) {
    natsMsg* msg = nullptr;
    const natsStatus s = NextOf(subject, seq, &msg);
    if (s == NATS_NOT_FOUND) break;
    if (s != NATS_OK) {
      Failed();
      return false;
    }
    const char* id = Header(msg, kMsgId);
    if (id != nullptr && msg_id == id) {
      core::StreamPosition p{ParseU64(Header(msg, kOffset)), ""};
      if (const char* e = Header(msg, kEpoch)) p.epoch = e;
      *found = std::move(p);
      natsMsg_Destroy(msg);
      return true;
    }
    seq = natsMsg_GetSequence(msg) + 1;
    natsMsg_Destroy(msg);
  }
  return true;
}

bool NatsHistoryStore::Scan(const Channel& channel, uint64_t from, uint64_t to,
                            std::vector<Entry>* out, uint64_t* size) {
  const std::string subject = history_prefix_ + channel.token;
  for (uint64_t seq = from; seq <= to;) {
    natsMsg* msg = nullptr;
    const natsStatus s = NextOf(subject, seq, &msg);
    read_messages_.fetch_add(1, std::memory_order_relaxed);
    if (s == NATS_NOT_FOUND) break;
    if (s != NATS_OK) {
      Failed();
      return false;
    }
    const uint64_t got = natsMsg_GetSequence(msg);
    if (got > to) {
      natsMsg_Destroy(msg);
      break;
    }
    Entry e;
    e.seq = got;
    e.offset = ParseU64(Header(msg, kOffset));
    e.ts_ms = static_cast<uint64_t>(natsMsg_GetTime(msg) / 1000000);
    e.mark = Header(msg, kMark) != nullptr;
    *size = ParseU64(Header(msg, kSize));
    e.ttl_ms = ParseU64(Header(msg, kTtl));
    if (e.mark) {
      out->push_back(std::move(e));
    } else {
      // A batch: its publications at consecutive offsets.
      for (std::string_view p : Publications(msg)) {
        e.publication.assign(p);
        out->push_back(e);
        ++e.offset;
      }
    }
    natsMsg_Destroy(msg);
    seq = got + 1;
  }
  return true;
}

namespace {

// One publication into the stream with the channel's size and the entry's own TTL (0: none
// for either), remembering where its message starts.
template <typename E>
void AppendKept(const E& e, uint64_t size, NatsReadCache::Entry* into) {
  if (into->starts.empty() || into->starts.back().second != e.seq) {
    into->starts.emplace_back(e.offset, e.seq);
  }
  into->stream.Append(e.publication, e.ts_ms, size == 0 ? SIZE_MAX : size,
                      e.ttl_ms == 0 ? uint64_t{1} << 62 : e.ttl_ms);
}

// Expired at now_ms, and the starts of messages it no longer answers from forgotten.
void ExpireCached(uint64_t now_ms, NatsReadCache::Entry* entry) {
  entry->stream.Expire(now_ms);
  entry->now_ms = now_ms;
  if (entry->stream.size() == 0) {
    entry->starts.clear();
    return;
  }
  const uint64_t oldest = entry->stream.top() - entry->stream.size() + 1;
  while (entry->starts.size() > 1 && entry->starts[1].first <= oldest) entry->starts.pop_front();
}

}  // namespace

bool NatsHistoryStore::Rebuild(const Channel& channel, const Last& last,
                               NatsReadCache::Entry* out) {
  // Every message the stream keeps for the channel, oldest first, up to the last one read.
  std::vector<Entry> entries;
  uint64_t size = 0;
  if (!Scan(channel, 1, last.seq, &entries, &size)) return false;
  // history_remove: nothing before its mark counts.
  for (size_t i = entries.size(); i > 0; --i) {
    if (entries[i - 1].mark) {
      entries.erase(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(i) - 1);
      break;
    }
  }
  // Rebuilt with the size the last append used and each entry's own TTL: the memory
  // engine's answers, exactly.
  uint64_t base = last.position.offset;
  out->based = false;
  for (const Entry& e : entries) {
    if (!e.mark) {
      base = e.offset - 1;
      out->based = true;
      break;
    }
  }
  out->stream = core::HistoryStream(last.position.epoch, base);
  out->starts.clear();
  for (Entry& e : entries) {
    if (e.mark || e.offset != out->stream.next_offset()) continue;
    AppendKept(e, size, out);
  }
  out->scanned_seq = last.seq;
  out->size = size;
  return true;
}

NatsHistoryStore::Folded NatsHistoryStore::Fold(const Channel& channel, const Last& last,
                                                uint64_t now_ms, NatsReadCache::Entry* in) {
  if (in->stream.epoch() != last.position.epoch || last.seq < in->scanned_seq ||
      now_ms < in->now_ms) {
    return Folded::kRebuild;  // another stream or epoch, or the clock went back
  }
  std::vector<Entry> entries;
  uint64_t size = in->size;
  if (!Scan(channel, in->scanned_seq + 1, last.seq, &entries, &size)) return Folded::kFailed;
  size_t from = 0;
  for (size_t i = entries.size(); i > 0; --i) {
    if (entries[i - 1].mark) {
      // history_remove (or a new epoch's first mark): the stream starts again after it.
      in->stream = core::HistoryStream(last.position.epoch, entries[i - 1].offset);
      in->starts.clear();
      in->based = false;
      from = i;
      break;
    }
  }
  // The rebuild applies the last message's size to every publication: folding in with
  // another size than the cached ones were trimmed by would not give its answers.
  if (in->based && from == 0 && size != in->size) return Folded::kRebuild;
  uint64_t gap_seq = 0;  // a publication past next_offset: what came between was trimmed
  for (size_t i = from; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (!in->based || e.offset > in->stream.next_offset()) {
      if (in->based) gap_seq = e.seq;
      in->stream = core::HistoryStream(last.position.epoch, e.offset - 1);
      in->starts.clear();
      in->based = true;
    }
    if (e.offset != in->stream.next_offset()) continue;  // as the rebuild does
    AppendKept(e, size, in);
  }
  in->scanned_seq = last.seq;
  in->size = size;
  ExpireCached(now_ms, in);
  if (in->stream.size() == 0 && gap_seq == 0) return Folded::kDone;
  // What it answers from must still be stored (a purge, MaxAge, or a trim past it removes
  // messages from the oldest), and after a gap nothing older may be left.
  uint64_t first = 0;
  if (!FirstSeq(channel, &first)) return Folded::kFailed;
  if (first == 0 || first < gap_seq) return Folded::kRebuild;
  if (in->stream.size() != 0 && first > in->starts.front().second) return Folded::kRebuild;
  return Folded::kDone;
}

bool NatsHistoryStore::FirstSeq(const Channel& channel, uint64_t* seq) {
  natsMsg* msg = nullptr;
  const natsStatus s = NextOf(history_prefix_ + channel.token, 1, &msg);
  read_messages_.fetch_add(1, std::memory_order_relaxed);
  *seq = 0;
  if (s == NATS_NOT_FOUND) return true;
  if (s != NATS_OK) {
    Failed();
    return false;
  }
  *seq = natsMsg_GetSequence(msg);
  natsMsg_Destroy(msg);
  return true;
}

bool NatsHistoryStore::Snapshot(Channel& channel, uint64_t now_ms,
                                const std::function<void(core::HistoryStream&)>& answer) {
  if (!Load(channel)) return false;
  read_messages_.fetch_add(1, std::memory_order_relaxed);
  Last last;
  {
    std::lock_guard lock(channel.mutex);
    last.found = channel.last_seq != 0;
    last.position = {channel.top, channel.epoch};
    last.seq = channel.last_seq;
  }
  NatsReadCache& cache = WorkerOf(channel).cache();
  std::optional<NatsReadCache::Entry> entry = cache.Take(channel.name);
  if (!last.found) {
    core::HistoryStream empty(last.position.epoch, 0);
    answer(empty);
    return true;
  }
  Folded folded = entry ? Fold(channel, last, now_ms, &*entry) : Folded::kRebuild;
  if (folded == Folded::kFailed) return false;
  if (folded == Folded::kRebuild) {
    read_cache_counts_.rebuilt.fetch_add(1, std::memory_order_relaxed);
    entry.emplace();
    if (!Rebuild(channel, last, &*entry)) return false;
    ExpireCached(now_ms, &*entry);
  } else {
    read_cache_counts_.folded.fetch_add(1, std::memory_order_relaxed);
  }
  // A stream whose entries all expired keeps its top: the last message's offset. Not kept
  // then: what made them differ (a message unreadable, offsets not contiguous) would be
  // folded over.
  if (entry->stream.top() != last.position.offset) {
    core::HistoryStream top(last.position.epoch, last.position.offset);
    answer(top);
    return true;
  }
  answer(entry->stream);
  cache.Put(channel.name, std::move(*entry));
  return true;
}

NatsHistoryStore::ReadCounts NatsHistoryStore::read_counts() const {
  ReadCounts c;
  c.folded = read_cache_counts_.folded.load(std::memory_order_relaxed);
  c.rebuilt = read_cache_counts_.rebuilt.load(std::memory_order_relaxed);
  c.evicted = read_cache_counts_.evicted.load(std::memory_order_relaxed);
  c.cache_bytes = read_cache_counts_.bytes.load(std::memory_order_relaxed);
  c.messages = read_messages_.load(std::memory_order_relaxed);
  return c;
}

void NatsHistoryStore::DoRemove(Channel& channel) {
  if (!Load(channel)) return;
  uint64_t top;
  uint64_t expect;
  std::string epoch;
  {
    std::lock_guard lock(channel.mutex);
    if (channel.last_seq == 0) return;  // nothing stored
    top = channel.top;
    expect = channel.last_seq;
    epoch = channel.epoch;
  }
  // A mark with the position, then everything before it purged: the position stays.
  const std::string subject = history_prefix_ + channel.token;
  natsMsg* msg = nullptr;
  if (natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0) != NATS_OK) return;
  const std::string top_text = std::to_string(top);
  const std::string expect_text = std::to_string(expect);
  natsMsgHeader_Set(msg, kOffset, top_text.c_str());
  natsMsgHeader_Set(msg, kEpoch, epoch.c_str());
  natsMsgHeader_Set(msg, kMark, "remove");
  natsMsgHeader_Set(msg, kExpectSubjectSeq, expect_text.c_str());
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PublishMsg(&ack, js_, msg, nullptr, &jerr);
  natsMsg_Destroy(msg);
  if (ack != nullptr) {
    std::lock_guard lock(channel.mutex);
    if (ack->Sequence > channel.last_seq) channel.last_seq = ack->Sequence;
    jsPubAck_Destroy(ack);
  }
  if (s != NATS_OK) return;  // a conflict: a newer publication came; the reader skips marks
  jsOptions po;
  jsOptions_Init(&po);
  po.Stream.Purge.Subject = subject.c_str();
  po.Stream.Purge.Keep = 1;
  js_PurgeStream(js_, options_.stream.c_str(), &po, &jerr);
}

std::unique_ptr<core::HistoryStore::Stream> NatsHistoryStore::Open(std::string_view channel,
                                                                   uint64_t) {
  std::shared_ptr<Channel> state = ChannelOf(channel);
  bool loaded;
  {
    std::lock_guard lock(state->mutex);
    loaded = state->loaded;
  }
  // The position now, so the channel's first subscriber gets the cluster's: one read, not
  // while JetStream is failing (the worker reads it before any append).
  if (!loaded && !Down()) Load(*state);
  {
    // Its deliveries stopped a while (Interest off): what the hub is given now is where they
    // are checked from again, so the stretch without them is not read back as a gap. Not
    // loaded (JetStream failing): the old mark stays, and the gap is read back from it.
    std::lock_guard lock(state->mutex);
    if (state->reseed && state->loaded) {
      state->delivered = state->top;
      state->delivered_seq = state->last_seq;
      state->delivered_epoch = state->epoch;
      state->reseed = false;
    }
  }
  return std::make_unique<NatsStream>(*this, std::move(state));
}

void NatsHistoryStore::Interest(const std::vector<std::pair<std::string, bool>>& changes) {
  if (!options_.deliver || !options_.deliver_by_channel) return;
  std::lock_guard lock(subscriptions_mutex_);
  if (stopped_) return;
  std::vector<std::shared_ptr<Channel>> subscribed;
  for (const auto& [name, on] : changes) {
    auto it = subscriptions_.find(name);
    if (on && it == subscriptions_.end()) {
      // Registered with libnats even while disconnected: it sends every SUB on reconnect.
      const std::string subject = deliver_prefix_ + SubjectToken(name);
      natsSubscription* sub = nullptr;
      if (natsConnection_Subscribe(&sub, connection_, subject.c_str(), &NatsHistoryStore::OnDeliver,
                                   this) != NATS_OK) {
        // Not held here then: its subscribers are told (they resubscribe and recover), and
        // the next Open reads the position afresh.
        spdlog::warn("history: subscribe to {}: {}", subject, nats_GetLastError(nullptr));
        gaps_lost_.fetch_add(1, std::memory_order_relaxed);
        if (lost_) lost_(name);
        continue;
      }
      {
        std::lock_guard done_lock(done_mutex_);
        if (natsSubscription_SetOnCompleteCB(sub, &NatsHistoryStore::OnSubscriptionDone, this) ==
            NATS_OK) {
          ++pending_done_;
        }
      }
      // Deliveries must not be dropped for a slow hub: libnats's limits, raised.
      natsSubscription_SetPendingLimits(sub, -1, -1);
      subscriptions_.emplace(name, sub);
      std::shared_ptr<Channel> channel = ChannelOf(name);
      {
        std::lock_guard channel_lock(channel->mutex);
        channel->reseed = false;  // from its last delivery or Open on, gaps are read back
      }
      subscribed.push_back(std::move(channel));
    } else if (!on && it != subscriptions_.end()) {
      natsSubscription_Unsubscribe(it->second);
      natsSubscription_Destroy(it->second);
      subscriptions_.erase(it);
      // Its cached position goes stale from now on: read again by the next Open.
      std::shared_ptr<Channel> channel = ChannelOf(name);
      std::lock_guard channel_lock(channel->mutex);
      channel->loaded = false;
      channel->reseed = true;
    }
  }
  if (subscribed.empty() || natsConnection_Status(connection_) != NATS_CONN_STATUS_CONNECTED) {
    return;
  }
  natsConnection_FlushTimeout(connection_, static_cast<int64_t>(options_.timeout_ms));
  // What was appended before the server had the SUB never comes as a delivery: read back
  // now, not when the channel's next publication shows the gap (there may be none).
  for (const std::shared_ptr<Channel>& channel : subscribed) CatchUp(*channel);
}

void NatsHistoryStore::OnSubscriptionDone(void* self) {
  auto* store = static_cast<NatsHistoryStore*>(self);
  // Notified under the lock: once Stop sees the count, this thread touches the store no more.
  std::lock_guard lock(store->done_mutex_);
  --store->pending_done_;
  store->done_.notify_all();
}

void NatsHistoryStore::Close(std::string_view, std::unique_ptr<Stream>, uint64_t) {}

std::optional<core::StreamPosition> NatsHistoryStore::Kept(std::string_view channel, uint64_t) {
  {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(std::string(channel));
    if (it != channels_.end()) {
      std::lock_guard channel_lock(it->second->mutex);
      // Also when the cache is stale (no deliveries since Interest off, or a reconnect): the
      // hub then reads the channel through a stream, which reads the position again.
      if (it->second->last_seq != 0) {
        return core::StreamPosition{it->second->top, it->second->epoch};
      }
    }
  }
  // Not read by this process (it restarted, or another node appended): the stream is the
  // record, asked as Open asks it. Nothing is cached, so asking for channels that were never
  // written costs no memory.
  if (Down()) return std::nullopt;
  Last last;
  natsStatus status;
  if (!ReadLast(Channel(std::string(channel)), &last, &status)) {
    Failed();
    return std::nullopt;
  }
  if (!last.found) return std::nullopt;
  return last.position;
}

void NatsHistoryStore::OnReconnected(natsConnection*, void* self) {
  // Deliveries may have been missed while away: every cached position is read again.
  auto* store = static_cast<NatsHistoryStore*>(self);
  std::lock_guard lock(store->mutex_);
  for (auto& [name, channel] : store->channels_) {
    std::lock_guard channel_lock(channel->mutex);
    channel->loaded = false;
  }
}

bool NatsHistoryStore::Fill(const Channel& channel, uint64_t from_seq, uint64_t to_seq,
                            uint64_t after, uint64_t until, std::vector<Missed>* out) {
  const std::string subject = history_prefix_ + channel.token;
  uint64_t seq = from_seq;
  uint64_t next = after + 1;
  while (seq < to_seq && next < until) {
    natsMsg* msg = nullptr;
    if (NextOf(subject, seq, &msg) != NATS_OK) break;
    const uint64_t got = natsMsg_GetSequence(msg);
    if (got >= to_seq) {
      natsMsg_Destroy(msg);
      break;
    }
    if (Header(msg, kMark) != nullptr) {
      // history_remove: what came before it is gone.
      natsMsg_Destroy(msg);
      return false;
    }
    uint64_t offset = ParseU64(Header(msg, kOffset));
    const std::vector<std::string_view> publications = Publications(msg);
    for (size_t i = 0; i < publications.size(); ++i, ++offset) {
      if (offset == next && offset < until) {
        out->push_back({offset, std::string(publications[i]), DeltaAt(msg, i)});
        ++next;
      }
    }
    natsMsg_Destroy(msg);
    seq = got + 1;
  }
  return next == until;
}

void NatsHistoryStore::OnDeliver(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  auto* store = static_cast<NatsHistoryStore*>(self);
  const std::string_view subject = natsMsg_GetSubject(msg);
  std::optional<std::string> channel;
  if (subject.starts_with(store->deliver_prefix_)) {
    channel = ChannelOfToken(subject.substr(store->deliver_prefix_.size()));
  }
  if (!channel || Header(msg, kMark) != nullptr) {
    natsMsg_Destroy(msg);
    return;
  }
  core::StreamPosition position{ParseU64(Header(msg, kOffset)), ""};
  if (const char* e = Header(msg, kEpoch)) position.epoch = e;
  const uint64_t seq = ParseU64(Header(msg, "Nats-Sequence"));
  const std::vector<std::string_view> publications = Publications(msg);
  const uint64_t top = position.offset + std::max<size_t>(1, publications.size()) - 1;
  std::vector<Missed> missed;
  bool lost = false;
  std::shared_ptr<Channel> state;
  {
    std::lock_guard lock(store->mutex_);
    auto it = store->channels_.find(*channel);
    if (it != store->channels_.end()) state = it->second;
  }
  // Handed on in order with a catch-up after a new subscription (CatchUp).
  std::unique_lock<std::mutex> order;
  if (state) order = std::unique_lock(state->order);
  {
    bool gap = false;
    uint64_t from_seq = 0, after = 0;
    if (state) {
      std::lock_guard lock(state->mutex);
      if (state->loaded && seq > state->last_seq) {
        state->top = top;
        state->epoch = position.epoch;
        state->last_seq = seq;
      }
      if (seq > state->delivered_seq) {
        if (state->delivered_seq != 0 && position.epoch == state->delivered_epoch &&
            position.offset > state->delivered + 1) {
          gap = true;
          from_seq = state->delivered_seq + 1;
          after = state->delivered;
        }
        state->delivered = top;
        state->delivered_seq = seq;
        state->delivered_epoch = position.epoch;
      }
    }
    if (gap) {
      if (store->Fill(*state, from_seq, seq, after, position.offset, &missed)) {
        store->gaps_filled_.fetch_add(1, std::memory_order_relaxed);
      } else {
        store->gaps_lost_.fetch_add(1, std::memory_order_relaxed);
        missed.clear();
        lost = true;
      }
    }
  }
  if (lost && store->lost_) store->lost_(*channel);
  if (store->delivered_) {
    for (const Missed& m : missed) {
      store->delivered_(*channel, {m.offset, position.epoch}, m.publication, m.delta);
    }
    // A batch: each publication at its own offset, in order.
    for (size_t i = 0; i < publications.size(); ++i) {
      store->delivered_(*channel, position, publications[i], DeltaAt(msg, i));
      ++position.offset;
    }
  }
  natsMsg_Destroy(msg);
}

void NatsHistoryStore::CatchUp(Channel& channel) {
  std::lock_guard order(channel.order);
  Last last;
  natsStatus s;
  if (!ReadLast(channel, &last, &s) || !last.found) return;
  uint64_t from_seq = 0, after = 0;
  {
    std::lock_guard lock(channel.mutex);
    if (channel.delivered_seq == 0 || last.seq <= channel.delivered_seq ||
        last.position.epoch != channel.delivered_epoch) {
      return;  // nothing missed (or a new epoch: its subscribers learn it from the next one)
    }
    from_seq = channel.delivered_seq + 1;
    after = channel.delivered;
    channel.delivered = last.position.offset;
    channel.delivered_seq = last.seq;
  }
  std::vector<Missed> missed;
  if (!Fill(channel, from_seq, last.seq + 1, after, last.position.offset + 1, &missed)) {
    gaps_lost_.fetch_add(1, std::memory_order_relaxed);
    if (lost_) lost_(channel.name);
    return;
  }
  gaps_filled_.fetch_add(1, std::memory_order_relaxed);
  if (!delivered_) return;
  for (const Missed& m : missed) {
    delivered_(channel.name, {m.offset, last.position.epoch}, m.publication, m.delta);
  }
}

struct NatsIdempotencyStore::Shared {
  size_t max = 0;
  std::atomic<uint64_t> kept{0};
  std::atomic<uint64_t> repeats{0};
  std::atomic<uint64_t> unkept{0};
};

namespace {

// One channel's fire keys, under its shard lock: the memory engine's keys (the map, its
// expiry and pruning), with the node-wide bound and the counts around them.
class FireKeys final : public core::IdempotencyStore::Keys {
 public:
  using Shared = std::shared_ptr<NatsIdempotencyStore::Shared>;
  explicit FireKeys(Shared shared)
      : shared_(std::move(shared)), keys_(MemoryIdempotencyStore().Open({})) {}
  ~FireKeys() override { shared_->kept.fetch_sub(keys_->size(), std::memory_order_relaxed); }

  std::optional<core::StreamPosition> Find(std::string_view key, uint64_t now_ms) override {
    if (keys_->empty()) return std::nullopt;
    std::optional<core::StreamPosition> seen = keys_->Find(key, now_ms);
    if (seen) shared_->repeats.fetch_add(1, std::memory_order_relaxed);
    return seen;
  }
  void Put(std::string_view key, const core::StreamPosition& position, uint64_t now_ms,
           uint64_t expires_ms) override {
    if (!core::IsFireKey(key)) return;
    const bool known = keys_->Find(key, now_ms).has_value();
    // A new key's room is reserved before it is added, so that loops putting at once never
    // pass the bound.
    if (!known && shared_->kept.fetch_add(1, std::memory_order_relaxed) >= shared_->max) {
      shared_->kept.fetch_sub(1, std::memory_order_relaxed);
      shared_->unkept.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const size_t before = keys_->size();
    keys_->Put(key, position, now_ms, expires_ms);  // may prune expired ones first
    Settle(before, known ? 0 : 1);
  }
  void Expire(uint64_t now_ms) override {
    const size_t before = keys_->size();
    keys_->Expire(now_ms);
    Settle(before, 0);
  }
  size_t size() const override { return keys_->size(); }

 private:
  // kept follows the keys' count: what changed since before, less what was reserved.
  void Settle(size_t before, size_t reserved) {
    shared_->kept.fetch_add(keys_->size() - before - reserved, std::memory_order_relaxed);
  }
  Shared shared_;
  std::unique_ptr<core::IdempotencyStore::Keys> keys_;
};

}  // namespace

NatsIdempotencyStore::NatsIdempotencyStore(size_t max_fire_keys)
    : shared_(std::make_shared<Shared>()) {
  shared_->max = max_fire_keys;
}

std::unique_ptr<core::IdempotencyStore::Keys> NatsIdempotencyStore::Open(std::string_view) {
  return std::make_unique<FireKeys>(shared_);
}

NatsIdempotencyStore::Counts NatsIdempotencyStore::counts() const {
  return {shared_->kept.load(std::memory_order_relaxed),
          shared_->repeats.load(std::memory_order_relaxed),
          shared_->unkept.load(std::memory_order_relaxed)};
}

std::unique_ptr<NatsHistoryStore> MakeNatsHistoryStore(NatsHistoryOptions options,
                                                       std::string* error) {
  auto store = std::make_unique<NatsHistoryStore>(std::move(options));
  if (!store->Start(error)) return nullptr;
  return store;
}

}  // namespace hermod::store
