// hermod's client protocol: Centrifugo's JSON protocol (v2), one command or reply per line.
//
//   -> {"id":1,"connect":{"name":"hermod-bench"}}           <- {"id":1,"connect":{...}}
//   -> {"id":2,"subscribe":{"channel":"hb0"}}               <- {"id":2,"subscribe":{...}}
//   -> {"id":3,"publish":{"channel":"hb0","data":<payload>}}
//   <- {"push":{"channel":"hb0","pub":{"data":<payload>}}}
//   <- {}  (the server's ping; answered with {})
//
// The payload is a JSON object (payload.h), so it travels as `data` verbatim and the stamp is
// found inside the push without parsing the envelope. Replies may arrive several to a frame,
// newline-delimited. The server must let anonymous clients connect, subscribe and publish
// (bench/peers/hermod.json).
#include <charconv>
#include <memory>

#include "adapter.h"

namespace hermod::bench {

namespace {

// The reply id at the start of a line, 0 if none.
uint64_t ReplyId(std::string_view line) {
  constexpr std::string_view kId = "{\"id\":";
  if (!line.starts_with(kId)) return 0;
  uint64_t id = 0;
  std::from_chars(line.data() + kId.size(), line.data() + line.size(), id);
  return id;
}

class HermodAdapter final : public Adapter {
 public:
  void OnOpen(Session& session) override {
    session.Send("{\"id\":1,\"connect\":{\"name\":\"hermod-bench\"}}");
  }

  void OnMessage(Session& session, std::string_view message) override {
    size_t pos = 0;
    while (pos < message.size()) {
      size_t eol = message.find('\n', pos);
      if (eol == std::string_view::npos) eol = message.size();
      Line(session, message.substr(pos, eol - pos));
      pos = eol + 1;
    }
  }

  void Publish(Session& session, std::string_view channel, std::string_view payload) override {
    std::string& out = session.scratch();
    out.assign("{\"id\":3,\"publish\":{\"channel\":\"");
    out.append(channel);
    out.append("\",\"data\":");
    out.append(payload);
    out.append("}}");
    session.Send(out);
  }

 private:
  static void Subscribe(Session& session) {
    std::string& out = session.scratch();
    out.assign("{\"id\":2,\"subscribe\":{\"channel\":\"");
    out.append(ChannelName(Protocol::kHermod, session.plan().subscribe));
    out.append("\"}}");
    session.Send(out);
  }

  void Line(Session& session, std::string_view line) {
    if (line.empty()) return;
    if (line == "{}") {
      session.Send("{}");
      return;
    }
    if (line.starts_with("{\"push\"")) {
      if (line.find("\"pub\"") != std::string_view::npos) {
        session.Deliver(line);
      } else if (line.find("\"unsubscribe\"") != std::string_view::npos &&
                 session.plan().subscribe >= 0) {
        // The server told us our stream has a gap (2500): as the SDK, resubscribe; the
        // gap the next publication shows is a told loss.
        session.Told();
        Subscribe(session);
      }
      return;  // join/leave/disconnect pushes are not publications
    }
    uint64_t id = ReplyId(line);
    if (line.find("\"error\"") != std::string_view::npos) {
      // A refused publish (id 3) stops the run, except 111 (too many requests): that is the
      // load being measured, not a setup mistake.
      const bool refused = id == 3 && line.find("\"code\":111") == std::string_view::npos;
      session.Fail(std::string(refused ? kPublishRefused : "") +
                   "hermod: " + std::string(line.substr(0, 120)));
      return;
    }
    if (id == 1) {
      if (session.plan().subscribe >= 0) {
        Subscribe(session);
      } else {
        session.Ready();
      }
    } else if (id == 2) {
      session.Ready();
    }
  }
};

}  // namespace

std::unique_ptr<Adapter> MakeHermodAdapter() { return std::make_unique<HermodAdapter>(); }

}  // namespace hermod::bench
