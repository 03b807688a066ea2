#include "proto/stream_transport.h"

#include <algorithm>
#include <cassert>

#include "proto/stream_format.h"

namespace hermod::proto {

namespace {

constexpr uint32_t kAlreadySubscribedCode = static_cast<uint32_t>(ErrorCode::kAlreadySubscribed);

// A push's bytes for one Format: HTTP chunks, built once and shared by every subscriber.
struct StreamFramed final : ChunkFramed {
  // Fragments: the epoch each channel's events were framed with, and the events parsed (a
  // stream of several channels writes its own ids: its positions in all of them).
  std::vector<std::pair<std::string, std::string>> epochs;
  std::vector<Fragment> fragments;
  // uni_sse: each push's event (its bytes in chunk), a publication's channel and offset (a
  // stream with positions writes each publication's id before its event).
  struct UniEvent {
    size_t begin = 0;
    size_t end = 0;
    std::string channel;
    uint64_t offset = 0;
    bool publication = false;
  };
  std::vector<UniEvent> uni;
};

StreamFramed* ToFramed(std::string_view payload) { return ToChunk<StreamFramed>(payload); }

// One uni value as an SSE event or a JSON line.
void AppendUni(std::string& out, std::string_view json, bool sse) {
  if (!sse) return AppendJsonLine(out, json);
  out += "data: ";
  AppendJsonLine(out, json);
  out += '\n';
}

// Every push of a (joined) message in its uni form.
std::string UniPushes(std::string_view json, bool sse) {
  std::string out;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    if (u.kind == UniValue::kPush) AppendUni(out, u.body, sse);
    return true;
  });
  return out;
}

FramedPush* FrameUniSse(std::string_view json) {
  std::string out;
  std::vector<StreamFramed::UniEvent> events;
  Fragment f;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    if (u.kind != UniValue::kPush) return true;
    StreamFramed::UniEvent event;
    event.begin = out.size();
    AppendUni(out, u.body, true);
    event.end = out.size();
    if (FragmentOf(u.body, &f)) {
      event.channel = std::move(f.channel);
      event.offset = f.offset;
      event.publication = true;
    }
    events.push_back(std::move(event));
    return true;
  });
  StreamFramed* framed = ToFramed(out);
  if (framed->chunk != nullptr) {
    const size_t head = framed->chunk->size() - out.size() - 2;  // the chunk's size line
    for (StreamFramed::UniEvent& event : events) {
      event.begin += head;
      event.end += head;
    }
    framed->uni = std::move(events);
  }
  return framed;
}
FramedPush* FrameUniLines(std::string_view json) { return ToFramed(UniPushes(json, false)); }

// Fragments are framed with the epochs of the transport framing them (the channel's stream,
// the same for every subscriber of the node but a rare reset): set around push.framed().
thread_local const StreamTransport* framing_for = nullptr;

std::string FragmentEvents(std::string_view json,
                           const std::function<std::string_view(std::string_view)>& epoch_of,
                           std::vector<std::pair<std::string, std::string>>* used,
                           std::vector<Fragment>* fragments) {
  std::string out;
  Fragment f;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    if (u.kind == UniValue::kPush && FragmentOf(u.body, &f)) {
      const std::string_view epoch = epoch_of(f.channel);
      if (used != nullptr) used->emplace_back(f.channel, epoch);
      AppendFragmentEvent(out, f, epoch);
      if (fragments != nullptr) fragments->push_back(f);
    }
    return true;
  });
  return out;
}

std::function<std::string_view(std::string_view)> EpochLookup(const StreamTransport* t);

FramedPush* FrameFragments(std::string_view json) {
  std::vector<std::pair<std::string, std::string>> used;
  std::vector<Fragment> fragments;
  const std::string events = FragmentEvents(json, EpochLookup(framing_for), &used, &fragments);
  StreamFramed* framed = ToFramed(events);
  framed->epochs = std::move(used);
  framed->fragments = std::move(fragments);
  return framed;
}

const size_t kUniSseKind = RegisterTransportKind(&FrameUniSse);
const size_t kUniLinesKind = RegisterTransportKind(&FrameUniLines);
const size_t kFragmentsKind = RegisterTransportKind(&FrameFragments);

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

}  // namespace

