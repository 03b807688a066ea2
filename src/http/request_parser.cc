#include "http/request_parser.h"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

namespace hermod::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

class RequestParser::Impl final : public bhttp::basic_parser<true> {
 public:
  explicit Impl(const ParserLimits& limits) : limits_(limits) {
    header_limit(limits.max_header_bytes);
    body_limit(limits.max_body_bytes);
    eager(true);
  }

  Request request;
  bool too_many_headers = false;
  bool started = false;

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int version, beast::error_code&) override {
    started = true;
    request.method.assign(method.data(), method.size());
    request.target.assign(target.data(), target.size());
    request.version = version;
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
    ec = bhttp::error::bad_version;  // never called for a request parser
  }
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     beast::error_code& ec) override {
    if (request.headers.size() >= limits_.max_headers) {
      too_many_headers = true;
      ec = bhttp::error::header_limit;
      return;
    }
    request.headers.emplace_back(std::string(name.data(), name.size()),
                                 std::string(value.data(), value.size()));
  }
  void on_header_impl(beast::error_code&) override { request.keep_alive = keep_alive(); }
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
};

RequestParser::RequestParser(const ParserLimits& limits) : impl_(std::make_unique<Impl>(limits)) {}
RequestParser::~RequestParser() = default;

Request& RequestParser::request() { return impl_->request; }
bool RequestParser::started() const { return impl_->started; }

RequestParser::Status RequestParser::Parse(const uint8_t* data, size_t len, size_t* consumed) {
  *consumed = 0;
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
      if (impl_->too_many_headers || ec == bhttp::error::header_limit) {
        error_status_ = 431;
      } else if (ec == bhttp::error::body_limit) {
        error_status_ = 413;
      } else {
        error_status_ = 400;
      }
      return Status::kError;
    }
    if (n == 0 && !impl_->is_done()) return Status::kNeedMore;
  }
  return Status::kDone;
}

}  // namespace hermod::http
