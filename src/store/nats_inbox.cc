#include "store/nats_inbox.h"

#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
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
// bytes>[ <fire key bytes>]\n<reason>[<fire key>]<data>": a scheduled firing's key
// (core::FireKey) rides in its entry's record, so the one write that stores the entry stores
// the key, and every later write of the entry keeps it.
std::string Encode(const core::InboxEntry& e, std::string_view fire_key) {
  std::string v = std::to_string(static_cast<int>(e.state)) + " " + std::to_string(e.deliveries) +
                  " " + std::to_string(e.published_ms) + " " + std::to_string(e.delivered_ms) +
                  " " + std::to_string(e.due_ms) + " " + std::to_string(e.done_ms) + " " +
                  std::to_string(e.expires_ms) + " " + std::to_string(e.dead_id) + " " +
                  std::to_string(e.reason.size());
  if (!fire_key.empty()) v += " " + std::to_string(fire_key.size());
  v += '\n';
  v += e.reason;
  v += fire_key;
  v += e.data;
  return v;
}

bool Decode(std::string_view v, core::InboxEntry* e, std::string* fire_key) {
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
  size_t reason_len = 0, key_len = 0;
  if (!Num(f[0], &state) || state < 0 || state > 3 || !Num(f[1], &e->deliveries) ||
      !Num(f[2], &e->published_ms) || !Num(f[3], &e->delivered_ms) || !Num(f[4], &e->due_ms) ||
      !Num(f[5], &e->done_ms) || !Num(f[6], &e->expires_ms) || !Num(f[7], &e->dead_id) ||
      !Num(f[8], &reason_len) || (!head.empty() && !Num(head, &key_len)) ||
      v.size() - nl - 1 < reason_len || v.size() - nl - 1 - reason_len < key_len) {
    return false;
  }
  e->state = static_cast<core::InboxState>(state);
  e->reason = std::string(v.substr(nl + 1, reason_len));
  *fire_key = std::string(v.substr(nl + 1 + reason_len, key_len));
  e->data = std::string(v.substr(nl + 1 + reason_len + key_len));
  return true;
}

std::string_view Value(kvEntry* e) {
  const auto* data = static_cast<const char*>(kvEntry_Value(e));
  const int n = kvEntry_ValueLen(e);
  return data == nullptr || n <= 0 ? std::string_view()
                                   : std::string_view(data, static_cast<size_t>(n));
}

// One holder per channel at a time: a channel's change runs from reading its state to the last
// NATS reply with the channel's gate held, so one inbox's changes reach NATS in the order they
// were made, while other inboxes' changes run beside it. A gate exists while held or waited for.
class ChannelGates {
 public:
  class Held {
   public:
    Held(ChannelGates& gates, std::string_view channel) : gates_(gates), channel_(channel) {
      gates_.Acquire(channel_);
    }
    ~Held() { gates_.Release(channel_); }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

   private:
    ChannelGates& gates_;
    const std::string channel_;
  };

 private:
  struct Gate {
    std::condition_variable free;
    bool held = false;
    size_t waiting = 0;
  };
  void Acquire(const std::string& channel) {
    std::unique_lock lock(mutex_);
    Gate& gate = gates_[channel];  // unordered_map nodes stay put while it grows
    ++gate.waiting;
    gate.free.wait(lock, [&] { return !gate.held; });
    --gate.waiting;
    gate.held = true;
  }
  void Release(const std::string& channel) {
    std::lock_guard lock(mutex_);
    auto it = gates_.find(channel);
    it->second.held = false;
    if (it->second.waiting == 0) {
      gates_.erase(it);
    } else {
      it->second.free.notify_one();
    }
  }

  std::mutex mutex_;  // a leaf: held to look a gate up, never across a wait for NATS
  std::unordered_map<std::string, Gate> gates_;
};

