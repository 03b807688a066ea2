#include "proto/prepared_push.h"

#include <string>

#include "proto/encode.h"
#include "ws/websocket_connection.h"

namespace hermod::proto {

namespace {

// The push JSON is built in the calling thread's buffer (the hub calls under a shard lock,
// from any thread) and copied once, into the prepared frame.
std::string& Scratch() {
  thread_local std::string scratch;
  scratch.clear();
  return scratch;
}

}  // namespace

net::SendStatus PreparedPush::SendTo(net::Connection& connection, net::PushClass push) const {
  return static_cast<ws::WebSocketConnection&>(connection).SendPrepared(message_, push);
}

core::PushCodec JsonPushCodec(int deflate_level, int deflate_window_bits) {
  core::PushCodec codec;
  codec.publication = &PublicationJson;
  codec.publication_push = [deflate_level, deflate_window_bits](std::string_view channel,
                                                                std::string_view publication) {
    std::string& json = Scratch();
    AppendPublicationPush(json, channel, publication);
    return new PreparedPush(json, deflate_level, deflate_window_bits);
  };
  codec.join_leave_push = [deflate_level, deflate_window_bits](std::string_view channel, bool join,
                                                               std::string_view info) {
    std::string& json = Scratch();
    AppendJoinLeavePush(json, channel, join, info);
    return new PreparedPush(json, deflate_level, deflate_window_bits);
  };
  codec.join = [deflate_level, deflate_window_bits](const core::Push* const* pushes, size_t count) {
    std::string& json = Scratch();
    for (size_t i = 0; i < count; ++i) {
      if (i > 0) json += '\n';
      json += static_cast<const PreparedPush*>(pushes[i])->message().payload();
    }
    return new PreparedPush(json, deflate_level, deflate_window_bits);
  };
  return codec;
}

}  // namespace hermod::proto
