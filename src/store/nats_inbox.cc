#include "store/nats_inbox.h"

#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/memory_inbox.h"
#include "store/nats_kv.h"

namespace hermod::store {

namespace {

constexpr uint64_t kDeleted = std::numeric_limits<uint64_t>::max();
constexpr int kRetries = 50;  // a busy inbox on many nodes: each retry reads the winner's

std::string Hex(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool Unhex(std::string_view h, std::string* out) {
  if (h.size() % 2 != 0) return false;
  auto nibble = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    const int hi = nibble(h[i]), lo = nibble(h[i + 1]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi << 4 | lo);
  }
  return true;
}

std::string MetaKey(std::string_view channel) { return Hex(channel) + ".m"; }
std::string EntryKey(std::string_view channel, uint64_t offset) {
  return Hex(channel) + "." + std::to_string(offset);
}

template <class T>
bool Num(std::string_view t, T* out) {
  return !t.empty() && std::from_chars(t.data(), t.data() + t.size(), *out).ec == std::errc();
}

// "<state> <deliveries> <published> <delivered> <due> <done> <expires> <dead_id> <reason
// bytes>\n<reason><data>"
std::string Encode(const core::InboxEntry& e) {
  std::string v = std::to_string(static_cast<int>(e.state)) + " " + std::to_string(e.deliveries) +
                  " " + std::to_string(e.published_ms) + " " + std::to_string(e.delivered_ms) +
                  " " + std::to_string(e.due_ms) + " " + std::to_string(e.done_ms) + " " +
                  std::to_string(e.expires_ms) + " " + std::to_string(e.dead_id) + " " +
                  std::to_string(e.reason.size()) + "\n";
  v += e.reason;
  v += e.data;
  return v;
}

bool Decode(std::string_view v, core::InboxEntry* e) {
  const size_t nl = v.find('\n');
  if (nl == std::string_view::npos) return false;
  std::string_view head = v.substr(0, nl);
  std::string_view f[9];
  for (auto& x : f) {
    const size_t sp = head.find(' ');
    x = head.substr(0, sp);
    head = sp == std::string_view::npos ? std::string_view() : head.substr(sp + 1);
  }
  int state = 0;
  size_t reason_len = 0;
  if (!Num(f[0], &state) || state < 0 || state > 3 || !Num(f[1], &e->deliveries) ||
      !Num(f[2], &e->published_ms) || !Num(f[3], &e->delivered_ms) || !Num(f[4], &e->due_ms) ||
      !Num(f[5], &e->done_ms) || !Num(f[6], &e->expires_ms) || !Num(f[7], &e->dead_id) ||
      !Num(f[8], &reason_len) || v.size() - nl - 1 < reason_len) {
    return false;
  }
  e->state = static_cast<core::InboxState>(state);
  e->reason = std::string(v.substr(nl + 1, reason_len));
  e->data = std::string(v.substr(nl + 1 + reason_len));
  return true;
}

std::string_view Value(kvEntry* e) {
  const auto* data = static_cast<const char*>(kvEntry_Value(e));
  const int n = kvEntry_ValueLen(e);
  return data == nullptr || n <= 0 ? std::string_view()
                                   : std::string_view(data, static_cast<size_t>(n));
}

// What Persist did in the call of this thread (the engine's calls are synchronous).
struct Report {
  bool keep_going = false;  // write every key, not stop at the first that fails
  bool resynced = false;    // a write lost a race, and the keys are read back: worth a retry
  std::set<std::pair<std::string, uint64_t>> failed;   // entries not written
  std::set<std::pair<std::string, uint64_t>> written;  // entries written
  // A delivery's counts as the caller saw them (Looked): an entry counted since is not.
  const std::map<uint64_t, uint32_t>* expected = nullptr;
};
thread_local Report* t_report = nullptr;

// The counts the last Unacked of this thread answered, which the caller decides a delivery
// on (core/inbox.cc: the redelivery tick, a connect, another node's publish each read
// Unacked, then deliver what they chose). Taken by the MarkDelivered of that channel that
// follows; forgotten by any other change this thread makes.
struct Looked {
  const void* store = nullptr;
  std::string channel;
  std::map<uint64_t, uint32_t> deliveries;  // offset -> count
};
thread_local Looked t_looked;

class NatsInboxStore final : public MemoryInboxStore {
 public:
  explicit NatsInboxStore(NatsInboxOptions options) : options_(std::move(options)) {
    std::random_device random;
    node_tag_ = random() & 0xfff;
  }
  ~NatsInboxStore() override {
    stopping_ = true;
    if (watcher_thread_.joinable()) watcher_thread_.join();
    if (watcher_ != nullptr) kvWatcher_Destroy(watcher_);
    if (kv_ != nullptr) kvStore_Destroy(kv_);
    if (js_ != nullptr) jsCtx_Destroy(js_);
    if (nc_ != nullptr) natsConnection_Destroy(nc_);
  }
  const char* name() const override { return "nats"; }
  bool durable() const override { return true; }

