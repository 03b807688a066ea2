// The Protobuf form of a hub push: built once per push, whatever the number of Protobuf
// subscribers (the JSON frame is built with the push), and a binary message of one
// length-delimited Reply carrying the publication's data as its JSON text.
#include "proto/websocket_transport.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "proto/encode.h"
#include "proto/prepared_push.h"

namespace hermod::proto {
namespace {

TEST(ProtobufPush, IsFramedOnceAndSharedByEveryProtobufSubscriber) {
  core::PushCodec codec = JsonPushCodec();
  const std::string publication = PublicationJson("{\"n\":1}", {}, 5);
  auto* push = static_cast<PreparedPush*>(codec.publication_push("news", publication));
  ASSERT_NE(kProtobufKind, kWebSocketKind);
  const FramedPush* first = &push->framed(kProtobufKind);
  const FramedPush* second = &push->framed(kProtobufKind);
  EXPECT_EQ(first, second);  // one encoding for every Protobuf subscriber, on every loop
  // Its bytes: a length prefix, then Reply{push(4): {channel(2): "news", pub(4): {...}}}.
  std::string expected_pub = "\x22\x07{\"n\":1}\x30\x05";  // data(4), offset(6)
  std::string push_body =
      std::string("\x12\x04news") + "\x22" + static_cast<char>(expected_pub.size()) + expected_pub;
  std::string reply = std::string("\x22") + static_cast<char>(push_body.size()) + push_body;
  std::string message = static_cast<char>(reply.size()) + reply;
  // The JSON frame and the Protobuf message are both built from the one JSON encoding.
  EXPECT_EQ(push->json(), "{\"push\":{\"channel\":\"news\",\"pub\":" + publication + "}}");
  EXPECT_EQ(static_cast<const ProtobufPush*>(first)->message().payload(), message);
  push->Unref();
}

// Every byte of these objects is paid by every connection: a connected client with one
// subscription holds the transport (its WebSocket connection and session) and the
// subscription, each one malloc block (8 bytes of header, rounded up to 16). The bound of
// docs/benchmarks.md ("Memory per connection with one subscription") is 512 bytes for both
// with the hub's lists; these keep the objects where that figure was measured.
size_t MallocBlock(size_t bytes) { return (bytes + 8 + 15) / 16 * 16; }

TEST(ConnectionMemory, ObjectsOfAConnectedClientWithOneSubscriptionStaySmall) {
  const size_t transport = sizeof(WebSocketTransport);
  const size_t subscription = ClientSession::SubscriptionBytes();
  std::printf(
      "WebSocketTransport %zu (block %zu), ClientSession %zu, subscription %zu "
      "(block %zu), ws::WebSocketConnection %zu, ws::EchoConnection %zu\n",
      transport, MallocBlock(transport), sizeof(ClientSession), subscription,
      MallocBlock(subscription), sizeof(ws::WebSocketConnection), sizeof(ws::EchoConnection));
  EXPECT_LE(MallocBlock(transport), 368u);
  EXPECT_LE(MallocBlock(subscription), 80u);
  // The idle echo connection (docs/benchmarks.md, "Memory per idle connection").
  EXPECT_LE(MallocBlock(sizeof(ws::EchoConnection)), 224u);
}

}  // namespace
}  // namespace hermod::proto
