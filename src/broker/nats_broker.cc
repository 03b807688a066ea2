#include "broker/nats_broker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "broker/subject.h"
#include "broker/wire.h"
#include "net/event_loop.h"

namespace hermod::broker {

namespace {

// Set on libnats's delivery thread while it feeds the hub: the hub hands those publications
// back to Publish, which must not send them out again.
thread_local bool receiving = false;

// How often the idle sender thread looks for a due half-open trial.
constexpr auto kTrialPoll = std::chrono::milliseconds(100);

uint64_t NewNodeId() {
  std::random_device random;
  return (static_cast<uint64_t>(random()) << 32) | random();
}

int ClampInt(uint64_t v) { return v > INT32_MAX ? INT32_MAX : static_cast<int>(v); }

}  // namespace

NatsBroker::Options NatsBroker::Options::FromConfig(const config::Config& c) {
  Options o;
  o.url = c.nats.url;
  o.prefix = c.nats.prefix;
  o.dial_timeout_ms = c.nats.dial_timeout.ms;
  o.reconnect_wait_ms = c.nats.reconnect_wait.ms;
  o.reconnect_buffer_bytes = c.nats.reconnect_buffer_bytes;
  o.send_queue_bytes = c.nats.send_queue_bytes;
  o.receive_queue_bytes = c.nats.receive_queue_bytes;
  o.release_batch = c.nats.release_batch;
  o.release_bytes = c.nats.release_bytes;
  o.link.unhealthy_after_ms = c.nats.unhealthy_after.ms;
  const auto& b = c.broker_breaker;
  o.link.breaker.failure_threshold = static_cast<uint32_t>(b.failure_threshold);
  o.link.breaker.window_ms = b.window.ms;
  o.link.breaker.open_ms = b.open_timeout.ms;
  o.link.breaker.half_open_trials = static_cast<uint32_t>(b.half_open_trials);
  return o;
}

NatsBroker::NatsBroker(Options options, core::Hub& hub, const core::ChannelRules& rules)
    : options_(std::move(options)),
      hub_(hub),
      rules_(rules),
      node_id_(NewNodeId()),
      link_(options_.link, &net::Loop::MonotonicMs),
      nodes_subject_(options_.prefix + ".nodes") {}

NatsBroker::~NatsBroker() { Stop(); }

namespace {

// Counts a libnats callback in progress; does nothing once the broker is closing.
class CallbackScope {
 public:
  CallbackScope(std::atomic<int>& count, const std::atomic<bool>& closing) : count_(count) {
    count_.fetch_add(1);
    live_ = !closing.load();
  }
  ~CallbackScope() { count_.fetch_sub(1); }
  bool live() const { return live_; }

 private:
  std::atomic<int>& count_;
  bool live_;
};

}  // namespace

void NatsBroker::OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  auto* broker = static_cast<NatsBroker*>(self);
  CallbackScope scope(broker->in_callback_, broker->closing_);
  if (!scope.live()) {
    natsMsg_Destroy(msg);
    return;
  }
  broker->Receive(
      std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
  broker->Release(msg);  // counted by scope: Stop destroys what is left once it is over
}

void NatsBroker::TellDropped(natsSubscription* sub) {
  const char* subject = sub != nullptr ? natsSubscription_GetSubject(sub) : nullptr;
  const std::string_view prefix = "ch.";
  std::string_view token = subject != nullptr ? std::string_view(subject) : std::string_view();
  if (token.size() > options_.prefix.size() + 1 + prefix.size()) {
    token.remove_prefix(options_.prefix.size() + 1 + prefix.size());
    if (std::optional<std::string> channel = ChannelOfToken(token)) {
      hub_.TellMissed(*channel);
      return;
    }
  }
  TellEveryWanted();  // a hashed subject (a channel name past 1000 bytes) names no channel
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

void NatsBroker::Release(natsMsg* msg) {
  std::vector<natsMsg*> batch;
  {
    std::lock_guard lock(released_mutex_);
    released_.push_back(msg);
    released_bytes_ += static_cast<size_t>(natsMsg_GetDataLength(msg));
    if (released_.size() < options_.release_batch && released_bytes_ < options_.release_bytes) {
      return;
    }
    batch.swap(released_);
    released_.reserve(options_.release_batch);
    released_bytes_ = 0;
  }
  // One wake-up of libnats's collector for the batch (it is signalled while it waits).
  for (natsMsg* m : batch) natsMsg_Destroy(m);
}

void NatsBroker::DestroyReleased() {
  std::lock_guard lock(released_mutex_);
  for (natsMsg* m : released_) natsMsg_Destroy(m);
  released_.clear();
  released_bytes_ = 0;
}

void NatsBroker::OnNodeInfo(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  auto* broker = static_cast<NatsBroker*>(self);
  CallbackScope scope(broker->in_callback_, broker->closing_);
  if (scope.live()) {
    broker->nodes_.Receive(
        broker->node_id_,
        std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))),
        net::Loop::MonotonicMs());
  }
  natsMsg_Destroy(msg);
}

