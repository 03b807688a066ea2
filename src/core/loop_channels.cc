#include "core/loop_channels.h"

#include <algorithm>

#include "core/push.h"

namespace hermod::core {

namespace {

bool Wants(const Subscription& s, uint64_t offset, bool join_leave) {
  return join_leave ? s.wants_join_leave : offset == 0 || offset > s.delivered_offset;
}

}  // namespace

void HeldPushes::Drop() {
  for (const Entry& e : entries) e.push->Unref();
  entries.clear();
  bytes = 0;
}

LoopChannels::LoopChannels(Join join, Missed missed) : join_(std::move(join)), missed_(missed) {}

LoopChannels::~LoopChannels() {
  for (auto& [name, channel] : channels_) {
    for (const Pending& p : channel->pending) p.push->Unref();
  }
}

void LoopChannels::FlushTimer::OnTimer() { owner_.Flush(channel_.name); }

bool LoopChannels::Add(std::string_view channel, Subscription* s) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) {
    it = channels_.emplace(std::string(channel), std::make_unique<Channel>(*this, channel)).first;
  }
  s->channel_name = &it->second->name;
  std::vector<Subscription*>& list = it->second->subscribers;
  s->slot = static_cast<uint32_t>(list.size());
  list.push_back(s);
  return list.size() == 1;
}

bool LoopChannels::Remove(std::string_view channel, Subscription* s) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return true;
  std::vector<Subscription*>& list = it->second->subscribers;
  if (s->slot >= list.size() || list[s->slot] != s) return list.empty();
  list[s->slot] = list.back();
  list[s->slot]->slot = s->slot;
  list.pop_back();
  if (!list.empty()) return false;
  if (!delivering_) Erase(it);
  return true;
}

void LoopChannels::Erase(Map::iterator it) {
  Channel& channel = *it->second;
  if (loop_ != nullptr) loop_->timers().Cancel(&channel.timer);
  for (const Pending& p : channel.pending) p.push->Unref();
  channels_.erase(it);  // a posted flush finds no channel and does nothing
}

bool LoopChannels::SendOne(Subscription& s, const Push& push, net::PushClass cls) {
  switch (push.SendTo(s, cls)) {
    case net::SendStatus::kQueued:
      return true;
    case net::SendStatus::kShed:
      return true;  // droppable, by the channel's choice: a later push may still fit
    case net::SendStatus::kMissed:
      OnMissed(s);
      return false;
    default:
      return false;  // the connection is ending (and may have freed s)
  }
}

void LoopChannels::OnMissed(Subscription& s) {
  // The subscriber must learn it now: told (and unsubscribed), or cut.
  if (s.tell_missed && missed_ != nullptr) {
    missed_(s);
  } else {
    s.connection->CutSlow();
  }
}

bool LoopChannels::Offer(Subscription& s, const Push& push, net::PushClass cls, uint64_t offset,
                         bool join_leave) {
  if (!s.held) return SendOne(s, push, cls);
  HeldPushes& held = *s.held;
  if (held.overflowed) return true;
  if (held.bytes + push.size() > s.connection->loop().max_write_buffer_bytes()) {
    // As a full queue would: the subscriber learns the gap after its reply (Resume).
    if (!cls.may_drop()) {
      held.Drop();
      held.overflowed = true;
    }
    return true;
  }
  push.Ref();
  held.entries.push_back({&push, offset, join_leave, cls});
  held.bytes += push.size();
  return true;
}

void LoopChannels::Resume(Subscription& s, uint64_t delivered_offset) {
  std::unique_ptr<HeldPushes> held = std::move(s.held);
  if (!held) return;
  s.delivered_offset = std::max(s.delivered_offset, delivered_offset);
  if (s.connection->closing()) return;
  if (held->overflowed) return OnMissed(s);
  for (const HeldPushes::Entry& e : held->entries) {
    if (!Wants(s, e.offset, e.join_leave)) continue;  // in the reply already
    if (!SendOne(s, *e.push, e.cls)) break;           // s may be gone
  }
}

template <class Send>
void LoopChannels::ForEachSubscriber(std::vector<Subscription*>& list, Send send) {
  const bool outer = delivering_;
  delivering_ = true;
  for (size_t i = 0; i < list.size();) {
    Subscription* s = list[i];
    if (!s->connection->closing()) send(*s);
    // A send that overflowed closed the connection, which removed s: slot i now holds the
    // next subscriber.
    if (i < list.size() && list[i] == s) ++i;
  }
  delivering_ = outer;
}

