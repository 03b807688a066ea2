#include "ws/message_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ws/deflate.h"
#include "ws/frame_encoder.h"

namespace hermod::ws {
namespace {

constexpr std::array<uint8_t, 4> kKey = {0x12, 0x34, 0x56, 0x78};

// Records every callback as a line, so that runs can be compared whole.
class Recorder : public MessageHandler {
 public:
  void OnMessage(Opcode opcode, std::string_view payload) override {
    events.push_back((opcode == Opcode::kText ? "text:" : "binary:") + std::string(payload));
    last_payload = payload;
  }
  void OnPing(std::string_view payload) override {
    events.push_back("ping:" + std::string(payload));
  }
  void OnPong(std::string_view payload) override {
    events.push_back("pong:" + std::string(payload));
  }
  void OnClose(uint16_t code, std::string_view reason) override {
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
  }
  std::vector<std::string> events;
  std::string_view last_payload;
};

// A frame as a client sends it (masked); masked=false for the server role.
std::string Frame(Opcode opcode, std::string_view payload, bool fin = true, bool rsv1 = false,
                  bool masked = true) {
  FrameHeaderSpec spec;
  spec.opcode = opcode;
  spec.fin = fin;
  spec.rsv1 = rsv1;
  if (masked) spec.mask = kKey;
  std::string out;
  AppendFrame(out, spec, payload);
  return out;
}

// A raw header: first byte, then the length field as given, then the mask key.
std::string RawHeader(uint8_t b0, uint8_t len7, std::string_view extended_len = {},
                      bool masked = true) {
  std::string out;
  out.push_back(static_cast<char>(b0));
  out.push_back(static_cast<char>(len7 | (masked ? 0x80 : 0)));
  out.append(extended_len);
  if (masked) out.append(reinterpret_cast<const char*>(kKey.data()), 4);
  return out;
}

std::string Compress(Deflater& deflater, std::string_view message) {
  std::string out;
  deflater.Deflate(message, false, out);
  return out;
}

struct Outcome {
  std::vector<std::string> events;
  int error = 0;  // close code the reader failed with; 0 when none
  bool closed = false;
  bool mid_message = false;
};

struct Options {
  ReaderLimits limits;
  bool with_inflater = false;
  bool reset_inflater = false;
};

// Feeds bytes in pieces of `step` (0: all at once) through a fresh reader.
Outcome FeedInPieces(std::string bytes, size_t step, const Options& options = {}) {
  MessageReader reader;
  Recorder recorder;
  Inflater inflater;
  Outcome outcome;
  if (step == 0) step = bytes.size() == 0 ? 1 : bytes.size();
  for (size_t pos = 0; pos < bytes.size(); pos += step) {
    // Each piece in its own buffer, as reads land in the loop's buffer one by one.
    std::string piece = bytes.substr(pos, step);
    auto r =
        reader.Feed(reinterpret_cast<uint8_t*>(piece.data()), piece.size(), options.limits,
                    recorder, options.with_inflater ? &inflater : nullptr, options.reset_inflater);
    if (!r.ok) {
      outcome.error = static_cast<int>(r.error.code);
      EXPECT_FALSE(r.error.reason.empty());
      break;
    }
  }
  outcome.events = recorder.events;
  outcome.closed = reader.closed();
  outcome.mid_message = reader.mid_message();
  return outcome;
}

Options Deflate() {
  Options o;
  o.limits.deflate = true;
  o.with_inflater = true;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Every scenario must give the same outcome whether the bytes arrive at once or in pieces.

struct Scenario {
  const char* name;
  std::function<std::string()> bytes;
  Options options;
  std::vector<std::string> events;
  int error;
};

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> s;
  const std::string big16(300, 'm');
  const std::string big64(70000, 'q');
  s.push_back({"SmallText", [] { return Frame(Opcode::kText, "hello"); }, {}, {"text:hello"}, 0});
  s.push_back({"EmptyMessages",
               [] { return Frame(Opcode::kText, "") + Frame(Opcode::kBinary, ""); },
               {},
               {"text:", "binary:"},
               0});
  s.push_back({"Binary16BitLength",
               [=] { return Frame(Opcode::kBinary, big16); },
               {},
               {"binary:" + big16},
               0});
  s.push_back({"Binary64BitLength",
               [=] { return Frame(Opcode::kBinary, big64); },
               {},
               {"binary:" + big64},
               0});
  s.push_back({"NonMinimalLengthIsAccepted",
               [] {
                 std::string f = RawHeader(0x82, 126, std::string("\x00\x03", 2));
                 std::string p = "abc";
                 for (size_t i = 0; i < 3; ++i) p[i] ^= static_cast<char>(kKey[i]);
                 return f + p;
               },
               {},
               {"binary:abc"},
               0});
  s.push_back({"SeveralMessagesInOneRead",
               [] {
                 return Frame(Opcode::kText, "a") + Frame(Opcode::kBinary, "bb") +
                        Frame(Opcode::kPing, "p") + Frame(Opcode::kPong, "q");
               },
               {},
               {"text:a", "binary:bb", "ping:p", "pong:q"},
               0});
  s.push_back({"FragmentedWithInterleavedControlFrames",
               [] {
                 return Frame(Opcode::kText, "Hel", false) + Frame(Opcode::kPing, "p1") +
                        Frame(Opcode::kContinuation, "lo ", false) + Frame(Opcode::kPong, "p2") +
                        Frame(Opcode::kPing, "") + Frame(Opcode::kContinuation, "world");
               },
               {},
               {"ping:p1", "pong:p2", "ping:", "text:Hello world"},
               0});
  s.push_back({"FragmentedWithEmptyFragments",
               [] {
                 return Frame(Opcode::kBinary, "", false) +
                        Frame(Opcode::kContinuation, "", false) +
                        Frame(Opcode::kContinuation, "x", false) + Frame(Opcode::kContinuation, "");
               },
               {},
               {"binary:x"},
               0});
  s.push_back({"CodePointSplitAcrossFragments",
               [] {
                 return Frame(Opcode::kText, "\xe2", false) +
                        Frame(Opcode::kContinuation, "\x82", false) +
                        Frame(Opcode::kContinuation, "\xac!");
               },
               {},
               {"text:\xe2\x82\xac!"},
               0});
  s.push_back({"PingWith125Bytes",
               [] { return Frame(Opcode::kPing, std::string(125, 'p')); },
               {},
               {"ping:" + std::string(125, 'p')},
               0});
  s.push_back({"CloseWithoutPayloadIs1005",
               [] { return Frame(Opcode::kClose, ""); },
               {},
               {"close:1005:"},
               0});
  s.push_back({"CloseWithCodeAndReason",
               [] { return Frame(Opcode::kClose, ClosePayload(1000, "bye \xc3\xa9")); },
               {},
               {"close:1000:bye \xc3\xa9"},
               0});
  s.push_back({"BytesAfterCloseAreIgnored",
               [] {
                 return Frame(Opcode::kClose, ClosePayload(1001, "")) +
                        Frame(Opcode::kText, "late") + "\xff\xff garbage";
               },
               {},
               {"close:1001:"},
               0});
  s.push_back({"CloseInsideAFragmentedMessage",
               [] {
                 return Frame(Opcode::kText, "part", false) +
                        Frame(Opcode::kClose, ClosePayload(1000, "now"));
               },
               {},
               {"close:1000:now"},
               0});

  // 1002
  s.push_back({"UnmaskedFrameFromClient",
               [] { return Frame(Opcode::kText, "x", true, false, false); },
               {},
               {},
               1002});
  Options client;
  client.limits.expect_masked = false;
  s.push_back(
      {"MaskedFrameFromServer", [] { return Frame(Opcode::kText, "x"); }, client, {}, 1002});
  s.push_back({"ClientRoleAcceptsUnmaskedFrames",
               [] {
                 return Frame(Opcode::kText, "Hel", false, false, false) +
                        Frame(Opcode::kPing, "p", true, false, false) +
                        Frame(Opcode::kContinuation, "lo", true, false, false);
               },
               client,
               {"ping:p", "text:Hello"},
               0});
  s.push_back({"Rsv2Set", [] { return RawHeader(0xA1, 0); }, {}, {}, 1002});
  s.push_back({"Rsv3Set", [] { return RawHeader(0x91, 0); }, {}, {}, 1002});
  s.push_back(
      {"Rsv1WithoutDeflate", [] { return Frame(Opcode::kText, "x", true, true); }, {}, {}, 1002});
  s.push_back({"Rsv1OnContinuation",
               [] {
                 Deflater d(1, 15);
                 std::string c = Compress(d, "hello");
                 return Frame(Opcode::kText, c.substr(0, 2), false, true) +
                        Frame(Opcode::kContinuation, c.substr(2), true, true);
               },
               Deflate(),
               {},
               1002});
  s.push_back({"Rsv1OnControlFrame",
               [] { return Frame(Opcode::kPing, "", true, true); },
               Deflate(),
               {},
               1002});
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    s.push_back({"UnknownOpcode", [op] { return RawHeader(0x80 | op, 0); }, {}, {}, 1002});
  }
  s.push_back({"FragmentedPing", [] { return Frame(Opcode::kPing, "x", false); }, {}, {}, 1002});
  s.push_back({"ControlPayloadOver125",
               [] { return Frame(Opcode::kPing, std::string(126, 'x')); },
               {},
               {},
               1002});
  s.push_back({"ControlLengthCode126Even126",
               [] { return RawHeader(0x89, 126, "\x00\x05"); },
               {},
               {},
               1002});
  s.push_back({"ContinuationWithoutMessage",
               [] { return Frame(Opcode::kContinuation, "x"); },
               {},
               {},
               1002});
  s.push_back({"NewMessageInsideFragmentedMessage",
               [] { return Frame(Opcode::kText, "a", false) + Frame(Opcode::kBinary, "b"); },
               {},
               {},
               1002});
  s.push_back({"LengthWithTopBitSet",
               [] { return RawHeader(0x82, 127, std::string("\x80\0\0\0\0\0\0\x01", 8)); },
               {},
               {},
               1002});
  s.push_back(
      {"CloseWithOneBytePayload", [] { return Frame(Opcode::kClose, "\x03"); }, {}, {}, 1002});
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    s.push_back({"CloseWithInvalidCode",
                 [code] { return Frame(Opcode::kClose, ClosePayload(code, "")); },
                 {},
                 {},
                 1002});
  }
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4999}) {
    s.push_back({"CloseWithValidCode",
                 [code] { return Frame(Opcode::kClose, ClosePayload(code, "r")); },
                 {},
                 {"close:" + std::to_string(code) + ":r"},
                 0});
  }

  // 1007
  s.push_back(
      {"InvalidUtf8InText", [] { return Frame(Opcode::kText, "ok\xc0\x80"); }, {}, {}, 1007});
  s.push_back({"InvalidUtf8AcrossFragments",
               [] {
                 return Frame(Opcode::kText, "\xed", false) +
                        Frame(Opcode::kContinuation, "\xa0\x80");
               },
               {},
               {},
               1007});
  s.push_back(
      {"TextEndsInsideACodePoint",
       [] { return Frame(Opcode::kText, "ok", false) + Frame(Opcode::kContinuation, "\xe2\x82"); },
       {},
       {},
       1007});
  s.push_back({"BinaryIsNotValidated",
               [] { return Frame(Opcode::kBinary, "\xc0\x80"); },
               {},
               {std::string("binary:\xc0\x80")},
               0});
  s.push_back({"CloseReasonNotUtf8",
               [] { return Frame(Opcode::kClose, ClosePayload(1000, "\xff")); },
               {},
               {},
               1007});

  // 1009
  Options small;
  small.limits.max_message_size = 100;
  s.push_back({"MessageOfExactlyTheLimit",
               [] { return Frame(Opcode::kBinary, std::string(100, 'x')); },
               small,
               {"binary:" + std::string(100, 'x')},
               0});
  s.push_back({"FrameOverTheLimit",
               [] { return Frame(Opcode::kBinary, std::string(101, 'x')); },
               small,
               {},
               1009});
  s.push_back({"FragmentsOverTheLimit",
               [] {
                 return Frame(Opcode::kText, std::string(60, 'x'), false) +
                        Frame(Opcode::kPing, "still fine") +
                        Frame(Opcode::kContinuation, std::string(41, 'x'));
               },
               small,
               {"ping:still fine"},
               1009});

  // permessage-deflate
  s.push_back({"CompressedMessage",
               [] {
                 Deflater d(1, 15);
                 return Frame(Opcode::kText, Compress(d, "Hello, compressed world"), true, true);
               },
               Deflate(),
               {"text:Hello, compressed world"},
               0});
  s.push_back({"CompressedMessagesWithContextTakeover",
               [] {
                 Deflater d(1, 15);
                 std::string a =
                     Frame(Opcode::kText, Compress(d, "repeat repeat repeat"), true, true);
                 return a + Frame(Opcode::kText, Compress(d, "repeat repeat repeat"), true, true);
               },
               Deflate(),
               {"text:repeat repeat repeat", "text:repeat repeat repeat"},
               0});
  s.push_back({"CompressedFragmentedWithPing",
               [] {
                 Deflater d(1, 15);
                 std::string c = Compress(d, std::string(3000, 'z') + "end");
                 return Frame(Opcode::kBinary, c.substr(0, 3), false, true) +
                        Frame(Opcode::kPing, "mid") + Frame(Opcode::kContinuation, c.substr(3));
               },
               Deflate(),
               {"ping:mid", "binary:" + std::string(3000, 'z') + "end"},
               0});
  s.push_back({"UncompressedMessageWithDeflateNegotiated",
               [] { return Frame(Opcode::kText, "plain"); },
               Deflate(),
               {"text:plain"},
               0});
  Options no_inflater;
  no_inflater.limits.deflate = true;
  s.push_back({"CompressedWithoutInflater",
               [] {
                 Deflater d(1, 15);
                 return Frame(Opcode::kText, Compress(d, "x"), true, true);
               },
               no_inflater,
               {},
               1002});
  s.push_back({"CompressedInvalidUtf8",
               [] {
                 Deflater d(1, 15);
                 return Frame(Opcode::kText, Compress(d, "bad \xed\xa0\x80"), true, true);
               },
               Deflate(),
               {},
               1007});
  s.push_back({"CorruptDeflateData",
               [] { return Frame(Opcode::kBinary, "\xff\xff\xff\xff", true, true); },
               Deflate(),
               {},
               1007});
  Options small_deflate = Deflate();
  small_deflate.limits.max_message_size = 1000;
  s.push_back({"InflatedOverTheLimit",
               [] {
                 Deflater d(9, 15);
                 return Frame(Opcode::kBinary, Compress(d, std::string(1001, 'a')), true, true);
               },
               small_deflate,
               {},
               1009});
  return s;
}

