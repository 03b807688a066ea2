#include "proto/prepared_push.h"

#include <cassert>
#include <string>

#include "proto/client_session.h"
#include "proto/delta.h"
#include "proto/encode.h"

namespace hermod::proto {

namespace {

// The push JSON is built in the calling thread's buffer (the hub calls under a shard lock,
// from any thread) and copied once, into the prepared frame.
std::string& JsonScratch() {
  thread_local std::string scratch;
  scratch.clear();
  return scratch;
}

PreparedPush::Carried One(stats::PushType type) {
  PreparedPush::Carried carried{};
  carried[static_cast<size_t>(type)] = 1;
  return carried;
}

std::atomic<size_t> transport_kinds{1};  // kind 0, the WebSocket, frames with the push
std::array<std::atomic<FramePushFn>, kMaxTransportKinds> framings{};

}  // namespace

size_t RegisterTransportKind(FramePushFn frame) {
  const size_t kind = transport_kinds.fetch_add(1, std::memory_order_relaxed);
  assert(kind < kMaxTransportKinds && "raise kMaxTransportKinds");
  framings[kind].store(frame, std::memory_order_release);
  return kind;
}

FramePushFn TransportFraming(size_t kind) {
  return kind < kMaxTransportKinds ? framings[kind].load(std::memory_order_acquire) : nullptr;
}

PreparedPush::~PreparedPush() {
  for (auto& f : framed_) delete f.load(std::memory_order_relaxed);
  for (const PreparedPush* form : {delta_.json_full, delta_.json_delta, delta_.protobuf_delta}) {
    if (form != nullptr) form->Unref();
  }
}

const FramedPush& PreparedPush::Frame(size_t kind) const {
  FramePushFn frame = TransportFraming(kind);
  assert(kind != kWebSocketKind && frame != nullptr);
  // Two loops may race to frame the first subscriber's push: one form wins, the other is
  // freed (rare, and cheaper than a lock on the push).
  const FramedPush* built = frame(json());
  const FramedPush* expected = nullptr;
  if (framed_[kind].compare_exchange_strong(expected, built, std::memory_order_acq_rel)) {
    return *built;
  }
  delete built;
  return *expected;
}

net::SendStatus PreparedPush::SendTo(core::Subscription& subscriber, net::PushClass push) const {
  auto& ts = static_cast<TransportSubscription&>(subscriber);
  Transport* transport = ts.transport;
  assert(transport != nullptr && transport->loop().InThisThread());
  const PreparedPush* form = this;
  if (ts.delta && delta_.seq != 0) {
    const bool json = transport->format() == Format::kJson;
    if (delta_.base_seq != 0 && ts.delta_base == delta_.base_seq) {
      form = json ? delta_.json_delta : delta_.protobuf_delta;
    }
    if (form == nullptr || form == this) form = json ? delta_.json_full : this;
  }
  const bool delta = ts.delta;
  net::SendStatus status = transport->SendPush(*form, push);
  // A send that ends the connection (a slow consumer's cut) has freed the subscription:
  // only a connection that goes on has a chain to keep. A push not queued breaks it, and the
  // subscriber's next publication goes in full.
  const bool ended = status == net::SendStatus::kOverflow || status == net::SendStatus::kDropped;
  if (delta && !ended) ts.delta_base = status == net::SendStatus::kQueued ? delta_.seq : 0;
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
  codec.missed = &ClientSession::OnMissed;
  codec.publication_push = [deflate_level, deflate_window_bits](std::string_view channel,
                                                                std::string_view publication) {
    std::string& json = JsonScratch();
    AppendPublicationPush(json, channel, publication);
    return new PreparedPush(json, deflate_level, deflate_window_bits,
                            One(stats::PushType::kPublication));
  };
  codec.delta_push = [deflate_level, deflate_window_bits](
                         std::string_view channel, std::string_view publication,
                         const core::PushCodec::DeltaSource& source) {
    auto make = [&](std::string_view pub) {
      std::string& json = JsonScratch();
      AppendPublicationPush(json, channel, pub);
      return new PreparedPush(json, deflate_level, deflate_window_bits,
                              One(stats::PushType::kPublication));
    };
    PreparedPush* push = make(publication);
    PreparedPush::DeltaForms forms;
    std::string form;
    bool is_delta = false;
    if (!DeltaPublication(publication, {}, Format::kJson, &form, &is_delta)) return push;
    forms.seq = source.seq;
    forms.json_full = make(form);
    if (source.base_seq != 0) {
      if (DeltaPublication(publication, source.base_publication, Format::kJson, &form, &is_delta) &&
          is_delta) {
        forms.json_delta = make(form);
      }
      if (DeltaPublication(publication, source.base_publication, Format::kProtobuf, &form,
                           &is_delta) &&
          is_delta) {
        forms.protobuf_delta = make(form);
      }
      if (forms.json_delta != nullptr || forms.protobuf_delta != nullptr) {
        forms.base_seq = source.base_seq;
      }
    }
    push->set_delta(forms);
    return push;
  };
  codec.join_leave_push = [deflate_level, deflate_window_bits](std::string_view channel, bool join,
                                                               std::string_view info) {
    std::string& json = JsonScratch();
    AppendJoinLeavePush(json, channel, join, info);
    return new PreparedPush(json, deflate_level, deflate_window_bits,
                            One(join ? stats::PushType::kJoin : stats::PushType::kLeave));
  };
  codec.join = [deflate_level, deflate_window_bits](const core::Push* const* pushes, size_t count) {
    std::string& json = JsonScratch();
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
