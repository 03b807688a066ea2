#include "http/request_parser.h"

#include <algorithm>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace hermod::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

// RFC 9112 §2.2: a server should ignore at least one empty line before a request line (old
// clients send a CRLF after a POST body). A few are skipped; a stream of them is not a
// request, and is refused rather than read forever.
constexpr int kMaxEmptyLines = 8;

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// True when the header at the start of p (from a request line or a field line up to the
// empty line that ends it, or to the end of p) holds an obs-fold: a line break followed by
// space or tab (RFC 9112 §5.2). after_line: p starts right after a line of the header (Beast
// took the request line already), so a leading space or tab continues that line too.
bool HasObsFold(const uint8_t* p, size_t n, bool after_line) {
  if (after_line && n > 0 && IsOws(static_cast<char>(p[0]))) return true;
  bool line_start = true;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (p[i] != '\r' || p[i + 1] != '\n') {
      line_start = false;
      continue;
    }
    if (line_start) return false;  // the empty line: the header ends here
    if (i + 2 < n && IsOws(static_cast<char>(p[i + 2]))) return true;
    line_start = true;
    ++i;
  }
  return false;
}

// True when p starts with a request line whose version is well formed, "HTTP/" DIGIT "."
// DIGIT (RFC 9112 §2.3), with a major version other than 1. Beast refuses every version but
// 1.0 and 1.1 alike; RFC 9110 §15.6.6 gives another major version its own status, 505, so a
// client speaking HTTP/2 with prior knowledge (or HTTP/0.9) learns why, not just "bad".
bool NamesAnotherMajorVersion(const uint8_t* p, size_t n) {
  std::string_view text(reinterpret_cast<const char*>(p), n);
  size_t end = text.find("\r\n");
  if (end == std::string_view::npos) return false;
  std::string_view line = text.substr(0, end);
  size_t space = line.rfind(' ');
  if (space == std::string_view::npos) return false;
  std::string_view version = line.substr(space + 1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return version.size() == 8 && version.starts_with("HTTP/") && digit(version[5]) &&
         version[6] == '.' && digit(version[7]) && version[5] != '1';
}

}  // namespace

std::string_view RejectionName(Rejection r) {
  switch (r) {
    case Rejection::kMalformed:
      return "malformed";
    case Rejection::kEmptyLines:
      return "empty_lines";
    case Rejection::kObsFold:
      return "obs_fold";
    case Rejection::kTransferEncoding:
      return "transfer_encoding";
    case Rejection::kTeWithLength:
      return "te_with_content_length";
    case Rejection::kContentLength:
      return "content_length";
    case Rejection::kChunk:
      return "chunk";
    case Rejection::kHost:
      return "host";
    case Rejection::kUnsupportedCoding:
      return "unsupported_coding";
    case Rejection::kVersion:
      return "version";
    case Rejection::kHeaderTooLarge:
      return "header_too_large";
    case Rejection::kTooManyHeaders:
      return "too_many_headers";
    case Rejection::kBodyTooLarge:
      return "body_too_large";
    case Rejection::kResponseTooLarge:
      return "response_too_large";
    case Rejection::kResponseStalled:
      return "response_stalled";
    case Rejection::kPipelineTooLarge:
      return "pipeline_too_large";
    case Rejection::kCount:
      break;
  }
  return "unknown";
}

class RequestParser::Impl final : public bhttp::basic_parser<true> {
 public:
  explicit Impl(const ParserLimits& limits) : limits_(limits) {
    header_limit(limits.max_header_bytes);
    body_limit(limits.max_body_bytes);
    eager(true);
  }

  Request request;
  bool started = false;
  bool wants_continue = false;
  int empty_lines = 0;
  // Set by our own checks (Beast's errors are mapped in Parse).
  std::optional<std::pair<int, Rejection>> refusal;