class SplitFeeding : public testing::TestWithParam<size_t> {};

TEST_P(SplitFeeding, EveryScenarioGivesTheSameOutcomeAsWholeFeeding) {
  for (const Scenario& scenario : Scenarios()) {
    SCOPED_TRACE(scenario.name);
    Outcome whole = FeedInPieces(scenario.bytes(), 0, scenario.options);
    EXPECT_EQ(whole.events, scenario.events);
    EXPECT_EQ(whole.error, scenario.error);
    Outcome split = FeedInPieces(scenario.bytes(), GetParam(), scenario.options);
    EXPECT_EQ(split.events, whole.events);
    EXPECT_EQ(split.error, whole.error);
    EXPECT_EQ(split.closed, whole.closed);
    EXPECT_FALSE(split.mid_message && split.closed);
  }
}

INSTANTIATE_TEST_SUITE_P(Steps, SplitFeeding, testing::Values(1, 2, 3, 5, 7, 13, 64, 1000),
                         [](const testing::TestParamInfo<size_t>& info) {
                           return "Every" + std::to_string(info.param) + "Bytes";
                         });

// ---------------------------------------------------------------------------------------------

TEST(MessageReader, StaysSmall) {
  std::printf("sizeof(MessageReader) = %zu\n", sizeof(MessageReader));
  EXPECT_LE(sizeof(MessageReader), 64u);
}

