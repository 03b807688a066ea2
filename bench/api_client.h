// The epoll client that the self-contained scenarios (inbox.h, history.h) build on: one loop
// on one thread, each connection either a WebSocket (upgraded when it opens) or an HTTP/1.1
// keep-alive connection to the server API. It owns what is the same for every such scenario:
// connecting, the upgrade, masked frames out, POSTs to /api, one write per connection per
// loop iteration (the dirty list), reading into one shared buffer, splitting HTTP answers and
// WebSocket messages, and the error tally. What a connection says and what an answer means
// is the scenario's, through the few virtual calls below. With -p nats the same connections
// speak NATS's text protocol over nats-server's WebSocket listener, split here into MSGs. The
// fan-out scenarios use ClientLoop (client_loop.h) instead: WebSocket only, through protocol
// adapters, one loop per thread.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "run_config.h"
#include "ws/frame_encoder.h"
#include "ws/message_reader.h"

namespace hermod::bench {

// The number at pos in s, 0 if none.
uint64_t ParseU64(std::string_view s, size_t pos);

struct ApiClient;

// One connection of an ApiClient. A scenario derives its own (what it asked, what it awaits)
// and answers OnMessage; pings and closes are answered here.
struct ApiConn : public ws::MessageHandler {
  explicit ApiConn(ApiClient& c) : client(c) {}
  void OnPing(std::string_view payload) override;
  void OnPong(std::string_view) override {}
  void OnClose(uint16_t code, std::string_view reason) override;

  ApiClient& client;
  int fd = -1;
  bool websocket = false;
  bool upgraded = false;
  bool ready = false;
  bool want_out = false;
  std::string key;  // Sec-WebSocket-Key, set before Open
  std::string in;   // HTTP bytes (upgrade response, API answers), or a scenario's carry
  std::string out;
  size_t out_sent = 0;
  ws::MessageReader reader;
  uint32_t stream_replies = 0;  // NATS: answers seen to NatsRecreateStream's two requests
};

struct ApiClient {
  // data_opcode: the opcode SendWs frames carry; api_key: the API's `apikey`.
  ApiClient(const RunConfig& c, ws::Opcode data_opcode, std::string api_key);
  virtual ~ApiClient() = default;

  // A connection lost or refused: the scenario counts it and closes it (Close).
  virtual void Fail(ApiConn& c, const std::string& reason) = 0;
  // A WebSocket connection upgraded: its first message.
  virtual void OnUpgraded(ApiConn& c) = 0;
  // An HTTP answer (head: status line and headers) on an API connection.
  virtual void OnHttpAnswer(ApiConn& c, std::string_view head, std::string_view body) = 0;
  // Everything readable on c has been read (and c is still open).
  virtual void OnReadDone(ApiConn&) {}
  // NATS (-p nats): a MSG or HMSG (reply empty when none, headers empty for a MSG); a PONG.
  virtual void OnNatsMsg(ApiConn& c, std::string_view subject, std::string_view reply,
                         std::string_view headers, std::string_view payload) = 0;
  virtual void OnNatsPong(ApiConn& c) = 0;

  void Error(const std::string& what);
  static bool Resolve(const std::string& host, uint16_t port, sockaddr_in* addr);
  // ws_addr from the target; api_addr and api_host from api_url (http://host:port), or the
  // target's when empty. False on a bad api_url.
  bool ParseApiUrl(const std::string& api_url);

  bool Open(ApiConn& c, const sockaddr_in& addr);
  void Close(ApiConn& c);
  void Dirty(ApiConn& c);
  void SendWs(ApiConn& c, std::string_view payload);
  void Post(ApiConn& c, std::string_view method, const std::string& body);
  void Flush(ApiConn& c);
  void FlushDirty();
  // One epoll_wait and what it reported, then every dirty connection flushed.
  void Loop(int timeout_ms);
  // NATS's text protocol carried in WebSocket messages: a message need not end on a whole
  // line or MSG, so what is left waits in c.in for the next one.
  void OnNatsMessage(ApiConn& c, std::string_view message);
  // The CONNECT line of every bench connection to nats-server.
  static std::string NatsConnect(bool headers);
  // Deletes the JetStream stream (gone or not) and creates it from create_json, the answers
  // to the subject _S; OnStreamReply reads them and sets c.ready once it is created.
  static std::string NatsRecreateStream(std::string_view stream, const std::string& create_json);
  void OnStreamReply(ApiConn& c, std::string_view payload);

  const RunConfig& config;
  const ws::Opcode data_opcode;
  const std::string api_key;
  int epoll_fd = -1;
  sockaddr_in ws_addr{};
  sockaddr_in api_addr{};
  std::string api_host;
  std::vector<uint8_t> buf = std::vector<uint8_t>(1 << 18);
  std::mt19937_64 rng{42};
  std::vector<ApiConn*> dirty;
  std::string first_error;
  std::map<std::string, uint64_t> errors;

 private:
  void OnReadable(ApiConn& c);
  void OnBytes(ApiConn& c, uint8_t* data, size_t len);
  void OnHttp(ApiConn& c, const char* data, size_t len);
  size_t ParseNats(ApiConn& c, std::string_view b);
};

}  // namespace hermod::bench
