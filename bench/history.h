// The `history` scenario: history read latency. It fills K channels with N publications each
// through the server API `publish` (answered once stored), reads back each channel's kept
// window (its oldest kept offset, top offset and epoch), then R readers, each with one
// request in flight, read history at a bounded rate: a random channel, `since` a random
// offset of its window, `limit` L (hermod's client `history` command over WebSocket, or the
// API `history` over HTTP). Every answer is checked against what the fill stored: the
// publication count, each offset (contiguous from since + 1), each publication's stamp
// (channel and fill sequence for that offset), the epoch and the top offset. A wrong answer
// counts as an error and never as a read: the figures are latency (request sent → answer
// checked) and checked reads/s. With -p nats the same against nats-server -js alone (history.cc):
// each read is L JetStream direct gets by sequence, written at once, each answer checked the
// same way. Self-contained: one epoll loop on one thread.
#pragma once

#include <cstdint>
#include <string>

#include "run_config.h"

namespace hermod::bench {

struct HistoryOptions {
  uint32_t channels = 10;   // K
  uint32_t fill = 100;      // publications per channel (N); the server's history_size keeps them
  uint32_t limit = 10;      // L: publications per read (fewer when the window is shorter)
  uint32_t publishers = 8;  // fill: API requests in flight
  double rate = 0;          // reads/s in all; 0: as fast as the readers' answers
  uint64_t reads = 0;       // reads in all; 0: until the duration ends
  bool api = false;         // readers call /api/history instead of the client command
  std::string api_url;      // http://host:port of the API (default: -u's host:port)
  std::string api_key = "k";
  std::string prefix = "hbhist";  // channel k is prefix + k
  std::string json_path;
  bool quiet = false;
};

// Runs the scenario against config's first target (readers: config.connections, payload
// config.size, time bound config.duration_s of reads + config.drain_s for answers in flight).
// Returns 0 when at least one read was checked and none was wrong or failed, 1 when the
// setup failed (fill refused, window not as filled, readers not connected), 6 otherwise.
int RunHistory(const RunConfig& config, const HistoryOptions& options);

}  // namespace hermod::bench
