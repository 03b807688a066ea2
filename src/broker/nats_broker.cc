#include "broker/nats_broker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "broker/subject.h"
#include "broker/wire.h"

namespace hermod::broker {

namespace {

// Set on the client loop while it feeds a received message to the hub: the hub hands those
// publications back to Publish, which must not send them out again.
thread_local bool receiving = false;

// How often the idle interest thread looks for a due half-open trial and the node's word.
constexpr auto kTrialPoll = std::chrono::milliseconds(100);

// The channel of a message this node encoded (it travels in the payload): a queued message
// keeps no copy of its own.
std::string_view ChannelOf(std::string_view bytes) { return EncodedChannel(bytes); }

uint64_t NewNodeId() {
  std::random_device random;
  return (static_cast<uint64_t>(random()) << 32) | random();
}

}  // namespace

NatsBroker::Options NatsBroker::Options::FromConfig(const config::Config& c) {
  Options o;
  o.url = c.nats.url;
  o.prefix = c.nats.prefix;
  o.dial_timeout_ms = c.nats.dial_timeout.ms;
  o.reconnect_wait_ms = c.nats.reconnect_wait.ms;
  o.ping_interval_ms = c.nats.ping_interval.ms;
  o.max_pings_out = c.nats.max_pings_out;
  o.reconnect_buffer_bytes = c.nats.reconnect_buffer_bytes;
  o.send_queue_bytes = c.nats.send_queue_bytes;
  o.receive_queue_bytes = c.nats.receive_queue_bytes;
  o.release_batch = c.nats.release_batch;
  o.release_bytes = c.nats.release_bytes;
  o.lost_channels_max = c.nats.lost_channels_max;
  o.link.unhealthy_after_ms = c.nats.unhealthy_after.ms;
  o.tls = c.nats.tls;
  const auto& b = c.broker_breaker;
  o.link.breaker.failure_threshold = static_cast<uint32_t>(b.failure_threshold);
  o.link.breaker.window_ms = b.window.ms;
  o.link.breaker.open_ms = b.open_timeout.ms;
  o.link.breaker.half_open_trials = static_cast<uint32_t>(b.half_open_trials);
  return o;
}

NatsBroker::NatsBroker(Options options, core::Hub& hub, const core::ChannelRules& rules,
                       net::Loop& loop)
    : options_(std::move(options)),
      hub_(hub),
      rules_(rules),
      loop_(loop),
      node_id_(NewNodeId()),
      link_(options_.link, &net::Loop::MonotonicMs),
      nodes_subject_(options_.prefix + ".nodes"),
      lost_subject_(options_.prefix + ".lost"),
      unconfirmed_(options_.lost_channels_max),
      confirming_(options_.lost_channels_max),
      lost_(options_.lost_channels_max) {}

NatsBroker::~NatsBroker() { Stop(); }

void NatsBroker::Waiter::Set(bool result) {
  std::lock_guard lock(mutex);
  done = true;
  ok = result;
  cv.notify_all();
}

bool NatsBroker::Waiter::SetLate(bool result) {
  std::lock_guard lock(mutex);
  done = true;
  ok = result;
  cv.notify_all();
  return given_up;
}

bool NatsBroker::Waiter::WaitOrGiveUp(uint64_t timeout_ms) {
  std::unique_lock lock(mutex);
  if (!cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return done; })) {
    given_up = true;  // under the mutex: SetLate sees it, however close the two are
  }
  return done && ok;
}

bool NatsBroker::Waiter::Wait(uint64_t timeout_ms) {
  std::unique_lock lock(mutex);
  return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return done; }) && ok;
}

