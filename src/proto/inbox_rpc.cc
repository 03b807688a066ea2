// The client's side of the inboxes (core/inbox.h): acks and rejects through the SDK's RPC
// (`hermod.ack` {channel, offsets | up_to}, `hermod.reject` {channel, offsets, reason}),
// answered by hermod before any RPC proxy, once the engine has stored them; and the
// deliveries of an inbox this connection is subscribed to, sent as ordinary publication
// pushes with the delivery count in `tags` (`hermod-delivery`).
#include <charconv>
#include <string>
#include <vector>

#include "proto/client_session.h"
#include "proto/inbox_request.h"
#include "stats/loop_metrics.h"

namespace hermod::proto {

namespace {

void AppendNumber(std::string& out, uint64_t n) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
}

std::string OffsetsJson(const std::vector<uint64_t>& offsets) {
  std::string out;
  out.reserve(16 + 21 * offsets.size());  // one allocation
  out += "{\"offsets\":[";
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (i > 0) out += ',';
    AppendNumber(out, offsets[i]);
  }
  out += "]}";
  return out;
}

}  // namespace

// A subscription's watch of its inbox: lives as long as the subscription.
class ClientSession::InboxWatch final : public core::Inbox::Watcher {
 public:
  explicit InboxWatch(ClientSession& session) : session_(session) {}
  void DeliverInbox(std::string_view channel,
                    const std::vector<core::InboxEntry>& entries) override {
    session_.SendInbox(channel, entries);
  }

 private:
  ClientSession& session_;
};

void ClientSession::WatchInbox(ClientSubscription& s) {
  if (context_.inbox == nullptr || !OptionsOf(s).inbox) return;
  auto watch = std::make_shared<InboxWatch>(*this);
  s.rare_state().inbox_watch = watch;
  context_.inbox->Watch(s.channel(), loop(), watch);
}

void ClientSession::SendInbox(std::string_view channel,
                              const std::vector<core::InboxEntry>& entries) {
  if (!connected() || closing()) return;
  // Sized once (each publication is copied into it, so growing it would copy them again).
  size_t bytes = 0;
  for (const core::InboxEntry& e : entries) bytes += 2 * channel.size() + e.data.size() + 96;
  std::string push;
  push.reserve(bytes);
  constexpr std::string_view kTags = "{\"hermod-delivery\":\"";
  char tags[64];  // the tags object, on the stack
  kTags.copy(tags, kTags.size());
  for (const core::InboxEntry& e : entries) {
    char* end = std::to_chars(tags + kTags.size(), tags + sizeof tags - 2, e.deliveries).ptr;
    *end++ = '"';
    *end++ = '}';
    if (!push.empty()) push += '\n';
    AppendPublicationPush(
        push, channel, PublicationJson(e.data, {}, e.offset, std::string_view(tags, end - tags)));
  }
  if (push.empty()) return;
  transport_.SendReply(push, net::Lane::kNormal);
  stats::RecordSent(stats::SentType::kReply, push.size());
}

bool ClientSession::HandleInboxRpc(const Command& c) {
  const bool ack = c.rpc_method == "hermod.ack";
  if (!ack && c.rpc_method != "hermod.reject") return false;
  if (context_.inbox == nullptr) {
    AppendBackendError(reply(), c.id, static_cast<uint32_t>(ErrorCode::kNotAvailable),
                       "no inbox namespaces", false);
    return true;
  }
  InboxRequest r;
  if (!ParseInboxRequest(c.data, &r, 10000) || r.channel.empty() ||
      (ack && r.offsets.empty() && !r.up_to) || (!ack && r.offsets.empty())) {
    AppendBackendError(reply(), c.id, static_cast<uint32_t>(ErrorCode::kBadRequest),
                       ack ? "hermod.ack wants {channel, offsets: [..]} or {channel, up_to: N}"
                           : "hermod.reject wants {channel, offsets: [..], reason}",
                       false);
    return true;
  }
  // Answered on this loop, once stored, only while this session lives (as Later).
  std::shared_ptr<const void>& alive = rare().alive;
  if (!alive) alive = std::make_shared<char>();
  core::Completion<core::Inbox::Answer> done(
      loop(), std::weak_ptr<const void>(alive), [this, id = c.id](core::Inbox::Answer answer) {
        std::string reply;
        reply.reserve(64 + 21 * answer.offsets.size());
        if (answer.denied) {
          AppendBackendError(reply, id, static_cast<uint32_t>(ErrorCode::kPermissionDenied),
                             "not this user's inbox", false);
        } else if (!answer.error.empty()) {
          AppendBackendError(reply, id, static_cast<uint32_t>(ErrorCode::kBadRequest), answer.error,
                             false);
        } else {
          AppendRpcReply(reply, id, OffsetsJson(answer.offsets));
        }
        SendLaterReply(reply);
      });
  if (ack) {
    context_.inbox->Ack(user_, r.channel, r.offsets, r.up_to, std::move(done));
  } else {
    context_.inbox->Reject(user_, r.channel, r.offsets, r.reason, std::move(done));
  }
  return true;
}

}  // namespace hermod::proto
