// One parsed HTTP/1.1 request. Header values are copied out of the read buffer: requests
// are rare next to WebSocket frames (one per connection for an upgrade), so simplicity wins.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hermod::http {

struct Request {
  std::string method;
  std::string target;  // path and query (an absolute-form target is reduced to them)
  int version = 11;    // 10 or 11
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;

  // The first value of a header, case-insensitive; empty when absent.
  std::string_view Header(std::string_view name) const;
  // All values of a header joined with ", " (RFC 9110 §5.3), for token-list headers.
  std::string HeaderList(std::string_view name) const;
  // The target without its query string.
  std::string_view Path() const;
  std::string_view Query() const;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// A query string's parameters in order, names and values percent-decoded ('+' is a space,
// as forms send it); false for a bad escape (a '%' not followed by two hex digits).
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>* out);

}  // namespace hermod::http
