#include "proxy/http_client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <utility>

namespace hermod::proxy {

namespace {

uint64_t NowUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// curl_global_init is not thread-safe before 7.84: once, before any client thread starts.
void GlobalInit() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

}  // namespace

struct HttpClient::Transfer {
  HttpRequest request;
  Done done;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpResponse response;
  uint64_t max_bytes = 0;
  bool too_large = false;
  uint64_t started_us = 0;
  ~Transfer() {
    if (headers) curl_slist_free_all(headers);
    if (easy) curl_easy_cleanup(easy);
  }
  static size_t Write(char* data, size_t size, size_t count, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const size_t n = size * count;
    if (t->response.body.size() + n > t->max_bytes) {
      t->too_large = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    t->response.body.append(data, n);
    return n;
  }
};

HttpClient::HttpClient(Options options) : options_(options) {
  GlobalInit();
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options_.max_connections_per_host));
  // The connection cache: idle keep-alive connections kept for reuse.
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(options_.max_connections_per_host * 8));
  multi_ = multi;
  thread_ = std::thread([this] { Run(); });
}

HttpClient::~HttpClient() {
  Stop();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void HttpClient::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
  if (thread_.joinable()) thread_.join();
}

void HttpClient::Send(HttpRequest request, Done done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(transfer));
      // Thread-safe by libcurl's contract: wakes curl_multi_poll.
      curl_multi_wakeup(static_cast<CURLM*>(multi_));
      return;
    }
  }
  HttpResponse stopped;
  stopped.error = "proxy client stopped";
  transfer->done(std::move(stopped));
}

void HttpClient::Start(std::unique_ptr<Transfer> t) {
  CURL* easy = curl_easy_init();
  t->easy = easy;
  t->max_bytes = options_.max_response_bytes;
  t->started_us = NowUs();
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  // No "Expect: 100-continue" round trip for larger bodies.
  t->headers = curl_slist_append(t->headers, "Expect:");
  for (const std::string& h : t->request.headers) {
    t->headers = curl_slist_append(t->headers, h.c_str());
  }
  curl_easy_setopt(easy, CURLOPT_URL, t->request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->request.body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->request.body.size()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(t->request.timeout_ms));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  // Peer and host verification stay libcurl's default (on); only the trusted CAs change.
  if (!options_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::Write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, t.get());
  if (curl_multi_add_handle(static_cast<CURLM*>(multi_), easy) != CURLM_OK) {
    t->response.status = HttpResponse::Status::kUnavailable;
    t->response.error = "curl_multi_add_handle failed";
    t->done(std::move(t->response));
    return;
  }
  open_.insert(t.release());  // owned by the multi handle until Finish
}

void HttpClient::Finish(Transfer* raw, int code) {
  std::unique_ptr<Transfer> t(raw);
  open_.erase(raw);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
  HttpResponse& r = t->response;
  r.latency_us = NowUs() - t->started_us;
  using S = HttpResponse::Status;
  if (code == CURLE_OK) {
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.http_status);
    r.status = r.http_status >= 200 && r.http_status < 300 ? S::kOk : S::kHttpStatus;
  } else if (t->too_large) {
    r.status = S::kTooLarge;
    r.error = "answer larger than proxy_client.max_response_bytes";
  } else if (code == CURLE_OPERATION_TIMEDOUT) {
    r.status = S::kTimeout;
    r.error = curl_easy_strerror(static_cast<CURLcode>(code));
  } else {
    r.status = S::kUnavailable;
    r.error = curl_easy_strerror(static_cast<CURLcode>(code));
  }
  if (r.status != S::kOk) r.body.clear();
  t->done(std::move(r));
}

void HttpClient::Run() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  std::vector<std::unique_ptr<Transfer>> incoming;
  while (true) {
    bool stopping;
    {
      std::lock_guard lock(mutex_);
      incoming.swap(queue_);
      stopping = stopping_;
    }
    if (stopping) {
      for (auto& t : incoming) {
        HttpResponse stopped;
        stopped.error = "proxy client stopped";
        t->done(std::move(stopped));
      }
      incoming.clear();
      break;
    }
    for (auto& t : incoming) Start(std::move(t));
    incoming.clear();
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
      Finish(t, m->data.result);
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  // What is still in flight is answered kStopped.
  for (Transfer* raw : open_) {
    std::unique_ptr<Transfer> t(raw);
    curl_multi_remove_handle(multi, t->easy);
    t->response.status = HttpResponse::Status::kStopped;
    t->response.body.clear();
    t->response.error = "proxy client stopped";
    t->done(std::move(t->response));
  }
  open_.clear();
}

}  // namespace hermod::proxy