bool NatsBroker::OnClientLoop() const {
  return loop_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void NatsBroker::OnLoop(std::function<void()> task) {
  if (OnClientLoop()) {
    task();
    return;
  }
  // alive_ is read and cleared on the client loop only: a task that runs after Stop's close
  // does nothing.
  loop_.Post([alive = alive_, task = std::move(task)] {
    if (*alive) task();
  });
}

bool NatsBroker::MakeTls(const std::vector<NatsServer>& servers, NatsClient::Options* o,
                         std::string* error) const {
  const config::NatsTls& t = options_.tls;
  o->tls_wanted = t.enabled;
  o->tls_server_name = t.server_name;
  const bool asked =
      t.enabled || !t.ca_file.empty() || !t.cert_file.empty() ||
      std::any_of(servers.begin(), servers.end(), [](const NatsServer& s) { return s.tls; });
  std::string why;
  o->tls = net::TlsClientContext::Create(
      {t.ca_file, t.cert_file, t.key_file, !t.insecure_skip_verify}, &why);
  // Without TLS asked for (or files given), a context is there for a server that requires
  // it (as nats.go); the system's CAs failing to load then waits for such a server.
  if (!o->tls && asked) {
    *error = "broker: config key " + why;
    return false;
  }
  if (t.insecure_skip_verify) {
    spdlog::warn(
        "broker: nats.tls.insecure_skip_verify: the NATS server's certificate is not "
        "checked");
  }
  return true;
}

bool NatsBroker::Start(std::string* error) {
  std::vector<NatsServer> servers;
  if (std::string why; !ParseNatsServers(options_.url, &servers, &why)) {
    *error = "broker: config key nats.url: " + why;
    return false;
  }
  NatsClient::Options o;
  if (!MakeTls(servers, &o, error)) return false;
  o.servers = std::move(servers);
  o.name = "hermod-" + std::to_string(node_id_);
  o.dial_timeout_ms = options_.dial_timeout_ms;
  o.reconnect_wait_ms = options_.reconnect_wait_ms;
  o.max_output_bytes = options_.send_queue_bytes;
  o.reconnect_buffer_bytes = options_.reconnect_buffer_bytes;
  o.ping_interval_ms = options_.ping_interval_ms;
  o.max_pings_out = options_.max_pings_out;
  NatsClient::Events e;
  e.message = [this](uint64_t sid, std::string_view payload) { OnMessage(sid, payload); };
  e.connected = [this] { OnConnected(); };
  e.disconnected = [this](std::string_view why) { OnDisconnected(why); };
  e.error = [this](std::string_view text) { OnServerError(text); };
  e.attempt_failed = [this](std::string_view url, std::string_view why) {
    // Once per outage (or at start-up), not once per attempt.
    if (attempt_warned_) return;
    attempt_warned_ = true;
    spdlog::warn("broker: NATS at {} not reachable ({}); retrying every {} ms", url, why,
                 options_.reconnect_wait_ms);
  };
  e.fault = [this](NatsClient::Fault fault) {
    link_.CountError(fault == NatsClient::Fault::kWriteDeadline ? ConnectionError::kWriteDeadline
                     : fault == NatsClient::Fault::kPing        ? ConnectionError::kPing
                     : fault == NatsClient::Fault::kTls         ? ConnectionError::kTls
                                                                : ConnectionError::kProtocol);
  };
  client_ = std::make_unique<NatsClient>(loop_, std::move(o), std::move(e));
  // Set up before the loop runs: the nodes subject is subscribed on every (re)connect.
  nodes_sid_ = client_->Subscribe(nodes_subject_);
  lost_sid_ = client_->Subscribe(lost_subject_);
  loop_.Post([this, alive = alive_] {
    if (!*alive) return;
    loop_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    client_->Start();
  });
  interest_thread_ = std::thread([this] { InterestLoop(); });
  spdlog::info("broker: nats at {}, subjects {}.ch.<channel>, node {:016x}, on loop {}",
               options_.url, options_.prefix, node_id_, loop_.index());
  return true;
}

void NatsBroker::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (interest_thread_.joinable()) interest_thread_.join();
  if (!client_) return;
  auto close = [this] {
    *alive_ = false;
    loop_.timers().Cancel(&round_timer_);
    client_->Close();
    subscriptions_.clear();
    link_.SetSubjects(0);
  };
  if (loop_.InThisThread()) {
    close();  // the loop is not running (or this is it)
  } else {
    auto waiter = std::make_shared<Waiter>();
    loop_.Post([close, waiter] {
      close();
      waiter->Set(true);
    });
    if (!waiter->Wait(5000)) spdlog::warn("broker: the client loop did not close within 5 s");
  }
  client_.reset();  // its timers are the loop's: freed while the loop is there
}