  bool Connect(std::string* error) {
    auto fail = [&](natsStatus s, const char* what) {
      *error = NatsKvError("nats inbox", what, options_.url, s);
      return false;
    };
    NatsKvOptions o{options_.url, "hermod-inbox", options_.dial_timeout_ms,
                    options_.reconnect_wait_ms, options_.request_timeout_ms};
    if (!ConnectNatsKv(o, "nats inbox", &nc_, &js_, error)) return false;
    natsStatus s = OpenNatsBucket(js_, options_.bucket, 0, &kv_);
    if (s != NATS_OK) return fail(s, "KV bucket");
    // The watcher's initial values are what is stored; its updates are the other nodes'.
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.Timeout = static_cast<int64_t>(options_.request_timeout_ms);
    s = kvStore_WatchAll(&watcher_, kv_, &wo);
    while (s == NATS_OK) {
      kvEntry* e = nullptr;
      s = kvWatcher_Next(&e, watcher_, static_cast<int64_t>(options_.request_timeout_ms));
      if (s != NATS_OK || e == nullptr) break;  // nullptr: every current value seen
      Apply(e, nullptr);
      kvEntry_Destroy(e);
    }
    if (s != NATS_OK) return fail(s, "reading the inbox bucket");
    watcher_thread_ = std::thread([this] { WatchLoop(); });
    return true;
  }

  void OnRemotePending(RemotePending pending) override {
    std::lock_guard lock(pending_mutex_);
    pending_ = std::move(pending);
  }

  std::vector<core::InboxEntry> Unacked(std::string_view channel) override {
    std::vector<core::InboxEntry> out = MemoryInboxStore::Unacked(channel);
    t_looked.store = this;
    t_looked.channel = channel;
    t_looked.deliveries.clear();
    for (const core::InboxEntry& e : out) t_looked.deliveries.emplace(e.offset, e.deliveries);
    return out;
  }

