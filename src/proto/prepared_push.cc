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

PreparedPush::Carried One(stats::PushType type) {
  PreparedPush::Carried carried{};
  carried[static_cast<size_t>(type)] = 1;
  return carried;
}

}  // namespace

net::SendStatus PreparedPush::SendTo(net::Connection& connection, net::PushClass push) const {
  net::SendStatus status =
      static_cast<ws::WebSocketConnection&>(connection).SendPrepared(message_, push);
  if (status == net::SendStatus::kQueued) {
    stats::RecordPushQueued(
        id(), published_us(), [this] { return message_.payload().size(); },
        [this] { return carried_; }, &net::Loop::MonotonicUs);
  }
  return status;
}

core::PushCodec JsonPushCodec(int deflate_level, int deflate_window_bits) {
  core::PushCodec codec;
  codec.publication = &PublicationJson;
  codec.publication_push = [deflate_level, deflate_window_bits](std::string_view channel,
                                                                std::string_view publication) {
    std::string& json = Scratch();
    AppendPublicationPush(json, channel, publication);
    return new PreparedPush(json, deflate_level, deflate_window_bits,
                            One(stats::PushType::kPublication));
  };
  codec.join_leave_push = [deflate_level, deflate_window_bits](std::string_view channel, bool join,
                                                               std::string_view info) {
    std::string& json = Scratch();
    AppendJoinLeavePush(json, channel, join, info);
    return new PreparedPush(json, deflate_level, deflate_window_bits,
                            One(join ? stats::PushType::kJoin : stats::PushType::kLeave));
  };
  codec.join = [deflate_level, deflate_window_bits](const core::Push* const* pushes, size_t count) {
    std::string& json = Scratch();
    PreparedPush::Carried carried{};
    uint64_t published_us = 0;  // the oldest publication's: the latency of the batch's first
    for (size_t i = 0; i < count; ++i) {
      const auto* push = static_cast<const PreparedPush*>(pushes[i]);
      if (i > 0) json += '\n';
      json += push->message().payload();
      for (size_t t = 0; t < carried.size(); ++t) carried[t] += push->carried()[t];
      if (push->published_us() != 0 && (published_us == 0 || push->published_us() < published_us)) {
        published_us = push->published_us();
      }
    }
    auto* joined = new PreparedPush(json, deflate_level, deflate_window_bits, carried);
    joined->set_published_us(published_us);
    return joined;
  };
  return codec;
}

}  // namespace hermod::proto