void NatsBroker::OnConnected() {
  max_payload_.store(client_->max_payload(), std::memory_order_relaxed);
  attempt_warned_ = false;
  spdlog::info("broker: connected to NATS at {} (max_payload {})", options_.url, max_payload());
  link_.OnConnected();
  // Core NATS keeps nothing for a disconnected client: what other nodes published while this
  // one was away is gone, so every subscriber of a channel held here is told. Told once the
  // server has answered a PING written after every SUB again: a subscriber that recovers
  // after its tell must not miss a publication the server routed before it had the SUBs. A
  // connection lost before the PONG is told at the next connect (was_connected_ stays set).
  // At the first connect too when subscribers of channels held now were answered before the
  // SUBs were in (no server, or the wait for it ran out): they missed what other nodes
  // published meanwhile. Those answered after the first connect's PONG missed nothing.
  bool held = false;
  {
    std::lock_guard lock(interest_mutex_);
    held = !wanted_.empty();
  }
  const bool early = answered_early_.exchange(false);
  if (was_connected_.exchange(true) || (held && early)) {
    client_->Ping([this](bool ok) {
      if (ok) TellEveryWanted();
    });
  }
  // Publications held while disconnected were written right after the SUBs.
  if (!confirm_out_ && !unconfirmed_.empty()) Confirm();
}

void NatsBroker::OnDisconnected(std::string_view why) {
  spdlog::warn("broker: disconnected from NATS at {} ({}); reconnecting every {} ms", options_.url,
               why, options_.reconnect_wait_ms);
  link_.OnDisconnected();
  // Written to the connection now gone, after the confirm PING in flight (which fails next).
  std::lock_guard lock(lost_mutex_);
  lost_.Merge(unconfirmed_);
}

void NatsBroker::OnServerError(std::string_view text) {
  link_.CountError(ConnectionError::kServer);
  spdlog::warn("broker: NATS server error: {}", text);
  if (text.find("Slow Consumer") != std::string_view::npos) {
    link_.CountDropped(ReceiveDrop::kSlowConsumer);
  }
}

void NatsBroker::OnMessage(uint64_t sid, std::string_view payload) {
  if (sid == nodes_sid_) {
    nodes_.Receive(node_id_, payload, net::Loop::MonotonicMs());
    return;
  }
  if (sid == lost_sid_) {
    OnLostNotice(payload);
    return;
  }
  Receive(payload);
}

void NatsBroker::TellEveryWanted() {
  std::vector<std::string> channels;
  {
    std::lock_guard lock(interest_mutex_);
    channels.assign(wanted_.begin(), wanted_.end());
  }
  spdlog::warn(
      "broker: publications from other nodes missed; the subscribers of {} channels "
      "are told to recover",
      channels.size());
  for (const std::string& channel : channels) hub_.TellMissed(channel);
}

std::vector<std::string> NatsBroker::OtherNodes() { return nodes_.Alive(net::Loop::MonotonicMs()); }

bool NatsBroker::Fits(const core::BrokerMessage& message) {
  if (receiving) return true;  // it came over this link: it fits
  const uint64_t max = max_payload();
  if (max == 0 || EncodedSize(message) <= max) return true;
  link_.CountTooLarge(message.kind);
  return false;
}

