// The JSON of Centrifugo's HTTP proxies: what hermod POSTs for each event of a client, and
// the answer it reads back. A request carries the client's description (`client`,
// `transport`, `protocol`, `encoding`, `user` once known) and the event's fields; `data` is
// the client's raw JSON, passed through verbatim. An answer is one of
//   {"result": {...}}                                     the event goes on, shaped by it
//   {"error": {"code": 400..1999, "message", "temporary"}} the client gets this error
//   {"disconnect": {"code": 4000..4999, "reason"}}        the client is disconnected
// Anything else (not JSON, a code out of range, a connect result without `user`) is an
// invalid answer and is treated like a backend that failed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token_verifier.h"

namespace hermod::proxy {

enum class Kind : uint8_t { kConnect, kRefresh, kSubscribe, kPublish, kSubRefresh, kRpc };
inline constexpr size_t kKinds = 6;
inline constexpr std::array<std::string_view, kKinds> kKindNames = {
    "connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc"};

// How a call ended: the `outcome` label of hermod_proxy_requests_total. The first three are
// answers of a working backend (its result, its error, its disconnect); the rest are
// failures, which the client gets as error 100 (temporary), or as Centrifugo's answer for
// that event.
enum class Outcome : uint8_t {
  kOk,
  kError,
  kDisconnect,
  kTimeout,          // no answer within the endpoint's timeout
  kUnavailable,      // could not connect, or the connection broke
  kHttpStatus,       // a status other than 2xx
  kInvalid,          // an answer that is not Centrifugo's shape
  kTooLarge,         // past proxy_client.max_response_bytes
  kOpen,             // not sent: the endpoint's circuit breaker is open
  kOverloaded,       // not sent: proxy_client.max_in_flight calls already out to the endpoint
  kStopped,          // the server is stopping
  kConnectionLimit,  // not sent: max_in_flight_per_connection calls already out for the client
};
inline constexpr size_t kOutcomes = 12;
inline constexpr std::array<std::string_view, kOutcomes> kOutcomeNames = {
    "ok",      "error",     "disconnect", "timeout",    "unavailable", "http_status",
    "invalid", "too_large", "open",       "overloaded", "stopped",     "connection_limit"};
// A failure the breaker counts: the backend is not answering as it should.
inline bool IsBackendFailure(Outcome o) {
  return o == Outcome::kTimeout || o == Outcome::kUnavailable || o == Outcome::kHttpStatus ||
         o == Outcome::kInvalid || o == Outcome::kTooLarge;
}

// A backend's answer, parsed (on the proxy client's thread, not a loop's).
struct Reply {
  Outcome outcome = Outcome::kStopped;
  bool failed() const {
    return outcome != Outcome::kOk && outcome != Outcome::kError && outcome != Outcome::kDisconnect;
  }
  // kError
  uint32_t error_code = 0;
  std::string error_message;
  bool error_temporary = false;
  // kDisconnect
  uint16_t disconnect_code = 0;
  std::string disconnect_reason;  // at most 32 bytes
  // kOk: connect (user, expire_at, info, data, channels, subs, meta), refresh (expired,
  // expire_at, info), subscribe (info, data, expire_at, override), publish (data,
  // skip_history), sub_refresh (expired, expire_at, info), rpc (data).
  auth::TokenClaims claims;  // user, expires_at (expire_at), info, channels, subs
  std::string data;          // raw JSON; empty when absent
  bool expired = false;
  bool skip_history = false;
  auth::TokenSubscription overrides;  // subscribe: `override` flags
};

// The client as every request describes it.
struct ClientFields {
  std::string_view client;
  std::string_view user;
  std::string_view transport = "websocket";
  std::string_view protocol = "json";
  std::string_view encoding = "json";
  // The connection's `meta` (JSON), sent with proxy_include_connection_meta; empty: none.
  std::string_view meta = {};
};

std::string ConnectRequest(const ClientFields& c, std::string_view name, std::string_view version,
                           std::string_view data);
std::string RefreshRequest(const ClientFields& c);
std::string SubscribeRequest(const ClientFields& c, std::string_view channel,
                             std::string_view data);
std::string PublishRequest(const ClientFields& c, std::string_view channel, std::string_view data);
std::string SubRefreshRequest(const ClientFields& c, std::string_view channel);
std::string RpcRequest(const ClientFields& c, std::string_view method, std::string_view data);

// The answer body of a 2xx response: reply->outcome is kOk, kError, kDisconnect or kInvalid.
void ParseReply(Kind kind, std::string_view body, Reply* reply);

}  // namespace hermod::proxy
