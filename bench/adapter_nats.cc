// NATS client protocol over WebSocket (nats-server's `websocket` listener): the same text
// protocol as on port 4222, carried in binary frames whose boundaries need not match the
// protocol's lines, so an incomplete operation is carried into the next frame.
//
//   -> CONNECT {...}\r\n SUB <subject> 1\r\n PING\r\n
//   <- INFO {...}\r\n ... PONG\r\n            (PONG after our PING: the SUB is in place)
//   -> PUB <subject> <n>\r\n<payload>\r\n
//   <- MSG <subject> <sid> [reply] <n>\r\n<payload>\r\n
//
// The server's PING gets a PONG; -ERR fails the connection with the server's text.
#include <charconv>
#include <memory>

#include "adapter.h"

namespace hermod::bench {

namespace {

constexpr std::string_view kConnect =
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":false,"
    "\"lang\":\"c++\",\"version\":\"0.1\",\"name\":\"hermod-bench\"}\r\n";

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != prefix[i]) return false;
  }
  return true;
}

// The payload size of a MSG line: its last space-separated field.
bool MsgSize(std::string_view line, size_t& size) {
  size_t space = line.rfind(' ');
  if (space == std::string_view::npos) return false;
  std::string_view n = line.substr(space + 1);
  auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), size);
  return ec == std::errc() && end == n.data() + n.size();
}

class NatsAdapter final : public Adapter {
 public:
  bool binary() const override { return true; }

  void OnOpen(Session& session) override {
    std::string& out = session.scratch();
    out.assign(kConnect);
    if (session.plan().subscribe >= 0) {
      out += "SUB ";
      out += ChannelName(Protocol::kNats, session.plan().subscribe);
      out += " 1\r\n";
    }
    out += "PING\r\n";
    session.Send(out);
  }

  void OnMessage(Session& session, std::string_view message) override {
    ParseStream(session, message, [&](std::string_view bytes) { return Parse(session, bytes); });
  }

  void Publish(Session& session, std::string_view channel, std::string_view payload) override {
    std::string& out = session.scratch();
    out.assign("PUB ");
    out.append(channel);
    out.push_back(' ');
    char n[24];
    out.append(n, std::to_chars(n, n + sizeof(n), payload.size()).ptr);
    out.append("\r\n");
    out.append(payload);
    out.append("\r\n");
    session.Send(out);
  }

 private:
  // Handles every complete operation in buf; returns the bytes consumed.
  size_t Parse(Session& session, std::string_view buf) {
    size_t pos = 0;
    while (pos < buf.size()) {
      size_t eol = buf.find("\r\n", pos);
      if (eol == std::string_view::npos) return pos;
      std::string_view line = buf.substr(pos, eol - pos);
      size_t next = eol + 2;
      if (StartsWithNoCase(line, "MSG ")) {
        size_t size = 0;
        if (!MsgSize(line, size)) {
          session.Fail("nats: bad MSG line");
          return buf.size();
        }
        if (buf.size() - next < size + 2) return pos;  // payload not all here yet
        session.Deliver(buf.substr(next, size));
        next += size + 2;
      } else if (StartsWithNoCase(line, "PING")) {
        session.Send("PONG\r\n");
      } else if (StartsWithNoCase(line, "PONG")) {
        if (!session.is_ready()) session.Ready();
      } else if (StartsWithNoCase(line, "-ERR")) {
        // A publish permission violation (nats-server's text) stops the run (adapter.h).
        const bool refused =
            line.find("Permissions Violation for Publish") != std::string_view::npos;
        session.Fail(std::string(refused ? kPublishRefused : "") +
                     "nats: " + std::string(line.substr(0, 80)));
        return buf.size();
      }
      // INFO and +OK need nothing.
      pos = next;
    }
    return pos;
  }
};

}  // namespace

std::unique_ptr<Adapter> MakeNatsAdapter() { return std::make_unique<NatsAdapter>(); }

}  // namespace hermod::bench
