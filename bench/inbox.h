// The `inbox` scenario: reliable delivery measured end to end. N users each hold one
// connection; N × M publications go into their inboxes through the server's durable path
// (hermod: HTTP API `publish` to `inbox:#u<i>`, answered once stored; NATS JetStream: a
// publish with a reply subject, answered with its PubAck once stored); each user acks what it
// receives and the run counts a publication acked only when the server confirmed the ack
// (hermod: the `hermod.ack` RPC's reply; JetStream: the reply to an ack sent as a request).
// Reports acked deliveries/s, publish→ack latency (publish request sent → ack confirmed),
// and every loss, duplicate and redelivery. Self-contained: one epoll loop on one thread,
// apart from the fan-out scenarios' ClientLoop, since half of its connections speak HTTP.
#pragma once

#include <cstdint>
#include <string>

#include "run_config.h"

namespace hermod::bench {

struct InboxOptions {
  uint64_t per_user = 100;   // publications per user (M)
  uint32_t publishers = 16;  // concurrent publishers, each with one request in flight
  // Publications per request: hermod, one API `batch` of that many `publish` commands with
  // parallel: true (answered once all are stored); JetStream, that many publishes written
  // at once, the next ones sent once every PubAck is in.
  uint32_t batch = 1;
  double rate = 0;        // publications/s in all; 0: as fast as the publishers' answers
  bool ack_each = false;  // one ack per delivery instead of one per read
  // hermod, one ack per read: {channel, up_to: the highest offset read} instead of the
  // offsets read. Unsafe when pushes arrive out of offset order (they can: publications to
  // one inbox through two loops are delivered by whichever stores first): it acks an offset
  // not yet received, which then is never delivered. Kept to show that.
  bool ack_up_to = false;
  std::string api_url;  // hermod: http://host:port of the API (default: -u's host:port)
  std::string api_key = "k";
  std::string secret = "hermod-bench";  // hermod: token_hmac_secret_key for the users' JWTs
  std::string ns = "inbox";             // hermod: the inbox namespace
  std::string js_storage = "file";      // nats: the stream's storage (file | memory)
  std::string json_path;
  bool quiet = false;
};

// Runs the scenario against config's first target (users: config.connections, time bound:
// config.duration_s + config.drain_s after the setup). Returns the process exit code: 0 when
// every published publication was acked once and nothing was lost, 1 when the setup failed,
// 6 when a publication was lost or unacked at the end.
int RunInbox(const RunConfig& config, const InboxOptions& options);

}  // namespace hermod::bench