// What Flush did in the call of this thread (the engine's calls are synchronous).
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
    NatsKvOptions o{options_.url,
                    "hermod-inbox",
                    options_.dial_timeout_ms,
                    options_.reconnect_wait_ms,
                    options_.request_timeout_ms,
                    options_.tls};
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

  // inbox_status: what NATS holds of these entries now, not what the watcher brought so far
  // (a removed one is left to the watcher). Offsets empty: the meta, then every entry held
  // and each past the top this node knew. More than read_through_max: this node's copy.
  void ReadThrough(std::string_view channel, const std::vector<uint64_t>& offsets) override {
    if (options_.read_through_max == 0) return;
    // NATS known to be away: this node's copy answers at once, not after a read's timeout
    // on the calling loop.
    if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) return;
    std::vector<uint64_t> read = offsets;
    std::set<std::string> told;
    if (read.empty()) {
      const uint64_t known = MemoryInboxStore::Position(channel).offset;
      uint64_t top = 0;
      natsStatus s = NATS_OK;
      if (!Fetch(MetaKey(channel), &told, &top, &s)) {
        if (s != NATS_NOT_FOUND) return;  // NATS failing: this node's copy answers
        top = known;
      }
      for (const core::InboxEntry& e : MemoryInboxStore::Status(channel, {})) {
        if (read.size() > options_.read_through_max) break;
        read.push_back(e.offset);
      }
      for (uint64_t o = known + 1; o <= top && read.size() <= options_.read_through_max; ++o) {
        read.push_back(o);
      }
    }
    if (read.size() <= options_.read_through_max) {
      for (uint64_t offset : read) {
        natsStatus s = NATS_OK;
        // NATS failing: this node's copy answers the rest, not a timeout per entry.
        if (!Fetch(EntryKey(channel, offset), &told, nullptr, &s) && s != NATS_NOT_FOUND) break;
      }
    }
    Tell(told);  // new pending entries it found: the watcher will not tell them again
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

  // A fire key is stored in its entry's record (Encode) and known to every node from it: a
  // firing repeated after a crash, here or on another node, is a duplicate while the entry
  // is held (unacked, or acked or dead and kept); nothing of it outlives the entry.
  core::InboxAppended Append(std::string_view channel, std::string_view data,
                             std::string_view fire_key, const core::InboxLimits& limits,
                             uint64_t now_ms, core::InboxStored stored) override {
    Forget();
    return Retried(
        channel, std::move(stored),
        [&](core::InboxStored s) {
          return MemoryInboxStore::Append(channel, data, fire_key, limits, now_ms, std::move(s));
        },
        /*catch_up=*/!fire_key.empty());
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
    std::set<std::string> told;
    std::optional<bool> answer;
    core::InboxChange result;
    {
      ChannelGates::Held gate(gates_, channel);
      result = AckHeld(channel, offsets, up_to, now_ms, &answer, &told);
    }
    if (answer && stored) stored(*answer);
    Tell(told);
    return result;
  }
  core::InboxChange DeadLetter(std::string_view channel, const std::vector<uint64_t>& offsets,
                               std::string_view reason, uint64_t now_ms,
                               core::InboxStored stored) override {
    return Retried(channel, std::move(stored), [&](core::InboxStored s) {
      return MemoryInboxStore::DeadLetter(channel, offsets, reason, now_ms, std::move(s));
    });
  }
  core::InboxChange Redrive(std::string_view channel, const std::vector<uint64_t>& offsets,
                            uint64_t now_ms, core::InboxStored stored) override {
    Forget();
    return Retried(channel, std::move(stored), [&](core::InboxStored s) {
      return MemoryInboxStore::Redrive(channel, offsets, now_ms, std::move(s));
    });
  }
  core::InboxChange RemoveDead(std::string_view channel, const std::vector<uint64_t>& offsets,
                               core::InboxStored stored) override {
    Forget();
    return Retried(channel, std::move(stored), [&](core::InboxStored s) {
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
    std::set<std::string> told;
    std::vector<core::InboxEntry> out;
    {
      ChannelGates::Held gate(gates_, channel);
      out = Claimed(
          [&] { return MemoryInboxStore::MarkDelivered(channel, offsets, ack_timeout_ms, now_ms); },
          &told, looked ? &expected : nullptr);
    }
    Tell(told);
    return out;
  }
  // One inbox at a time, each under its gate: the sweep waits for no inbox but the one it
  // is at, and holds no lock across NATS that another inbox's change needs.
  std::vector<core::InboxEntry> Expire(uint64_t now_ms) override {
    Forget();
    std::vector<core::InboxEntry> died;
    std::set<std::string> told;
    for (const std::string& channel : ExpiringChannels(now_ms)) {
      ChannelGates::Held gate(gates_, channel);
      std::vector<core::InboxEntry> out =
          Claimed([&] { return MemoryInboxStore::ExpireChannel(channel, now_ms); }, &told);
      died.insert(died.end(), std::make_move_iterator(out.begin()),
                  std::make_move_iterator(out.end()));
    }
    Tell(told);
    return died;
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

  // Under the engine's lock, in the same hold as the change: each write is taken into this
  // thread's journal with the revision its key has now (the compare-and-set's), and its key
  // marked in flight (the watcher holds that key's updates back until it lands). Flush
  // writes them once the lock is released; stored is answered then.
  std::optional<bool> Persist(std::vector<Write>& writes, core::InboxStored& stored) override {
    if (t_journal == nullptr) {  // every change of this engine runs through Journaled
      spdlog::error("nats inbox: a change outside a journal is not stored");
      return false;
    }
    // A fire key goes in the write that stores its entry: the two are stored as one.
    for (const Write& f : writes) {
      if (f.kind != Write::Kind::kFired) continue;
      for (Write& put : writes) {
        if (put.kind == Write::Kind::kPut && put.entry.offset == f.entry.offset &&
            put.entry.channel == f.entry.channel) {
          put.fire_key = f.fire_key;
        }
      }
    }
    std::erase_if(writes, [](const Write& w) { return w.kind == Write::Kind::kFired; });
    // A publish's meta (its epoch and new top) goes first, once (its last form): that write
    // takes the offset, so a publish that loses the race to another node writes nothing.
    auto meta = std::find_if(writes.rbegin(), writes.rend(),
                             [](const Write& w) { return w.kind == Write::Kind::kMeta; });
    if (meta != writes.rend()) {
      Write first = *meta;
      std::erase_if(writes, [](const Write& w) { return w.kind == Write::Kind::kMeta; });
      writes.insert(writes.begin(), std::move(first));
    }
    for (Write& w : writes) {
      std::string key = KeyOf(w);
      auto it = revs_.find(key);
      const uint64_t revision = it == revs_.end() ? 0 : it->second;
      ++in_flight_[key];
      t_journal->writes.push_back({std::move(w), std::move(key), revision});
    }
    t_journal->stored = std::move(stored);
    return std::nullopt;
  }

 private:
  // A change's writes, taken under the lock (Persist), written without it (Flush).
  struct JournalWrite {
    Write write;
    std::string key;
    uint64_t revision = 0;  // the key's as this node knew it when the change was made
  };
  struct Journal {
    std::vector<JournalWrite> writes;
    core::InboxStored stored;
  };
  static inline thread_local Journal* t_journal = nullptr;

  // A key's update that the watcher held back while this node's write of it was in flight.
  struct Deferred {
    uint64_t revision = 0;
    std::string value;
    bool put = true;
  };

  // Runs one of MemoryInboxStore's changes, with the channel's gate held by the caller: its
  // writes are journaled under the engine's lock, then written here with it released, and
  // the change's stored answered.
  template <class Call>
  auto Journaled(const Call& call, std::set<std::string>* told) {
    Journal journal;
    t_journal = &journal;
    auto result = call();
    t_journal = nullptr;
    if (!journal.writes.empty()) {
      const bool ok = Flush(journal, told);
      if (journal.stored) journal.stored(ok);
    }
    return result;
  }

  template <class Call>
  std::invoke_result_t<const Call&, core::InboxStored> Retried(std::string_view channel,
                                                               core::InboxStored stored,
                                                               const Call& call,
                                                               bool catch_up = false) {
    std::set<std::string> told;
    std::optional<bool> answer;
    auto result = [&] {
      ChannelGates::Held gate(gates_, channel);
      if (catch_up) CatchUp(channel, &told);
      for (int attempt = 0;; ++attempt) {
        Report report;
        t_report = &report;
        bool called = false, ok = false;
        auto r = Journaled([&] { return call([&](bool s) { called = true, ok = s; }); }, &told);
        t_report = nullptr;
        if (called && !ok && report.resynced && attempt < kRetries) continue;
        if (called) answer = ok;
        return r;
      }
    }();
    if (answer && stored) stored(*answer);
    Tell(told);
    return result;
  }

  // With the channel's gate held, before a firing's Append: what other nodes stored in the
  // inbox that the watcher has not brought yet, read from NATS: the meta, each entry past the
  // top this node knew, and below it each entry this node has not seen, down to one it has
  // (or one not stored: a hole, or removed). Those are the entries whose writes are still on
  // their way to the watcher (a node writes the meta first, the entry after). The node that
  // fired it before dying may have stored it a moment ago, with its fire key in the entry's
  // record: then it is found, not stored twice. NATS unreachable: the append's writes decide.
  void CatchUp(std::string_view channel, std::set<std::string>* told) {
    const uint64_t known = MemoryInboxStore::Position(channel).offset;
    uint64_t top = 0;
    if (!Fetch(MetaKey(channel), told, &top)) return;
    for (uint64_t offset = known + 1; offset <= top; ++offset) {
      Fetch(EntryKey(channel, offset), told);
    }
    for (uint64_t offset = known; offset > 0; --offset) {
      const std::string key = EntryKey(channel, offset);
      {
        std::lock_guard lock(inbox_mutex());
        if (revs_.count(key) > 0) break;
      }
      if (!Fetch(key, told)) break;
    }
  }

  // Reads key from NATS and applies it as the watcher would (not while this node's own write
  // of it is in flight: its copy is ahead then); false: not stored (or NATS failed). *top: a
  // meta's top offset.
  bool Fetch(const std::string& key, std::set<std::string>* told, uint64_t* top = nullptr,
             natsStatus* status = nullptr) {
    kvEntry* e = nullptr;
    const natsStatus s = kvStore_Get(&e, kv_, key.c_str());
    if (status != nullptr) *status = s;
    if (s != NATS_OK) return false;
    const std::string_view value = Value(e);
    if (top != nullptr) {
      const size_t sp = value.find(' ');
      if (sp == std::string_view::npos || !Num(value.substr(sp + 1), top)) *top = 0;
    }
    {
      std::lock_guard lock(inbox_mutex());
      if (in_flight_.count(key) == 0) ApplyLocked(key, kvEntry_Revision(e), value, true, told);
    }
    kvEntry_Destroy(e);
    return true;
  }

  // Ack's tries, with the channel's gate held; *answer: what stored is to be told, if anything.
  core::InboxChange AckHeld(std::string_view channel, const std::vector<uint64_t>& offsets,
                            std::optional<uint64_t> up_to, uint64_t now_ms,
                            std::optional<bool>* answer, std::set<std::string>* told) {
    std::vector<core::InboxEntry> acked;  // written by the tries before
    std::vector<uint64_t> rest = offsets;
    for (int attempt = 0;; ++attempt) {
      Report report;
      t_report = &report;
      bool called = false, ok = false;
      core::InboxChange change = Journaled(
          [&] {
            return MemoryInboxStore::Ack(channel, rest, up_to, now_ms,
                                         [&](bool s) { called = true, ok = s; });
          },
          told);
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
        if (called) *answer = ok;
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
      *answer = true;
      return done;
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
  std::vector<core::InboxEntry> Claimed(const Call& call, std::set<std::string>* told,
                                        const std::map<uint64_t, uint32_t>* expected = nullptr) {
    Report report;
    report.keep_going = true;
    report.expected = expected;
    t_report = &report;
    std::vector<core::InboxEntry> out = Journaled(call, told);
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

  // With no lock held (the channel's gate is): each write with compare-and-set on the
  // revision the change saw; a key that fails is read back. Then the keys land (Land).
  bool Flush(Journal& journal, std::set<std::string>* told) {
    const bool keep_going = t_report != nullptr && t_report->keep_going;
    bool ok = true;
    std::unordered_map<std::string, uint64_t> wrote;  // key -> revision, by this flush
    for (const JournalWrite& j : journal.writes) {
      const Write& w = j.write;
      if (!ok && !keep_going) {
        Resync(j);
        continue;
      }
      if (!Expected(w)) {
        t_report->failed.insert({w.entry.channel, w.entry.offset});
        Resync(j);  // this node's copy back to the count it had (and NATS has)
        continue;
      }
      if (WriteOne(j, wrote)) {
        if (t_report != nullptr && w.kind != Write::Kind::kMeta) {
          t_report->written.insert({w.entry.channel, w.entry.offset});
        }
        continue;
      }
      ok = false;
      if (t_report != nullptr && w.kind != Write::Kind::kMeta) {
        t_report->failed.insert({w.entry.channel, w.entry.offset});
      }
      Resync(j);
    }
    Land(journal, told);
    return ok;
  }

  // The journal's keys are no longer in flight: what the watcher held back for them is
  // applied now, unless this node's write or read-back is as new.
  void Land(const Journal& journal, std::set<std::string>* told) {
    std::lock_guard lock(inbox_mutex());
    for (const JournalWrite& j : journal.writes) {
      auto it = in_flight_.find(j.key);
      if (it == in_flight_.end() || --it->second > 0) continue;
      in_flight_.erase(it);
      auto held = deferred_.find(j.key);
      if (held == deferred_.end()) continue;
      ApplyLocked(j.key, held->second.revision, held->second.value, held->second.put, told);
      deferred_.erase(held);
    }
  }

  bool WriteOne(const JournalWrite& j, std::unordered_map<std::string, uint64_t>& wrote) {
    const Write& w = j.write;
    if (options_.before_write) options_.before_write(w.entry.channel);
    if (w.kind == Write::Kind::kDelete) {
      // Offsets are never reused: a delete cannot race a write that matters.
      if (kvStore_Delete(kv_, j.key.c_str()) != NATS_OK) return false;
      wrote[j.key] = kDeleted;
      std::lock_guard lock(inbox_mutex());
      revs_[j.key] = kDeleted;
      FireKeyLocked(j.key, w.entry.channel, w.entry.offset, {});
      return true;
    }
    std::string fire_key = w.fire_key;
    if (w.kind == Write::Kind::kPut && fire_key.empty()) {
      std::lock_guard lock(inbox_mutex());
      auto it = fire_keys_.find(j.key);
      if (it != fire_keys_.end()) fire_key = it->second;
    }
    const std::string value = w.kind == Write::Kind::kMeta
                                  ? w.epoch + " " + std::to_string(w.entry.offset)
                                  : Encode(w.entry, fire_key);
    auto it = wrote.find(j.key);
    const uint64_t known = it == wrote.end() ? j.revision : it->second;
    const uint64_t last = known == kDeleted ? 0 : known;
    uint64_t rev = 0;
    const natsStatus s = last == 0 ? kvStore_Create(&rev, kv_, j.key.c_str(), value.data(),
                                                    static_cast<int>(value.size()))
                                   : kvStore_Update(&rev, kv_, j.key.c_str(), value.data(),
                                                    static_cast<int>(value.size()), last);
    if (s != NATS_OK) return false;
    wrote[j.key] = rev;
    std::lock_guard lock(inbox_mutex());
    revs_[j.key] = rev;
    if (w.kind == Write::Kind::kPut) {
      FireKeyLocked(j.key, w.entry.channel, w.entry.offset, std::move(fire_key));
    }
    return true;
  }

  // Under the lock: the fire key the entry stored at key carries now (empty: none, or the
  // entry is gone), so a repeated firing finds it while, and only while, the entry is held.
  void FireKeyLocked(const std::string& key, std::string_view channel, uint64_t offset,
                     std::string fire_key) {
    auto it = fire_keys_.find(key);
    if (it != fire_keys_.end()) {
      if (it->second == fire_key) return;
      UnfiredLocked(channel, std::move(it->second));
      fire_keys_.erase(it);
    }
    if (fire_key.empty()) return;
    FiredLocked(channel, fire_key, offset);
    fire_keys_.emplace(key, std::move(fire_key));
  }

  // A key this node could not write: what NATS holds now replaces this node's idea of it.
  void Resync(const JournalWrite& j) {
    const Write& w = j.write;
    kvEntry* e = nullptr;
    const natsStatus s = kvStore_Get(&e, kv_, j.key.c_str());
    if (s == NATS_NOT_FOUND) {
      std::lock_guard lock(inbox_mutex());
      if (w.kind != Write::Kind::kMeta) {
        ForgetLocked(w.entry.channel, w.entry.offset);
        FireKeyLocked(j.key, w.entry.channel, w.entry.offset, {});
      }
      revs_.erase(j.key);
      if (t_report != nullptr) t_report->resynced = true;
      return;
    }
    if (s != NATS_OK) {
      spdlog::warn("nats inbox: reading {} back: {}", j.key, natsStatus_GetText(s));
      return;
    }
    bool applied = false;
    {
      // Forced: this node's copy may hold a change it never wrote, at the revision it knows.
      std::lock_guard lock(inbox_mutex());
      applied = ApplyLocked(kvEntry_Key(e), kvEntry_Revision(e), Value(e), /*put=*/true, nullptr,
                            /*force=*/true);
    }
    if (applied && t_report != nullptr) t_report->resynced = true;
    kvEntry_Destroy(e);
  }

  // Under the lock: a stored key's value (or delete) into memory, unless this node already
  // has it (its own write, or a newer one). Adds to told a channel with a new pending entry.
  bool ApplyLocked(std::string_view key, uint64_t rev, std::string_view value, bool put,
                   std::set<std::string>* told, bool force = false) {
    const size_t dot = key.rfind('.');
    std::string channel;
    if (dot == std::string_view::npos || !Unhex(key.substr(0, dot), &channel)) return false;
    const std::string k(key);
    std::string_view tail = key.substr(dot + 1);
    auto it = revs_.find(k);
    if (!put) {
      if (tail != "m") {
        uint64_t offset = 0;
        if (Num(tail, &offset)) {
          ForgetLocked(channel, offset);
          FireKeyLocked(k, channel, offset, {});
        }
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
      std::string fire_key;
      if (!Num(tail, &e.offset) || !Decode(value, &e, &fire_key)) return false;
      e.channel = channel;
      FireKeyLocked(k, channel, e.offset, std::move(fire_key));
      if (told != nullptr && e.state == core::InboxState::kPending && e.deliveries == 0) {
        told->insert(channel);
      }
      ReplaceLocked(std::move(e));
    }
    revs_[k] = rev;
    return true;
  }

  // The watcher's update; held back while this node's own write of the key is in flight
  // (the key lands after its reply: the revision it then knows decides whether this is news).
  void Apply(kvEntry* e, std::set<std::string>* told) {
    const std::string_view key = kvEntry_Key(e);
    const uint64_t rev = kvEntry_Revision(e);
    const bool put = kvEntry_Operation(e) == kvOp_Put;
    std::lock_guard lock(inbox_mutex());
    if (auto it = in_flight_.find(std::string(key)); it != in_flight_.end()) {
      Deferred& held = deferred_[it->first];
      if (rev > held.revision) held = {rev, std::string(Value(e)), put};
      return;
    }
    ApplyLocked(key, rev, Value(e), put, told);
  }

  // Tells core::Inbox of channels with new pending entries stored by another node. Never
  // with a gate held: the callback delivers, which changes the channel here.
  void Tell(const std::set<std::string>& channels) {
    if (channels.empty()) return;
    std::lock_guard lock(pending_mutex_);  // recursive: a delivery it makes may tell too
    if (!pending_) return;
    for (const std::string& channel : channels) pending_(channel);
  }

  void WatchLoop() {
    while (!stopping_) {
      kvEntry* e = nullptr;
      const natsStatus s = kvWatcher_Next(&e, watcher_, 200);
      if (s != NATS_OK || e == nullptr) continue;  // a timeout: look at stopping_ again
      if (options_.before_watched) options_.before_watched();
      std::set<std::string> told;
      Apply(e, &told);
      kvEntry_Destroy(e);
      Tell(told);
    }
  }

  NatsInboxOptions options_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* kv_ = nullptr;
  kvWatcher* watcher_ = nullptr;
  std::thread watcher_thread_;
  std::atomic<bool> stopping_{false};
  ChannelGates gates_;
  // Under inbox_mutex(): the revision of each key as this node last wrote or saw it; the fire
  // key of each entry stored with one (by its key); the keys of journaled writes not yet
  // landed (a count: a key may be in two writes of a change); the watcher's updates held
  // back for them.
  std::unordered_map<std::string, uint64_t> revs_;
  std::unordered_map<std::string, std::string> fire_keys_;
  std::unordered_map<std::string, int> in_flight_;
  std::unordered_map<std::string, Deferred> deferred_;
  uint64_t node_tag_ = 0;
  uint64_t last_dead_base_ = 0;
  std::recursive_mutex pending_mutex_;
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