void NatsBroker::Publish(const core::BrokerMessage& message) {
  if (receiving) return;  // fed in from another node: not ours to send
  // Publications were checked by Fits; a join or leave with a huge info is checked here.
  if (message.kind != core::BrokerMessageKind::kPublication && !Fits(message)) return;
  if (!link_.Admit()) {
    NoteLost(message.kind, message.channel);
    return;
  }
  Outgoing m{message.kind, ChannelSubject(options_.prefix, message.channel),
             Encode(node_id_, message)};
  if (OnClientLoop()) {
    // Behind what other threads queued, if anything: a channel's publications leave in the
    // order the hub made them (it calls under the channel's shard lock).
    bool behind = false;
    {
      std::lock_guard lock(mutex_);
      if (!queue_.empty()) {
        queued_bytes_ += m.bytes.size();
        queue_.push_back(std::move(m));
        behind = true;
      }
    }
    if (behind) {
      DrainQueue();
    } else {
      SendNow(m);
    }
    return;
  }
  bool queued = false;
  bool post = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queued_bytes_ + m.bytes.size() <= options_.send_queue_bytes) {
      queued_bytes_ += m.bytes.size();
      queue_.push_back(std::move(m));
      queued = true;
      post = !drain_posted_;
      drain_posted_ = true;
    }
  }
  if (!queued) {
    link_.OnSent(message.kind, false);  // the queue is full: the link is not keeping up
    NoteLost(message.kind, message.channel);
    return;
  }
  // One post per batch: the publications queued until the client loop drains go with it.
  if (post) OnLoop([this] { DrainQueue(); });
}

void NatsBroker::DrainQueue() {
  std::deque<Outgoing> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
    queued_bytes_ = 0;
    drain_posted_ = false;
  }
  for (Outgoing& m : batch) SendNow(m);
}

void NatsBroker::SendNow(Outgoing& m) {
  // Too large for the server (a join or leave with a huge info, or a publication queued
  // before max_payload was known): the server would close the connection on it, and it says
  // nothing about the link's health. Not sent, counted, not a breaker failure.
  const uint64_t max = max_payload();
  if (max != 0 && m.bytes.size() > max) {
    link_.OnSentTooLarge(m.kind);
    NoteLost(m.kind, ChannelOf(m.bytes));
    return;
  }
  // Output not draining past send_queue_bytes, or more than reconnect_buffer_bytes held while
  // not connected: fails now (the breaker counts it).
  const bool ok = client_->Publish(m.subject, m.bytes);
  link_.OnSent(m.kind, ok);
  if (ok) {
    Written(m);
  } else {
    NoteLost(m.kind, ChannelOf(m.bytes));
  }
}

void NatsBroker::NoteLost(core::BrokerMessageKind kind, std::string_view channel) {
  // Joins and leaves have no recovery to point a subscriber to.
  if (kind != core::BrokerMessageKind::kPublication) return;
  std::lock_guard lock(lost_mutex_);
  lost_.Add(channel);
}

void NatsBroker::Written(const Outgoing& m) {
  if (m.kind != core::BrokerMessageKind::kPublication) return;
  unconfirmed_.Add(ChannelOf(m.bytes));
  // Held while disconnected: confirmed after the connect writes them (OnConnected).
  if (!confirm_out_ && client_->connected()) Confirm();
}

void NatsBroker::Confirm() {
  confirming_ = unconfirmed_.Take();
  confirm_out_ = true;
  client_->Ping([this](bool ok) { OnConfirmed(ok); });
}

void NatsBroker::OnConfirmed(bool ok) {
  confirm_out_ = false;
  LostChannels confirmed = confirming_.Take();
  if (!ok) {
    std::lock_guard lock(lost_mutex_);
    lost_.Merge(confirmed);
  }
  if (!unconfirmed_.empty() && client_->connected()) Confirm();
}