std::vector<std::string> NatsBroker::OtherNodes() { return nodes_.Alive(net::Loop::MonotonicMs()); }

void NatsBroker::OnConnectionEvent(natsConnection* nc, void* self) {
  auto* broker = static_cast<NatsBroker*>(self);
  CallbackScope scope(broker->in_callback_, broker->closing_);
  if (!scope.live()) return;
  if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
    broker->LearnMaxPayload(nc);
    spdlog::info("broker: connected to NATS at {} (max_payload {})", broker->options_.url,
                 broker->max_payload());
    broker->link_.OnConnected();
    // Core NATS keeps nothing for a disconnected client: what other nodes published while
    // this one was away is gone, so every subscriber of a channel held here is told.
    if (broker->was_connected_.exchange(true)) broker->TellEveryWanted();
  } else {
    spdlog::warn("broker: disconnected from NATS at {}; reconnecting every {} ms",
                 broker->options_.url, broker->options_.reconnect_wait_ms);
    broker->link_.OnDisconnected();
  }
}

void NatsBroker::OnClosed(natsConnection*, void* self) {
  auto* broker = static_cast<NatsBroker*>(self);
  {
    CallbackScope scope(broker->in_callback_, broker->closing_);
    if (scope.live()) {
      // libnats gave up on the connection: nothing more will cross nodes. Said loudly, and
      // the link's breaker and /health show the broker down from now on.
      spdlog::error("broker: NATS connection to {} closed; cluster delivery stopped",
                    broker->options_.url);
      broker->link_.OnDisconnected();
    }
  }
  // The connection's last callback (libnats queues them in order on one thread).
  broker->Done();
}

void NatsBroker::OnSubscriptionDone(void* self) { static_cast<NatsBroker*>(self)->Done(); }

void NatsBroker::Track(natsSubscription* sub) {
  std::lock_guard lock(done_mutex_);
  if (natsSubscription_SetOnCompleteCB(sub, &NatsBroker::OnSubscriptionDone, this) == NATS_OK) {
    ++pending_done_;
  }
}

void NatsBroker::Done() {
  // Notified under the lock: once Stop sees the count, this thread touches the broker no more.
  std::lock_guard lock(done_mutex_);
  --pending_done_;
  done_.notify_all();
}

void NatsBroker::OnAsyncError(natsConnection*, natsSubscription* sub, natsStatus status,
                              void* self) {
  auto* broker = static_cast<NatsBroker*>(self);
  CallbackScope scope(broker->in_callback_, broker->closing_);
  if (!scope.live()) return;
  if (status == NATS_SLOW_CONSUMER) {
    broker->link_.CountDropped(ReceiveDrop::kSlowConsumer);
    spdlog::warn("broker: received messages dropped past nats.receive_queue_bytes ({})",
                 broker->options_.receive_queue_bytes);
    broker->TellDropped(sub);
  } else {
    spdlog::warn("broker: NATS error: {}", natsStatus_GetText(status));
  }
}

