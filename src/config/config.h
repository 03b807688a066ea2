// The one configuration struct. Values come from the embedded defaults below, then a JSON
// file, then HERMOD_* environment variables, then command-line flags; each later source
// overrides the earlier. Every key is listed once, in config.cc's field table, which drives
// the JSON reader, the environment reader, validation errors and `hermod genconfig`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "json/string_writer.h"

namespace hermod::config {

// A duration key: JSON "300s", "500ms", "2m", "1h" (Centrifugo v5 style) or an integer of
// seconds; the environment takes the same strings.
struct Duration {
  uint64_t ms = 0;
};
// A duration's text: "300s", "500ms", "2m", "1h"; false on anything else (saturates).
bool ParseDuration(std::string_view text, uint64_t* ms);

// A publication's priority class, in net::Priority's order (core converts with a cast, and
// checks the order): slow consumers drop low first, critical last.
enum class Priority : uint8_t { kCritical = 0, kHigh = 1, kNormal = 2, kLow = 3 };
// "all": every publication reaches every subscriber; "latest": a slow subscriber gets the
// newest value of the channel instead of a backlog.
enum class Delivery : uint8_t { kAll = 0, kLatest = 1 };

// Centrifugo v5 channel options: the top-level keys apply to channels without a namespace,
// each entry of `namespaces` carries its own set for channels `name:...`.
struct ChannelOptions {
  bool presence = false;
  bool join_leave = false;
  bool force_push_join_leave = false;
  uint64_t history_size = 0;  // 0: no history
  Duration history_ttl;       // required with history_size
  bool force_recovery = false;
  bool allow_publish_for_client = false;
  bool allow_publish_for_subscriber = false;
  bool allow_subscribe_for_client = false;
  bool allow_subscribe_for_anonymous = false;
  bool allow_history_for_client = false;
  bool allow_history_for_subscriber = false;
  bool allow_presence_for_client = false;
  bool allow_presence_for_subscriber = false;
  bool allow_user_limited_channels = false;  // `name#u1,u2`: only those users subscribe
  // Delta compression a subscriber may ask for (Centrifugo's; only "fossil" exists).
  std::vector<std::string> allowed_delta_types;
  // hermod's push batching: the pushes one loop delivers to a channel in one iteration leave
  // as one newline-joined frame of at most this many bytes (0: one frame per push), after
  // waiting push_coalesce_delay for more (0: no wait).
  uint64_t push_coalesce_max_bytes = 64 * 1024;
  Duration push_coalesce_delay;
  // Slow consumers: a publication's priority when the API gives none (low, normal, high,
  // critical), and "latest" for state-like channels where a slow client gets the newest
  // value instead of a backlog ("all": every publication).
  Priority default_priority = Priority::kNormal;
  Delivery delivery = Delivery::kAll;
  // Losses acceptable (tickers, cursors): a subscriber that falls behind silently misses
  // publications of this channel. Otherwise (the default) it is told at once: unsubscribe
  // 2500, or disconnect 3008. "latest" delivery and low priority are droppable too.
  bool droppable = false;
  // Presence join/leave pushes of a channel collected for this long and sent as one message
  // of at most join_leave_batch_max pushes; a join and a leave of the same client within the
  // window cancel out (0: each push leaves at once, riding push coalescing only).
  Duration join_leave_batch_delay;
  uint64_t join_leave_batch_max = 100;
  // Publications into one channel of this namespace per second, node-wide, from clients and
  // the server API alike (0: no limit; the channel's token bucket is in the hub, under its
  // shard lock); over it: error 111. Per channel, not per namespace in total: docs/delivery.md.
  uint64_t publish_rate_limit = 0;
  uint64_t publish_rate_burst = 10;
  // Backend proxies (Centrifugo's names): a client's subscribe without a token and its
  // publications go to the application over HTTP (proxy_subscribe_endpoint,
  // proxy_publish_endpoint), which decides instead of the allow_* options.
  bool proxy_subscribe = false;
  bool proxy_publish = false;
  // A subscription the subscribe proxy gave an `expire_at` is refreshed by the server through
  // proxy_sub_refresh_endpoint (extended, or ended with unsubscribe 2501) instead of by the
  // client.
  bool proxy_sub_refresh = false;
  // Granular proxy mode (granular_proxy_mode): the named proxy (Config::proxies) each of
  // these calls; set, it turns that proxy on for the namespace.
  std::string subscribe_proxy_name;
  std::string publish_proxy_name;
  std::string sub_refresh_proxy_name;
  // Durable per-user inboxes (core/inbox.h): every publication is stored until the user acks
  // it (RPC hermod.ack), delivered again after ack_timeout (doubling, at most 16 times) and on
  // every connect, dead-lettered after max_deliveries, on reject, past inbox_ttl, or to make
  // room when inbox_overflow is "dead_letter_oldest" ("reject": a full inbox refuses).
  bool inbox = false;
  uint64_t inbox_size = 1000;
  Duration inbox_ttl{168ull * 3600 * 1000};
  Duration ack_timeout{30 * 1000};
  uint64_t max_deliveries = 5;
  std::string inbox_overflow = "reject";
  // A channel that gets a receipt ({channel, offset, status, at}) on each ack and
  // dead-lettering ("": none).
  std::string receipts_channel;
};

struct Namespace {
  std::string name;
  ChannelOptions options;
};

// A named proxy of granular proxy mode (Centrifugo v5's `proxies` entry).
struct NamedProxy {
  std::string name;
  std::string endpoint;  // http:// or https://
  Duration timeout{1000};
  std::vector<std::string> http_headers;         // request headers forwarded (allowlist)
  std::vector<std::string> static_http_headers;  // "Name: value"
  bool include_connection_meta = false;
};
// rpc_namespaces: rpc methods `<name>:...` go to the named proxy rpc_proxy_name.
struct RpcNamespace {
  std::string name;
  std::string rpc_proxy_name;
};

// An async consumer (Centrifugo v6.2's `consumers` entry): server API commands read from a
// NATS JetStream durable consumer (app/consumers.h). Only type "nats_jetstream" runs.
struct Consumer {
  std::string name;
  bool enabled = false;
  std::string type;
  struct NatsJetStream {
    std::string url = "nats://127.0.0.1:4222";
    std::string stream_name;  // must exist: hermod creates or updates the consumer only
    // The consumer's filter subject (at most one with hermod's libnats; none: the stream's).
    std::vector<std::string> subjects;
    std::string durable_consumer_name;
    std::string deliver_policy = "new";  // "new" or "all", when the consumer is created
    uint64_t max_ack_pending = 100;      // commands executing at once
    // hermod's: how long a fetched command may stay unacked before the server delivers it
    // again (after a crash, the delay before the commands that were executing run again).
    Duration ack_wait{30000};
    // With this header the body is the bare request and the header its method.
    std::string method_header = "centrifugo-method";
  } nats_jetstream;
};

// TLS for every NATS connection hermod makes (the broker's own client and the libnats
// stores), like nats.go's options: a tls:// URL or enabled asks for it; a server whose INFO
// says tls_required gets it anyway. The peer's certificate and host name are verified unless
// insecure_skip_verify.
struct NatsTls {
  bool enabled = false;
  std::string ca_file;      // PEM CAs trusted for the server ("": the system's)
  std::string cert_file;    // client certificate chain (nats-server's verify: true)
  std::string key_file;     // its private key
  std::string server_name;  // SNI and the name checked ("": each URL's host)
  bool insecure_skip_verify = false;
};

struct Config {
  std::string bind = "0.0.0.0";
  uint64_t port = 8000;
  uint64_t workers = 0;  // 0: one per core
  bool echo = false;     // serve /connection/echo
  std::string log_level = "info";
  std::string log_format = "text";  // text, or json: one object per line
  // Log lines waiting for stderr's reader (app/log_buffer.h): a log call never waits for the
  // reader; past this many bytes buffered, a line is dropped and counted.
  uint64_t log_buffer_bytes = 1 << 20;
  // At exit (and on a flush), how long to wait for the buffered lines to be written.
  uint64_t log_flush_timeout_ms = 5000;
  uint64_t backlog = 1024;
  uint64_t read_buffer_bytes = 512 * 1024;  // per loop, not per connection
  // Plain-TCP replies written in one io_uring submission per loop iteration instead of one
  // send each (net::Loop::EnableIoUring); TLS connections and queued output are unchanged.
  bool io_uring = false;
  uint64_t shutdown_timeout_ms = 5000;