void NatsBroker::SendLostNotice() {
  if (!link_.connected() || link_.state() != core::CircuitBreaker::State::kClosed) return;
  LostChannels lost(options_.lost_channels_max);
  {
    std::lock_guard lock(lost_mutex_);
    if (lost_.empty()) return;
    lost = lost_.Take();
  }
  LostNotice notice;
  notice.all = lost.all();
  notice.channels.assign(lost.channels().begin(), lost.channels().end());
  std::string bytes = EncodeLost(node_id_, notice);
  if (max_payload() != 0 && bytes.size() > max_payload()) {
    bytes = EncodeLost(node_id_, LostNotice{.all = true, .channels = {}});
    notice.all = true;
  }
  // Kept until the server's PONG after it: a notice lost with its connection is sent again.
  auto waiter = std::make_shared<Waiter>();
  OnLoop([this, waiter, bytes = std::move(bytes)] {
    if (!client_->connected() || !client_->Publish(lost_subject_, bytes)) {
      waiter->Set(false);
      return;
    }
    client_->Ping([waiter](bool ok) { waiter->Set(ok); });
  });
  if (!waiter->Wait(options_.dial_timeout_ms)) {
    std::lock_guard lock(lost_mutex_);
    lost_.Merge(lost);
    return;
  }
  link_.CountLostNotice(true);
  if (notice.all) {
    spdlog::warn(
        "broker: publications may not have reached the other nodes (breaker, full queue or a "
        "lost connection); lost notice sent for every channel");
  } else {
    spdlog::warn(
        "broker: publications may not have reached the other nodes (breaker, full queue or a "
        "lost connection); lost notice sent for {} channels",
        notice.channels.size());
  }
}

void NatsBroker::OnLostNotice(std::string_view payload) {
  uint64_t node = 0;
  LostNotice notice;
  if (!DecodeLost(payload, &node, &notice)) {
    link_.CountDropped(ReceiveDrop::kDecode);
    return;
  }
  if (node == node_id_) {
    link_.CountDropped(ReceiveDrop::kOwn);
    return;
  }
  link_.CountLostNotice(false);
  std::vector<std::string> channels;
  {
    std::lock_guard lock(interest_mutex_);
    if (notice.all) {
      channels.assign(wanted_.begin(), wanted_.end());
    } else {
      for (std::string_view channel : notice.channels) {
        if (wanted_.find(channel) != wanted_.end()) channels.emplace_back(channel);
      }
    }
  }
  if (channels.empty()) return;
  spdlog::warn(
      "broker: node {:016x} may have failed to send publications; the subscribers of {} "
      "channels are told to recover",
      node, channels.size());
  for (const std::string& channel : channels) hub_.TellMissed(channel);
  link_.CountLostTold(channels.size());
}

bool NatsBroker::RoundTrip(uint64_t timeout_ms) {
  auto waiter = std::make_shared<Waiter>();
  OnLoop([this, waiter] {
    DrainQueue();  // what was queued before goes out before the PING
    client_->Ping([waiter](bool ok) { waiter->Set(ok); });
  });
  return waiter->Wait(timeout_ms);
}

bool NatsBroker::Flush(uint64_t timeout_ms) {
  if (!OnClientLoop()) return RoundTrip(timeout_ms);
  // On the client loop (a firing's completion there) no PONG can be read while this waits:
  // written to the socket is what "left the node" means here (the kernel sends it even
  // after a kill).
  DrainQueue();
  return client_->WriteNow(timeout_ms);
}

void NatsBroker::InterestLoop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, kTrialPoll, [this] { return stopping_ || interest_dirty_; });
    if (stopping_) break;
    const bool interest = interest_dirty_;
    interest_dirty_ = false;
    lock.unlock();
    if (interest) ApplyInterest();
    SendNodeInfo();
    SendLostNotice();
    // An idle node's trial: a round trip to the server (PING, PONG).
    if (!interest && link_.TrialDue()) link_.OnTrial(RoundTrip(options_.dial_timeout_ms));
    lock.lock();
  }
}