TEST(MessageReader, DeliversAWholeFrameAsAViewOfTheInputWithoutCopying) {
  std::string bytes = Frame(Opcode::kText, "zero copy");
  MessageReader reader;
  Recorder recorder;
  auto* data = reinterpret_cast<uint8_t*>(bytes.data());
  ASSERT_TRUE(reader.Feed(data, bytes.size(), ReaderLimits{}, recorder, nullptr, false).ok);
  ASSERT_EQ(recorder.events, std::vector<std::string>{"text:zero copy"});
  EXPECT_EQ(recorder.last_payload.data(), bytes.data() + 6);  // unmasked in place
  EXPECT_FALSE(reader.mid_message());
}

TEST(MessageReader, ClosesWith1009FromTheHeaderBeforeThePayloadArrives) {
  ReaderLimits limits;
  limits.max_message_size = 1 << 20;
  std::string header = RawHeader(0x82, 127, std::string("\0\0\0\0\x01\0\0\0", 8));
  MessageReader reader;
  Recorder recorder;
  auto r = reader.Feed(reinterpret_cast<uint8_t*>(header.data()), header.size(), limits, recorder,
                       nullptr, false);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.code, CloseCode::kMessageTooBig);
}

TEST(MessageReader, ClosesWith1002AsSoonAsTheFirstTwoBytesAreBad) {
  MessageReader reader;
  Recorder recorder;
  uint8_t bytes[] = {0x83, 0x80};  // opcode 3; the rest of the header has not arrived
  auto r = reader.Feed(bytes, 2, ReaderLimits{}, recorder, nullptr, false);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.code, CloseCode::kProtocolError);
}

