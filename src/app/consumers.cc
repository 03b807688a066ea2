#include "app/consumers.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace hermod::app {

namespace {

// How long a fetch waits for messages: short while commands are out, so that their
// outcomes are settled soon after they come back.
constexpr int64_t kIdleFetchMs = 500;
constexpr int64_t kBusyFetchMs = 20;
constexpr size_t kMaxBatch = 256;
// NAK delays: 100 ms doubled per delivery, at most 10 s.
constexpr int64_t kFirstRetryMs = 100;
constexpr int64_t kMaxRetryMs = 10000;
// At shutdown, how long commands still executing may take to be acked.
constexpr uint64_t kStopDrainMs = 2000;

using MsgPtr = std::shared_ptr<natsMsg>;

}  // namespace

struct JetStreamConsumer::Shared {
  struct Done {
    MsgPtr msg;
    Outcome outcome;
  };
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Done> done;  // under mutex
  bool stopping = false;  // under mutex
  Counters counters;
  // At most one log line a second per consumer (the loop's and the thread's share it).
  std::atomic<uint64_t> last_log_ms{0};
  std::atomic<uint64_t> unlogged{0};

  void Finish(MsgPtr msg, Outcome outcome) {
    {
      std::lock_guard lock(mutex);
      done.push_back({std::move(msg), outcome});
    }
    wake.notify_one();
  }
  template <class... Args>
  void Warn(const std::string& name, fmt::format_string<Args...> format, Args&&... args) {
    const uint64_t now = net::Loop::MonotonicMs();
    uint64_t last = last_log_ms.load();
    if (now - last < 1000 || !last_log_ms.compare_exchange_strong(last, now)) {
      unlogged.fetch_add(1);
      return;
    }
    const uint64_t skipped = unlogged.exchange(0);
    spdlog::warn("consumer {}: {}{}", name, fmt::format(format, std::forward<Args>(args)...),
                 skipped ? fmt::format(" ({} more not logged)", skipped) : std::string());
  }
};

JetStreamConsumer::JetStreamConsumer(config::Consumer config, const api::ServerApi& api,
                                     net::Loop& loop, uint64_t dial_timeout_ms,
                                     uint64_t reconnect_wait_ms)
    : config_(std::move(config)),
      api_(api),
      loop_(loop),
      dial_timeout_ms_(dial_timeout_ms),
      reconnect_wait_ms_(std::max<uint64_t>(reconnect_wait_ms, 100)),
      shared_(std::make_shared<Shared>()) {}

JetStreamConsumer::~JetStreamConsumer() { Stop(); }

const JetStreamConsumer::Counters& JetStreamConsumer::counters() const { return shared_->counters; }

void JetStreamConsumer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void JetStreamConsumer::Stop() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

JetStreamConsumer::Outcome JetStreamConsumer::Classify(int status, std::string_view answer) {
  if (status == 400 || status == 404 || status == 413) return Outcome::kPermanent;
  if (status != 200) return Outcome::kRetry;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(answer.data(), answer.size()).get(root) != simdjson::SUCCESS) {
    return Outcome::kRetry;  // never: the API writes its answers
  }
  uint64_t code = 0;
  if (root["error"]["code"].get(code) != simdjson::SUCCESS) {
    // batch: its replies each; one temporary failure retries the batch (publish it with
    // idempotency keys so that what did run is not run twice).
    simdjson::dom::array replies;
    if (root["replies"].get(replies) != simdjson::SUCCESS) return Outcome::kDone;
    Outcome worst = Outcome::kDone;
    for (simdjson::dom::element reply : replies) {
      if (reply["error"]["code"].get(code) != simdjson::SUCCESS) continue;
      if (code == 100 || code == 111) return Outcome::kRetry;
      worst = Outcome::kPermanent;
    }
    return worst;
  }
  // 100 internal (an engine away, a node's deadline), 111 too many requests: may pass.
  return code == 100 || code == 111 ? Outcome::kRetry : Outcome::kPermanent;
}