void NatsBroker::Interest(std::string_view channel, bool on) {
  {
    std::lock_guard lock(interest_mutex_);
    if (on) {
      wanted_.emplace(channel);
    } else if (auto it = wanted_.find(channel); it != wanted_.end()) {
      wanted_.erase(it);
    }
    interest_changes_[std::string(channel)] = on;  // the last word wins
  }
  if (!interest_hook_) {
    // Posted, never run here: the hub's shard lock is held, and the iteration's other
    // changes join the round (a post to the client loop's own mailbox wakes nothing).
    if (!round_posted_.exchange(true)) {
      loop_.Post([this, alive = alive_] {
        if (*alive) RunRound();
      });
    }
    return;
  }
  {
    std::lock_guard lock(mutex_);
    interest_dirty_ = true;
  }
  wake_.notify_one();
}

bool NatsBroker::Wanted(std::string_view channel) {
  std::lock_guard lock(interest_mutex_);
  return wanted_.find(channel) != wanted_.end();
}

bool NatsBroker::AwaitInterest(std::string_view channel, std::function<void()> ready) {
  std::lock_guard lock(interest_mutex_);
  uint64_t round = 0;
  if (interest_changes_.find(channel) != interest_changes_.end()) {
    round = rounds_ + 1;  // the next round takes it
  } else if (auto it = applying_.find(channel); it != applying_.end()) {
    round = it->second;  // a round in flight has it
  } else {
    return false;  // applied and acknowledged already (or given up on)
  }
  waiting_.emplace_back(round, std::move(ready));
  return true;
}

void NatsBroker::TakeChanges(std::vector<std::pair<std::string, bool>>* changes, uint64_t* round) {
  changes->assign(interest_changes_.begin(), interest_changes_.end());
  interest_changes_.clear();
  if (changes->empty()) return;
  *round = ++rounds_;
  for (const auto& change : *changes) applying_[change.first] = *round;
}

uint64_t NatsBroker::WriteChanges(const std::vector<std::pair<std::string, bool>>& changes) {
  uint64_t subscribed = 0;
  uint64_t unsubscribed = 0;
  for (const auto& [channel, on] : changes) {
    auto it = subscriptions_.find(channel);
    if (on && it == subscriptions_.end()) {
      // Kept by the client even while disconnected: it writes every SUB on reconnect.
      subscriptions_.emplace(channel, client_->Subscribe(ChannelSubject(options_.prefix, channel)));
      ++subscribed;
    } else if (!on && it != subscriptions_.end()) {
      client_->Unsubscribe(it->second);
      subscriptions_.erase(it);
      ++unsubscribed;
    }
  }
  link_.CountInterest(true, subscribed);
  link_.CountInterest(false, unsubscribed);
  link_.SetSubjects(subscriptions_.size());
  return subscribed;
}

void NatsBroker::EndRound(uint64_t round, const std::vector<std::pair<std::string, bool>>& changes,
                          std::vector<std::function<void()>>* ready) {
  for (const auto& change : changes) {
    // A later round in flight may have the channel again: it stays until that one ends.
    if (auto it = applying_.find(change.first); it != applying_.end() && it->second <= round) {
      applying_.erase(it);
    }
  }
  auto keep = std::partition(waiting_.begin(), waiting_.end(),
                             [round](const auto& w) { return w.first > round; });
  for (auto it = keep; it != waiting_.end(); ++it) ready->push_back(std::move(it->second));
  waiting_.erase(keep, waiting_.end());
}