bool NatsBroker::Start(std::string* error) {
  auto fail = [&](natsStatus s, const char* what) {
    *error = std::string("broker: ") + what + ": " + natsStatus_GetText(s);
    const char* last = nats_GetLastError(nullptr);
    if (last != nullptr && *last != '\0') *error += std::string(" (") + last + ")";
    return false;
  };
  natsStatus s = natsOptions_Create(&nats_options_);
  if (s != NATS_OK) return fail(s, "natsOptions_Create");
  natsOptions* o = nats_options_;
  const std::string name = "hermod-" + std::to_string(node_id_);
  if ((s = natsOptions_SetURL(o, options_.url.c_str())) != NATS_OK) {
    return fail(s, "config key nats.url");
  }
  natsOptions_SetName(o, name.c_str());
  natsOptions_SetTimeout(o, static_cast<int64_t>(options_.dial_timeout_ms));
  natsOptions_SetWriteDeadline(o, static_cast<int64_t>(options_.dial_timeout_ms));
  natsOptions_SetNoEcho(o, true);
  // Written at once by the sender thread (one write per send, never on a loop): libnats's
  // flusher otherwise sleeps 1 ms before each flush, a millisecond on every cross-node hop.
  natsOptions_SetSendAsap(o, true);
  // One delivery thread for every subscription (libnats's pool), not one per channel subject.
  natsOptions_UseGlobalMessageDelivery(o, true);
  natsOptions_SetAllowReconnect(o, true);
  natsOptions_SetMaxReconnect(o, -1);  // forever: the breaker, not libnats, gives up
  natsOptions_SetReconnectWait(o, static_cast<int64_t>(options_.reconnect_wait_ms));
  natsOptions_SetReconnectBufSize(o, ClampInt(options_.reconnect_buffer_bytes));
  natsOptions_SetDisconnectedCB(o, &NatsBroker::OnConnectionEvent, this);
  natsOptions_SetReconnectedCB(o, &NatsBroker::OnConnectionEvent, this);
  natsOptions_SetErrorHandler(o, &NatsBroker::OnAsyncError, this);
  natsOptions_SetClosedCB(o, &NatsBroker::OnClosed, this);
  // A node starts whether or not the server is up; it serves locally until it connects.
  natsOptions_SetRetryOnFailedConnect(o, true, &NatsBroker::OnConnectionEvent, this);

  // A first connect that fails partway (a server too slow to finish the handshake) can leave
  // libnats's connection closed rather than retrying; the subscription then fails with
  // "Connection Closed". A closed connection never comes back, so start-up connects afresh,
  // a few times, before giving up loudly.
  constexpr int kStartAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    s = natsConnection_Connect(&connection_, o);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) return fail(s, "connect");
    {
      std::lock_guard lock(done_mutex_);
      ++pending_done_;  // its closed callback, on Close or Destroy
    }
    if (s == NATS_OK) {
      LearnMaxPayload(connection_);
      spdlog::info("broker: connected to NATS at {} (max_payload {})", options_.url, max_payload());
      link_.OnConnected();
      was_connected_ = true;
    } else {
      spdlog::warn("broker: NATS at {} not reachable yet; retrying every {} ms", options_.url,
                   options_.reconnect_wait_ms);
    }
    // Registered now, sent on every (re)connect by libnats (as the channel subjects are).
    s = natsConnection_Subscribe(&nodes_subscription_, connection_, nodes_subject_.c_str(),
                                 &NatsBroker::OnNodeInfo, this);
    if (s == NATS_OK) {
      Track(nodes_subscription_);
      break;
    }
    if (s != NATS_CONNECTION_CLOSED || attempt == kStartAttempts) return fail(s, "subscribe");
    spdlog::warn("broker: NATS connection closed during start-up ({}); connecting again",
                 natsStatus_GetText(s));
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.reconnect_wait_ms));
  }
  // Connected: wait for the server to have the SUB, so that the node is a listener once up.
  if (s == NATS_OK && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED) {
    natsConnection_FlushTimeout(connection_, static_cast<int64_t>(options_.dial_timeout_ms));
  }
  sender_ = std::thread([this] { SendLoop(); });
  spdlog::info("broker: nats, subjects {}.ch.<channel>, node {:016x}", options_.prefix, node_id_);
  return true;
}

