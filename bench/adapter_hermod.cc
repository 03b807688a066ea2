// hermod's client protocol: Centrifugo's JSON protocol (v2), one command or reply per line.
//
//   -> {"id":1,"connect":{"name":"hermod-bench"}}           <- {"id":1,"connect":{...}}
//   -> {"id":2,"subscribe":{"channel":"hb0"}}               <- {"id":2,"subscribe":{...}}
//   -> {"id":3,"publish":{"channel":"hb0","data":<payload>}}
//   -> {"id":4,"subscribe":{"channel":"hb7"}}  (stand: the group channel, after id 2's reply)
//   <- {"push":{"channel":"hb0","pub":{"data":<payload>}}}
//   <- {}  (the server's ping; answered with {})
//
// The payload is a JSON object (payload.h), so it travels as `data` verbatim and the stamp is
// found inside the push without parsing the envelope. Replies may arrive several to a frame,
// newline-delimited. The server must let anonymous clients connect, subscribe and publish
// (bench/peers/hermod.json).
#include <charconv>
#include <cstdint>
#include <memory>
#include <string>

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
  // The stand's second subscription, after the first is confirmed.
  static void SubscribeGroup(Session& session) {
    std::string& out = session.scratch();
    out.assign("{\"id\":4,\"subscribe\":{\"channel\":\"");
    out.append(ChannelName(Protocol::kHermod, session.plan().group));
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
      if (session.plan().group >= 0 && !session.is_ready()) {
        SubscribeGroup(session);
      } else {
        session.Ready();
      }
    } else if (id == 4) {
      session.Ready();
    }
  }
};

// The same protocol in its Protobuf encoding (subprotocol `centrifuge-protobuf`, client.proto's
// field numbers): binary messages of varint-length-delimited Commands and Replies. The
// payload travels as the publication's `data` bytes, so the stamp is found inside the Reply.
//   -> Command{id 1, connect(4){name(4)}}   Command{id 2, subscribe(5){channel(1)}}
//   -> Command{id 3, publish(7){channel(1), data(2)}}
//   <- Reply{push(4){channel(2), pub(4){data(4)}}}   Reply{} is the ping: answered with Command{}
class HermodProtobufAdapter final : public Adapter {
 public:
  std::string_view subprotocol() const override { return "centrifuge-protobuf"; }
  bool binary() const override { return true; }

  void OnOpen(Session& session) override {
    std::string& out = session.scratch();
    out.clear();
    Command(out, 1, 4, Field(2 /*LEN*/, 4, "hermod-bench"));
    session.Send(out);
  }

  void OnMessage(Session& session, std::string_view message) override {
    while (!message.empty()) {
      uint64_t length;
      if (!Varint(message, &length) || length > message.size()) {
        return session.Fail("hermod-protobuf: malformed reply");
      }
      Reply(session, message.substr(0, length));
      message.remove_prefix(length);
    }
  }

  void Publish(Session& session, std::string_view channel, std::string_view payload) override {
    std::string& out = session.scratch();
    out.clear();
    Command(out, 3, 7, Field(2, 1, channel) + Field(2, 2, payload));
    session.Send(out);
  }

 private:
  static void AppendVarint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
      out += static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    out += static_cast<char>(v);
  }
  static bool Varint(std::string_view& in, uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
      const auto byte = static_cast<uint8_t>(in.front());
      in.remove_prefix(1);
      *v |= uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  static std::string Field(uint32_t wire, uint32_t number, std::string_view bytes) {
    std::string out;
    AppendVarint(out, (uint64_t{number} << 3) | wire);
    AppendVarint(out, bytes.size());
    out += bytes;
    return out;
  }
  // A length-delimited Command{id, <request field>: request}.
  static void Command(std::string& out, uint32_t id, uint32_t request_field,
                      const std::string& request) {
    std::string body;
    AppendVarint(body, 1 << 3);
    AppendVarint(body, id);
    body += Field(2, request_field, request);
    AppendVarint(out, body.size());
    out += body;
  }
  // The message's top-level fields: varints into numbers[f], LEN fields into bytes[f].
  struct Fields {
    uint64_t numbers[16] = {};
    std::string_view bytes[16];
  };
  static bool Read(std::string_view in, Fields& f) {
    while (!in.empty()) {
      uint64_t tag, v;
      if (!Varint(in, &tag)) return false;
      const uint64_t number = tag >> 3;
      if ((tag & 7) == 0) {
        if (!Varint(in, &v)) return false;
        if (number < 16) f.numbers[number] = v;
      } else if ((tag & 7) == 2) {
        if (!Varint(in, &v) || v > in.size()) return false;
        if (number < 16) f.bytes[number] = in.substr(0, v);
        in.remove_prefix(v);
      } else {
        return false;
      }
    }
    return true;
  }
  static void Subscribe(Session& session) {
    std::string& out = session.scratch();
    out.clear();
    Command(out, 2, 5,
            Field(2, 1, ChannelName(Protocol::kHermodProtobuf, session.plan().subscribe)));
    session.Send(out);
  }

  void Reply(Session& session, std::string_view reply) {
    if (reply.empty()) {
      session.Send(std::string_view("\0", 1));  // the ping's pong: an empty Command
      return;
    }
    Fields f;
    if (!Read(reply, f)) return session.Fail("hermod-protobuf: malformed reply");
    if (!f.bytes[4].empty()) {  // a push
      Fields push;
      if (!Read(f.bytes[4], push)) return session.Fail("hermod-protobuf: malformed push");
      if (!push.bytes[4].empty()) {
        session.Deliver(push.bytes[4]);
      } else if (!push.bytes[7].empty() && session.plan().subscribe >= 0) {
        session.Told();  // unsubscribe (2500): resubscribe, as the SDK
        Subscribe(session);
      }
      return;
    }
    const uint64_t id = f.numbers[1];
    if (!f.bytes[2].empty()) {
      Fields error;
      Read(f.bytes[2], error);
      const bool refused = id == 3 && error.numbers[1] != 111;
      session.Fail(std::string(refused ? kPublishRefused : "") + "hermod-protobuf: error " +
                   std::to_string(error.numbers[1]));
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
std::unique_ptr<Adapter> MakeHermodProtobufAdapter() {
  return std::make_unique<HermodProtobufAdapter>();
}

}  // namespace hermod::bench
