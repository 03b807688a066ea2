// Building HTTP/1.1 responses. Small and complete: status line, Content-Length, the
// connection disposition, and whatever headers the route adds.
#pragma once

#include <string>
#include <string_view>

namespace hermod::http {

std::string_view StatusText(int status);

// extra_headers: zero or more complete "Name: value\r\n" lines.
std::string BuildResponse(int status, std::string_view content_type, std::string_view body,
                          bool keep_alive, std::string_view extra_headers = {});

// A plain-text error response that closes the connection.
std::string ErrorResponse(int status, std::string_view extra_headers = {});

}  // namespace hermod::http