  core::InboxAppended Append(std::string_view channel, std::string_view data,
                             std::string_view /*fire_key*/, const core::InboxLimits& limits,
                             uint64_t now_ms, core::InboxStored stored) override {
    Forget();
    // No fire keys in KV: a firing repeated after a crash is published again (README,
    // Scheduled delivery).
    return Retried(std::move(stored), [&](core::InboxStored s) {
      return MemoryInboxStore::Append(channel, data, {}, limits, now_ms, std::move(s));
    });
  }
  // KV has no write of several keys at once: an ack that loses a race part-way (another
  // node changed an entry it had not seen yet) keeps the acks it wrote, and the retry acks
  // only the rest that is still unacked (an entry the other node acked or dead-lettered is
  // not this call's). The answer lists exactly the entries this call acked, over all tries;
  // stored(true) when it acked any, even if a later write failed.
  core::InboxChange Ack(std::string_view channel, const std::vector<uint64_t>& offsets,
                        std::optional<uint64_t> up_to, uint64_t now_ms,
                        core::InboxStored stored) override {
    Forget();
    std::vector<core::InboxEntry> acked;  // written by the tries before
    std::vector<uint64_t> rest = offsets;
    for (int attempt = 0;; ++attempt) {
      Report report;
      t_report = &report;
      bool called = false, ok = false;
      core::InboxChange change = MemoryInboxStore::Ack(channel, rest, up_to, now_ms,
                                                       [&](bool s) { called = true, ok = s; });
      t_report = nullptr;
      if (called && !ok) {
        // What this try wrote is acked in NATS (and here) whatever failed after it.
        for (const core::InboxEntry& e : change.changed) {
          if (report.written.count({e.channel, e.offset}) > 0) acked.push_back(e);
        }
      }
      if (called && !ok && report.resynced && attempt < kRetries) {
        if (up_to) continue;  // recomputed from what this node holds now
        std::set<uint64_t> unacked;
        for (const core::InboxEntry& e : MemoryInboxStore::Status(channel, rest)) {
          if (e.state == core::InboxState::kPending || e.state == core::InboxState::kDelivered) {
            unacked.insert(e.offset);
          }
        }
        std::erase_if(rest, [&](uint64_t o) {
          return report.written.count({std::string(channel), o}) > 0;
        });
        std::vector<uint64_t> open;
        std::copy_if(rest.begin(), rest.end(), std::back_inserter(open),
                     [&](uint64_t o) { return unacked.count(o) > 0; });
        if (!open.empty()) {
          rest = std::move(open);
          continue;
        }
        // Nothing acked by this call: the retry answers what a fresh call would (an error
        // for an entry the other node settled), with nothing changed.
        if (acked.empty()) continue;
      }
      if (acked.empty()) {
        if (called && stored) stored(ok);
        return change;
      }
      // Some acks were written: answered as done, with exactly those and this try's.
      if (called && ok) {
        acked.insert(acked.end(), std::make_move_iterator(change.changed.begin()),
                     std::make_move_iterator(change.changed.end()));
      }
      std::sort(
          acked.begin(), acked.end(),
          [](const core::InboxEntry& x, const core::InboxEntry& y) { return x.offset < y.offset; });
      core::InboxChange done;
      done.changed = std::move(acked);
      if (stored) stored(true);
      return done;
    }
  }
  core::InboxChange DeadLetter(std::string_view channel, const std::vector<uint64_t>& offsets,
                               std::string_view reason, uint64_t now_ms,
                               core::InboxStored stored) override {
    return Retried(std::move(stored), [&](core::InboxStored s) {
      return MemoryInboxStore::DeadLetter(channel, offsets, reason, now_ms, std::move(s));
    });
  }
  core::InboxChange Redrive(std::string_view channel, const std::vector<uint64_t>& offsets,
                            uint64_t now_ms, core::InboxStored stored) override {
    Forget();
    return Retried(std::move(stored), [&](core::InboxStored s) {
      return MemoryInboxStore::Redrive(channel, offsets, now_ms, std::move(s));
    });
  }
  core::InboxChange RemoveDead(std::string_view channel, const std::vector<uint64_t>& offsets,
                               core::InboxStored stored) override {
    Forget();
    return Retried(std::move(stored), [&](core::InboxStored s) {
      return MemoryInboxStore::RemoveDead(channel, offsets, std::move(s));
    });
  }
  // Each entry is claimed by its own write: one another node counted first is left out, and
  // so is one counted since this thread's Unacked saw it (another node's delivery that
  // reached this node in between: a user on two nodes gets each redelivery from one).
  std::vector<core::InboxEntry> MarkDelivered(std::string_view channel,
                                              const std::vector<uint64_t>& offsets,
                                              uint64_t ack_timeout_ms, uint64_t now_ms) override {
    std::map<uint64_t, uint32_t> expected;
    const bool looked = t_looked.store == this && t_looked.channel == channel;
    if (looked) expected.swap(t_looked.deliveries);
    Forget();
    return Claimed(
        [&] { return MemoryInboxStore::MarkDelivered(channel, offsets, ack_timeout_ms, now_ms); },
        looked ? &expected : nullptr);
  }
  std::vector<core::InboxEntry> Expire(uint64_t now_ms) override {
    Forget();
    return Claimed([&] { return MemoryInboxStore::Expire(now_ms); });
  }

 protected:
  bool journaled() const override { return true; }

  // Unique across nodes (a random tag per process in the low bits), in time order.
  uint64_t NextDeadId(uint64_t now_ms) override {
    uint64_t base = now_ms << 12;
    if (base <= last_dead_base_) base = last_dead_base_ + (1u << 12);
    last_dead_base_ = base;
    return base | node_tag_;
  }