TEST(MessageReader, ClosesWith1007OnInvalidUtf8AcrossFragmentsBeforeTheMessageEnds) {
  // Fail fast (RFC 6455 §8.1): the first invalid byte ends the connection, even though the
  // frame and the message are still incomplete.
  std::string bytes = Frame(Opcode::kText, "valid ", false) +
                      Frame(Opcode::kContinuation, std::string("\xf4\x90") + std::string(50, 'x'));
  bytes.resize(bytes.size() - 40);
  const Outcome outcome = FeedInPieces(bytes, 0);
  EXPECT_EQ(outcome.error, 1007);
}

TEST(MessageReader, ClosesWith1007OnInvalidUtf8InAPartialFrame) {
  std::string bytes = Frame(Opcode::kText, std::string(100, 'a') + "\xff" + std::string(100, 'b'));
  bytes.resize(bytes.size() - 50);
  EXPECT_EQ(FeedInPieces(bytes, 0).error, 1007);
  EXPECT_EQ(FeedInPieces(bytes, 9).error, 1007);
}

TEST(MessageReader, IsClosedAndIgnoresInputAfterAnError) {
  MessageReader reader;
  Recorder recorder;
  std::string bad = Frame(Opcode::kContinuation, "x");
  auto r = reader.Feed(reinterpret_cast<uint8_t*>(bad.data()), bad.size(), ReaderLimits{}, recorder,
                       nullptr, false);
  ASSERT_FALSE(r.ok);
  EXPECT_TRUE(reader.closed());
  EXPECT_FALSE(reader.mid_message());
  std::string good = Frame(Opcode::kText, "ignored");
  r = reader.Feed(reinterpret_cast<uint8_t*>(good.data()), good.size(), ReaderLimits{}, recorder,
                  nullptr, false);
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(recorder.events.empty());
}

