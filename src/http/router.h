// The route table: exact paths to handlers, each with the methods it accepts (others get
// 405 with Allow). Built once at start-up and then only read, by every loop at once.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"

namespace hermod::http {

class HttpConnection;

using RouteHandler = std::function<void(HttpConnection&, Request&)>;

struct Route {
  std::string path;
  std::vector<std::string> methods;  // e.g. {"GET"}; HEAD is implied by GET
  RouteHandler handler;
};

class Router {
 public:
  void Add(std::string path, std::vector<std::string> methods, RouteHandler handler);
  const Route* Find(std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

}  // namespace hermod::http
