#include "http/router.h"

namespace hermod::http {

void Router::Add(std::string path, std::vector<std::string> methods, RouteHandler handler) {
  routes_.push_back({std::move(path), std::move(methods), std::move(handler)});
}

const Route* Router::Find(std::string_view path) const {
  for (const Route& route : routes_) {
    if (route.path == path) return &route;
  }
  return nullptr;
}

}  // namespace hermod::http