void NatsBroker::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (sender_.joinable()) sender_.join();
  closing_.store(true);
  while (in_callback_.load() != 0) std::this_thread::yield();
  DestroyReleased();  // no callback adds to them any more
  // The sender has ended: its subscriptions are this thread's now.
  for (auto& [channel, sub] : subscriptions_) natsSubscription_Unsubscribe(sub);
  if (nodes_subscription_ != nullptr) natsSubscription_Unsubscribe(nodes_subscription_);
  if (connection_ != nullptr) natsConnection_Close(connection_);
  for (auto& [channel, sub] : subscriptions_) natsSubscription_Destroy(sub);
  subscriptions_.clear();
  link_.SetSubjects(0);
  natsSubscription_Destroy(nodes_subscription_);
  nodes_subscription_ = nullptr;
  natsConnection_Destroy(connection_);
  natsOptions_Destroy(nats_options_);
  connection_ = nullptr;
  nats_options_ = nullptr;
  // Every subscription's completion and the connections' closed callbacks are queued now;
  // past them libnats never calls this broker again. Bounded, in case the library is closed
  // under it (its callback threads then never run them).
  std::unique_lock lock(done_mutex_);
  if (!done_.wait_for(lock, std::chrono::seconds(5), [this] { return pending_done_ <= 0; })) {
    spdlog::warn("broker: {} libnats callbacks did not come within 5 s of closing", pending_done_);
  }
}

void NatsBroker::LearnMaxPayload(natsConnection* nc) {
  const int64_t max = natsConnection_GetMaxPayload(nc);
  if (max > 0) max_payload_.store(static_cast<uint64_t>(max), std::memory_order_relaxed);
}

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
  if (!link_.Admit()) return;
  std::string bytes = Encode(node_id_, message);
  std::string subject = ChannelSubject(options_.prefix, message.channel);
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queued_bytes_ + bytes.size() <= options_.send_queue_bytes) {
      queued_bytes_ += bytes.size();
      queue_.push_back({message.kind, std::move(subject), std::move(bytes)});
      wake_.notify_one();
      return;
    }
  }
  link_.OnSent(message.kind, false);  // the queue is full: the link is not keeping up
}

void NatsBroker::SendLoop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, kTrialPoll,
                   [this] { return stopping_ || !queue_.empty() || interest_dirty_; });
    if (stopping_) break;
    std::deque<Outgoing> batch;
    batch.swap(queue_);
    queued_bytes_ = 0;
    sending_ = true;
    const bool interest = interest_dirty_;
    interest_dirty_ = false;
    lock.unlock();
    // Before the publications: a node's SUB goes out before what it publishes next.
    if (interest) ApplyInterest();
    for (Outgoing& m : batch) {
      // Too large for the server (a join or leave with a huge info, or a publication queued
      // before max_payload was known): the server would close the connection on it, and it
      // says nothing about the link's health. Not sent, counted, not a breaker failure.
      const uint64_t max = max_payload();
      if (max != 0 && m.bytes.size() > max) {
        link_.OnSentTooLarge(m.kind);
        continue;
      }
      // Not connected: fail now (the breaker counts it) rather than fill the reconnect buffer.
      const natsStatus s =
          natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED
              ? natsConnection_Publish(connection_, m.subject.c_str(), m.bytes.data(),
                                       static_cast<int>(m.bytes.size()))
              : NATS_CONNECTION_CLOSED;
      if (s == NATS_MAX_PAYLOAD) {
        link_.OnSentTooLarge(m.kind);
        continue;
      }
      link_.OnSent(m.kind, s == NATS_OK);
    }
    SendNodeInfo();
    if (batch.empty() && link_.TrialDue()) {
      // An idle node's trial: a round trip to the server (PING, PONG).
      link_.OnTrial(natsConnection_FlushTimeout(
                        connection_, static_cast<int64_t>(options_.dial_timeout_ms)) == NATS_OK);
    }
    lock.lock();
    sending_ = false;
    if (queue_.empty()) drained_.notify_all();
  }
}