  struct Http {
    uint64_t max_header_bytes = 8192;
    uint64_t max_headers = 64;
    uint64_t max_body_bytes = 1 << 20;
    uint64_t keepalive_timeout_ms = 30000;
    // One HTTP response (an API answer) is written whole however slowly the peer reads; past
    // this it is refused with 500 instead.
    uint64_t max_response_bytes = uint64_t{64} << 20;
  } http;

  struct WebSocket {
    uint64_t max_message_bytes = 1 << 20;
    uint64_t handshake_timeout_ms = 5000;
    uint64_t ping_interval_ms = 25000;
    uint64_t pong_timeout_ms = 10000;
    uint64_t idle_timeout_ms = 0;  // 0: off
    uint64_t max_write_buffer_bytes = 4 << 20;
    uint64_t fragment_bytes = 0;       // split outgoing messages into frames of this size; 0: never
    uint64_t close_timeout_ms = 2000;  // wait for the peer's Close after ours
    // The JSON protocol's replies and pushes queued to one connection together leave as one
    // message of newline-joined objects, of at most this payload; 0: never joined.
    uint64_t join_max_bytes = 16 * 1024;
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

  // Slow consumers and publisher backpressure (net::SendLimits, core::Hub::Limits): per
  // connection, low pushes are not queued past drop_low_bytes queued, normal ones past
  // drop_normal_bytes (silently only on channels that accept losses; otherwise the
  // subscriber is told: unsubscribe 2500, or 3008); a connection whose critical or high
  // pushes wait urgent_deadline_ms, whose normal or low pushes wait normal_deadline_ms, or
  // whose queue passes websocket.max_write_buffer_bytes, is cut (3008). Per loop: past
  // loop_budget_bytes held by all its queues (their own bytes and a record per queued
  // frame; shared frames are not counted per queue), low and normal pushes go only to
  // connections with nothing queued; past inbox_budget_bytes undelivered, publications to
  // channels on that loop are refused (API error 111).
  struct SendQueue {
    uint64_t drop_low_bytes = 512 * 1024;
    uint64_t drop_normal_bytes = 1 << 20;
    uint64_t urgent_deadline_ms = 5000;
    uint64_t normal_deadline_ms = 10000;
    uint64_t loop_budget_bytes = 256ull << 20;
    uint64_t inbox_budget_bytes = 64ull << 20;
    // Adaptive coalescing (net/event_loop.h): a loop that has worked this long without an
    // idle wait lets pushes join the next write instead of writing each; 0: never by time.
    uint64_t coalesce_when_busy_us = 1000;
  } send_queue;
  // Publications with the same idempotency_key on a channel within this window publish once.
  Duration idempotency_window{5 * 60 * 1000};
  // Server API publish/broadcast with `delay` or `deliver_at`: at most this far ahead.
  Duration schedule_max_delay{720ull * 3600 * 1000};
  // Crash tests only: the process kills itself (SIGKILL) at this point. "scheduled_published":
  // once a scheduled publication is published (in a cluster, after the broker's flush), before
  // it is forgotten. Empty: never.
  std::string fault_kill_at;
  // How often an idle loop checks whether freed heap memory should go back to the kernel
  // (malloc_trim; app/memory_trim.h); 0: never.
  Duration memory_trim_interval{10000};

