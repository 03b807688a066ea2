#include "proto/emulation.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <charconv>
#include <random>

#include "json/string_writer.h"
#include "proto/prepared_push.h"
#include "proto/protobuf.h"
#include "proto/stream_format.h"
#include "stats/loop_metrics.h"

namespace hermod::proto {

namespace {

std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t r = random();
    for (size_t j = 0; j < 16 && out.size() < bytes * 2; ++j, r >>= 4) out += kHex[r & 15];
  }
  return out;
}

ProtobufReplyEncoder& ReplyEncoder() {
  thread_local ProtobufReplyEncoder encoder;
  return encoder;
}
constexpr size_t kEncoderKeepBytes = 256 * 1024;

// The JSON output (replies, pushes, pings; newline-joined) as JSON lines or SSE events:
// one value each, raw newlines in a value's whitespace turned into spaces.
std::string JsonForm(std::string_view json, bool sse) {
  std::string out;
  ForEachJsonValue(json, [&](std::string_view value) {
    if (sse) out += "data: ";
    AppendJsonLine(out, value);
    if (sse) out += '\n';
    return true;
  });
  return out;
}

std::string ProtobufForm(std::string_view json) {
  std::string out;
  if (!ReplyEncoder().Append(json, out)) {
    spdlog::error("protobuf: a reply did not encode: {}", json.substr(0, 128));
  }
  ReplyEncoder().Release(kEncoderKeepBytes);
  return out;
}

FramedPush* FrameLines(std::string_view json) { return ToChunk<>(JsonForm(json, false)); }
FramedPush* FrameSse(std::string_view json) { return ToChunk<>(JsonForm(json, true)); }
FramedPush* FrameProtobufStream(std::string_view json) { return ToChunk<>(ProtobufForm(json)); }

const size_t kLinesKind = RegisterTransportKind(&FrameLines);
const size_t kSseKind = RegisterTransportKind(&FrameSse);
const size_t kProtobufStreamKind = RegisterTransportKind(&FrameProtobufStream);

// "<loop>-<random>": the loop that owns the session, or SIZE_MAX.
size_t LoopOf(std::string_view session) {
  const size_t dash = session.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 4) return SIZE_MAX;
  size_t index = 0;
  auto [end, ec] = std::from_chars(session.data(), session.data() + dash, index);
  if (ec != std::errc() || end != session.data() + dash) return SIZE_MAX;
  return index;
}

}  // namespace

EmulationRegistry::EmulationRegistry(size_t loops)
    : node_(RandomHex(16)), loops_(loops, nullptr), sessions_(loops) {}

void EmulationRegistry::SetLoop(size_t index, net::Loop* loop) { loops_.at(index) = loop; }

std::string EmulationRegistry::Add(EmulationTransport* transport) {
  const auto index = static_cast<size_t>(transport->loop().index());
  assert(index < sessions_.size() && transport->loop().InThisThread());
  std::string id = std::to_string(index) + "-" + RandomHex(16);
  sessions_[index][id] = transport;
  return id;
}

void EmulationRegistry::Remove(net::Loop& loop, const std::string& session) {
  assert(loop.InThisThread());
  sessions_[static_cast<size_t>(loop.index())].erase(session);
}

EmulationRegistry::Route EmulationRegistry::Dispatch(EmulationRequest request) {
  if (request.node != node_) return Route::kUnknownNode;
  const size_t index = LoopOf(request.session);
  if (index >= loops_.size() || loops_[index] == nullptr) return Route::kNoSession;
  net::Loop* loop = loops_[index];
  loop->Post([this, index, session = std::move(request.session), data = std::move(request.data)] {
    auto& table = sessions_[index];
    auto it = table.find(session);
    if (it != table.end()) {
      it->second->OnEmulation(data);
    } else {
      // Its stream has ended: the client learns that from the stream, the operator here.
      stats::RecordEmulationRequest(stats::EmulationOutcome::kNoSession);
    }
  });
  return Route::kAccepted;
}