namespace {

// On the consumer's loop: parses the command, calls the API, and tells shared its outcome.
void Execute(const std::shared_ptr<JetStreamConsumer::Shared>& shared, const std::string& name,
             const std::string& method_header, const api::ServerApi& api, net::Loop& loop,
             MsgPtr msg) {
  using Outcome = JetStreamConsumer::Outcome;
  std::string_view data(natsMsg_GetData(msg.get()),
                        static_cast<size_t>(std::max(0, natsMsg_GetDataLength(msg.get()))));
  const char* header = nullptr;
  std::string method;
  std::string body;
  if (!method_header.empty() &&
      natsMsgHeader_Get(msg.get(), method_header.c_str(), &header) == NATS_OK &&
      header != nullptr && *header != '\0') {
    method = header;
    body = data;
  } else {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    std::string_view text;
    simdjson::dom::element payload;
    if (parser.parse(data.data(), data.size()).get(root) != simdjson::SUCCESS ||
        root["method"].get(text) != simdjson::SUCCESS) {
      shared->Warn(name,
                   "message {} is no command (expected {{\"method\", \"payload\"}}): "
                   "terminated",
                   natsMsg_GetSubject(msg.get()));
      shared->Finish(std::move(msg), Outcome::kPermanent);
      return;
    }
    method = text;
    body = root["payload"].get(payload) == simdjson::SUCCESS ? simdjson::minify(payload) : "{}";
  }
  api::LaterAnswer later;
  std::string out;
  auto settle = [shared, name, method, msg](int status, std::string_view answer) mutable {
    const Outcome outcome = JetStreamConsumer::Classify(status, answer);
    if (outcome != Outcome::kDone) {
      shared->Warn(name, "{} {}: {} ({})", method,
                   outcome == Outcome::kRetry ? "failed for now, delivered again later"
                                              : "refused, terminated",
                   answer.substr(0, 200), status);
    }
    shared->Finish(std::move(msg), outcome);
  };
  const int status = api.Call(method, body, out, SIZE_MAX, &loop, &later);
  if (status == api::ServerApi::kLater) {
    later.Then([settle](int st, std::string answer) mutable { settle(st, answer); });
  } else {
    settle(status, out);
  }
}

}  // namespace

bool JetStreamConsumer::Setup(std::string* error) {
  const auto& c = config_.nats_jetstream;
  auto fail = [&](natsStatus s, const char* what, jsErrCode jerr = static_cast<jsErrCode>(0)) {
    *error = fmt::format("{}: {} ({})", what, natsStatus_GetText(s), static_cast<int>(jerr));
    TearDown();
    return false;
  };
  natsOptions* o = nullptr;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetURL(o, c.url.c_str());
  if (s == NATS_OK) {
    const std::string client = "hermod-consumer-" + config_.name;
    natsOptions_SetName(o, client.c_str());
    natsOptions_SetTimeout(o, static_cast<int64_t>(dial_timeout_ms_));
    natsOptions_SetAllowReconnect(o, true);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, static_cast<int64_t>(reconnect_wait_ms_));
    s = natsConnection_Connect(&nc_, o);
  }
  natsOptions_Destroy(o);
  if (s != NATS_OK) return fail(s, "connect");
  jsOptions jo;
  jsOptions_Init(&jo);
  if ((s = natsConnection_JetStream(&js_, nc_, &jo)) != NATS_OK) return fail(s, "JetStream");

  // Create the durable consumer, or update it (its deliver policy cannot change).
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = c.durable_consumer_name.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = c.deliver_policy == "all" ? js_DeliverAll : js_DeliverNew;
  cc.MaxAckPending = static_cast<int64_t>(c.max_ack_pending);
  cc.AckWait = static_cast<int64_t>(c.ack_wait.ms) * 1000000;
  cc.FilterSubject = c.subjects.empty() ? nullptr : c.subjects.front().c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsConsumerInfo* info = nullptr;
  s = js_GetConsumerInfo(&info, js_, c.stream_name.c_str(), c.durable_consumer_name.c_str(),
                         nullptr, &jerr);
  if (s == NATS_OK) {
    cc.DeliverPolicy = info->Config->DeliverPolicy;
    cc.OptStartSeq = info->Config->OptStartSeq;
    cc.OptStartTime = info->Config->OptStartTime;
    jsConsumerInfo_Destroy(info);
    info = nullptr;
    s = js_UpdateConsumer(&info, js_, c.stream_name.c_str(), &cc, nullptr, &jerr);
    if (s != NATS_OK) return fail(s, "update the consumer", jerr);
  } else if (s == NATS_NOT_FOUND) {
    s = js_AddConsumer(&info, js_, c.stream_name.c_str(), &cc, nullptr, &jerr);
    if (s != NATS_OK) return fail(s, "create the consumer (does the stream exist?)", jerr);
  } else {
    return fail(s, "look the consumer up (does the stream exist?)", jerr);
  }
  jsConsumerInfo_Destroy(info);

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = c.stream_name.c_str();
  so.Consumer = c.durable_consumer_name.c_str();
  const char* subject = c.subjects.empty() ? "" : c.subjects.front().c_str();
  s = js_PullSubscribe(&sub_, js_, subject, c.durable_consumer_name.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) return fail(s, "subscribe", jerr);
  shared_->counters.connected = true;
  return true;
}

