#include "ws/prepared_message.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "ws/deflate.h"
#include "ws/message_reader.h"

namespace hermod::ws {
namespace {

struct Collect final : MessageHandler {
  std::vector<std::string> messages;
  void OnMessage(Opcode, std::string_view payload) override { messages.emplace_back(payload); }
  void OnPing(std::string_view) override {}
  void OnPong(std::string_view) override {}
  void OnClose(uint16_t, std::string_view) override {}
};

// Reads a frame as a client would (unmasked, deflate negotiated).
std::vector<std::string> ReadAsClient(const net::Chunk* chunk) {
  std::string bytes(chunk->data(), chunk->size());
  ReaderLimits limits;
  limits.expect_masked = false;
  limits.deflate = true;
  Inflater inflater(15);
  MessageReader reader;
  Collect sink;
  auto result = reader.Feed(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size(), limits, sink,
                            &inflater, true);
  EXPECT_TRUE(result.ok);
  return sink.messages;
}

TEST(PreparedMessage, PlainFrameCarriesThePayloadOnce) {
  std::string payload(1000, 'p');
  PreparedMessage message(Opcode::kText, payload, 1, 15);
  EXPECT_EQ(message.payload(), payload);
  EXPECT_EQ(ReadAsClient(message.frame()), std::vector<std::string>{payload});
}

TEST(PreparedMessage, DeflatedFrameInflatesToThePayload) {
  std::string payload;
  for (int i = 0; i < 200; ++i)
    payload += "{\"channel\":\"news\",\"seq\":" + std::to_string(i) + "}";
  PreparedMessage message(Opcode::kText, payload, 1, 15);
  net::Chunk* deflated = message.deflated_frame();
  ASSERT_NE(deflated, nullptr);
  EXPECT_LT(deflated->size(), message.frame()->size() / 4);  // compressed, once
  EXPECT_EQ(message.deflated_frame(), deflated);             // and only once
  EXPECT_EQ(ReadAsClient(deflated), std::vector<std::string>{payload});
}

TEST(PreparedMessage, LoopsRacingForTheDeflatedFrameShareOne) {
  std::string payload(5000, 'x');
  PreparedMessage message(Opcode::kBinary, payload, 1, 12);
  std::vector<net::Chunk*> seen(4);
  std::vector<std::thread> loops;
  for (size_t i = 0; i < seen.size(); ++i) {
    loops.emplace_back([&, i] { seen[i] = message.deflated_frame(); });
  }
  for (auto& t : loops) t.join();
  for (net::Chunk* c : seen) EXPECT_EQ(c, seen[0]);
  EXPECT_EQ(ReadAsClient(seen[0]), std::vector<std::string>{payload});
}

}  // namespace
}  // namespace hermod::ws