namespace {
std::function<std::string_view(std::string_view)> EpochLookup(const StreamTransport* t) {
  return [t](std::string_view channel) {
    const std::string* epoch = t != nullptr ? t->EpochOf(channel) : nullptr;
    return epoch != nullptr ? std::string_view(*epoch) : std::string_view();
  };
}
}  // namespace

int StreamStatusOf(uint32_t code) {
  switch (code) {
    case 101:   // unauthorized
    case 109:   // token expired
    case 3500:  // invalid token
    case 3005:  // expired
      return 401;
    case 103:  // permission denied
      return 403;
    case 111:   // too many requests
    case 3013:  // too many requests
    case 3504:  // connection limit
      return 429;
    case 3001:  // shutdown
      return 503;
    case 100:   // internal
    case 3004:  // internal server error
      return 500;
    default:
      return 400;
  }
}

StreamTransport::StreamTransport(net::Connection& from, Format format, ClientContext& context)
    : StreamedResponse(from, context), format_(format) {
  session().SetUnidirectional();
}

StreamTransport::~StreamTransport() = default;

size_t StreamTransport::kind() const {
  switch (format_) {
    case Format::kUniSse:
      return kUniSseKind;
    case Format::kUniJsonLines:
      return kUniLinesKind;
    case Format::kFragments:
      break;
  }
  return kFragmentsKind;
}

void StreamTransport::Start(std::string_view commands, std::vector<std::string> channels,
                            std::string extra_headers, std::vector<StreamPosition> from,
                            std::vector<NamedPosition> named_from) {
  assert(loop().InThisThread());
  channels_ = std::move(channels);
  extra_headers_ = std::move(extra_headers);
  if (from.size() != channels_.size()) from.assign(channels_.size(), StreamPosition{});
  positions_ = std::move(from);
  recovering_.resize(positions_.size());
  for (size_t i = 0; i < positions_.size(); ++i) recovering_[i] = positions_[i].known;
  for (NamedPosition& n : named_from) named_recovering_.push_back(std::move(n.channel));
  session().OnMessage(commands);
}

void StreamTransport::StartResponse() {
  // Fragments: the browser reconnects a second after the stream ends (the default is 3 s).
  StreamedResponse::StartResponse(
      format_ == Format::kUniJsonLines ? "application/json" : "text/event-stream",
      format_ == Format::kFragments ? "retry: 1000\n\n" : "");
}

void StreamTransport::Refuse(int status) {
  ended_ = true;
  const std::string_view phrase = ReasonPhrase(status);
  std::string response = "HTTP/1.1 " + std::to_string(status) + " ";
  response += phrase;
  response += "\r\nContent-Type: text/plain\r\nContent-Length: ";
  response += std::to_string(phrase.size() + 1);
  response += "\r\nConnection: close\r\n\r\n";
  response += phrase;
  response += '\n';
  Send(response, {}, net::Lane::kFinal);
  CloseAfterFlush();
}

std::string StreamTransport::EventId() const {
  std::string id;
  AppendEventPositions(id, positions_, named_);
  return id;
}

StreamPosition* StreamTransport::PositionOf(std::string_view channel) {
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (channels_[i] == channel) return &positions_[i];
  }
  for (NamedPosition& n : named_) {
    if (n.channel == channel) return &n.position;
  }
  return nullptr;
}

void StreamTransport::Advance(std::string_view channel, uint64_t offset) {
  const std::string* epoch = EpochOf(channel);
  if (epoch == nullptr || epoch->empty()) return;  // no history: no position
  StreamPosition* p = PositionOf(channel);
  if (p == nullptr) return;
  p->epoch = *epoch;
  p->offset = offset;
  p->known = true;
}

