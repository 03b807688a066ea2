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
                   core::CircuitBreaker::Options breaker, Clock clock, std::string name)
    : kind_(kind),
      url_(std::move(url)),
      name_(std::move(name)),
      timeout_ms_(timeout_ms),
      max_in_flight_(max_in_flight),
      breaker_options_(breaker),
      breaker_(breaker, clock) {}

void Endpoint::AddHeaders(const std::vector<std::string>& client,
                          std::vector<std::string>& out) const {
  if (!filter_headers_) {
    out = client;
    return;
  }
  for (const std::string& line : client) {
    const std::string_view name = std::string_view(line).substr(0, line.find(':'));
    for (const std::string& allowed : forwarded_) {
      if (allowed.size() == name.size() &&
          std::equal(name.begin(), name.end(), allowed.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == b;
          })) {
        out.push_back(line);
        break;
      }
    }
  }
  out.insert(out.end(), static_headers_.begin(), static_headers_.end());
}

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
  const bool named = !c.proxies.empty();
  return any || named ? std::make_unique<Proxies>(c, clock) : nullptr;
}

Endpoint* Proxies::Add(Kind kind, const config::Config& c, const std::string& name) {
  if (name.empty() || name == "default") return nullptr;
  auto& by_name = named_[static_cast<size_t>(kind)];
  if (auto it = by_name.find(name); it != by_name.end()) return it->second;
  for (const config::NamedProxy& p : c.proxies) {
    if (p.name != name) continue;
    auto endpoint = std::make_unique<Endpoint>(
        kind, p.endpoint, p.timeout.ms, c.proxy_client.max_in_flight, breaker_, clock_, name);
    std::vector<std::string> forwarded;
    for (std::string h : p.http_headers) {
      std::transform(h.begin(), h.end(), h.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (std::find(forwarded_.begin(), forwarded_.end(), h) == forwarded_.end()) {
        forwarded_.push_back(h);
      }
      forwarded.push_back(std::move(h));
    }
    endpoint->set_headers(std::move(forwarded), p.static_http_headers);
    include_meta_ = include_meta_ || p.include_connection_meta;
    Endpoint* raw = endpoint.get();
    owned_.push_back(std::move(endpoint));
    by_name.emplace(name, raw);
    return raw;
  }
  return nullptr;  // Validate refuses a name no proxy has
}

Proxies::Proxies(const config::Config& c, Endpoint::Clock clock)
    : clock_(clock),
      static_headers_(c.proxy_static_http_headers),
      include_meta_(c.proxy_include_connection_meta),
      max_per_connection_(c.proxy_client.max_in_flight_per_connection),
      client_(HttpClient::Options{c.proxy_client.max_connections_per_endpoint,
                                  c.proxy_client.max_response_bytes, c.proxy_client.ca_file}) {
  breaker_.failure_threshold = static_cast<uint32_t>(c.proxy_breaker.failure_threshold);
  breaker_.window_ms = c.proxy_breaker.window.ms;
  breaker_.open_ms = c.proxy_breaker.open_timeout.ms;
  breaker_.half_open_trials = static_cast<uint32_t>(c.proxy_breaker.half_open_trials);
  // Flat mode: the proxy_*_endpoint keys are the default endpoints. Granular mode (v5) only
  // the named proxies. In both, a name other than "default" (Centrifugo v6's name of the
  // flat proxy) picks a named proxy: one endpoint (breaker, in-flight bound, counters) per
  // proxy and event it serves.
  if (c.granular_proxy_mode) {
    static_headers_.clear();
    include_meta_ = false;
  } else {
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
      owned_.push_back(std::make_unique<Endpoint>(static_cast<Kind>(i), *configured[i].first,
                                                  configured[i].second->ms,
                                                  c.proxy_client.max_in_flight, breaker_, clock));
      defaults_[i] = owned_.back().get();
    }
    for (std::string h : c.proxy_http_headers) {
      std::transform(h.begin(), h.end(), h.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      forwarded_.push_back(std::move(h));
    }
  }
  const std::pair<Kind, const std::string*> top[] = {{Kind::kConnect, &c.connect_proxy_name},
                                                     {Kind::kRefresh, &c.refresh_proxy_name},
                                                     {Kind::kRpc, &c.rpc_proxy_name}};
  for (const auto& [kind, name] : top) {
    if (Endpoint* e = Add(kind, c, *name)) defaults_[static_cast<size_t>(kind)] = e;
  }
  for (const config::RpcNamespace& ns : c.rpc_namespaces) {
    if (Add(Kind::kRpc, c, ns.rpc_proxy_name) != nullptr) {
      rpc_routes_.emplace(ns.name, ns.rpc_proxy_name);
    }
  }
  auto channel = [&](const config::ChannelOptions& o) {
    if (o.proxy_subscribe) Add(Kind::kSubscribe, c, o.subscribe_proxy_name);
    if (o.proxy_publish) Add(Kind::kPublish, c, o.publish_proxy_name);
    if (o.proxy_sub_refresh) Add(Kind::kSubRefresh, c, o.sub_refresh_proxy_name);
  };
  channel(c.channel);
  for (const config::Namespace& ns : c.namespaces) channel(ns.options);
}

Endpoint* Proxies::endpoint(Kind kind, std::string_view name) const {
  if (name.empty() || name == "default") return defaults_[static_cast<size_t>(kind)];
  const auto& by_name = named_[static_cast<size_t>(kind)];
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : it->second;
}

Endpoint* Proxies::RpcEndpoint(std::string_view method) const {
  const size_t colon = method.find(':');
  if (colon != std::string_view::npos) {
    if (auto it = rpc_routes_.find(method.substr(0, colon)); it != rpc_routes_.end()) {
      return endpoint(Kind::kRpc, it->second);
    }
  }
  return endpoint(Kind::kRpc);
}

Proxies::~Proxies() { Stop(); }

void Proxies::Stop() { client_.Stop(); }

std::vector<Endpoint*> Proxies::endpoints() const {
  std::vector<Endpoint*> out;
  for (const auto& e : owned_) out.push_back(e.get());
  return out;
}

void Proxies::Call(Endpoint* endpoint, Kind kind, std::string body,
                   const std::vector<std::string>& headers, core::Completion<Reply> done) {
  const Outcome admitted = endpoint ? endpoint->Admit() : Outcome::kUnavailable;
  if (admitted != Outcome::kOk) {
    if (endpoint) endpoint->CountRefused(admitted);
    Reply refused;
    refused.outcome = admitted;
    done(std::move(refused));  // posted to the caller's loop: never inline
    return;
  }
  HttpRequest request{endpoint->url(), {}, std::move(body), endpoint->timeout_ms()};
  endpoint->AddHeaders(headers, request.headers);
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