void JetStreamConsumer::TearDown() {
  shared_->counters.connected = false;
  if (sub_ != nullptr) natsSubscription_Destroy(sub_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
  sub_ = nullptr;
  js_ = nullptr;
  nc_ = nullptr;
}

size_t JetStreamConsumer::Settle() {
  std::deque<Shared::Done> done;
  {
    std::lock_guard lock(shared_->mutex);
    done.swap(shared_->done);
  }
  Counters& counters = shared_->counters;
  for (Shared::Done& d : done) {
    natsMsg* msg = d.msg.get();
    switch (d.outcome) {
      case Outcome::kDone:
        natsMsg_Ack(msg, nullptr);
        counters.processed.fetch_add(1);
        break;
      case Outcome::kRetry: {
        jsMsgMetaData* meta = nullptr;
        uint64_t delivered = 1;
        if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
          delivered = std::max<uint64_t>(1, meta->NumDelivered);
          jsMsgMetaData_Destroy(meta);
        }
        const int64_t delay =
            delivered > 8 ? kMaxRetryMs : std::min(kMaxRetryMs, kFirstRetryMs << (delivered - 1));
        natsMsg_NakWithDelay(msg, delay, nullptr);
        counters.retried.fetch_add(1);
        break;
      }
      case Outcome::kPermanent:
        natsMsg_Term(msg, nullptr);
        counters.terminated.fetch_add(1);
        break;
    }
    counters.in_flight.fetch_sub(1);
  }
  return done.size();
}

