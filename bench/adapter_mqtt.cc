// MQTT 3.1.1 over WebSocket (subprotocol "mqtt", binary frames), QoS 0 only: the publish and
// delivery path that a broker like mosquitto optimises for fan-out. Packets may span or share
// WebSocket frames (MQTT 3.1.1 §6), so an incomplete packet is carried into the next frame.
//
//   -> CONNECT (clean session, keep-alive off)      <- CONNACK 0
//   -> SUBSCRIBE <topic> QoS 0                      <- SUBACK      (then ready)
//   -> PUBLISH <topic> QoS 0                        <- PUBLISH <topic> QoS 0
#include <unistd.h>

#include <memory>
#include <string>

#include "adapter.h"

namespace hermod::bench {

namespace {

// MQTT 3.1.1 §2.2.3: remaining length, 7 bits per byte, at most 4 bytes.
void PutLength(std::string& out, size_t n) {
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (n > 0);
}

void PutString(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size() >> 8));
  out.push_back(static_cast<char>(s.size() & 0xff));
  out.append(s);
}

class MqttAdapter final : public Adapter {
 public:
  std::string_view subprotocol() const override { return "mqtt"; }
  bool binary() const override { return true; }

  void OnOpen(Session& session) override {
    std::string client_id = "hb-" + std::to_string(getpid()) + "-" + std::to_string(session.id());
    std::string body;
    PutString(body, "MQTT");
    body.push_back(4);     // protocol level 3.1.1
    body.push_back(0x02);  // clean session
    body.push_back(0);     // keep-alive 0: off (the bench closes its own connections)
    body.push_back(0);
    PutString(body, client_id);
    std::string& out = session.scratch();
    out.assign(1, '\x10');
    PutLength(out, body.size());
    out += body;
    session.Send(out);
  }

  void OnMessage(Session& session, std::string_view message) override {
    ParseStream(session, message, [&](std::string_view bytes) { return Parse(session, bytes); });
  }

  void Publish(Session& session, std::string_view channel, std::string_view payload) override {
    std::string& out = session.scratch();
    out.assign(1, '\x30');  // PUBLISH, QoS 0, no retain
    PutLength(out, 2 + channel.size() + payload.size());
    PutString(out, channel);
    out.append(payload);
    session.Send(out);
  }

 private:
  void Subscribe(Session& session) {
    std::string topic = ChannelName(Protocol::kMqtt, session.plan().subscribe);
    std::string& out = session.scratch();
    out.assign(1, '\x82');  // SUBSCRIBE with the reserved flags 0010 (§3.8.1)
    PutLength(out, 2 + 2 + topic.size() + 1);
    out.push_back(0);
    out.push_back(1);  // packet identifier 1
    PutString(out, topic);
    out.push_back(0);  // QoS 0
    session.Send(out);
  }

  size_t Parse(Session& session, std::string_view buf) {
    size_t pos = 0;
    while (pos < buf.size()) {
      // Fixed header: type byte, then 1-4 bytes of remaining length.
      size_t len = 0;
      size_t at = pos + 1;
      int shift = 0;
      bool complete = false;
      while (at < buf.size() && shift <= 21) {
        uint8_t b = static_cast<uint8_t>(buf[at++]);
        len |= static_cast<size_t>(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (shift > 21) {
          session.Fail("mqtt: bad remaining length");
          return buf.size();
        }
        return pos;
      }
      if (buf.size() - at < len) return pos;
      Handle(session, static_cast<uint8_t>(buf[pos]), buf.substr(at, len));
      pos = at + len;
    }
    return pos;
  }

  void Handle(Session& session, uint8_t type, std::string_view body) {
    switch (type >> 4) {
      case 2:  // CONNACK
        if (body.size() < 2 || body[1] != 0) {
          session.Fail("mqtt: CONNACK refused " +
                       std::to_string(body.size() < 2 ? -1 : static_cast<int>(body[1])));
        } else if (session.plan().subscribe >= 0) {
          Subscribe(session);
        } else {
          session.Ready();
        }
        break;
      case 9:  // SUBACK
        if (body.size() < 3 || static_cast<uint8_t>(body[2]) == 0x80) {
          session.Fail("mqtt: SUBACK failure");
        } else {
          session.Ready();
        }
        break;
      case 3: {  // PUBLISH
        if (body.size() < 2) {
          session.Fail("mqtt: short PUBLISH");
          return;
        }
        size_t topic_len = (static_cast<uint8_t>(body[0]) << 8) | static_cast<uint8_t>(body[1]);
        size_t skip = 2 + topic_len + (((type >> 1) & 3) ? 2 : 0);  // packet id above QoS 0
        if (skip > body.size()) {
          session.Fail("mqtt: short PUBLISH");
          return;
        }
        session.Deliver(body.substr(skip));
        break;
      }
      case 14:  // DISCONNECT
        session.Fail("mqtt: DISCONNECT from server");
        break;
      default:  // PINGRESP and the QoS 1/2 acks we never ask for
        break;
    }
  }
};

}  // namespace

std::unique_ptr<Adapter> MakeMqttAdapter() { return std::make_unique<MqttAdapter>(); }

}  // namespace hermod::bench