TEST(MessageReader, ReportsMidMessageWhileAFrameOrMessageIsIncomplete) {
  MessageReader reader;
  Recorder recorder;
  std::string bytes = Frame(Opcode::kText, "ab", false) + Frame(Opcode::kContinuation, "cd");
  auto feed = [&](size_t from, size_t n) {
    return reader.Feed(reinterpret_cast<uint8_t*>(bytes.data() + from), n, ReaderLimits{}, recorder,
                       nullptr, false);
  };
  EXPECT_FALSE(reader.mid_message());
  ASSERT_TRUE(feed(0, 1).ok);  // half a header
  EXPECT_TRUE(reader.mid_message());
  ASSERT_TRUE(feed(1, 7).ok);  // first fragment done, message open
  EXPECT_TRUE(reader.mid_message());
  ASSERT_TRUE(feed(8, bytes.size() - 8).ok);
  EXPECT_FALSE(reader.mid_message());
  EXPECT_EQ(recorder.events, std::vector<std::string>{"text:abcd"});
}

TEST(MessageReader, ControlFrameSplitAcrossReadsInsideABufferedMessage) {
  // The ping's payload is cut by a read while the fragmented text is buffered: both must
  // come out intact.
  std::string bytes = Frame(Opcode::kText, "first half ", false) +
                      Frame(Opcode::kPing, "ping payload") +
                      Frame(Opcode::kContinuation, "second half");
  const size_t cut = Frame(Opcode::kText, "first half ", false).size() + 2 + 4 + 5;
  MessageReader reader;
  Recorder recorder;
  std::string a = bytes.substr(0, cut), b = bytes.substr(cut);
  ASSERT_TRUE(reader
                  .Feed(reinterpret_cast<uint8_t*>(a.data()), a.size(), ReaderLimits{}, recorder,
                        nullptr, false)
                  .ok);
  ASSERT_TRUE(reader
                  .Feed(reinterpret_cast<uint8_t*>(b.data()), b.size(), ReaderLimits{}, recorder,
                        nullptr, false)
                  .ok);
  EXPECT_EQ(recorder.events,
            (std::vector<std::string>{"ping:ping payload", "text:first half second half"}));
}