  // GET /health: the checks behind the level and their thresholds. A check's value is a
  // percentage of its budget: at degraded_percent it is degraded, then unhealthy, then
  // critical. A budget of 0 turns the check off (max_connections 0: the process's fd limit).
  struct Health {
    uint64_t check_interval_ms = 1000;
    uint64_t loop_deadline_ms = 500;  // a loop slower to answer its mailbox is unresponsive
    uint64_t memory_budget_bytes = 0;
    uint64_t max_connections = 0;
    uint64_t degraded_percent = 80;
    uint64_t unhealthy_percent = 100;
    uint64_t critical_percent = 120;
    uint64_t history_size = 16;  // transitions kept for /health
    // Error rates, counted over the last error_window_ms and graded against their budget
    // per second like the checks above (0 turns a check off): connections closed for a
    // protocol error (WebSocket 1002/1007/1009, client protocol 3501 bad request), and
    // connections closed as slow consumers (write buffer overflow, send-queue disconnects).
    uint64_t error_window_ms = 10000;
    uint64_t max_protocol_error_closes_per_second = 50;
    uint64_t max_slow_consumer_closes_per_second = 10;
  } health;

  struct Tls {
    std::string cert_file;
    std::string key_file;
  } tls;

  // The client protocol (Centrifugo v5 names, top-level keys).
  bool allow_anonymous_connect_without_token = false;
  // Unidirectional transports (Centrifugo v5 keys): off unless enabled, then served on
  // /connection/uni_websocket, /connection/uni_sse, /connection/uni_http_stream.
  bool uni_websocket = false;
  uint64_t uni_websocket_message_size_limit = 65536;  // the connect request's bound
  bool uni_sse = false;
  uint64_t uni_sse_max_request_body_size = 65536;  // a POST's connect request (or cf_connect)
  bool uni_http_stream = false;
  uint64_t uni_http_stream_max_request_body_size = 65536;
  // Bidirectional emulation (Centrifugo v5 keys): /connection/http_stream and /connection/sse,
  // with client commands POSTed to /emulation (on when either is).
  bool http_stream = false;
  uint64_t http_stream_max_request_body_size = 65536;  // the connect request
  bool sse = false;
  uint64_t sse_max_request_body_size = 65536;        // a POST's connect request (or cf_connect)
  uint64_t emulation_max_request_body_size = 65536;  // one /emulation request
  // hermod's HTML fragments for htmx: SSE on /connection/fragments, and the WebSocket twin.
  bool fragments = false;
  bool fragments_websocket = false;  // /connection/fragments/websocket, htmx's ws extension
  // Each connection of user 42 is subscribed server-side to `<namespace>:#42` on connect.
  bool user_subscribe_to_personal = false;
  std::string user_personal_channel_namespace;
  uint64_t client_channel_limit = 128;
  uint64_t channel_max_length = 255;
  std::string channel_private_prefix = "$";  // channels that need a subscription token
  uint64_t client_recovery_max_publication_limit = 300;
  // A client's `history` returns at most this many publications (Centrifugo's default); 0:
  // no cap by count. Replies are also cut to the connection's write budget (README limits).
  uint64_t client_history_max_publication_limit = 300;
  // Centrifugo's rule: channel names are ASCII; others are refused with 107. false: any
  // UTF-8 (the WebSocket layer has checked it already).
  bool channel_name_ascii_only = true;
  // A channel's history position (epoch, top offset) outlives its stream by this long, so
  // that a channel whose last subscriber left continues the same stream and its clients
  // recover (Centrifugo's history_meta_ttl, 30 days); 0: forgotten with the channel. At
  // most history_meta_max_channels positions are kept; past it the oldest is forgotten.
  Duration history_meta_ttl{30ull * 24 * 3600 * 1000};
  uint64_t history_meta_max_channels = 100000;
  // Where history (with idempotency keys) and presence live (src/store/): "memory", in
  // this process; "sqlite", history and idempotency keys in the file sqlite.path (presence
  // stays in memory); history also "nats" (JetStream at nats.url, shared by the cluster).
  // `engine` (Centrifugo's key) sets history and idempotency.
  std::string engine = "memory";
  std::string history_engine = "memory";
  // "nats": presence in a NATS KV bucket at nats.url (nats.presence), seen from every node.
  std::string presence_engine = "memory";
  struct Sqlite {
    std::string path = "hermod.db";  // relative: to the working directory
    uint64_t max_batch = 1024;       // writes per transaction (group commit)
    uint64_t max_queue = 65536;      // appends waiting for the disk; past it, refused
    // Publications a transaction deletes by history_ttl, and past history_size beyond as
    // many as it appends (a backlog goes on in the next transactions).
    uint64_t max_trim = 1024;
    // Read pause: publishing connections stop being read at this many writes waiting for
    // the writer (0: never), and are read again at resume_reads_at or fewer.
    uint64_t pause_reads_at = 4096;
    uint64_t resume_reads_at = 1024;
    // "full": a commit is fsynced (survives power loss); "normal": survives kill -9 only.
    std::string synchronous = "full";
    // true: deleted publications (trimmed, expired, removed) are overwritten with zeros in
    // the file; false: their space is reused by later rows, several times cheaper a delete.
    bool secure_delete = false;
  } sqlite;
  // presence_engine nats: an entry not refreshed for this long is gone (a killed node's);
  // live nodes refresh theirs every third of it (Centrifugo's global_presence_ttl).
  Duration presence_ttl{60000};
  Duration ping_interval{25000};  // the protocol's {} pings; the client answers {}
  Duration pong_timeout{8000};
  Duration client_stale_close_delay{10000};    // a connection that sends no connect: 3502
  Duration client_expired_close_delay{25000};  // grace after the token's exp before 3005
  // The server HTTP API, POST /api/<method>: `Authorization: apikey KEY` or `X-API-Key: KEY`.
  // Empty: the API answers 401 to every request.
  std::string api_key;
  // The live dashboard, GET /dashboard (Centrifugo v5 names): off unless admin is true; then
  // every request needs HTTP Basic credentials whose password is admin_password.
  bool admin = false;
  std::string admin_password;
  // Connection and subscription JWTs: HMAC secret, PEM public keys, optional aud/iss checks.
  std::string token_hmac_secret_key;
  std::string token_rsa_public_key;
  std::string token_ecdsa_public_key;
  std::string token_audience;
  std::string token_issuer;
  // Admission (core/admission.h). Centrifugo v5 names where Centrifugo has the
  // limit, all 0 (off) by default as there: WebSocket client connections on this node (503
  // with Retry-After at the upgrade), per user (disconnect 3504 at connect), and new
  // connections per second on this node (503).
  uint64_t client_connection_limit = 0;
  uint64_t client_user_connection_limit = 0;
  uint64_t client_connection_rate_limit = 0;
  struct Admission {
    // Above this many connections (and up to client_connection_limit) only a connect that
    // carries a recovery position is admitted; others get error 111, temporary. 0: off.
    uint64_t soft_connection_limit = 0;
    uint64_t ip_connection_limit = 0;  // open connections per client IP (429); 0: off
    uint64_t ip_connection_rate = 0;   // new connections per second per IP (429); 0: off
    uint64_t ip_connection_burst = 20;
    uint64_t ip_table_size = 100000;  // client IPs remembered at most
    Duration retry_after{5000};       // the Retry-After of a 503 or 429
    // Accepts per second on each loop; past it the listener pauses and connections wait in
    // the kernel's backlog (a reconnect storm is smoothed, not refused). 0: off.
    uint64_t accept_rate_per_loop = 0;
  } admission;
  // Per-connection command rate limits (token buckets; over: error 111). `rate` per second,
  // 0: off. A connection refused disconnect_after times within disconnect_window is
  // disconnected with 3013 (0: never).
  struct CommandRateLimit {
    struct Bucket {
      uint64_t rate;
      uint64_t burst;
    };
    Bucket total{1000, 500};
    Bucket publish{100, 10};
    Bucket subscribe{100, 200};
    Bucket history{50, 50};
    Bucket presence{50, 50};
    Bucket rpc{100, 100};  // rpc and send
    uint64_t disconnect_after = 200;
    Duration disconnect_window{10000};
  } client_command_rate_limit;
  // Cluster mode (src/broker/): "memory" serves this node alone; "nats" joins the nodes that
  // share nats.url and nats.prefix (Centrifugo's broker: "nats"). History stays per node.
  std::string broker = "memory";
  struct Nats {
    std::string url = "nats://127.0.0.1:4222";
    std::string prefix = "hermod";  // the subject is <prefix>.broker
    Duration dial_timeout{1000};    // connect, and a blocked write's deadline
    Duration reconnect_wait{1000};  // between reconnect attempts (forever)
    Duration ping_interval{20000};  // silence before a keepalive PING
    uint64_t max_pings_out = 2;     // unanswered: the connection is dead
    // Accepted, unused by the broker since its connection is its own (broker/nats_client.h:
    // nothing is buffered while disconnected).
    uint64_t reconnect_buffer_bytes = 8 << 20;
    // Encoded sends waiting for the broker's client loop, and its unwritten output.
    uint64_t send_queue_bytes = 16 << 20;
    // Accepted, unused since the broker reads its socket on a loop (TCP's back-pressure and
    // nats-server's slow-consumer cut replace libnats's pending limit; docs/cluster.md).
    uint64_t receive_queue_bytes = 64 << 20;
    // Accepted, unused: libnats's message release, which the broker no longer uses.
    uint64_t release_batch = 32;
    uint64_t release_bytes = 64 * 1024;
    Duration unhealthy_after{0};  // disconnected this long: health unhealthy; 0: degraded only
    NatsTls tls;
    // Channels a lost notice names (broker/lost_channels.h); past it the notice says all.
    uint64_t lost_channels_max = 4096;
    // history_engine "nats" (store/nats_history.h): the JetStream stream holding every
    // channel's history, its replicas and storage, and the engine's threads.
    struct JetStream {
      std::string stream = "HERMOD_HISTORY";
      uint64_t replicas = 1;
      std::string storage = "file";  // "file" or "memory"
      uint64_t workers = 4;
    } jetstream;
    struct Presence {  // presence_engine nats: its KV bucket
      std::string bucket = "hermod_presence";
      uint64_t replicas = 1;
      std::string storage = "file";  // or "memory"
      // Threads that read presence (`presence`, `presence_stats`) at once; writes keep
      // their own thread.
      uint64_t readers = 4;
    } presence;
    // engine nats: how long a node's claim on a due scheduled publication holds before
    // another node may fire it (store/nats_schedule.h): how late a firing whose node died
    // between claiming and publishing comes.
    Duration schedule_claim_lease{5000};
    // engine nats: keys of firings this node delivered to channels without history, kept
    // for idempotency_window so a firing repeated after a crash is dropped (at most these).
    uint64_t schedule_fire_keys = 100000;
    // engine nats: inbox_status reads at most this many entries from the KV bucket (one round
    // trip each) so it shows another node's change at once; past it, this node's copy.
    uint64_t inbox_status_read_through = 100;
    // history_engine nats: bytes of channel histories the engine's workers keep between reads,
    // so a read fetches only the messages stored since the last one (0: none kept).
    uint64_t history_read_cache_bytes = 64ull << 20;
  } nats;
  // The circuit breaker around broker sends (core/circuit_breaker.h): open after
  // failure_threshold failures within window; after open_timeout, half_open_trials sends.
  struct BrokerBreaker {
    uint64_t failure_threshold = 5;
    Duration window{10000};
    Duration open_timeout{5000};
    uint64_t half_open_trials = 1;
  } broker_breaker;
  // Backend proxies (src/proxy/; Centrifugo v5's flat keys): each event of a client is POSTed
  // as JSON to its endpoint (empty: off), answered within its timeout. connect: a connect
  // without a token; refresh: an expiring connection proxied at connect; rpc: every `rpc`;
  // subscribe, publish: the namespaces that turn them on.
  std::string proxy_connect_endpoint;
  Duration proxy_connect_timeout{1000};
  std::string proxy_refresh_endpoint;
  Duration proxy_refresh_timeout{1000};
  std::string proxy_subscribe_endpoint;
  Duration proxy_subscribe_timeout{1000};
  std::string proxy_publish_endpoint;
  Duration proxy_publish_timeout{1000};
  std::string proxy_rpc_endpoint;
  Duration proxy_rpc_timeout{1000};
  std::string proxy_sub_refresh_endpoint;
  Duration proxy_sub_refresh_timeout{1000};
  // The client's HTTP request headers forwarded to every proxy request (none unless listed:
  // Cookie, Authorization, X-Real-Ip, ...).
  std::vector<std::string> proxy_http_headers;
  // Fixed headers added to every proxy request: JSON `{"Name": "value"}`, kept as
  // "Name: value" lines (JSON only: no environment form).
  std::vector<std::string> proxy_static_http_headers;
  // The connection's `meta` (from its token or the connect proxy's result) in every proxy
  // request after connect.
  bool proxy_include_connection_meta = false;
  // hermod's bounds on the proxies' HTTP client: requests in flight per endpoint and per
  // client connection (past either: error 111, temporary), keep-alive connections kept per
  // endpoint, and the largest answer read (past it: the call fails).
  struct ProxyClient {
    uint64_t max_in_flight = 4096;
    uint64_t max_in_flight_per_connection = 16;
    uint64_t max_connections_per_endpoint = 64;
    uint64_t max_response_bytes = 1 << 20;
    // https endpoints are verified against the system's CA store; a PEM file here is used
    // instead (a backend with a private CA).
    std::string ca_file;
  } proxy_client;
  // The circuit breaker of each proxy endpoint (core/circuit_breaker.h), as broker_breaker.
  struct ProxyBreaker {
    uint64_t failure_threshold = 10;
    Duration window{10000};
    Duration open_timeout{5000};
    uint64_t half_open_trials = 1;
  } proxy_breaker;
  std::vector<Consumer> consumers;  // JSON only (no environment form)
  // Granular proxy mode: every proxied event names its proxy among `proxies` instead of
  // the proxy_*_endpoint keys (which it ignores): connect_proxy_name, refresh_proxy_name,
  // rpc_proxy_name (rpc methods without a namespace), rpc_namespaces, and the namespaces'
  // subscribe_proxy_name, publish_proxy_name, sub_refresh_proxy_name.
  bool granular_proxy_mode = false;
  std::vector<NamedProxy> proxies;  // JSON only
  std::string connect_proxy_name;
  std::string refresh_proxy_name;
  std::string rpc_proxy_name;
  std::vector<RpcNamespace> rpc_namespaces;  // JSON only
  ChannelOptions channel;                    // channels outside any namespace
  std::vector<Namespace> namespaces;         // JSON only (no environment form)
};

// Each returns false with *error naming the key (or the file) on failure. A Centrifugo v5 or
// v6 config is read too (centrifugo.h): keys with a hermod equivalent are mapped, and each
// key hermod does not support yet adds one line to *warnings (when given: "admin_secret:
// Centrifugo key not supported by hermod yet") and is ignored.
bool ApplyJson(const std::string& json, Config& config, std::string* error,
               std::vector<std::string>* warnings = nullptr);
bool ApplyFile(const std::string& path, Config& config, std::string* error,
               std::vector<std::string>* warnings = nullptr);
// Variables whose name and value both have the shape of a Kubernetes service link are
// skipped (IsKubernetesServiceLink); any other HERMOD_* variable must name a key.
bool ApplyEnvironment(char** environment, Config& config, std::string* error);
// The kubelet gives every container, for each Service of its namespace, variables named
// after the Service (Kubernetes docs, "Service" > "Discovering services" > "Environment
// variables"): a Service named hermod yields HERMOD_SERVICE_HOST=10.0.0.11,
// HERMOD_SERVICE_PORT=8000, HERMOD_SERVICE_PORT_HTTP=8000, HERMOD_PORT=tcp://10.0.0.11:8000,
// HERMOD_PORT_8000_TCP=tcp://10.0.0.11:8000 and HERMOD_PORT_8000_TCP_{PROTO,PORT,ADDR}; one
// named hermod-nats yields HERMOD_NATS_SERVICE_HOST and so on. They are not configuration.
// True when name=value is one of these shapes, value included, so that HERMOD_PORT=8000 is
// still the port key and HERMOD_PORT=tcp://10.0.0.11:8000 is Kubernetes'.
bool IsKubernetesServiceLink(std::string_view name, std::string_view value);
// Every key within the bounds of the field table (config.cc): numbers in their range, strings
// among their values or of their shape, with the key and the rule in the message; then the
// keys that constrain each other. checkconfig and serve both
// call it: serve never starts with a value checkconfig would refuse, nor aborts on one it
// accepted.
bool Validate(const Config& config, std::string* error);
// `engine: "nats"` is a cluster's one switch: fan-out (broker), history and presence all on
// NATS. It sets broker, history_engine and presence_engine to "nats" where they were left at
// "memory" (a key set to another engine stays). After every source is applied, before
// Validate.
void ResolveEngine(Config& config);
// Granular proxy mode: a namespace's *_proxy_name turns its proxy_subscribe, proxy_publish
// or proxy_sub_refresh on (the flat mode's switches). After every source, before Validate.
void ResolveProxies(Config& config);
// The numeric keys' ranges (durations in milliseconds), for tests and documentation.
struct KeyRange {
  std::string key;
  uint64_t min;
  uint64_t max;
  bool duration;
};
std::vector<KeyRange> KeyRanges();
// The whole config as JSON (genconfig, and the log at start-up).
std::string ToJson(const Config& config);
// s as a JSON string literal, quotes included (also for the CLI and token claims).
using json::AppendJsonString;

}  // namespace hermod::config
