// The HTTP client of the backend proxies: libcurl's multi interface on a thread of its own.
//
// Why its own thread and not the event loops: a proxy call is an outgoing HTTP/1.1 request
// with keep-alive pools, TLS with the system's CA store, redirects refused, DNS, timeouts;
// libcurl does all of it and is the most exercised client there is. Its multi interface
// runs any number of transfers from one thread without blocking, so one thread serves every
// loop: a loop hands a request over (Send: a mutex-guarded queue and curl_multi_wakeup) and
// never waits; the answer comes back through the requester's Completion (core/completion.h),
// which posts it to the requester's loop. Keep-alive connections live in the multi handle's
// connection cache, at most max_connections_per_host per endpoint (requests beyond wait in
// libcurl's queue for a free connection, still bounded by the callers' in-flight limits).
//
// Answers are read up to max_response_bytes: past it the transfer is aborted (kTooLarge),
// so a backend that answers 10 MB costs no more than the bound.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace hermod::proxy {

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // POSTed as application/json
  uint64_t timeout_ms = 1000;
};

struct HttpResponse {
  enum class Status : uint8_t {
    kOk,           // a 2xx answer, read whole (body)
    kHttpStatus,   // another status (http_status)
    kTimeout,      // no whole answer within the timeout
    kUnavailable,  // could not connect, reset, TLS or DNS failure
    kTooLarge,     // the answer passed max_response_bytes
    kStopped,      // the client stopped before the answer
  };
  Status status = Status::kStopped;
  long http_status = 0;
  std::string body;
  uint64_t latency_us = 0;
  std::string error;  // libcurl's words for a failure
};

class HttpClient {
 public:
  struct Options {
    uint64_t max_connections_per_host = 64;
    uint64_t max_response_bytes = 1 << 20;
    std::string ca_file;  // empty: the system's CA store
  };
  using Done = std::function<void(HttpResponse)>;

  explicit HttpClient(Options options);
  ~HttpClient();  // Stop()
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any thread, never blocking on the network. done runs once, on the client's thread (or
  // on the caller's, with kStopped, after Stop).
  void Send(HttpRequest request, Done done);
  // Answers what is in flight with kStopped and joins the thread. Idempotent.
  void Stop();

 private:
  struct Transfer;
  void Run();
  void Start(std::unique_ptr<Transfer> transfer);
  void Finish(Transfer* transfer, int curl_code);

  const Options options_;
  void* multi_ = nullptr;  // CURLM*, touched by the client's thread only (after start)
  std::mutex mutex_;       // guards queue_, stopping_
  std::vector<std::unique_ptr<Transfer>> queue_;
  bool stopping_ = false;
  std::unordered_set<Transfer*> open_;  // added to multi_; the client's thread only
  std::thread thread_;
};

}  // namespace hermod::proxy