void NatsBroker::ApplyInterest() {
  std::vector<std::pair<std::string, bool>> changes;
  uint64_t round = 0;
  {
    std::lock_guard lock(interest_mutex_);
    TakeChanges(&changes, &round);
  }
  if (changes.empty()) return;
  // The socket work is the client loop's; this thread waits for the server's PONG after the
  // round's SUBs (or the connection's loss, or dial_timeout), so the server has them.
  auto waiter = std::make_shared<Waiter>();
  OnLoop([this, changes, waiter] {
    const uint64_t subscribed = WriteChanges(changes);
    // During an attempt the PING waits for its end, so the replies wait for the SUBs (at most
    // dial_timeout, below) and a node's start-up has nothing to tell at its first connect.
    if (subscribed > 0 && (client_->connected() || client_->connecting())) {
      std::vector<std::string> subscribed_channels;
      for (const auto& [channel, on] : changes) {
        if (on) subscribed_channels.push_back(channel);
      }
      client_->Ping([this, waiter, channels = std::move(subscribed_channels)](bool ok) {
        // A PONG after the round's replies went out on the timeout: publications routed
        // before the server had these SUBs missed the subscribers already answered.
        if (waiter->SetLate(ok) && ok) {
          spdlog::warn(
              "broker: NATS took longer than dial_timeout to confirm {} subscriptions; "
              "their subscribers are told to recover",
              channels.size());
          for (const std::string& channel : channels) hub_.TellMissed(channel);
        }
      });
    } else {
      waiter->Set(subscribed == 0);
    }
  });
  // Replies released before the server had the SUBs: the subscribers are told at the connect.
  // Past dial_timeout the replies go out unconfirmed (the round's late PONG then tells its
  // channels, a lost connection tells them all at the next connect): never silently.
  if (!waiter->WaitOrGiveUp(options_.dial_timeout_ms)) answered_early_.store(true);
  if (interest_hook_) interest_hook_(changes);
  // The subscribers who waited for this round get their replies now (their completions post
  // to their loops); those waiting for a later round stay.
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(interest_mutex_);
    EndRound(round, changes, &ready);
  }
  for (auto& r : ready) r();
}

void NatsBroker::RunRound() {
  // Cleared before the changes are taken: a change recorded after this posts the next round.
  round_posted_.store(false);
  if (!client_) return;  // never started: nothing to write to
  auto r = std::make_shared<Round>();
  {
    std::lock_guard lock(interest_mutex_);
    TakeChanges(&r->changes, &r->id);
  }
  if (r->changes.empty()) return;
  const uint64_t subscribed = WriteChanges(r->changes);
  rounds_out_.push_back(r);
  // During an attempt the PING waits for its end, so the replies wait for the SUBs (at most
  // dial_timeout) and a node's start-up has nothing to tell at its first connect.
  if (subscribed > 0 && (client_->connected() || client_->connecting())) {
    r->deadline_ms = net::Loop::MonotonicMs() + options_.dial_timeout_ms;
    if (!round_timer_.scheduled()) loop_.timers().Schedule(&round_timer_, options_.dial_timeout_ms);
    client_->Ping([this, r](bool ok) { OnRoundPong(r, ok); });
    return;
  }
  // Nothing to wait for, or no connection: replies released before the server had the SUBs
  // are told at the connect.
  r->done = true;
  if (subscribed > 0) answered_early_.store(true);
  FinishRounds();
}

void NatsBroker::OnRoundPong(const std::shared_ptr<Round>& round, bool ok) {
  if (!*alive_) return;  // closing: nobody to answer
  if (round->given_up) {
    // A PONG after the round's replies went out on the timeout: publications routed before
    // the server had these SUBs missed the subscribers already answered.
    if (!ok) return;  // a lost connection tells them all at the next connect
    std::vector<std::string> channels;
    for (const auto& [channel, on] : round->changes) {
      if (on) channels.push_back(channel);
    }
    spdlog::warn(
        "broker: NATS took longer than dial_timeout to confirm {} subscriptions; "
        "their subscribers are told to recover",
        channels.size());
    for (const std::string& channel : channels) hub_.TellMissed(channel);
    return;
  }
  round->done = true;
  if (!ok) answered_early_.store(true);
  FinishRounds();
}