void LoopChannels::Deliver(std::string_view channel, const Push& push, uint64_t offset,
                           bool join_leave, Delivery delivery) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  Channel& ch = *it->second;
  ch.latest = delivery.latest;
  ch.droppable = delivery.droppable;
  const Coalescing& coalescing = delivery.coalescing;
  if (coalescing.max_bytes == 0 || !join_ || loop_ == nullptr) {
    if (!ch.pending.empty()) FlushBatch(ch);  // keep the channel's order
    const net::PushClass cls{delivery.priority, ch.latest ? ch.latest_key : 0, ch.droppable};
    ForEachSubscriber(ch.subscribers, [&](Subscription& s) {
      if (Wants(s, offset, join_leave)) Offer(s, push, cls, offset, join_leave);
    });
  } else {
    if (ch.latest && !join_leave) {
      // Latest value wins: an older publication still pending never leaves.
      std::erase_if(ch.pending, [&](const Pending& p) {
        if (p.join_leave) return false;
        ch.pending_bytes -= p.push->size() + 1;
        p.push->Unref();
        return true;
      });
    }
    push.Ref();
    ch.pending.push_back({&push, offset, join_leave, delivery.priority});
    ch.pending_bytes += push.size() + 1;
    ch.max_bytes = coalescing.max_bytes;
    if (ch.pending_bytes >= coalescing.max_bytes && coalescing.delay_ms > 0) {
      FlushBatch(ch);  // full: waiting longer only adds latency
    } else if (!ch.flush_posted && !ch.timer.scheduled()) {
      if (coalescing.delay_ms > 0) {
        loop_->timers().Schedule(&ch.timer, coalescing.delay_ms);
      } else {
        // Runs on the loop's next mailbox run, after every push this run delivers.
        ch.flush_posted = true;
        loop_->Post([this, name = ch.name] { Flush(name); });
      }
    }
  }
  if (ch.subscribers.empty() && !delivering_) Erase(it);
}

void LoopChannels::TellMissed(std::string_view channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  Channel& ch = *it->second;
  if (!ch.pending.empty()) FlushBatch(ch);  // what came before the gap leaves first
  ForEachSubscriber(ch.subscribers, [this](Subscription& s) {
    if (s.held) {
      s.held->Drop();
      s.held->overflowed = true;
      return;
    }
    OnMissed(s);
  });
  if (ch.subscribers.empty() && !delivering_) Erase(it);
}

void LoopChannels::Flush(std::string_view channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  it->second->flush_posted = false;
  FlushBatch(*it->second);
  if (it->second->subscribers.empty() && !delivering_) Erase(it);
}

void LoopChannels::FlushBatch(Channel& ch) {
  if (loop_ != nullptr) loop_->timers().Cancel(&ch.timer);
  std::vector<Pending> batch;
  batch.swap(ch.pending);
  ch.pending_bytes = 0;
  if (batch.empty()) return;
  // Runs of consecutive pushes of one priority that fit max_bytes together become one joined
  // push, built on first need and shared by every subscriber that gets the whole batch; a
  // run of one is the original push.
  struct Run {
    const Push* push;
    net::Priority priority;
  };
  std::vector<Run> joined;
  auto build = [&] {
    std::vector<const Push*> run;
    size_t bytes = 0;
    net::Priority priority = batch.front().priority;
    auto close_run = [&] {
      if (run.size() == 1) {
        run[0]->Ref();
        joined.push_back({run[0], priority});
      } else if (!run.empty()) {
        joined.push_back({join_(run.data(), run.size()), priority});
      }
      run.clear();
      bytes = 0;
    };
    for (const Pending& p : batch) {
      const size_t size = p.push->size() + 1;
      if (!run.empty() && (bytes + size > ch.max_bytes || p.priority != priority)) close_run();
      run.push_back(p.push);
      priority = p.priority;
      bytes += size;
    }
    close_run();
  };
  const uint64_t key = ch.latest ? ch.latest_key : 0;
  ForEachSubscriber(ch.subscribers, [&](Subscription& s) {
    // A held subscriber takes the pushes one by one: its reply decides which it keeps.
    bool all = !s.held && !s.delta;
    for (const Pending& p : batch) all = all && Wants(s, p.offset, p.join_leave);
    if (all) {
      if (joined.empty()) build();
      for (const Run& run : joined) {
        if (!SendOne(s, *run.push, {run.priority, key, ch.droppable})) break;
      }
    } else {
      for (const Pending& p : batch) {
        if (!Wants(s, p.offset, p.join_leave)) continue;
        if (!Offer(s, *p.push, {p.priority, key, ch.droppable}, p.offset, p.join_leave)) break;
      }
    }
  });
  for (const Run& run : joined) run.push->Unref();
  for (const Pending& p : batch) p.push->Unref();
}

}  // namespace hermod::core