TEST(MessageReader, ZipBombClosesWith1009) {
  Deflater deflater(9, 15);
  std::string bomb;
  deflater.Deflate(std::string(10 << 20, '\0'), true, bomb);
  Options options = Deflate();
  options.reset_inflater = true;
  const Outcome outcome = FeedInPieces(Frame(Opcode::kBinary, bomb, true, true), 0, options);
  EXPECT_EQ(outcome.error, 1009);
  EXPECT_TRUE(outcome.events.empty());
}

// A client may sync-flush every fragment (RFC 7692 §7.2.3.1): incompressible data then
// takes an empty stored block per flush more than its size. A message within the limit once
// inflated is taken, however its sender cut it; the limit is on what it inflates to.
TEST(MessageReader, IncompressibleMessageFlushedEvery256BytesWithinTheLimitIsTaken) {
  constexpr size_t kSize = 64 << 10;
  std::string message(kSize, '\0');
  std::mt19937 rng(5);
  for (char& c : message) c = static_cast<char>(rng());
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string bytes;
  size_t compressed = 0;
  for (size_t at = 0; at < kSize; at += 256) {
    std::string out(1024, '\0');
    z.next_in = reinterpret_cast<Bytef*>(message.data() + at);
    z.avail_in = 256;
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    ASSERT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    out.resize(out.size() - z.avail_out);
    const bool last = at + 256 == kSize;
    if (last) out.resize(out.size() - 4);  // the message's 00 00 ff ff tail
    compressed += out.size();
    bytes += Frame(at == 0 ? Opcode::kBinary : Opcode::kContinuation, out, last, at == 0);
  }
  deflateEnd(&z);
  ASSERT_GT(compressed, kSize + kSize / 32);  // ~4 % past the message
  Options options = Deflate();
  options.limits.max_message_size = kSize;
  options.reset_inflater = true;
  const Outcome outcome = FeedInPieces(bytes, 0, options);
  EXPECT_EQ(outcome.error, 0);
  ASSERT_EQ(outcome.events.size(), 1u);
  EXPECT_EQ(outcome.events[0], "binary:" + message);
}

