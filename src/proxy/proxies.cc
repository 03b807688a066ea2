#include "proxy/proxies.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <utility>

namespace hermod::proxy {

namespace {

using State = core::CircuitBreaker::State;

const char* StateName(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

Outcome FromHttp(const HttpResponse& r) {
  using S = HttpResponse::Status;
  switch (r.status) {
    case S::kOk:
      return Outcome::kOk;
    case S::kHttpStatus:
      return Outcome::kHttpStatus;
    case S::kTimeout:
      return Outcome::kTimeout;
    case S::kUnavailable:
      return Outcome::kUnavailable;
    case S::kTooLarge:
      return Outcome::kTooLarge;
    case S::kStopped:
      return Outcome::kStopped;
  }
  return Outcome::kUnavailable;
}

}  // namespace

Endpoint::Endpoint(Kind kind, std::string url, uint64_t timeout_ms, uint64_t max_in_flight,
                   core::CircuitBreaker::Options breaker, Clock clock)
    : kind_(kind),
      url_(std::move(url)),
      timeout_ms_(timeout_ms),
      max_in_flight_(max_in_flight),
      breaker_options_(breaker),
      breaker_(breaker, clock) {}

void Endpoint::Note() {
  const State now = breaker_.state();
  if (now == last_state_) return;
  if (now == State::kOpen) {
    spdlog::warn("proxy {} ({}): circuit breaker {} -> open: calls fail fast for {} ms",
                 kKindNames[static_cast<size_t>(kind_)], url_, StateName(last_state_),
                 breaker_options_.open_ms);
  } else {
    spdlog::info("proxy {} ({}): circuit breaker {} -> {}", kKindNames[static_cast<size_t>(kind_)],
                 url_, StateName(last_state_), StateName(now));
  }
  last_state_ = now;
}

Outcome Endpoint::Admit() {
  if (in_flight_.fetch_add(1) >= max_in_flight_) {
    in_flight_.fetch_sub(1);
    return Outcome::kOverloaded;
  }
  std::lock_guard lock(mutex_);
  const bool allowed = breaker_.Allow();
  Note();
  if (!allowed) {
    in_flight_.fetch_sub(1);
    return Outcome::kOpen;
  }
  return Outcome::kOk;
}

void Endpoint::CountRefused(Outcome outcome) {
  outcomes_[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
}

void Endpoint::OnDone(Outcome outcome, uint64_t latency_us) {
  in_flight_.fetch_sub(1);
  outcomes_[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  if (outcome != Outcome::kStopped) {
    const double seconds = static_cast<double>(latency_us) / 1e6;
    size_t bucket = 0;
    while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
    latency_[bucket].fetch_add(1, std::memory_order_relaxed);
    latency_sum_us_.fetch_add(latency_us, std::memory_order_relaxed);
  }
  std::lock_guard lock(mutex_);
  if (IsBackendFailure(outcome)) {
    breaker_.OnFailure();
  } else {
    breaker_.OnSuccess();  // a stopped call too: a half-open trial must not stay out forever
  }
  Note();
}

State Endpoint::state() {
  std::lock_guard lock(mutex_);
  const State s = breaker_.state();
  Note();
  return s;
}

uint64_t Endpoint::transitions(State to) {
  std::lock_guard lock(mutex_);
  return breaker_.transitions(to);
}

std::array<uint64_t, kLatencyBuckets.size() + 1> Endpoint::buckets() const {
  std::array<uint64_t, kLatencyBuckets.size() + 1> out{};
  uint64_t sum = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    sum += latency_[i].load(std::memory_order_relaxed);
    out[i] = sum;
  }
  return out;
}

std::unique_ptr<Proxies> Proxies::FromConfig(const config::Config& c, Endpoint::Clock clock) {
  const bool any = !c.proxy_connect_endpoint.empty() || !c.proxy_refresh_endpoint.empty() ||
                   !c.proxy_subscribe_endpoint.empty() || !c.proxy_publish_endpoint.empty() ||
                   !c.proxy_rpc_endpoint.empty() || !c.proxy_sub_refresh_endpoint.empty();
  return any ? std::make_unique<Proxies>(c, clock) : nullptr;
}

Proxies::Proxies(const config::Config& c, Endpoint::Clock clock)
    : static_headers_(c.proxy_static_http_headers),
      include_meta_(c.proxy_include_connection_meta),
      max_per_connection_(c.proxy_client.max_in_flight_per_connection),
      client_(HttpClient::Options{c.proxy_client.max_connections_per_endpoint,
                                  c.proxy_client.max_response_bytes}) {
  core::CircuitBreaker::Options breaker;
  breaker.failure_threshold = static_cast<uint32_t>(c.proxy_breaker.failure_threshold);
  breaker.window_ms = c.proxy_breaker.window.ms;
  breaker.open_ms = c.proxy_breaker.open_timeout.ms;
  breaker.half_open_trials = static_cast<uint32_t>(c.proxy_breaker.half_open_trials);
  const std::pair<const std::string*, const config::Duration*> configured[kKinds] = {
      {&c.proxy_connect_endpoint, &c.proxy_connect_timeout},
      {&c.proxy_refresh_endpoint, &c.proxy_refresh_timeout},
      {&c.proxy_subscribe_endpoint, &c.proxy_subscribe_timeout},
      {&c.proxy_publish_endpoint, &c.proxy_publish_timeout},
      {&c.proxy_sub_refresh_endpoint, &c.proxy_sub_refresh_timeout},
      {&c.proxy_rpc_endpoint, &c.proxy_rpc_timeout},
  };
  for (size_t i = 0; i < kKinds; ++i) {
    if (configured[i].first->empty()) continue;
    endpoints_[i] = std::make_unique<Endpoint>(static_cast<Kind>(i), *configured[i].first,
                                               configured[i].second->ms,
                                               c.proxy_client.max_in_flight, breaker, clock);
  }
  for (std::string h : c.proxy_http_headers) {
    std::transform(h.begin(), h.end(), h.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    forwarded_.push_back(std::move(h));
  }
}

Proxies::~Proxies() { Stop(); }

void Proxies::Stop() { client_.Stop(); }

std::vector<Endpoint*> Proxies::endpoints() const {
  std::vector<Endpoint*> out;
  for (const auto& e : endpoints_) {
    if (e) out.push_back(e.get());
  }
  return out;
}

void Proxies::Call(Kind kind, std::string body, const std::vector<std::string>& headers,
                   core::Completion<Reply> done) {
  Endpoint* endpoint = this->endpoint(kind);
  const Outcome admitted = endpoint ? endpoint->Admit() : Outcome::kUnavailable;
  if (admitted != Outcome::kOk) {
    if (endpoint) endpoint->CountRefused(admitted);
    Reply refused;
    refused.outcome = admitted;
    done(std::move(refused));  // posted to the caller's loop: never inline
    return;
  }
  HttpRequest request{endpoint->url(), headers, std::move(body), endpoint->timeout_ms()};
  request.headers.insert(request.headers.end(), static_headers_.begin(), static_headers_.end());
  client_.Send(std::move(request),
               [endpoint, kind, done = std::move(done)](HttpResponse response) mutable {
                 Reply reply;
                 reply.outcome = FromHttp(response);
                 if (reply.outcome == Outcome::kOk) ParseReply(kind, response.body, &reply);
                 if (reply.failed() && reply.outcome != Outcome::kStopped) {
                   spdlog::debug("proxy {} ({}): {} {} {}", kKindNames[static_cast<size_t>(kind)],
                                 endpoint->url(), kOutcomeNames[static_cast<size_t>(reply.outcome)],
                                 response.http_status, response.error);
                 }
                 endpoint->OnDone(reply.outcome, response.latency_us);
                 done(std::move(reply));
               });
}

}  // namespace hermod::proxy