  // Under the engine's lock: each write with compare-and-set; a key that fails is read back.
  std::optional<bool> Persist(std::vector<Write>& writes, core::InboxStored& stored) override {
    (void)stored;
    // A publish's meta (its epoch and new top) goes first, once (its last form): that write
    // takes the offset, so a publish that loses the race to another node writes nothing.
    auto meta = std::find_if(writes.rbegin(), writes.rend(),
                             [](const Write& w) { return w.kind == Write::Kind::kMeta; });
    if (meta != writes.rend()) {
      Write first = *meta;
      std::erase_if(writes, [](const Write& w) { return w.kind == Write::Kind::kMeta; });
      writes.insert(writes.begin(), std::move(first));
    }
    const bool keep_going = t_report != nullptr && t_report->keep_going;
    bool ok = true;
    for (const Write& w : writes) {
      if (!ok && !keep_going) {
        Resync(w);
        continue;
      }
      if (!Expected(w)) {
        t_report->failed.insert({w.entry.channel, w.entry.offset});
        Resync(w);  // this node's copy back to the count it had (and NATS has)
        continue;
      }
      if (WriteOne(w)) {
        if (t_report != nullptr && w.kind != Write::Kind::kMeta) {
          t_report->written.insert({w.entry.channel, w.entry.offset});
        }
        continue;
      }
      ok = false;
      if (t_report != nullptr && w.kind != Write::Kind::kMeta) {
        t_report->failed.insert({w.entry.channel, w.entry.offset});
      }
      Resync(w);
    }
    return ok;
  }

 private:
  template <class Call>
  std::invoke_result_t<const Call&, core::InboxStored> Retried(core::InboxStored stored,
                                                               const Call& call) {
    for (int attempt = 0;; ++attempt) {
      Report report;
      t_report = &report;
      bool called = false, ok = false;
      auto result = call([&](bool s) { called = true, ok = s; });
      t_report = nullptr;
      if (called && !ok && report.resynced && attempt < kRetries) continue;
      if (called && stored) stored(ok);
      return result;
    }
  }

  void Forget() {
    if (t_looked.store == this) t_looked.store = nullptr;
  }

  // Whether w counts the delivery the caller decided on: its entry's count one past the one
  // the caller saw (Looked), or no count expected of it.
  static bool Expected(const Write& w) {
    if (t_report == nullptr || t_report->expected == nullptr || w.kind != Write::Kind::kPut) {
      return true;
    }
    auto it = t_report->expected->find(w.entry.offset);
    return it == t_report->expected->end() || w.entry.deliveries == it->second + 1;
  }

  template <class Call>
  std::vector<core::InboxEntry> Claimed(const Call& call,
                                        const std::map<uint64_t, uint32_t>* expected = nullptr) {
    Report report;
    report.keep_going = true;
    report.expected = expected;
    t_report = &report;
    std::vector<core::InboxEntry> out = call();
    t_report = nullptr;
    if (!report.failed.empty()) {
      std::erase_if(out, [&](const core::InboxEntry& e) {
        return report.failed.count({e.channel, e.offset}) > 0;
      });
    }
    return out;
  }

  static std::string KeyOf(const Write& w) {
    return w.kind == Write::Kind::kMeta ? MetaKey(w.entry.channel)
                                        : EntryKey(w.entry.channel, w.entry.offset);
  }

  bool WriteOne(const Write& w) {
    const std::string key = KeyOf(w);
    if (w.kind == Write::Kind::kDelete) {
      // Offsets are never reused: a delete cannot race a write that matters.
      if (kvStore_Delete(kv_, key.c_str()) != NATS_OK) return false;
      revs_[key] = kDeleted;
      return true;
    }
    const std::string value = w.kind == Write::Kind::kMeta
                                  ? w.epoch + " " + std::to_string(w.entry.offset)
                                  : Encode(w.entry);
    auto it = revs_.find(key);
    const uint64_t last = it == revs_.end() || it->second == kDeleted ? 0 : it->second;
    uint64_t rev = 0;
    const natsStatus s = last == 0 ? kvStore_Create(&rev, kv_, key.c_str(), value.data(),
                                                    static_cast<int>(value.size()))
                                   : kvStore_Update(&rev, kv_, key.c_str(), value.data(),
                                                    static_cast<int>(value.size()), last);
    if (s != NATS_OK) return false;
    revs_[key] = rev;
    return true;
  }

