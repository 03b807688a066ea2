#include "ws/deflate.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::ws {
namespace {

DeflateConfig Enabled() {
  DeflateConfig config;
  config.enabled = true;
  return config;
}

std::string Response(std::string_view header, const DeflateConfig& config = Enabled()) {
  auto n = NegotiateDeflate(header, config);
  return n ? n->response : "<none>";
}

// --- Negotiation (RFC 7692 §5, §7.1) ---

TEST(NegotiateDeflate, DeclinesWhenDisabled) {
  EXPECT_FALSE(NegotiateDeflate("permessage-deflate", DeflateConfig{}));
}

TEST(NegotiateDeflate, DeclinesWithoutAPermessageDeflateOffer) {
  EXPECT_EQ(Response(""), "<none>");
  EXPECT_EQ(Response("x-webkit-deflate-frame"), "<none>");
  EXPECT_EQ(Response("permessage-deflatex"), "<none>");
}

TEST(NegotiateDeflate, AcceptsAPlainOfferWithDefaults) {
  auto n = NegotiateDeflate("permessage-deflate", Enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate");
  EXPECT_FALSE(n->params.server_no_context_takeover);
  EXPECT_FALSE(n->params.client_no_context_takeover);
  EXPECT_EQ(n->params.server_max_window_bits, 15);
  EXPECT_EQ(n->params.client_max_window_bits, 15);
}

TEST(NegotiateDeflate, EchoesNoContextTakeoverOffers) {
  auto n = NegotiateDeflate(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover", Enabled());
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->params.server_no_context_takeover);
  EXPECT_TRUE(n->params.client_no_context_takeover);
  EXPECT_EQ(n->response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

TEST(NegotiateDeflate, AddsNoContextTakeoverTheConfigInsistsOn) {
  DeflateConfig config = Enabled();
  config.server_no_context_takeover = true;
  config.client_no_context_takeover = true;
  auto n = NegotiateDeflate("permessage-deflate", config);
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->params.server_no_context_takeover);
  EXPECT_TRUE(n->params.client_no_context_takeover);
  EXPECT_EQ(n->response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

TEST(NegotiateDeflate, ClientMaxWindowBitsWithoutValueIsAnsweredOnlyWhenOffered) {
  DeflateConfig config = Enabled();
  config.client_max_window_bits = 10;
  // Not offered: the server cannot limit the client's window.
  auto n = NegotiateDeflate("permessage-deflate", config);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.client_max_window_bits, 15);
  EXPECT_EQ(n->response, "permessage-deflate");
  // Offered without a value: the server picks.
  n = NegotiateDeflate("permessage-deflate; client_max_window_bits", config);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.client_max_window_bits, 10);
  EXPECT_EQ(n->response, "permessage-deflate; client_max_window_bits=10");
  // Offered with a smaller value: the client's value stands.
  n = NegotiateDeflate("permessage-deflate; client_max_window_bits=9", config);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.client_max_window_bits, 9);
  EXPECT_EQ(n->response, "permessage-deflate; client_max_window_bits=9");
  // Without a config limit, an offer without value is answered with 15.
  EXPECT_EQ(Response("permessage-deflate; client_max_window_bits"),
            "permessage-deflate; client_max_window_bits=15");
}

TEST(NegotiateDeflate, ServerMaxWindowBitsIsTheSmallerOfOfferAndConfig) {
  DeflateConfig config = Enabled();
  EXPECT_EQ(Response("permessage-deflate; server_max_window_bits=10", config),
            "permessage-deflate; server_max_window_bits=10");
  config.server_max_window_bits = 9;
  auto n = NegotiateDeflate("permessage-deflate; server_max_window_bits=12", config);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.server_max_window_bits, 9);
  EXPECT_EQ(n->response, "permessage-deflate; server_max_window_bits=9");
  // Not offered, but the config limits the server's own window: say so.
  EXPECT_EQ(Response("permessage-deflate", config), "permessage-deflate; server_max_window_bits=9");
}

TEST(NegotiateDeflate, AcceptsServerMaxWindowBits8) {
  auto n = NegotiateDeflate("permessage-deflate; server_max_window_bits=8", Enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.server_max_window_bits, 8);
}

TEST(NegotiateDeflate, AcceptsQuotedValuesAndCaseAndWhitespace) {
  auto n = NegotiateDeflate(
      "Permessage-Deflate ;\tclient_max_window_bits=\"12\" ; server_max_window_bits = \"11\"",
      Enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.client_max_window_bits, 12);
  EXPECT_EQ(n->params.server_max_window_bits, 11);
}

TEST(NegotiateDeflate, MovesToTheNextOfferWhenOneIsInvalid) {
  const char* invalid_first[] = {
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=010",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; server_max_window_bits=abc",
      "permessage-deflate; client_max_window_bits=0",
      "permessage-deflate; client_max_window_bits=\"\"",
      "permessage-deflate; server_no_context_takeover=1",
      "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
      "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
      "permessage-deflate; unknown_param",
      "permessage-deflate; ; server_no_context_takeover",
      "permessage-deflate; x=\"a,b\"",
  };
  for (const char* first : invalid_first) {
    EXPECT_EQ(Response(first), "<none>") << first;
    EXPECT_EQ(Response(std::string(first) + ", permessage-deflate; client_max_window_bits=11"),
              "permessage-deflate; client_max_window_bits=11")
        << first;
  }
}

TEST(NegotiateDeflate, SkipsOtherExtensionsAndPicksTheFirstAcceptableOffer) {
  EXPECT_EQ(Response("foo; bar=\"x;y,z\", permessage-deflate; server_no_context_takeover, "
                     "permessage-deflate"),
            "permessage-deflate; server_no_context_takeover");
}

TEST(NegotiateDeflate, RejectsAnUnterminatedQuote) {
  EXPECT_EQ(Response("permessage-deflate; client_max_window_bits=\"10"), "<none>");
}

// --- Inflater / Deflater (RFC 7692 §7.2) ---

std::string Repeat(std::string_view s, size_t times) {
  std::string out;
  for (size_t i = 0; i < times; ++i) out += s;
  return out;
}

TEST(Deflate, StripsTheSyncFlushTail) {
  Deflater deflater(1, 15);
  std::string out;
  deflater.Deflate("Hello", true, out);
  ASSERT_GE(out.size(), 4u);
  EXPECT_NE(out.substr(out.size() - 4), std::string("\x00\x00\xff\xff", 4));
}

TEST(Deflate, MatchesTheRfc7692SampleHello) {
  // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
  Inflater inflater;
  std::string out;
  ASSERT_EQ(inflater.Inflate(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7), 100, true, out),
            InflateStatus::kOk);
  EXPECT_EQ(out, "Hello");
  // §7.2.3.3: a stored (uncompressed) block.
  ASSERT_EQ(inflater.Inflate(std::string("\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11), 100,
                             true, out),
            InflateStatus::kOk);
  EXPECT_EQ(out, "Hello");
}

TEST(Deflate, RoundTripsWithContextTakeover) {
  Deflater deflater(6, 15);
  Inflater inflater(15);
  std::string compressed, inflated;
  const std::string message = Repeat("{\"channel\":\"news\",\"data\":42}", 20);
  size_t first_size = 0;
  for (int i = 0; i < 5; ++i) {
    deflater.Deflate(message, false, compressed);
    if (i == 0) first_size = compressed.size();
    ASSERT_EQ(inflater.Inflate(compressed, 1 << 20, false, inflated), InflateStatus::kOk);
    EXPECT_EQ(inflated, message);
  }
  // With the window carried over, a repeated message costs a few bytes.
  EXPECT_LT(compressed.size(), first_size / 2);
}

TEST(Deflate, RoundTripsWithoutContextTakeoverThroughOneSharedInflater) {
  Deflater deflater(1, 15);
  Inflater shared(15);
  std::string compressed, inflated;
  std::string first_compressed;
  for (int i = 0; i < 5; ++i) {
    const std::string message = Repeat("message " + std::to_string(i % 2) + " ", 30);
    deflater.Deflate(message, true, compressed);
    if (i == 0) first_compressed = compressed;
    if (i == 2) {
      EXPECT_EQ(compressed, first_compressed);  // no state carried over
    }
    ASSERT_EQ(shared.Inflate(compressed, 1 << 20, true, inflated), InflateStatus::kOk);
    EXPECT_EQ(inflated, message);
  }
}

TEST(Deflate, RoundTripsEmptyAndIncompressibleMessages) {
  Deflater deflater(1, 15);
  Inflater inflater;
  std::string compressed, inflated;
  for (const std::string& message :
       {std::string(), std::string(1, '\0'), Repeat("\x01\xfe\x7f", 50000)}) {
    deflater.Deflate(message, false, compressed);
    ASSERT_EQ(inflater.Inflate(compressed, 1 << 20, false, inflated), InflateStatus::kOk);
    EXPECT_EQ(inflated, message);
  }
}

TEST(Deflate, EmptyMessagesInARowWithContextTakeoverEndInAStoredBlock) {
  // RFC 7692 §7.2.1: zlib emits nothing for the second empty message (no input since its
  // last flush); an empty payload would leave the peer's inflater inside a stored block,
  // and the next message would inflate to garbage.
  Deflater deflater(6, 15);
  Inflater inflater(15);
  std::string compressed, inflated;
  for (const std::string& message :
       {std::string(), std::string(), std::string(), Repeat("after the empty ones ", 10)}) {
    deflater.Deflate(message, false, compressed);
    if (message.empty()) {
      EXPECT_EQ(compressed, std::string(1, '\0'));
    }
    ASSERT_EQ(inflater.Inflate(compressed, 1 << 20, false, inflated), InflateStatus::kOk);
    EXPECT_EQ(inflated, message);
  }
}

TEST(Deflate, WindowBits8OutputInflatesWithAn8BitWindow) {
  // zlib refuses raw deflate with 8 bits; the Deflater uses 9, whose matches never reach
  // past 250 bytes, so a peer with a 256-byte window still inflates it.
  Deflater deflater(9, 8);
  std::string message;
  for (int i = 0; i < 2000; ++i) message += std::to_string(i * 7919 % 1000) + ",";
  std::string compressed;
  deflater.Deflate(message, false, compressed);
  compressed.append("\x00\x00\xff\xff", 4);
  z_stream z{};
  ASSERT_EQ(inflateInit2(&z, -8), Z_OK);
  std::string out(message.size() + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(compressed.data());
  z.avail_in = static_cast<uInt>(compressed.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_SYNC_FLUSH);
  EXPECT_TRUE(rc == Z_OK || rc == Z_BUF_ERROR) << rc;
  out.resize(out.size() - z.avail_out);
  inflateEnd(&z);
  EXPECT_EQ(out, message);
}

TEST(Inflate, StopsAZipBombAtTheLimitWithBoundedMemory) {
  Deflater deflater(9, 15);
  std::string bomb;
  deflater.Deflate(std::string(10 << 20, '\0'), true, bomb);
  ASSERT_LT(bomb.size(), 20000u);
  Inflater inflater;
  std::string out;
  const size_t limit = 1 << 20;
  EXPECT_EQ(inflater.Inflate(bomb, limit, true, out), InflateStatus::kTooBig);
  EXPECT_LE(out.capacity(), 2 * (limit + 1));  // at most one growth step past the limit
  // The stream is usable again afterwards (the shared per-loop inflater).
  std::string small;
  deflater.Deflate("after the bomb", true, small);
  ASSERT_EQ(inflater.Inflate(small, limit, true, out), InflateStatus::kOk);
  EXPECT_EQ(out, "after the bomb");
}

TEST(Inflate, AcceptsAMessageOfExactlyTheLimit) {
  Deflater deflater(1, 15);
  std::string compressed, out;
  deflater.Deflate(std::string(5000, 'a'), true, compressed);
  Inflater inflater;
  EXPECT_EQ(inflater.Inflate(compressed, 5000, true, out), InflateStatus::kOk);
  EXPECT_EQ(out.size(), 5000u);
  EXPECT_EQ(inflater.Inflate(compressed, 4999, true, out), InflateStatus::kTooBig);
}

TEST(Inflate, ReportsCorruptData) {
  Inflater inflater;
  std::string out;
  EXPECT_EQ(inflater.Inflate(std::string("\xff\xff\xff\xff\xff", 5), 1000, true, out),
            InflateStatus::kCorrupt);
  // A stored block whose length check fails.
  EXPECT_EQ(inflater.Inflate(std::string("\x00\x05\x00\x00\x00", 5), 1000, true, out),
            InflateStatus::kCorrupt);
}

}  // namespace
}  // namespace hermod::ws
