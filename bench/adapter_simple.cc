// The two adapters that speak no protocol of their own: `echo`, for any RFC 6455 echo
// server (a message comes back to its sender), and `raw`, for a broadcast server that sends
// every message it receives on one connection to all of them (node `ws`, uWebSockets'
// broadcast example). Every message is a publication; there is nothing to set up.
#include <memory>

#include "adapter.h"

namespace hermod::bench {

namespace {

class EchoAdapter final : public Adapter {
 public:
  void OnOpen(Session& session) override { session.Ready(); }
  void OnMessage(Session& session, std::string_view message) override { session.Deliver(message); }
  void Publish(Session& session, std::string_view, std::string_view payload) override {
    session.Send(payload);
  }
};

// A broadcast server has one implicit channel; messages come back to publishers too, and
// the session ignores them there (only subscribers count deliveries).
class RawAdapter final : public Adapter {
 public:
  bool has_channels() const override { return false; }
  void OnOpen(Session& session) override { session.Ready(); }
  void OnMessage(Session& session, std::string_view message) override { session.Deliver(message); }
  void Publish(Session& session, std::string_view, std::string_view payload) override {
    session.Send(payload);
  }
};

}  // namespace

std::unique_ptr<Adapter> MakeNatsAdapter();
std::unique_ptr<Adapter> MakeMqttAdapter();
std::unique_ptr<Adapter> MakeHermodAdapter();
std::unique_ptr<Adapter> MakeHermodProtobufAdapter();

std::unique_ptr<Adapter> MakeAdapter(Protocol protocol) {
  switch (protocol) {
    case Protocol::kEcho:
      return std::make_unique<EchoAdapter>();
    case Protocol::kRaw:
      return std::make_unique<RawAdapter>();
    case Protocol::kNats:
      return MakeNatsAdapter();
    case Protocol::kMqtt:
      return MakeMqttAdapter();
    case Protocol::kHermod:
    case Protocol::kHermodSse:  // publishers; subscribers stream (client_loop.cc)
    case Protocol::kHermodHttpStream:
      return MakeHermodAdapter();
    case Protocol::kHermodProtobuf:
      return MakeHermodProtobufAdapter();
  }
  return nullptr;
}

}  // namespace hermod::bench