 private:
  void Refuse(int status, Rejection why, beast::error_code& ec) {
    refusal.emplace(status, why);
    ec = bhttp::error::bad_value;
  }

  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int version, beast::error_code& ec) override {
    started = true;
    request.method.assign(method.data(), method.size());
    request.version = version;
    std::string_view t(target.data(), target.size());
    // RFC 9112 §3.2.2: a server must accept the absolute form (what clients send to a
    // proxy), and then takes the host from it, not from the Host field (§3.2.3).
    size_t scheme_end = t.find("://");
    if (scheme_end != std::string_view::npos && t.find('/') > scheme_end &&
        (EqualsIgnoreCase(t.substr(0, scheme_end), "http") ||
         EqualsIgnoreCase(t.substr(0, scheme_end), "https"))) {
      std::string_view rest = t.substr(scheme_end + 3);
      size_t path_start = rest.find_first_of("/?");
      std::string_view authority = rest.substr(0, path_start);
      // RFC 9110 §4.2.1: an http URI has a non-empty host; §4.2.4: no userinfo.
      if (authority.empty() || authority.find('@') != std::string_view::npos) {
        return Refuse(400, Rejection::kMalformed, ec);
      }
      absolute_authority_.assign(authority);
      std::string_view path =
          path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
      request.target.clear();
      if (path.empty() || path.front() == '?') request.target = "/";
      request.target.append(path);
      return;
    }
    request.target.assign(t);
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
    ec = bhttp::error::bad_version;  // never called for a request parser
  }
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     beast::error_code& ec) override {
    if (is_header_done()) {
      // A trailer field (RFC 9112 §7.1.2). None is used, and merging one into the header
      // would let it pose as a header the client never sent (RFC 9110 §6.5.1): counted
      // against the header limit and dropped.
      if (++trailers_ > limits_.max_headers) Refuse(431, Rejection::kTooManyHeaders, ec);
      return;
    }
    if (request.headers.size() >= limits_.max_headers) {
      return Refuse(431, Rejection::kTooManyHeaders, ec);
    }
    request.headers.emplace_back(std::string(name.data(), name.size()),
                                 std::string(value.data(), value.size()));
  }
  void on_header_impl(beast::error_code& ec) override {
    request.keep_alive = keep_alive();
    CheckFraming(ec);
    if (ec) return;
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with
    // more than one (two could name two hosts to two readers of the request).
    size_t hosts = std::ranges::count_if(
        request.headers, [](const auto& field) { return EqualsIgnoreCase(field.first, "Host"); });
    if (hosts > 1 || (hosts == 0 && request.version >= 11)) {
      return Refuse(400, Rejection::kHost, ec);
    }
    if (!absolute_authority_.empty()) {
      std::erase_if(request.headers,
                    [](const auto& field) { return EqualsIgnoreCase(field.first, "Host"); });
      request.headers.emplace_back("Host", std::move(absolute_authority_));
    }
    // RFC 9110 §10.1.1: only HTTP/1.1 clients wait for 100 Continue, and only a body that
    // is still to come needs one.
    wants_continue = request.version >= 11 && !is_done() &&
                     EqualsIgnoreCase(TrimOws(request.HeaderList("Expect")), "100-continue");
  }
  // RFC 9112 §6.1 and §6.3: what Beast lets through and must not pass.
  void CheckFraming(beast::error_code& ec) {
    bool has_length = false;
    bool has_coding = false;
    std::string codings;
    for (const auto& [key, value] : request.headers) {
      if (EqualsIgnoreCase(key, "Content-Length")) has_length = true;
      if (EqualsIgnoreCase(key, "Transfer-Encoding")) {
        has_coding = true;
        codings += value;
        codings += ',';
      }
    }
    if (!has_coding) return;
    // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (request.version < 11) return Refuse(400, Rejection::kTransferEncoding, ec);
    // §6.1: a request with both may be refused, and must not keep its connection.
    if (has_length) return Refuse(400, Rejection::kTeWithLength, ec);
    // The list, empty elements ignored (RFC 9110 §5.6.1).
    std::string_view list = codings;
    std::string_view last;
    int count = 0;
    int chunked = 0;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view element = TrimOws(list.substr(0, comma));
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
      if (element.empty()) continue;
      ++count;
      if (EqualsIgnoreCase(element, "chunked")) ++chunked;
      last = element;
    }
    // §6.3: chunked must be the final coding of a request, else its length is unknowable;
    // §7: and it is applied once.
    if (chunked != 1 || !EqualsIgnoreCase(last, "chunked")) {
      return Refuse(400, Rejection::kTransferEncoding, ec);
    }
    // §6.1: codings we do not decode (gzip, deflate, ...) are not implemented.
    if (count > 1) return Refuse(501, Rejection::kUnsupportedCoding, ec);
  }
  void on_body_init_impl(const boost::optional<uint64_t>& length, beast::error_code&) override {
    if (length) request.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    request.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(uint64_t, beast::string_view body, beast::error_code&) override {
    request.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  const ParserLimits& limits_;
  std::string absolute_authority_;
  uint32_t trailers_ = 0;
};

RequestParser::RequestParser(const ParserLimits& limits) : impl_(std::make_unique<Impl>(limits)) {}
RequestParser::~RequestParser() = default;

Request& RequestParser::request() { return impl_->request; }
bool RequestParser::started() const { return impl_->started; }
bool RequestParser::header_done() const { return impl_->is_header_done() && !impl_->is_done(); }
bool RequestParser::wants_continue() const { return impl_->wants_continue && header_done(); }
void RequestParser::ContinueSent() { impl_->wants_continue = false; }

RequestParser::Status RequestParser::Parse(const uint8_t* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (!impl_->got_some()) {
    while (*consumed < len && data[*consumed] == '\r') {
      if (*consumed + 1 == len) return Status::kNeedMore;  // a CR whose LF is still to come
      if (data[*consumed + 1] != '\n') break;              // Beast refuses it
      if (++impl_->empty_lines > kMaxEmptyLines) {
        error_status_ = 400;
        rejection_ = Rejection::kEmptyLines;
        return Status::kError;
      }
      *consumed += 2;
    }
    if (*consumed == len) return Status::kNeedMore;
  }
  size_t line_start = *consumed;
  if (!impl_->is_header_done() && HasObsFold(data + *consumed, len - *consumed, impl_->started)) {
    error_status_ = 400;
    rejection_ = Rejection::kObsFold;
    return Status::kError;
  }
  while (!impl_->is_done()) {
    beast::error_code ec;
    size_t n = impl_->put(boost::asio::const_buffer(data + *consumed, len - *consumed), ec);
    *consumed += n;
    if (ec == bhttp::error::need_more) {
      // Beast reports an over-long header only once it has seen max_header_bytes without
      // the end of the header.
      return Status::kNeedMore;
    }
    if (ec) {
      if (impl_->refusal) {
        std::tie(error_status_, rejection_) = *impl_->refusal;
      } else if (ec == bhttp::error::header_limit) {
        error_status_ = 431;
        rejection_ = Rejection::kHeaderTooLarge;
      } else if (ec == bhttp::error::body_limit) {
        error_status_ = 413;
        rejection_ = Rejection::kBodyTooLarge;
      } else {
        error_status_ = 400;
        if (ec == bhttp::error::bad_version &&
            NamesAnotherMajorVersion(data + line_start, len - line_start)) {
          error_status_ = 505;
          rejection_ = Rejection::kVersion;
        } else if (ec == bhttp::error::bad_content_length) {
          rejection_ = Rejection::kContentLength;
        } else if (ec == bhttp::error::bad_transfer_encoding) {
          rejection_ = Rejection::kTransferEncoding;
        } else if (ec == bhttp::error::bad_chunk || ec == bhttp::error::bad_chunk_extension) {
          rejection_ = Rejection::kChunk;
        } else {
          rejection_ = Rejection::kMalformed;
        }
      }
      return Status::kError;
    }
    if (n == 0 && !impl_->is_done()) return Status::kNeedMore;
  }
  return Status::kDone;
}

}  // namespace hermod::http