void JetStreamConsumer::Run() {
  const uint64_t window = config_.nats_jetstream.max_ack_pending;
  std::shared_ptr<Shared> shared = shared_;
  int failures = 0;
  auto wait = [&](int64_t ms) {
    std::unique_lock lock(shared->mutex);
    shared->wake.wait_for(lock, std::chrono::milliseconds(ms),
                          [&] { return shared->stopping || !shared->done.empty(); });
    return !shared->stopping;
  };
  while (true) {
    {
      std::lock_guard lock(shared->mutex);
      if (shared->stopping) break;
    }
    if (sub_ == nullptr) {
      std::string error;
      if (!Setup(&error)) {
        shared->Warn(config_.name, "{} (retried every {} ms)", error, reconnect_wait_ms_);
        if (!wait(static_cast<int64_t>(reconnect_wait_ms_))) break;
        continue;
      }
      spdlog::info("consumer {}: reading stream {} through durable consumer {}", config_.name,
                   config_.nats_jetstream.stream_name,
                   config_.nats_jetstream.durable_consumer_name);
      failures = 0;
    }
    Settle();
    const uint64_t in_flight = shared->counters.in_flight.load();
    if (in_flight >= window) {
      if (!wait(1000)) break;
      continue;
    }
    natsMsgList list{};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const int batch = static_cast<int>(std::min<uint64_t>(window - in_flight, kMaxBatch));
    natsStatus s = natsSubscription_Fetch(&list, sub_, batch,
                                          in_flight > 0 ? kBusyFetchMs : kIdleFetchMs, &jerr);
    if (s != NATS_OK && s != NATS_TIMEOUT) {
      shared->Warn(config_.name, "fetch: {} ({})", natsStatus_GetText(s), static_cast<int>(jerr));
      // The connection reconnects by itself; a consumer deleted meanwhile needs a new one.
      if (++failures >= 5 && shared->counters.in_flight.load() == 0) {
        TearDown();
        failures = 0;
      }
      if (!wait(static_cast<int64_t>(reconnect_wait_ms_))) break;
      continue;
    }
    failures = 0;
    for (int i = 0; i < list.Count; ++i) {
      MsgPtr msg(list.Msgs[i], natsMsg_Destroy);
      list.Msgs[i] = nullptr;
      shared->counters.in_flight.fetch_add(1);
      loop_.Post([shared, name = config_.name, header = config_.nats_jetstream.method_header,
                  &api = api_, &loop = loop_, msg = std::move(msg)]() mutable {
        Execute(shared, name, header, api, loop, std::move(msg));
      });
    }
    natsMsgList_Destroy(&list);
  }
  // Fetch no more; settle what the loops finish within a deadline. What is still executing
  // after it is not acked: the server delivers it again after its ack wait.
  const uint64_t deadline = net::Loop::MonotonicMs() + kStopDrainMs;
  while (sub_ != nullptr && shared->counters.in_flight.load() > 0 &&
         net::Loop::MonotonicMs() < deadline) {
    std::unique_lock lock(shared->mutex);
    shared->wake.wait_for(lock, std::chrono::milliseconds(50),
                          [&] { return !shared->done.empty(); });
    lock.unlock();
    Settle();
  }
  Settle();
  if (nc_ != nullptr) natsConnection_FlushTimeout(nc_, 1000);  // the acks
  TearDown();
}

std::vector<std::unique_ptr<JetStreamConsumer>> MakeConsumers(
    const config::Config& config, const api::ServerApi& api, const std::vector<net::Loop*>& loops) {
  std::vector<std::unique_ptr<JetStreamConsumer>> out;
  for (const config::Consumer& c : config.consumers) {
    if (!c.enabled || c.type != "nats_jetstream") continue;
    net::Loop& loop = *loops[out.size() % loops.size()];
    out.push_back(std::make_unique<JetStreamConsumer>(c, api, loop, config.nats.dial_timeout.ms,
                                                      config.nats.reconnect_wait.ms));
  }
  return out;
}

void RenderConsumers(const std::vector<std::unique_ptr<JetStreamConsumer>>& consumers,
                     metrics::PrometheusText& t) {
  t.Family("hermod_consumers_messages_processed_total", "counter",
           "Commands an async consumer executed and acked, by consumer.");
  for (const auto& c : consumers) {
    t.Sample("hermod_consumers_messages_processed_total", {{"consumer_name", c->name()}},
             c->counters().processed.load());
  }
  t.Family("hermod_consumers_errors_total", "counter",
           "Commands an async consumer failed: temporary (NAKed, delivered again later) or "
           "permanent (not a command, unknown method, refused: terminated).");
  for (const auto& c : consumers) {
    t.Sample("hermod_consumers_errors_total", {{"consumer_name", c->name()}, {"kind", "temporary"}},
             c->counters().retried.load());
    t.Sample("hermod_consumers_errors_total", {{"consumer_name", c->name()}, {"kind", "permanent"}},
             c->counters().terminated.load());
  }
  t.Family("hermod_consumers_in_flight", "gauge",
           "Commands an async consumer fetched and has not settled yet (at most max_ack_pending).");
  for (const auto& c : consumers) {
    t.Sample("hermod_consumers_in_flight", {{"consumer_name", c->name()}},
             c->counters().in_flight.load());
  }
}

}  // namespace hermod::app