void StreamTransport::Subscribed(const std::string& channel, const SubscribeReplyView& reply,
                                 bool recovering, std::string& out) {
  auto known = std::find_if(epochs_.begin(), epochs_.end(),
                            [&](const auto& e) { return e.first == channel; });
  if (known == epochs_.end()) {
    epochs_.emplace_back(channel, reply.epoch);
  } else {
    known->second = reply.epoch;  // subscribed again (a server-side subscribe after an end)
  }
  // A channel the request did not name is in the id by name, once it has a position.
  if (!reply.epoch.empty() && PositionOf(channel) == nullptr) {
    named_.push_back(NamedPosition{channel, {}});
  }
  Fragment f;
  uint64_t last = 0;
  for (const std::string& pub : reply.publications) {
    if (!FragmentOfPublication(pub, channel, &f)) continue;
    last = f.offset;
    // uni_sse: they travel inside the reply; fragments: each is an event.
    if (format_ != Format::kFragments) continue;
    Advance(channel, f.offset);
    AppendFragmentEventWithId(out, f, EventId());
  }
  if (StreamPosition* p = PositionOf(channel); p != nullptr) {
    if (reply.epoch.empty()) {
      *p = StreamPosition{};
    } else {
      p->epoch = reply.epoch;
      p->offset = std::max(reply.offset, last);
      p->known = true;
    }
  }
  // Asked to recover from a position and could not (its history is gone, or the stream has
  // another epoch): the page learns it, never a silent gap. Its id carries the new position.
  if (format_ == Format::kFragments && recovering && !reply.recovered) {
    AppendUnrecoveredEvent(out, channel, EventId());
  }
}

void StreamTransport::UniSsePush(std::string_view body, std::string& out) {
  Fragment f;
  SubscribeReplyView subscribed;
  if (FragmentOf(body, &f)) {
    Advance(f.channel, f.offset);
  } else if (ParseSubscribeReply(body, &subscribed) && !subscribed.channel.empty()) {
    // A server-side subscribe (the API's): the channel is the id's from here on.
    std::string none;
    Subscribed(subscribed.channel, subscribed, false, none);
  } else {
    return AppendUni(out, body, true);
  }
  if (!named_.empty()) {
    out += "id: ";
    out += EventId();
    out += '\n';
  }
  AppendUni(out, body, true);
}

const std::string* StreamTransport::EpochOf(std::string_view channel) const {
  for (const auto& [name, epoch] : epochs_) {
    if (name == channel) return &epoch;
  }
  return nullptr;
}

net::SendStatus StreamTransport::SendReply(std::string_view json, net::Lane lane) {
  assert(loop().InThisThread());
  if (done()) return net::SendStatus::kDropped;
  std::string out;
  uint32_t refused = 0;  // an error reply: the code
  bool end = false;      // fragments: a subscription ended, the browser reconnects
  const bool sse = format_ != Format::kUniJsonLines;
  ForEachJsonValue(json, [&](std::string_view value) {
    const UniValue u = ToUni(value);
    // Fragments: a channel the token's `channels` already subscribed (105) streams as it is.
    if (u.kind == UniValue::kError &&
        !(format_ == Format::kFragments && u.error_code == kAlreadySubscribedCode)) {
      refused = u.error_code;
      return false;
    }
    if (format_ != Format::kFragments) {
      switch (u.kind) {
        case UniValue::kConnect: {
          // uni_sse: the server-side subscriptions with history are the event id's; the
          // connect's own event carries their positions after what it recovered.
          std::vector<SubscribeReplyView> subs;
          if (format_ == Format::kUniSse && ParseConnectSubs(u.body, &subs)) {
            std::string none;
            for (const SubscribeReplyView& sub : subs) Subscribed(sub.channel, sub, false, none);
          }
          if (format_ == Format::kUniSse && !named_.empty()) {
            out += "id: ";
            out += EventId();
            out += '\n';
          }
          std::string connect = "{\"connect\":";
          connect += u.body;
          connect += '}';
          AppendUni(out, connect, sse);
          break;
        }
        case UniValue::kPush:
          if (format_ == Format::kUniSse) {
            UniSsePush(u.body, out);
          } else {
            AppendUni(out, u.body, sse);
          }
          break;
        case UniValue::kPing:
          AppendUni(out, "{}", sse);
          break;
        default:
          break;
      }
      return true;
    }
    // Fragments: subscribe replies carry the epoch and what recovery found; pushes become
    // events; an ended subscription (a missed publication, the API's unsubscribe) ends the
    // stream, and the browser's reconnect recovers from Last-Event-ID.
    if (u.kind == UniValue::kConnect) {
      // The token's server-side subscriptions stream too, recovered from the connect's
      // `subs` (the request's channels by position, the others by name); those the request
      // did not name follow its channels in the id.
      std::vector<SubscribeReplyView> subs;
      if (ParseConnectSubs(u.body, &subs)) {
        for (const SubscribeReplyView& sub : subs) {
          const auto it = std::find(channels_.begin(), channels_.end(), sub.channel);
          if (it == channels_.end()) {
            const bool recovering = std::find(named_recovering_.begin(), named_recovering_.end(),
                                              sub.channel) != named_recovering_.end();
            Subscribed(sub.channel, sub, recovering, out);
          } else {
            const auto index = static_cast<size_t>(it - channels_.begin());
            Subscribed(*it, sub, recovering_[index], out);
            recovering_[index] = false;
          }
        }
      }
    } else if (u.kind == UniValue::kPing) {
      out += ":\n\n";  // a comment: keeps proxies from timing the stream out
    } else if (u.kind == UniValue::kPush) {
      Fragment f;
      if (FragmentOf(u.body, &f)) {
        Advance(f.channel, f.offset);
        AppendFragmentEventWithId(out, f, EventId());
      } else if (u.body.find("\"unsubscribe\":") != std::string_view::npos) {
        end = true;
        return false;
      }
    } else if (u.kind == UniValue::kOther) {
      SubscribeReplyView reply;
      if (ParseSubscribeReply(value, &reply)) {
        // The channel is the one this reply answers: subscribes were sent in channel order
        // with ids 2, 3, ... (app/server.cc).
        const size_t index = reply.id >= 2 ? reply.id - 2 : SIZE_MAX;
        if (index < channels_.size() && EpochOf(channels_[index]) == nullptr) {
          Subscribed(channels_[index], reply, recovering_[index], out);
          recovering_[index] = false;
        }
      }
    }
    return true;
  });
  if (refused != 0 || end) {
    if (!started_) {
      Refuse(StreamStatusOf(refused));
      return net::SendStatus::kDropped;
    }
    EndStream(out);
    return net::SendStatus::kDropped;
  }
  StartResponse();
  return SendChunk(out, lane);
}

