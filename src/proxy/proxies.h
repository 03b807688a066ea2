// The backend proxies: one Endpoint per proxied event that has an endpoint configured, and
// the HTTP client (http_client.h, its own thread) they share.
//
// A call (Call) is decided on the caller's thread, a loop's: past max_in_flight calls out
// to the endpoint it is refused (kOverloaded), an open circuit breaker refuses it
// (kOpen: fail fast, no request leaves while the backend is down); otherwise the request
// goes to the client's thread. The answer is parsed there (codec.h), counted (outcome,
// latency), reported to the breaker (timeouts, connection failures, non-2xx, invalid or
// oversized answers are failures; a backend's error or disconnect answer is not), and
// handed to the caller's Completion, which runs it on the caller's loop while the caller
// lives. Refusals are answered through the same Completion, never inline, so a session
// sees one path.
//
// Threads: Call from any loop; completions from the client's thread. An endpoint's breaker
// is under its mutex (LOCKS.md), never held across a call; counters are atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/circuit_breaker.h"
#include "core/completion.h"
#include "proxy/codec.h"
#include "proxy/http_client.h"

namespace hermod::proxy {

// Upper bounds of the latency histogram's buckets, in seconds.
inline constexpr std::array<double, 12> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,   0.25,   0.5,   1,    2.5,   5};

class Endpoint {
 public:
  using Clock = core::CircuitBreaker::Clock;
  Endpoint(Kind kind, std::string url, uint64_t timeout_ms, uint64_t max_in_flight,
           core::CircuitBreaker::Options breaker, Clock clock, std::string name = "default");

  Kind kind() const { return kind_; }
  const std::string& url() const { return url_; }
  // The named proxy of granular mode (its metrics label), "default" for the flat keys'.
  const std::string& name() const { return name_; }
  // Granular mode: the proxy's own http_headers (lower-cased) and static_http_headers.
  void set_headers(std::vector<std::string> forwarded, std::vector<std::string> fixed) {
    filter_headers_ = true;
    forwarded_ = std::move(forwarded);
    static_headers_ = std::move(fixed);
  }
  // Of the client's forwarded header lines, those this proxy forwards, then its own.
  void AddHeaders(const std::vector<std::string>& client, std::vector<std::string>& out) const;
  uint64_t timeout_ms() const { return timeout_ms_; }

  // The caller's side: whether a call may go out now (kOk), or why not (kOpen, kOverloaded).
  Outcome Admit();
  // The client's side: the outcome of an admitted call.
  void OnDone(Outcome outcome, uint64_t latency_us);
  // A refused call, counted.
  void CountRefused(Outcome outcome);

  core::CircuitBreaker::State state();
  uint64_t transitions(core::CircuitBreaker::State to);
  uint64_t count(Outcome o) const { return outcomes_[static_cast<size_t>(o)].load(); }
  uint64_t in_flight() const { return in_flight_.load(); }
  // Cumulative bucket counts (the last is +Inf), and the sum of latencies in microseconds.
  std::array<uint64_t, kLatencyBuckets.size() + 1> buckets() const;
  uint64_t latency_sum_us() const { return latency_sum_us_.load(); }
  const core::CircuitBreaker::Options& breaker_options() const { return breaker_options_; }

 private:
  void Note();  // under mutex_: logs a change of the breaker's state

  const Kind kind_;
  const std::string url_;
  const std::string name_;
  bool filter_headers_ = false;
  std::vector<std::string> forwarded_;
  std::vector<std::string> static_headers_;
  const uint64_t timeout_ms_;
  const uint64_t max_in_flight_;
  const core::CircuitBreaker::Options breaker_options_;
  std::mutex mutex_;  // guards breaker_, last_state_
  core::CircuitBreaker breaker_;
  core::CircuitBreaker::State last_state_ = core::CircuitBreaker::State::kClosed;
  std::atomic<uint64_t> in_flight_{0};
  std::array<std::atomic<uint64_t>, kOutcomes> outcomes_{};
  std::array<std::atomic<uint64_t>, kLatencyBuckets.size() + 1> latency_{};
  std::atomic<uint64_t> latency_sum_us_{0};
};

class Proxies {
 public:
  // Null when the config names no proxy endpoint.
  static std::unique_ptr<Proxies> FromConfig(const config::Config& config, Endpoint::Clock clock);
  Proxies(const config::Config& config, Endpoint::Clock clock);
  ~Proxies();

  // The endpoint of a kind: the flat key's (granular mode: connect_proxy_name's,
  // refresh_proxy_name's, rpc_proxy_name's) when name is empty, else the named proxy's
  // (granular mode: a namespace's subscribe_proxy_name and friends); null when none.
  Endpoint* endpoint(Kind kind, std::string_view name = {}) const;
  bool has(Kind kind) const { return endpoint(kind) != nullptr; }
  // The rpc endpoint of a method: granular mode routes `<ns>:<method>` to the proxy of
  // rpc_namespaces' entry <ns>; others (and flat mode) go to the default.
  Endpoint* RpcEndpoint(std::string_view method) const;
  // proxy_http_headers, lower-cased: the client request headers forwarded (granular mode:
  // those of every named proxy; each call forwards its proxy's own).
  const std::vector<std::string>& forwarded_headers() const { return forwarded_; }
  uint64_t max_in_flight_per_connection() const { return max_per_connection_; }
  // proxy_include_connection_meta: requests carry the connection's `meta`.
  bool include_connection_meta() const { return include_meta_; }
  // Every configured endpoint, for metrics and health.
  std::vector<Endpoint*> endpoints() const;

  // Any loop. headers: "Name: value" lines forwarded with the request (the static headers
  // follow them). done gets the
  // parsed answer (or the refusal) once, through its loop.
  void Call(Kind kind, std::string body, const std::vector<std::string>& headers,
            core::Completion<Reply> done) {
    Call(endpoint(kind), kind, std::move(body), headers, std::move(done));
  }
  // The same to one endpoint (null: refused as unavailable).
  void Call(Endpoint* endpoint, Kind kind, std::string body,
            const std::vector<std::string>& headers, core::Completion<Reply> done);
  // Answers what is in flight (kStopped) and stops the client thread.
  void Stop();

 private:
  Endpoint* Add(Kind kind, const config::Config& c, const std::string& name);

  std::vector<std::unique_ptr<Endpoint>> owned_;
  std::array<Endpoint*, kKinds> defaults_{};
  std::array<std::map<std::string, Endpoint*, std::less<>>, kKinds> named_;
  std::map<std::string, std::string, std::less<>> rpc_routes_;  // namespace -> proxy name
  core::CircuitBreaker::Options breaker_;
  Endpoint::Clock clock_;
  std::vector<std::string> forwarded_;
  std::vector<std::string> static_headers_;  // proxy_static_http_headers, "Name: value"
  bool include_meta_;
  uint64_t max_per_connection_;
  HttpClient client_;
};

}  // namespace hermod::proxy
