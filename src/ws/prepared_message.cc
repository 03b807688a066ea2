#include "ws/prepared_message.h"

#include "ws/deflate.h"
#include "ws/frame_encoder.h"

namespace hermod::ws {

namespace {

net::Chunk* BuildFrame(Opcode opcode, bool rsv1, std::string_view payload, size_t* header_len) {
  FrameHeaderSpec spec;
  spec.opcode = opcode;
  spec.rsv1 = rsv1;
  spec.payload_len = payload.size();
  uint8_t header[kMaxFrameHeader];
  *header_len = EncodeFrameHeader(spec, header);
  net::Chunk* chunk = net::Chunk::Create(*header_len + payload.size());
  chunk->Append({reinterpret_cast<const char*>(header), *header_len});
  chunk->Append(payload);
  return chunk;
}

}  // namespace

PreparedMessage::PreparedMessage(Opcode opcode, std::string_view payload, int level,
                                 int window_bits)
    : opcode_(opcode),
      level_(level),
      window_bits_(window_bits),
      frame_(BuildFrame(opcode, false, payload, &header_len_)) {}

PreparedMessage::~PreparedMessage() {
  frame_->Unref();
  if (deflated_ != nullptr) deflated_->Unref();
}

std::string_view PreparedMessage::payload() const {
  return {frame_->data() + header_len_, frame_->size() - header_len_};
}

net::Chunk* PreparedMessage::deflated_frame() const {
  std::call_once(deflate_once_, [this] {
    thread_local std::string compressed;
    ThreadDeflater(level_, window_bits_).Deflate(payload(), true, compressed);
    size_t header_len;
    deflated_ = BuildFrame(opcode_, true, compressed, &header_len);
  });
  return deflated_;
}

}  // namespace hermod::ws
