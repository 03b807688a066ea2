// The one configuration struct. Values come from the embedded defaults below, then a JSON
// file, then HERMOD_* environment variables, then command-line flags; each later source
// overrides the earlier. Every key is listed once, in config.cc's field table, which drives
// the JSON reader, the environment reader, validation errors and `hermod genconfig`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hermod::config {

struct Config {
  std::string bind = "0.0.0.0";
  uint64_t port = 8000;
  uint64_t workers = 0;  // 0: one per core
  bool echo = false;     // serve /connection/echo
  std::string log_level = "info";
  uint64_t backlog = 1024;
  uint64_t read_buffer_bytes = 512 * 1024;  // per loop, not per connection
  uint64_t shutdown_timeout_ms = 5000;

  struct Http {
    uint64_t max_header_bytes = 8192;
    uint64_t max_headers = 64;
    uint64_t max_body_bytes = 1 << 20;
    uint64_t keepalive_timeout_ms = 30000;
  } http;

  struct WebSocket {
    uint64_t max_message_bytes = 1 << 20;
    uint64_t handshake_timeout_ms = 5000;
    uint64_t ping_interval_ms = 25000;
    uint64_t pong_timeout_ms = 10000;
    uint64_t idle_timeout_ms = 0;  // 0: off
    uint64_t max_write_buffer_bytes = 4 << 20;
    uint64_t close_timeout_ms = 2000;          // wait for the peer's Close after ours
    std::vector<std::string> allowed_origins;  // empty: same host only; "*": any
    std::vector<std::string> subprotocols;
    struct Compression {
      bool enabled = true;
      // Both default to no context takeover: one deflate stream per loop then serves every
      // connection, instead of ~300 KiB of zlib state per connection.
      bool server_no_context_takeover = true;
      bool client_no_context_takeover = true;
      uint64_t server_max_window_bits = 15;
      uint64_t client_max_window_bits = 15;
      uint64_t level = 1;
      uint64_t min_size = 64;
    } compression;
  } websocket;

  struct Tls {
    std::string cert_file;
    std::string key_file;
  } tls;
};

// Each returns false with *error naming the key (or the file) on failure.
bool ApplyJson(const std::string& json, Config& config, std::string* error);
bool ApplyFile(const std::string& path, Config& config, std::string* error);
bool ApplyEnvironment(char** environment, Config& config, std::string* error);
bool Validate(const Config& config, std::string* error);
// The whole config as JSON (genconfig, and the log at start-up).
std::string ToJson(const Config& config);

}  // namespace hermod::config