net::SendStatus StreamTransport::SendPush(const PreparedPush& push, net::PushClass push_class) {
  assert(loop().InThisThread());
  if (done()) return net::SendStatus::kDropped;
  StartResponse();
  const StreamFramed* framed = nullptr;
  std::unique_ptr<StreamFramed> own;
  if (format_ == Format::kFragments) {
    framing_for = this;
    framed = static_cast<const StreamFramed*>(&push.framed(kFragmentsKind));
    framing_for = nullptr;
    // The shared events fit a stream of one channel whose stream they were framed with
    // (their id is that channel's epoch:offset); any other stream writes its own ids.
    bool shared = channels_.size() == 1 && named_.empty();
    for (const auto& [channel, epoch] : framed->epochs) {
      const std::string* mine = EpochOf(channel);
      if (!shared || channel != channels_[0] || mine == nullptr || *mine != epoch) {
        shared = false;
        break;
      }
    }
    if (shared) {
      for (const Fragment& f : framed->fragments) Advance(f.channel, f.offset);
    } else {
      std::string events;
      for (const Fragment& f : framed->fragments) {
        Advance(f.channel, f.offset);
        AppendFragmentEventWithId(events, f, EventId());
      }
      own.reset(ToFramed(events));
      framed = own.get();
    }
  } else {
    framed = static_cast<const StreamFramed*>(&push.framed(kind()));
    if (format_ == Format::kUniSse && !named_.empty() && framed->chunk != nullptr) {
      // A stream with positions: each publication's event after its id.
      std::string events;
      const char* bytes = framed->chunk->data();
      for (const StreamFramed::UniEvent& event : framed->uni) {
        if (event.publication) {
          Advance(event.channel, event.offset);
          events += "id: ";
          events += EventId();
          events += '\n';
        }
        events.append(bytes + event.begin, event.end - event.begin);
      }
      own.reset(ToFramed(events));
      framed = own.get();
    }
  }
  return SendFramed(*framed, push_class);  // no chunk: nothing of it is ours
}

void StreamTransport::Close(Disconnect reason) {
  if (done()) return;
  if (!started_) return Refuse(StreamStatusOf(reason.code));
  EndStream();
}

}  // namespace hermod::proto