void NatsBroker::OnRoundTimer() {
  // Past dial_timeout the replies go out unconfirmed (the round's late PONG then tells its
  // channels, a lost connection tells them all at the next connect): never silently.
  const uint64_t now = net::Loop::MonotonicMs();
  uint64_t next = 0;
  for (const auto& r : rounds_out_) {
    if (r->done) continue;
    if (r->deadline_ms <= now) {
      r->done = true;
      r->given_up = true;
      answered_early_.store(true);
    } else if (next == 0) {
      next = r->deadline_ms;  // the deadlines come in the rounds' order
    }
  }
  if (next != 0) loop_.timers().Schedule(&round_timer_, next - now);
  FinishRounds();
}

void NatsBroker::FinishRounds() {
  // In order: a round's waiters may have come for an earlier round's channel too (a later
  // SUB of a channel resubscribed), so none is answered before the rounds before it ended.
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(interest_mutex_);
    while (!rounds_out_.empty() && rounds_out_.front()->done) {
      EndRound(rounds_out_.front()->id, rounds_out_.front()->changes, &ready);
      rounds_out_.pop_front();
    }
  }
  if (rounds_out_.empty() && round_timer_.scheduled()) loop_.timers().Cancel(&round_timer_);
  for (auto& r : ready) r();
}

void NatsBroker::SendNodeInfo() {
  if (!node_info_) return;
  const uint64_t now = net::Loop::MonotonicMs();
  if (now < node_info_due_ms_) return;
  node_info_due_ms_ = now + ClusterNodes::kIntervalMs;
  // Outside the breaker: a once-a-second word about this node is no load worth shedding,
  // and its failure while the server is away says nothing the publications do not.
  if (!link_.connected()) return;
  OnLoop([this, bytes = ClusterNodes::Encode(node_id_, node_info_())] {
    client_->Publish(nodes_subject_, bytes);
  });
}

void NatsBroker::Receive(std::string_view bytes) {
  uint64_t node = 0;
  core::BrokerMessage m;
  if (!Decode(bytes, &node, &m)) {
    link_.CountDropped(ReceiveDrop::kDecode);
    return;
  }
  if (node == node_id_) {
    link_.CountDropped(ReceiveDrop::kOwn);
    return;
  }
  if (!Wanted(m.channel)) {
    link_.CountDropped(ReceiveDrop::kUnwanted);
    return;
  }
  const config::ChannelOptions* options = rules_.Find(m.channel);
  if (options == nullptr) {
    link_.CountDropped(ReceiveDrop::kChannel);
    return;
  }
  receiving = true;
  if (m.kind == core::BrokerMessageKind::kPublication) {
    // A firing's key: dropped here when this node delivered that firing already.
    core::Hub::PublishRequest request{m.channel, options, m.data,    m.info,
                                      m.key,     m.tags,  m.priority};
    request.delta = m.delta;
    const bool skip_history = m.skip_history && options->history_size > 0;
    std::optional<config::ChannelOptions> effective;
    if (skip_history || options->publish_rate_limit != 0) {
      effective = *options;
      if (skip_history) effective->history_size = 0;
      effective->publish_rate_limit = 0;  // limited on the node it was published on
      request.options = &*effective;
    }
    const core::Hub::Refusal refusal = hub_.Publish(std::move(request)).refusal;
    if (refusal == core::Hub::Refusal::kNone || refusal == core::Hub::Refusal::kPending) {
      link_.CountIn(m.kind);
    } else {
      // Its publisher was answered on its own node: this node's subscribers (a loop over
      // its inbox budget) are told they missed it, never left with a silent gap.
      link_.CountDropped(ReceiveDrop::kRefused);
      hub_.TellMissed(m.channel);
    }
  } else {
    hub_.JoinLeaveFromBroker(m.channel, *options, m.kind == core::BrokerMessageKind::kJoin, m.info);
    link_.CountIn(m.kind);
  }
  receiving = false;
}

}  // namespace hermod::broker