EmulationTransport::EmulationTransport(net::Connection& from, Kind kind, Format format,
                                       ClientContext& context, EmulationRegistry& registry)
    : StreamedResponse(from, context),
      kind_(kind),
      format_(kind == Kind::kSse ? Format::kJson : format),
      registry_(registry) {}

EmulationTransport::~EmulationTransport() { Leave(); }

size_t EmulationTransport::kind() const {
  if (kind_ == Kind::kSse) return kSseKind;
  return format_ == Format::kProtobuf ? kProtobufStreamKind : kLinesKind;
}

void EmulationTransport::Leave() {
  if (id_.empty()) return;
  registry_.Remove(loop(), id_);
  id_.clear();
}

void EmulationTransport::Start(std::string_view commands, std::string extra_headers) {
  assert(loop().InThisThread());
  extra_headers_ = std::move(extra_headers);
  id_ = registry_.Add(this);
  session().OnMessage(commands);
}

void EmulationTransport::OnEmulation(std::string_view commands) {
  assert(loop().InThisThread());
  if (done()) return;
  session().OnMessage(commands);
}

void EmulationTransport::StartResponse() {
  StreamedResponse::StartResponse(kind_ == Kind::kSse            ? "text/event-stream"
                                  : format_ == Format::kProtobuf ? "application/octet-stream"
                                                                 : "application/json");
}

std::string EmulationTransport::Frame(std::string_view json) {
  std::string told;
  if (!told_session_) {
    // The connect reply names the session and the node /emulation routes by (Centrifugo's
    // ConnectResult fields `session` and `node`).
    ForEachJsonValue(json, [&](std::string_view value) {
      if (!told.empty()) told += '\n';
      const UniValue u = ToUni(value);
      if (u.kind != UniValue::kConnect || told_session_ || u.body.size() < 2) {
        told.append(value);
        return true;
      }
      told_session_ = true;
      told += "{\"id\":";
      told += std::to_string(u.id);
      told += ",\"connect\":{\"session\":";
      json::AppendJsonString(told, id_);
      told += ",\"node\":";
      json::AppendJsonString(told, registry_.node());
      if (u.body.size() > 2) {
        told += ',';
        told.append(u.body.substr(1));
      } else {
        told += '}';
      }
      told += '}';
      return true;
    });
    json = told;
  }
  if (format_ == Format::kProtobuf) return ProtobufForm(json);
  return JsonForm(json, kind_ == Kind::kSse);
}

net::SendStatus EmulationTransport::SendReply(std::string_view json, net::Lane lane) {
  assert(loop().InThisThread());
  if (done()) return net::SendStatus::kDropped;
  StartResponse();
  return SendChunk(Frame(json), lane);
}

net::SendStatus EmulationTransport::SendPush(const PreparedPush& push, net::PushClass push_class) {
  assert(loop().InThisThread());
  if (done()) return net::SendStatus::kDropped;
  StartResponse();
  return SendFramed(static_cast<const ChunkFramed&>(push.framed(kind())), push_class);
}

void EmulationTransport::Close(Disconnect reason) {
  if (done()) return;
  Leave();
  StartResponse();
  // The SDK reads the code from a disconnect push: whether and how soon to reconnect.
  std::string push = "{\"push\":{\"disconnect\":{\"code\":";
  push += std::to_string(reason.code);
  push += ",\"reason\":";
  json::AppendJsonString(push, reason.reason);
  push += "}}}";
  EndStream(format_ == Format::kProtobuf ? ProtobufForm(push)
                                         : JsonForm(push, kind_ == Kind::kSse));
}

void EmulationTransport::OnClosed() {
  Leave();
  StreamedResponse::OnClosed();
}

void EmulationTransport::OnSlowConsumer() {
  Leave();
  StreamedResponse::OnSlowConsumer();
}

}  // namespace hermod::proto
