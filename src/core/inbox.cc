#include "core/inbox.h"

#include <algorithm>
#include <chrono>

#include "core/hub.h"

namespace hermod::core {

namespace {

// A reason not in the table is a client's own: it came with a reject.
size_t DeadReasonIndex(std::string_view reason) {
  for (size_t i = 0; i < InboxStats::kDeadReasons.size(); ++i) {
    if (reason == InboxStats::kDeadReasons[i]) return i;
  }
  return 1;
}

std::string_view NamespaceOf(std::string_view channel) {
  const size_t colon = channel.find(':');
  return colon == std::string_view::npos ? std::string_view() : channel.substr(0, colon);
}

InboxLimits LimitsOf(const config::ChannelOptions& o) {
  InboxLimits limits;
  limits.size = o.inbox_size;
  limits.ttl_ms = o.inbox_ttl.ms;
  limits.dead_letter_oldest = o.inbox_overflow == "dead_letter_oldest";
  return limits;
}

void AppendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace

uint64_t Inbox::WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Inbox::Inbox(InboxStore& store, const ChannelRules& rules, Hub& hub, const config::Config& config,
             WallClock wall)
    : store_(store), rules_(rules), hub_(hub), wall_(wall) {
  auto consider = [this](const config::ChannelOptions& o, const std::string& name) {
    if (!o.inbox) return;
    tick_ms_ = std::min(tick_ms_, std::max<uint64_t>(o.ack_timeout.ms / 4, 10));
    namespaces_.push_back(name);
  };
  consider(config.channel, "");
  for (const config::Namespace& ns : config.namespaces) consider(ns.options, ns.name);
  // Another node's publish or redrive (an engine shared by a cluster): delivered here to this
  // node's watchers of the channel, if it has any.
  store_.OnRemotePending([this](const std::string& channel) {
    const config::ChannelOptions* options = Options(channel);
    if (options == nullptr) return;
    {
      std::lock_guard lock(mutex_);
      if (watches_.find(channel) == watches_.end()) return;
    }
    std::vector<uint64_t> offsets;
    for (const InboxEntry& e : store_.Unacked(channel)) {
      if (e.state == InboxState::kPending && e.deliveries == 0) offsets.push_back(e.offset);
    }
    Deliver(channel, *options, std::move(offsets), nullptr);
  });
}

Inbox::~Inbox() { store_.OnRemotePending(nullptr); }

const config::ChannelOptions* Inbox::Options(std::string_view channel) const {
  const config::ChannelOptions* o = rules_.Find(channel);
  return o != nullptr && o->inbox ? o : nullptr;
}

bool Inbox::Owns(std::string_view channel, std::string_view user) {
  return !user.empty() && ChannelRules::IsUserLimited(channel) &&
         ChannelRules::UserListed(channel, user);
}

void Inbox::Watch(std::string_view channel, net::Loop& loop, std::weak_ptr<Watcher> watcher) {
  const config::ChannelOptions* options = Options(channel);
  if (options == nullptr) return;
  Watching w{&loop, std::move(watcher)};
  {
    std::lock_guard lock(mutex_);
    auto it = watches_.find(channel);
    if (it == watches_.end())
      it = watches_.emplace(std::string(channel), std::vector<Watching>{}).first;
    std::erase_if(it->second, [](const Watching& x) { return x.watcher.expired(); });
    it->second.push_back(w);
  }
  std::vector<uint64_t> offsets;
  for (const InboxEntry& e : store_.Unacked(channel)) offsets.push_back(e.offset);
  if (!offsets.empty()) Deliver(channel, *options, std::move(offsets), &w);
}

void Inbox::Deliver(std::string_view channel, const config::ChannelOptions& options,
                    std::vector<uint64_t> offsets, const Watching* only, bool fresh) {
  if (offsets.empty()) return;  // (Status would read every entry)
  const uint64_t now = wall_();
  if (!fresh) {
    // What was delivered max_deliveries times without an ack goes to the dead letters.
    std::vector<uint64_t> spent;
    std::vector<InboxEntry> unacked = store_.Status(channel, offsets);
    offsets.clear();
    for (const InboxEntry& e : unacked) {
      if (e.state != InboxState::kPending && e.state != InboxState::kDelivered) continue;
      (e.deliveries >= options.max_deliveries ? spent : offsets).push_back(e.offset);
    }
    if (!spent.empty()) {
      InboxChange dead = store_.DeadLetter(channel, spent, "max_deliveries", now, nullptr);
      CountDead(dead.changed);
      Receipts(dead.changed);
    }
    if (offsets.empty()) return;
  }
  std::vector<Watching> targets;
  {
    std::lock_guard lock(mutex_);
    if (only != nullptr) {
      targets.push_back(*only);
    } else if (auto it = watches_.find(channel); it != watches_.end()) {
      std::erase_if(it->second, [](const Watching& x) { return x.watcher.expired(); });
      targets = it->second;
      if (targets.empty()) watches_.erase(it);
    }
  }
  if (targets.empty()) return;
  std::vector<InboxEntry> delivered =
      store_.MarkDelivered(channel, offsets, options.ack_timeout.ms, now);
  if (!delivered.empty()) Send(channel, &targets, std::move(delivered));
}

bool Inbox::Watched(std::string_view channel) {
  std::lock_guard lock(mutex_);
  auto it = watches_.find(channel);
  return it != watches_.end() &&
         std::any_of(it->second.begin(), it->second.end(),
                     [](const Watching& w) { return !w.watcher.expired(); });
}

void Inbox::Send(std::string_view channel, const std::vector<Watching>* to,
                 std::vector<InboxEntry> entries) {
  std::vector<Watching> targets;
  {
    std::lock_guard lock(mutex_);
    for (const InboxEntry& e : entries)
      ++(e.deliveries == 1 ? stats_.delivered : stats_.redelivered);
    if (to != nullptr) {
      targets = *to;
    } else if (auto it = watches_.find(channel); it != watches_.end()) {
      targets = it->second;
    }
  }
  // No one watches any more: it is due again after ack_timeout, to whoever watches then.
  if (targets.empty()) return;
  auto delivered = std::make_shared<std::vector<InboxEntry>>(std::move(entries));
  for (const Watching& w : targets) {
    w.loop->Post([watcher = w.watcher, channel = std::string(channel), delivered] {
      if (auto alive = watcher.lock()) alive->DeliverInbox(channel, *delivered);
    });
  }
}

InboxAppended::Status Inbox::Publish(std::string_view channel, std::string_view data,
                                     Completion<Published> done, std::string_view fire_key) {
  const config::ChannelOptions* options = Options(channel);
  if (options == nullptr) return InboxAppended::Status::kFailed;
  // The position is known before `stored` runs (the call returns under the engine's lock,
  // stored after), so it waits here, and whichever of the two comes second finishes. One
  // allocation for all of it: this is every inbox publication's path.
  struct Pending {
    Published answer;
    Completion<Published> done;
    std::string name;
    std::atomic<int> ready{0};
    bool stored_ok = false;
    InboxEntry delivered;  // stored as delivered (deliveries 1): sent as it is
  };
  auto p = std::make_shared<Pending>();
  p->done = std::move(done);
  p->name = std::string(channel);
  auto finish = [this, options](Pending& p, bool ok) {
    if (!ok) p.answer.status = InboxAppended::Status::kFailed;
    if (ok && !p.answer.duplicate) {
      {
        std::lock_guard lock(mutex_);
        ++stats_.published;
      }
      if (p.delivered.deliveries != 0) {
        std::vector<InboxEntry> one;  // (a braced list would copy the entry and its data)
        one.push_back(std::move(p.delivered));
        Send(p.name, nullptr, std::move(one));
      } else {
        // Just stored: pending, never delivered, so no max_deliveries check (fresh).
        Deliver(p.name, *options, {p.answer.position.offset}, nullptr, true);
      }
    }
    p.done(p.answer);
  };
  InboxLimits limits = LimitsOf(*options);
  if (Watched(channel)) limits.delivered_ack_timeout_ms = options->ack_timeout.ms;
  InboxAppended appended =
      store_.Append(channel, data, fire_key, limits, wall_(), [p, finish](bool ok) {
        p->stored_ok = ok;
        if (p->ready.fetch_add(1) == 1) finish(*p, ok);
      });
  Published* answer = &p->answer;
  answer->status = appended.status;
  answer->position = std::move(appended.position);
  answer->duplicate = appended.duplicate;
  p->delivered = std::move(appended.entry);
  if (!appended.dead.empty()) {
    CountDead(appended.dead);
    Receipts(appended.dead);
  }
  if (appended.status != InboxAppended::Status::kOk) {
    std::lock_guard lock(mutex_);
    ++stats_.refused_full;
    return appended.status;
  }
  if (p->ready.fetch_add(1) == 1) finish(*p, p->stored_ok);
  return InboxAppended::Status::kOk;
}

void Inbox::Answered(const InboxChange& change, bool acked, Completion<Answer> done) {
  Answer answer;
  answer.offsets.reserve(change.changed.size());
  for (const InboxEntry& e : change.changed) answer.offsets.push_back(e.offset);
  if (acked) {
    const uint64_t now = wall_();
    std::lock_guard lock(mutex_);
    for (const InboxEntry& e : change.changed) {
      ++stats_.acked;
      const double s = static_cast<double>(now - std::min(now, e.published_ms)) / 1000.0;
      size_t b = 0;
      while (b < InboxStats::kAckLatencyBounds.size() && s > InboxStats::kAckLatencyBounds[b]) ++b;
      ++stats_.ack_latency_buckets[b];
      stats_.ack_latency_sum_s += s;
      ++stats_.ack_latency_count;
    }
  } else {
    CountDead(change.changed, "rejected");
  }
  Receipts(change.changed);
  done(std::move(answer));
}

template <typename Apply>
void Inbox::Settle(std::string_view user, std::string_view channel, bool acked,
                   Completion<Answer> done, const Apply& apply) {
  if (Options(channel) == nullptr || !Owns(channel, user)) {
    Answer denied;
    denied.denied = true;
    done(std::move(denied));
    return;
  }
  // The answer leaves once both the change is known here and the store has committed it
  // (on the writer thread, before or after apply returns): whichever comes second sends it.
  // One allocation for all of it: this is every ack's path.
  struct Settling {
    Inbox* inbox;
    bool acked;
    Completion<Answer> done;
    InboxChange change;
    std::atomic<int> ready{0};
    bool stored_ok = false;
    void Finish(bool ok) {
      if (!ok) {
        Answer failed;
        failed.error = "not stored";
        done(std::move(failed));
        return;
      }
      inbox->Answered(change, acked, std::move(done));
    }
  };
  auto s = std::make_shared<Settling>();
  s->inbox = this;
  s->acked = acked;
  s->done = std::move(done);
  s->change = apply([s](bool ok) {
    s->stored_ok = ok;
    if (s->ready.fetch_add(1) == 1) s->Finish(ok);
  });
  if (!s->change) {
    Answer refused;
    refused.error = s->change.error;
    s->done(std::move(refused));
    return;
  }
  if (s->ready.fetch_add(1) == 1) s->Finish(s->stored_ok);
}

void Inbox::Ack(std::string_view user, std::string_view channel,
                const std::vector<uint64_t>& offsets, std::optional<uint64_t> up_to,
                Completion<Answer> done) {
  Settle(user, channel, true, std::move(done), [&](InboxStored stored) {
    return store_.Ack(channel, offsets, up_to, wall_(), std::move(stored));
  });
}

void Inbox::Reject(std::string_view user, std::string_view channel,
                   const std::vector<uint64_t>& offsets, std::string_view reason,
                   Completion<Answer> done) {
  Settle(user, channel, false, std::move(done), [&](InboxStored stored) {
    return store_.DeadLetter(channel, offsets, reason.empty() ? "rejected" : reason, wall_(),
                             std::move(stored));
  });
}

InboxChange Inbox::Redrive(std::string_view channel, const std::vector<uint64_t>& offsets,
                           Completion<bool> done) {
  const config::ChannelOptions* options = Options(channel);
  auto shared_done = std::make_shared<Completion<bool>>(std::move(done));
  auto change = std::make_shared<InboxChange>();
  auto ready = std::make_shared<std::atomic<int>>(0);
  std::string name(channel);
  auto finish = [this, change, shared_done, name, options](bool ok) {
    if (ok && options != nullptr) {
      std::vector<uint64_t> back;
      for (const InboxEntry& e : change->changed) back.push_back(e.offset);
      Deliver(name, *options, std::move(back), nullptr);
    }
    (*shared_done)(ok);
  };
  auto stored_ok = std::make_shared<bool>(false);
  *change = store_.Redrive(channel, offsets, wall_(), [finish, ready, stored_ok](bool ok) {
    *stored_ok = ok;
    if (ready->fetch_add(1) == 1) finish(ok);
  });
  if (!*change) return *change;
  InboxChange result = *change;
  if (ready->fetch_add(1) == 1) finish(*stored_ok);
  return result;
}

void Inbox::Tick() {
  const uint64_t now = wall_();
  std::vector<std::string> watched;
  {
    std::lock_guard lock(mutex_);
    for (auto it = watches_.begin(); it != watches_.end();) {
      std::erase_if(it->second, [](const Watching& x) { return x.watcher.expired(); });
      if (it->second.empty()) {
        it = watches_.erase(it);
      } else {
        watched.push_back(it->first);
        ++it;
      }
    }
  }
  for (const std::string& channel : watched) {
    const config::ChannelOptions* options = Options(channel);
    if (options == nullptr) continue;
    std::vector<uint64_t> due;
    for (const InboxEntry& e : store_.Unacked(channel)) {
      // A pending one is delivered by its publish once stored (or at connect); only one
      // that missed both (a watcher that came between) is due, an ack_timeout after.
      const uint64_t at =
          e.state == InboxState::kPending ? e.published_ms + options->ack_timeout.ms : e.due_ms;
      if (at <= now) due.push_back(e.offset);
    }
    if (!due.empty()) Deliver(channel, *options, std::move(due), nullptr);
  }
  if (now >= last_expire_ms_ + 1000) {
    last_expire_ms_ = now;
    const std::vector<InboxEntry> expired = store_.Expire(now);
    CountDead(expired);
    Receipts(expired);
  }
}

void Inbox::CountDead(const std::vector<InboxEntry>& entries, std::string_view as) {
  if (entries.empty()) return;
  std::lock_guard lock(mutex_);
  for (const InboxEntry& e : entries) {
    if (e.state == InboxState::kDead) ++stats_.dead[DeadReasonIndex(as.empty() ? e.reason : as)];
  }
}

void Inbox::Receipts(const std::vector<InboxEntry>& entries) {
  const InboxEntry* previous = nullptr;
  const config::ChannelOptions* options = nullptr;
  for (const InboxEntry& e : entries) {
    // An ack's entries are all of one channel: its rules are looked up once.
    if (previous == nullptr || previous->channel != e.channel) options = rules_.Find(e.channel);
    previous = &e;
    if (options == nullptr || options->receipts_channel.empty()) continue;
    const std::string& to = options->receipts_channel;
    const config::ChannelOptions* to_options = rules_.Find(to);
    if (to_options == nullptr) continue;
    std::string data = "{\"channel\":";
    AppendJsonEscaped(data, e.channel);
    data += ",\"offset\":" + std::to_string(e.offset) + ",\"status\":\"";
    data += InboxStateName(e.state);
    data += '"';
    if (e.state == InboxState::kDead) {
      data += ",\"reason\":";
      AppendJsonEscaped(data, e.reason);
    }
    data += ",\"deliveries\":" + std::to_string(e.deliveries);
    data += ",\"at\":" + std::to_string(e.done_ms) + "}";
    if (to_options->inbox) {
      Publish(to, data, {});
      continue;
    }
    Hub::PublishRequest request;
    request.channel = to;
    request.options = to_options;
    request.data = data;
    hub_.Publish(std::move(request));
  }
}

InboxStats Inbox::Stats() {
  InboxStats s;
  {
    std::lock_guard lock(mutex_);
    s = stats_;
  }
  std::map<std::string, uint64_t, std::less<>> by_namespace;
  // A namespace with nothing pending shows 0, not no sample.
  for (const std::string& ns : namespaces_) by_namespace[ns];
  for (const auto& [channel, count] : store_.PendingCounts()) {
    by_namespace[std::string(NamespaceOf(channel))] += count;
  }
  s.pending.assign(by_namespace.begin(), by_namespace.end());
  s.dead_held = store_.DeadCount();
  return s;
}

}  // namespace hermod::core