bool NatsBroker::Flush(uint64_t timeout_ms) {
  {
    std::unique_lock lock(mutex_);
    if (!drained_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [this] { return stopping_ || (queue_.empty() && !sending_); })) {
      return false;
    }
  }
  return natsConnection_FlushTimeout(connection_, static_cast<int64_t>(timeout_ms)) == NATS_OK;
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
  } else if (applying_.find(channel) != applying_.end()) {
    round = rounds_;  // the round in progress has it
  } else {
    return false;  // applied and acknowledged already (or given up on)
  }
  waiting_.emplace_back(round, std::move(ready));
  return true;
}

void NatsBroker::ApplyInterest() {
  std::unordered_map<std::string, bool, Hash, std::equal_to<>> changes;
  uint64_t round = 0;
  {
    std::lock_guard lock(interest_mutex_);
    changes.swap(interest_changes_);
    round = ++rounds_;
    applying_ = changes;
  }
  uint64_t subscribed = 0;
  uint64_t unsubscribed = 0;
  for (auto& [channel, on] : changes) {
    auto it = subscriptions_.find(channel);
    if (on && it == subscriptions_.end()) {
      // Registered with libnats even while disconnected: it sends every SUB on reconnect.
      natsSubscription* sub = nullptr;
      const std::string subject = ChannelSubject(options_.prefix, channel);
      const natsStatus s = natsConnection_Subscribe(&sub, connection_, subject.c_str(),
                                                    &NatsBroker::OnMessage, this);
      if (s != NATS_OK) {
        spdlog::warn("broker: subscribe to {}: {}", subject, natsStatus_GetText(s));
        continue;
      }
      Track(sub);
      natsSubscription_SetPendingLimits(sub, -1, ClampInt(options_.receive_queue_bytes));
      subscriptions_.emplace(channel, sub);
      ++subscribed;
    } else if (!on && it != subscriptions_.end()) {
      natsSubscription_Unsubscribe(it->second);
      natsSubscription_Destroy(it->second);
      subscriptions_.erase(it);
      ++unsubscribed;
    }
  }
  link_.CountInterest(true, subscribed);
  link_.CountInterest(false, unsubscribed);
  // The server has the new SUBs once its PONG is back; the subjects gauge says so after it.
  if (subscribed > 0 && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED) {
    natsConnection_FlushTimeout(connection_, static_cast<int64_t>(options_.dial_timeout_ms));
  }
  link_.SetSubjects(subscriptions_.size());
  if (interest_hook_ && !changes.empty()) {
    std::vector<std::pair<std::string, bool>> list(changes.begin(), changes.end());
    interest_hook_(list);
  }
  // The subscribers who waited for this round get their replies now (their completions post
  // to their loops); those waiting for a later round stay.
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(interest_mutex_);
    applying_.clear();
    auto keep = std::partition(waiting_.begin(), waiting_.end(),
                               [round](const auto& w) { return w.first > round; });
    for (auto it = keep; it != waiting_.end(); ++it) ready.push_back(std::move(it->second));
    waiting_.erase(keep, waiting_.end());
  }
  for (auto& r : ready) r();
}

void NatsBroker::SendNodeInfo() {
  if (!node_info_) return;
  const uint64_t now = net::Loop::MonotonicMs();
  if (now < node_info_due_ms_) return;
  node_info_due_ms_ = now + ClusterNodes::kIntervalMs;
  // Outside the breaker: a once-a-second word about this node is no load worth shedding,
  // and its failure while the server is away says nothing the publications do not.
  if (natsConnection_Status(connection_) != NATS_CONN_STATUS_CONNECTED) return;
  const std::string bytes = ClusterNodes::Encode(node_id_, node_info_());
  natsConnection_Publish(connection_, nodes_subject_.c_str(), bytes.data(),
                         static_cast<int>(bytes.size()));
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
