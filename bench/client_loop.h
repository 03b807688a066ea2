// One client event loop on its own thread: an edge-triggered epoll set of non-blocking bench
// connections that it opens (at the ramp rate), upgrades, sets up through the protocol
// adapter, drives through the scenario (paced or full-speed publishing, connection churn) and
// closes, recording everything into its own RunStats.
//
// The loop follows the server's own discipline: all frames produced for a connection in one
// iteration leave in one write at the end of it (the flush list), the read buffer belongs to
// the loop rather than to each connection, and nothing is shared with other loops except the
// phase it reads and the progress counters it publishes (loop_control.h).
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "adapter.h"
#include "client_connection.h"
#include "loop_control.h"
#include "run_config.h"
#include "run_stats.h"
#include "ws/deflate.h"
#include "ws/message_reader.h"

namespace hermod::bench {

class ClientLoop {
 public:
  // indices: the global connection indices this loop owns (for plans); slots for the connect
  // scenario, where each is reused for connection after connection.
  ClientLoop(const RunConfig& config, std::vector<uint32_t> indices, LoopControl& control,
             LoopProgress& progress, uint64_t seed);
  ~ClientLoop();
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  // Runs until the runner sets Phase::kStop and every connection is closed.
  void Run();
  RunStats& stats() { return stats_; }

 private:
  friend struct ClientConnection;

  void Open(ClientConnection& c, uint64_t now);
  void OnEvent(ClientConnection& c, uint32_t events);
  void OnConnected(ClientConnection& c);
  void ReadAll(ClientConnection& c, bool hangup);
  void OnBytes(ClientConnection& c, uint8_t* data, size_t len);
  void OnUpgradeResponse(ClientConnection& c, uint8_t* data, size_t len);
  bool AcceptExtensions(ClientConnection& c, std::string_view extensions);
  // A stream subscriber (-p sse, http_stream): its request, its chunked body, one text line.
  void StreamRequest(ClientConnection& c, const Target& target);
  void OnStreamBytes(ClientConnection& c, const char* data, size_t len);
  void StreamLine(ClientConnection& c, std::string_view line);
  void Flush(ClientConnection& c);
  void MarkDirty(ClientConnection& c);
  void FlushDirty();
  void SendFrame(ClientConnection& c, ws::Opcode opcode, std::string_view payload);
  void StartClose(ClientConnection& c, uint16_t code, uint64_t now);
  void CloseSocket(ClientConnection& c);
  void Fail(ClientConnection& c, std::string_view reason);
  void Ready(ClientConnection& c);
  void Deliver(ClientConnection& c, std::string_view payload);
  void Told(ClientConnection& c);
  void PublishOne(ClientConnection& c, uint64_t now);
  void PublishStand(ClientConnection& c, uint64_t now);

  void OpenDue(uint64_t now);
  void StartMeasure(uint64_t now);
  void RunTimers(uint64_t now);
  bool PumpFullSpeed(uint64_t now);  // true when some publisher could send more right away
  void Churn(uint64_t now);
  void CheckTimeouts(uint64_t now);
  void CloseAll(uint64_t now);
  void PublishProgress();
  uint64_t SecondOf(uint64_t now) const;

  const RunConfig& config_;
  const Scenario scenario_;
  std::unique_ptr<Adapter> adapter_;
  LoopControl& control_;
  LoopProgress& progress_;
  RunStats stats_;
  int epoll_fd_ = -1;
  std::vector<sockaddr_in> targets_;  // connection i goes to targets_[i % size]
  sockaddr_in source_{};
  bool bind_source_ = false;
  ws::ReaderLimits limits_;
  ws::ReaderLimits deflate_limits_;  // limits_ with RSV1 allowed
  // --deflate: one Deflater per agreed client window (8..15), reset after every message, so
  // that all connections share it; and one Inflater for servers without context takeover.
  std::array<std::unique_ptr<ws::Deflater>, 16> deflaters_;
  std::unique_ptr<ws::Inflater> shared_inflater_;
  std::string deflated_;
  std::vector<std::unique_ptr<ClientConnection>> conns_;
  std::vector<ClientConnection*> dirty_;
  std::vector<ClientConnection*> full_speed_;  // rate 0 publishers that are not echo loops
  std::vector<ClientConnection*> churners_;    // stand: reconnected during the measure
  size_t setup_count_ = 0;                     // conns_ opened in setup (churners come last)
  std::vector<uint8_t> read_buf_;
  std::string payload_;
  std::string scratch_;
  uint64_t rng_;

  // Paced publishers: (due time, connection) in a min-heap.
  using Timer = std::pair<uint64_t, ClientConnection*>;
  struct Later {
    bool operator()(const Timer& a, const Timer& b) const { return a.first > b.first; }
  };
  std::priority_queue<Timer, std::vector<Timer>, Later> timers_;
  uint64_t interval_ns_ = 0;

  size_t next_to_open_ = 0;
  uint64_t setup_start_ns_ = 0;
  uint64_t measure_start_ns_ = 0;
  uint64_t max_latency_ns_ = 0;  // the slowest delivery so far (LoopProgress::max_latency_ns)
  uint64_t churn_started_ = 0;
  bool measuring_ = false;
  bool draining_ = false;
  bool stopping_ = false;
  uint64_t stop_deadline_ns_ = 0;
  uint64_t next_timeout_check_ns_ = 0;
  uint64_t open_ = 0;
  uint64_t ready_ = 0;
  uint64_t failed_ = 0;
  uint64_t refused_ = 0;  // publishes the server refused (kPublishRefused)
  uint64_t publishers_done_ = 0;
};

}  // namespace hermod::bench
