// Bidirectional emulation's HTTP side (proto/emulation.h): the stream's request, the
// /emulation POSTs, and the CORS preflights browsers send before either.
#include <spdlog/spdlog.h>

#include "app/server.h"
#include "http/request.h"
#include "http/response.h"
#include "log/fields.h"
#include "stats/loop_metrics.h"

namespace hermod::app {

namespace {

void Refuse(http::HttpConnection& connection, const http::Request& request, int status,
            std::string_view why, std::string_view headers = {}) {
  connection.Respond(http::BuildResponse(status, "text/plain; charset=utf-8",
                                         std::string(why) + "\n", request.keep_alive, headers),
                     request.keep_alive);
}

bool IsProtobuf(const http::Request& request) {
  return request.Header("Content-Type").find("application/octet-stream") != std::string_view::npos;
}

// A header value that may be echoed into a response: printable ASCII only, bounded.
bool Echoable(std::string_view value) {
  if (value.size() > 1024) return false;
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  }
  return true;
}

}  // namespace

bool Server::Cors(http::HttpConnection& connection, const http::Request& request,
                  std::string_view methods, std::string* headers) {
  const std::string_view origin = request.Header("Origin");
  if (!ws::OriginAllowed(origin, request.Header("Host"), handshake_policy_.allowed_origins) ||
      !Echoable(origin)) {
    Refuse(connection, request, 403, "origin not allowed");
    return false;
  }
  if (!origin.empty()) {
    *headers = "Access-Control-Allow-Origin: " + std::string(origin) +
               "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n";
  }
  if (request.method != "OPTIONS") return true;
  // The preflight of a cross-origin POST (its Content-Type is not a simple one).
  std::string preflight = *headers;
  preflight += "Access-Control-Allow-Methods: ";
  preflight += methods;
  preflight += "\r\n";
  const std::string_view asked = request.Header("Access-Control-Request-Headers");
  preflight += "Access-Control-Allow-Headers: ";
  preflight += !asked.empty() && Echoable(asked) ? asked : std::string_view("Content-Type");
  preflight += "\r\nAccess-Control-Max-Age: 600\r\n";
  connection.Respond(http::BuildResponse(204, "text/plain", {}, request.keep_alive, preflight),
                     request.keep_alive);
  return false;
}

void Server::EmulatedStream(http::HttpConnection& connection, http::Request& request, bool sse) {
  std::string headers;
  if (!Cors(connection, request, sse ? "GET, POST, OPTIONS" : "POST, OPTIONS", &headers)) return;
  if (request.version < 11) return Refuse(connection, request, 400, "streaming needs HTTP/1.1");
  const uint64_t limit =
      sse ? config_.sse_max_request_body_size : config_.http_stream_max_request_body_size;
  std::string commands;
  if (request.method == "GET") {
    // sse: the connect command is the cf_connect query parameter (EventSource cannot POST).
    std::vector<std::pair<std::string, std::string>> params;
    if (!http::ParseQuery(request.Query(), &params)) {
      return Refuse(connection, request, 400, "bad query string");
    }
    for (auto& [name, value] : params) {
      if (name == "cf_connect") commands = std::move(value);
    }
  } else {
    commands = std::move(request.body);
  }
  if (commands.size() > limit) return Refuse(connection, request, 413, "connect too large");
  if (commands.empty()) return Refuse(connection, request, 400, "no connect command");
  const proto::Format format =
      !sse && IsProtobuf(request) ? proto::Format::kProtobuf : proto::Format::kJson;
  std::string ip;
  bool must_recover = false;
  if (!Admit(connection, &ip, &must_recover)) return;
  auto* stream = connection.Upgrade<proto::EmulationTransport>(
      sse ? proto::EmulationTransport::Kind::kSse : proto::EmulationTransport::Kind::kHttpStream,
      format, *client_context_, *emulation_);
  if (admission_->enabled()) stream->session().SetAdmitted(std::move(ip), must_recover);
  ForwardProxyHeaders(request, stream->session());
  stream->Start(commands, std::move(headers));
}

void Server::Emulation(http::HttpConnection& connection, http::Request& request) {
  std::string headers;
  if (!Cors(connection, request, "POST, OPTIONS", &headers)) return;
  if (request.body.size() > config_.emulation_max_request_body_size) {
    stats::RecordEmulationRequest(stats::EmulationOutcome::kTooLarge);
    return Refuse(connection, request, 413, "emulation request too large", headers);
  }
  proto::EmulationRequest decoded;
  std::string why;
  if (!proto::DecodeEmulationRequest(request.body, IsProtobuf(request), &decoded, &why)) {
    stats::RecordEmulationRequest(stats::EmulationOutcome::kBadRequest);
    const std::string remote = connection.PeerIp();
    log::Write(spdlog::level::info, {{"remote", remote}, {"reason", why}},
               "emulation: bad request from {}: {}", remote, why);
    return Refuse(connection, request, 400, "bad emulation request: " + why, headers);
  }
  const auto route = emulation_->Dispatch(std::move(decoded));
  if (route == proto::EmulationRegistry::Route::kUnknownNode) {
    stats::RecordEmulationRequest(stats::EmulationOutcome::kUnknownNode);
    return Refuse(connection, request, 404, "unknown node", headers);
  }
  // 204 as for an ended session: the stream, not this answer, tells the client.
  stats::RecordEmulationRequest(route == proto::EmulationRegistry::Route::kNoSession
                                    ? stats::EmulationOutcome::kNoSession
                                    : stats::EmulationOutcome::kAccepted);
  connection.Respond(http::BuildResponse(204, "text/plain", {}, request.keep_alive, headers),
                     request.keep_alive);
}

}  // namespace hermod::app