  // A key this node could not write: what NATS holds now replaces this node's idea of it.
  void Resync(const Write& w) {
    const std::string key = KeyOf(w);
    kvEntry* e = nullptr;
    const natsStatus s = kvStore_Get(&e, kv_, key.c_str());
    if (s == NATS_NOT_FOUND) {
      if (w.kind != Write::Kind::kMeta) ForgetLocked(w.entry.channel, w.entry.offset);
      revs_.erase(key);
      if (t_report != nullptr) t_report->resynced = true;
      return;
    }
    if (s != NATS_OK) {
      spdlog::warn("nats inbox: reading {} back: {}", key, natsStatus_GetText(s));
      return;
    }
    // Forced: this node's copy may hold a change it never wrote, at the revision it knows.
    if (ApplyLocked(kvEntry_Key(e), kvEntry_Revision(e), Value(e), /*put=*/true, nullptr,
                    /*force=*/true) &&
        t_report != nullptr) {
      t_report->resynced = true;
    }
    kvEntry_Destroy(e);
  }

  // Under the lock: a stored key's value (or delete) into memory, unless this node already
  // has it (its own write, or a newer one). Adds to pending a channel with a new pending entry.
  bool ApplyLocked(std::string_view key, uint64_t rev, std::string_view value, bool put,
                   std::set<std::string>* pending, bool force = false) {
    const size_t dot = key.rfind('.');
    std::string channel;
    if (dot == std::string_view::npos || !Unhex(key.substr(0, dot), &channel)) return false;
    const std::string k(key);
    std::string_view tail = key.substr(dot + 1);
    auto it = revs_.find(k);
    if (!put) {
      if (tail != "m") {
        uint64_t offset = 0;
        if (Num(tail, &offset)) ForgetLocked(channel, offset);
      }
      revs_.erase(k);
      return true;
    }
    // A key this node deleted stays deleted; one it knows at this revision or later is known.
    if (!force && it != revs_.end() && (it->second == kDeleted || it->second >= rev)) return true;
    if (tail == "m") {
      const size_t sp = value.find(' ');
      uint64_t top = 0;
      if (sp == std::string_view::npos || !Num(value.substr(sp + 1), &top)) return false;
      MetaLocked(channel, std::string(value.substr(0, sp)), top);
    } else {
      core::InboxEntry e;
      if (!Num(tail, &e.offset) || !Decode(value, &e)) return false;
      e.channel = channel;
      if (pending != nullptr && e.state == core::InboxState::kPending && e.deliveries == 0) {
        pending->insert(channel);
      }
      ReplaceLocked(std::move(e));
    }
    revs_[k] = rev;
    return true;
  }

  void Apply(kvEntry* e, std::set<std::string>* pending) {
    std::lock_guard lock(inbox_mutex());
    ApplyLocked(kvEntry_Key(e), kvEntry_Revision(e), Value(e), kvEntry_Operation(e) == kvOp_Put,
                pending);
  }

  void WatchLoop() {
    while (!stopping_) {
      kvEntry* e = nullptr;
      const natsStatus s = kvWatcher_Next(&e, watcher_, 200);
      if (s != NATS_OK || e == nullptr) continue;  // a timeout: look at stopping_ again
      std::set<std::string> pending;
      Apply(e, &pending);
      kvEntry_Destroy(e);
      if (pending.empty()) continue;
      std::lock_guard lock(pending_mutex_);
      if (!pending_) continue;
      for (const std::string& channel : pending) pending_(channel);
    }
  }

  NatsInboxOptions options_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* kv_ = nullptr;
  kvWatcher* watcher_ = nullptr;
  std::thread watcher_thread_;
  std::atomic<bool> stopping_{false};
  // Under inbox_mutex(): the revision of each key as this node last wrote or saw it.
  std::unordered_map<std::string, uint64_t> revs_;
  uint64_t node_tag_ = 0;
  uint64_t last_dead_base_ = 0;
  std::mutex pending_mutex_;
  RemotePending pending_;
};

}  // namespace

std::unique_ptr<core::InboxStore> MakeNatsInbox(const NatsInboxOptions& options,
                                                std::string* error) {
  auto store = std::make_unique<NatsInboxStore>(options);
  if (!store->Connect(error)) return nullptr;
  return store;
}

}  // namespace hermod::store