TEST(MessageReader, CompressedMessagesWithoutContextTakeoverUseAResetInflater) {
  Deflater deflater(1, 15);
  std::string bytes;
  for (int i = 0; i < 3; ++i) {
    std::string c;
    deflater.Deflate("no context " + std::to_string(i), true, c);
    bytes += Frame(Opcode::kText, c, true, true);
  }
  Options options = Deflate();
  options.reset_inflater = true;
  for (size_t step : {0, 1, 4}) {
    EXPECT_EQ(
        FeedInPieces(bytes, step, options).events,
        (std::vector<std::string>{"text:no context 0", "text:no context 1", "text:no context 2"}));
  }
}

}  // namespace
}  // namespace hermod::ws

namespace hermod::ws {
namespace {

// Short whole frames take the reader's fast path when they arrive whole and the general one
// when a read cuts them: both must agree, at every length and alignment of the 8-byte
// unmasking, for ASCII, other valid UTF-8, invalid UTF-8 and binary payloads.
TEST(MessageReaderFastPath, AgreesWithTheGeneralPathAtEveryShortLength) {
  const std::string utf8 = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 ";  // 2, 3 and 4 bytes
  for (size_t n = 0; n <= 130; ++n) {
    SCOPED_TRACE(n);
    std::string ascii, mixed, binary;
    for (size_t i = 0; i < n; ++i) {
      ascii.push_back(static_cast<char>('a' + i % 26));
      binary.push_back(static_cast<char>(i * 37 + 11));
    }
    while (mixed.size() < n) mixed += utf8;
    // Cut at a code point boundary: the valid prefix of the right length at most.
    while (mixed.size() > n) {
      mixed.pop_back();
      while (!mixed.empty() && (static_cast<uint8_t>(mixed.back()) & 0xC0) == 0x80) {
        mixed.pop_back();
      }
      if (!mixed.empty() && static_cast<uint8_t>(mixed.back()) >= 0xC0) mixed.pop_back();
    }
    const std::string bytes = Frame(Opcode::kText, ascii) + Frame(Opcode::kText, mixed) +
                              Frame(Opcode::kBinary, binary) + Frame(Opcode::kPing, "p");
    Outcome whole = FeedInPieces(bytes, 0);
    EXPECT_EQ(whole.error, 0);
    EXPECT_EQ(whole.events, (std::vector<std::string>{"text:" + ascii, "text:" + mixed,
                                                      "binary:" + binary, "ping:p"}));
    EXPECT_EQ(FeedInPieces(bytes, 1).events, whole.events);
    if (n == 0) continue;
    // An invalid byte anywhere in a text message: 1007 both ways, nothing delivered.
    std::string bad = ascii;
    bad[n / 2] = '\xff';
    const std::string invalid = Frame(Opcode::kText, ascii) + Frame(Opcode::kText, bad);
    Outcome bad_whole = FeedInPieces(invalid, 0);
    EXPECT_EQ(bad_whole.error, 1007);
    EXPECT_EQ(bad_whole.events, std::vector<std::string>{"text:" + ascii});
    EXPECT_EQ(FeedInPieces(invalid, 1).error, 1007);
    // At every position: the fast path's unmasking checks its words and its tail's steps.
    for (size_t k = 0; k < n; ++k) {
      std::string at = ascii;
      at[k] = '\x80';
      EXPECT_EQ(FeedInPieces(Frame(Opcode::kText, at), 0).error, 1007) << "byte " << k;
    }
    // The size limit holds on the fast path too.
    Options small;
    small.limits.max_message_size = n - 1;
    EXPECT_EQ(FeedInPieces(Frame(Opcode::kBinary, binary), 0, small).error, 1009);
  }
}

}  // namespace
}  // namespace hermod::ws
