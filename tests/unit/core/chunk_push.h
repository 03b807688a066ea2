// A test Push that is one shared chunk of text, queued by reference as the real frames are:
// what a subscriber's peer reads is exactly the texts the hub queued to it.
#pragma once

#include <string_view>

#include "core/loop_channels.h"
#include "core/push.h"
#include "net/connection.h"

namespace hermod::core {

class ChunkPush final : public Push {
 public:
  explicit ChunkPush(std::string_view text) : chunk_(net::Chunk::Create(text.size())) {
    chunk_->Append(text);
  }
  ~ChunkPush() override { chunk_->Unref(); }
  net::SendStatus SendTo(Subscription& subscriber, net::PushClass push) const override {
    return subscriber.connection->SendShared(chunk_, 0, chunk_->size(), push);
  }
  size_t size() const override { return chunk_->size(); }
  std::string_view text() const { return {chunk_->data(), chunk_->size()}; }

 private:
  net::Chunk* chunk_;
};

}  // namespace hermod::core
