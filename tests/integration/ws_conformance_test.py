"""RFC 6455 and RFC 7692 conformance matrix, in the spirit of the Autobahn|Testsuite.

Raw sockets against /connection/echo, one hermod per class. Each case names the Autobahn
group it follows (1.x framing, 2.x pings, 3.x reserved bits, 4.x opcodes, 5.x fragments, 6.x
UTF-8, 7.x close, 9.x large messages, 12.x/13.x permessage-deflate) and expects what the RFC
requires: an echo, or a Close with the right code followed by the end of TCP, with nothing
else sent after the Close. ws_violations_test.py holds the single violations (unmasked frame,
RSV2, opcode 3, a fragmented ping, ...); this file adds the matrices around them: every
length encoding whole and chopped, the Markus Kuhn UTF-8 stress cases whole, chopped and in
1-byte fragments (failed at the byte that proves them invalid, before the message ends),
the close code table, and permessage-deflate offers against three server configurations,
each answer checked against RFC 7692 §7.1 and then used.

Randomness is seeded (printed); socket timeouts are failure bounds only.
"""

import os
import random
import struct
import unittest
import zlib

import hermod_harness as h

LIMIT = 1 << 20  # websocket.max_message_bytes of every server here
SEED = int(os.environ.get("HERMOD_CONFORMANCE_SEED", "6455"))
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1


def rand_bytes(rng, n):
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def merged(base, extra):
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


class Client:
    """A raw client WebSocket with message-level helpers (fragments, chopping, deflate)."""

    def __init__(self, ws, deflate=None):
        self.ws = ws
        self.deflate = deflate

    def send_frame(self, opcode, payload=b"", **kwargs):
        self.ws.send_frame(opcode, payload, **kwargs)

    def send_chopped(self, data, step=1):
        """The bytes in writes of `step` bytes (TCP_NODELAY: the server sees short reads)."""
        for i in range(0, len(data), step):
            self.ws.send(data[i:i + step])

    def read_frame(self, timeout=h.IO_TIMEOUT_S):
        frame = self.ws.read_frame(timeout)
        if frame is None:
            raise AssertionError("connection ended; a frame was expected")
        return frame

    def read_message(self, timeout=h.IO_TIMEOUT_S):
        """The next data message, reassembled (and inflated); control frames are failures."""
        first = self.read_frame(timeout)
        if first.opcode not in (h.OP_TEXT, h.OP_BINARY):
            raise AssertionError("expected a data message, got %r %r"
                                 % (first, first.payload[:60]))
        if first.rsv & 3:
            raise AssertionError("server set RSV2/RSV3: %r" % first)
        compressed = bool(first.rsv & 4)
        if compressed and self.deflate is None:
            raise AssertionError("RSV1 without negotiated permessage-deflate")
        parts = [first.payload]
        frame = first
        while not frame.fin:
            frame = self.read_frame(timeout)
            if frame.opcode != h.OP_CONT or frame.rsv:
                raise AssertionError("bad continuation %r" % frame)
            parts.append(frame.payload)
        payload = b"".join(parts)
        if compressed:
            payload = self.deflate.decompress(payload)
        return first.opcode, payload

    def expect_echo(self, opcode, payload):
        got_opcode, got = self.read_message()
        if (got_opcode, got) != (opcode, payload):
            raise AssertionError("echo differs: sent op %d len %d %r, got op %d len %d %r"
                                 % (opcode, len(payload), payload[:40], got_opcode, len(got),
                                    got[:40]))

    def expect_close(self, code):
        """A Close with `code` as the very next frame, then the end of TCP (RFC 6455 §7.1.1:
        the server closes first; §5.5.1: nothing follows a Close)."""
        frame = self.read_frame()
        if frame.opcode != h.OP_CLOSE:
            raise AssertionError("expected Close %d, got %r %r" % (code, frame,
                                                                  frame.payload[:60]))
        got, reason = h.parse_close(frame.payload)
        if got != code:
            raise AssertionError("expected close code %d, got %r (%r)" % (code, got, reason))
        reason.decode("utf-8")  # §5.5.1: the reason is UTF-8 (and the frame at most 125)
        self.expect_end()
        return reason

    def expect_end(self):
        frame = self.ws.read_frame()
        if frame is not None:
            raise AssertionError("server sent %r after its Close" % frame)

    def close_cleanly(self, wait_for_eof=True):
        self.send_frame(h.OP_CLOSE, h.close_payload(1000))
        if wait_for_eof:
            self.expect_close(1000)
            return
        frame = self.read_frame()
        if (frame.opcode, h.parse_close(frame.payload)[0]) != (h.OP_CLOSE, 1000):
            raise AssertionError("expected the Close echoed, got %r" % frame)


class ConformanceCase(unittest.TestCase):
    """One hermod for the class; every test checks it is still running afterwards."""

    config = {}

    @classmethod
    def setUpClass(cls):
        base = {"websocket": {"max_message_bytes": LIMIT, "ping_interval_ms": 0,
                              "idle_timeout_ms": 0,
                              # Longer than any read timeout here: a server that waited for
                              # our Close instead of ending TCP would fail the test.
                              "close_timeout_ms": 60000}}
        cls.server = h.Hermod(h.HERMOD, merged(base, cls.config))
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()  # exit status 0: no sanitizer report

    def tearDown(self):
        self.assertTrue(self.server.running(), "hermod died:\n" + self.server.stderr_text())

    def open(self, extensions=None):
        headers = ["Sec-WebSocket-Extensions: " + extensions] if extensions else []
        ws = h.ws_open(self.server.port, extra_headers=headers)
        self.addCleanup(ws.close)
        return Client(ws)


# --- 1.x-5.x framing, pings, reserved bits and opcodes, fragments; 7.x close -------------

LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536]


class FramingTest(ConformanceCase):
    def test_1_x_every_length_encoding_echoed_whole(self):
        c = self.open()
        for opcode in (h.OP_TEXT, h.OP_BINARY):
            for n in LENGTHS:
                payload = b"*" * n if opcode == h.OP_TEXT else bytes(i & 0xFF for i in range(n))
                c.send_frame(opcode, payload)
                c.expect_echo(opcode, payload)
        c.close_cleanly()

    def test_1_x_every_length_encoding_echoed_chopped(self):
        # Autobahn 1.1.7/1.2.7 chop into 997-byte writes; the header goes byte by byte here so
        # that each length field is also cut at every byte.
        c = self.open()
        for opcode in (h.OP_TEXT, h.OP_BINARY):
            for n in LENGTHS:
                payload = b"*" * n if opcode == h.OP_TEXT else os.urandom(n)
                data = h.encode_frame(opcode, payload)
                head = 6 if n < 126 else (8 if n < 65536 else 14)
                c.send_chopped(data[:head])
                c.send_chopped(data[head:], 1 if n <= 128 else 997)
                c.expect_echo(opcode, payload)
        c.close_cleanly()

    def test_1_x_non_minimal_length_encodings_are_echoed(self):
        # §5.2 asks senders for the minimal encoding; hermod accepts the others
        # (message_reader.cc) and must then echo the payload unchanged.
        c = self.open()
        payload = b"hello"
        for form in (126, 127):
            length = struct.pack("!H", 5) if form == 126 else struct.pack("!Q", 5)
            key = os.urandom(4)
            c.ws.send(bytes([0x81, 0x80 | form]) + length + key + h.mask_bytes(payload, key))
            c.expect_echo(h.OP_TEXT, payload)
        c.close_cleanly()

    def test_1_x_64_bit_lengths_beyond_the_limit_and_with_the_top_bit(self):
        # §5.2: the most significant bit of a 64-bit length is 0 (1002); a length over
        # max_message_bytes is refused from the header alone (1009), before any payload.
        for length, code in ((1 << 63, 1002), ((1 << 63) - 1, 1009), (LIMIT + 1, 1009)):
            with self.subTest(length=length):
                c = self.open()
                c.ws.send(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", length) + os.urandom(4))
                c.expect_close(code)

    def test_2_x_pings_with_0_125_and_binary_payloads_are_answered(self):
        c = self.open()
        for payload in (b"", b"p" * 125, bytes(range(256))[:125], b"\x00\xff\xfe\x80"):
            c.send_frame(h.OP_PING, payload)
            frame = c.read_frame()
            self.assertEqual((frame.opcode, frame.fin, frame.rsv, frame.payload),
                             (h.OP_PONG, True, 0, payload))
        c.close_cleanly()

    def test_2_x_chopped_ping_is_answered(self):
        c = self.open()
        payload = b"chopped ping " * 9
        c.send_chopped(h.encode_frame(h.OP_PING, payload))
        frame = c.read_frame()
        self.assertEqual((frame.opcode, frame.payload), (h.OP_PONG, payload))
        c.close_cleanly()

    def test_2_x_unsolicited_pongs_are_ignored(self):
        c = self.open()
        c.send_frame(h.OP_PONG, b"")
        c.send_frame(h.OP_PONG, b"unsolicited")
        c.send_frame(h.OP_TEXT, b"after pongs")
        c.expect_echo(h.OP_TEXT, b"after pongs")  # nothing came back for the pongs
        c.close_cleanly()

    def test_2_x_ten_pings_in_one_write_answered_in_order(self):
        c = self.open()
        payloads = [("ping %d" % i).encode() for i in range(10)]
        c.ws.send(b"".join(h.encode_frame(h.OP_PING, p) for p in payloads))
        got = [c.read_frame() for _ in payloads]
        self.assertEqual([(f.opcode, f.payload) for f in got],
                         [(h.OP_PONG, p) for p in payloads])
        c.close_cleanly()

    def test_2_x_ten_chopped_pings_answered_in_order(self):
        c = self.open()
        payloads = [("chopped %d" % i).encode() * 5 for i in range(10)]
        c.send_chopped(b"".join(h.encode_frame(h.OP_PING, p) for p in payloads))
        got = [c.read_frame() for _ in payloads]
        self.assertEqual([f.payload for f in got], payloads)
        c.close_cleanly()

    def test_3_x_reserved_bits_fail_after_the_messages_before_them(self):
        # Autobahn 3.2-3.7: what came before the bad frame is echoed, nothing after it is
        # answered (here a ping right behind it in the same write).
        cases = [(h.OP_TEXT, 1), (h.OP_TEXT, 3), (h.OP_BINARY, 5), (h.OP_PING, 6),
                 (h.OP_CLOSE, 7), (h.OP_PONG, 1), (h.OP_PING, 4)]
        for opcode, rsv in cases:
            with self.subTest(opcode=opcode, rsv=rsv):
                c = self.open()
                payload = h.close_payload(1000) if opcode == h.OP_CLOSE else b"bad"
                c.ws.send(h.encode_frame(h.OP_TEXT, b"before") +
                          h.encode_frame(opcode, payload, rsv=rsv) +
                          h.encode_frame(h.OP_PING, b"after"))
                c.expect_echo(h.OP_TEXT, b"before")
                c.expect_close(1002)

    def test_3_x_reserved_bit_on_a_continuation_frame(self):
        c = self.open()
        c.send_frame(h.OP_TEXT, b"frag", fin=False)
        c.send_frame(h.OP_CONT, b"ment", rsv=2)
        c.expect_close(1002)

    def test_4_x_every_reserved_opcode_fails_the_connection(self):
        # Autobahn 4.1.x (3-7, data) and 4.2.x (11-15, control), with and without payload,
        # after a message that is still echoed.
        for opcode in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            for payload in (b"", b"reserved"):
                with self.subTest(opcode=opcode, payload=payload):
                    c = self.open()
                    c.ws.send(h.encode_frame(h.OP_TEXT, b"before") +
                              h.encode_frame(opcode, payload) +
                              h.encode_frame(h.OP_PING, b"after"))
                    c.expect_echo(h.OP_TEXT, b"before")
                    c.expect_close(1002)

    def test_5_x_fragmented_pong_fails_the_connection(self):
        c = self.open()
        c.send_frame(h.OP_PONG, b"frag", fin=False)
        c.send_frame(h.OP_CONT, b"ment")
        c.expect_close(1002)

    def test_5_x_fragments_are_reassembled(self):
        c = self.open()
        for opcode in (h.OP_TEXT, h.OP_BINARY):
            # Two fragments, one write and chopped.
            data = (h.encode_frame(opcode, b"fragment1 ", fin=False) +
                    h.encode_frame(h.OP_CONT, b"fragment2"))
            c.ws.send(data)
            c.expect_echo(opcode, b"fragment1 fragment2")
            c.send_chopped(data)
            c.expect_echo(opcode, b"fragment1 fragment2")
        c.close_cleanly()

    def test_5_x_one_byte_fragments_and_empty_fragments(self):
        c = self.open()
        message = b"one byte per frame, \xe2\x82\xac and \xf0\x9f\x98\x80"
        frames = [h.encode_frame(h.OP_TEXT if i == 0 else h.OP_CONT, message[i:i + 1],
                                 fin=i == len(message) - 1) for i in range(len(message))]
        c.ws.send(b"".join(frames))
        c.expect_echo(h.OP_TEXT, message)
        # Autobahn 5.x and 6.1.x: empty fragments anywhere, and a message of empty fragments.
        c.ws.send(h.encode_frame(h.OP_TEXT, b"", fin=False) +
                  h.encode_frame(h.OP_CONT, b"middle", fin=False) +
                  h.encode_frame(h.OP_CONT, b"", fin=False) +
                  h.encode_frame(h.OP_CONT, b""))
        c.expect_echo(h.OP_TEXT, b"middle")
        c.ws.send(h.encode_frame(h.OP_BINARY, b"", fin=False) +
                  h.encode_frame(h.OP_CONT, b"", fin=False) +
                  h.encode_frame(h.OP_CONT, b""))
        c.expect_echo(h.OP_BINARY, b"")
        c.close_cleanly()

    def test_5_x_pings_between_fragments_are_answered_at_once(self):
        # Autobahn 5.6-5.8: each Pong arrives before the message is complete, then the whole
        # message is echoed.
        c = self.open()
        c.send_frame(h.OP_TEXT, b"frag1 ", fin=False)
        for i in range(3):
            c.send_frame(h.OP_PING, b"between %d" % i)
            frame = c.read_frame()
            self.assertEqual((frame.opcode, frame.payload), (h.OP_PONG, b"between %d" % i))
            c.send_frame(h.OP_CONT, b"frag%d " % (i + 2), fin=False)
        c.send_frame(h.OP_CONT, b"end")
        c.expect_echo(h.OP_TEXT, b"frag1 frag2 frag3 frag4 end")
        # The same chopped: the ping's header and payload are cut across reads mid-message.
        data = (h.encode_frame(h.OP_TEXT, b"chopped ", fin=False) +
                h.encode_frame(h.OP_PING, b"inside") +
                h.encode_frame(h.OP_CONT, b"message"))
        c.send_chopped(data)
        frame = c.read_frame()
        self.assertEqual((frame.opcode, frame.payload), (h.OP_PONG, b"inside"))
        c.expect_echo(h.OP_TEXT, b"chopped message")
        c.close_cleanly()

    def test_5_x_continuation_after_a_complete_message_fails(self):
        # Autobahn 5.10-5.20: continuation frames with no message to continue.
        for fin in (True, False):
            with self.subTest(fin=fin):
                c = self.open()
                c.ws.send(h.encode_frame(h.OP_TEXT, b"whole") +
                          h.encode_frame(h.OP_CONT, b"stray", fin=fin))
                c.expect_echo(h.OP_TEXT, b"whole")
                c.expect_close(1002)

    def test_5_x_text_inside_a_fragmented_binary_fails(self):
        c = self.open()
        c.send_frame(h.OP_BINARY, b"first", fin=False)
        c.send_frame(h.OP_PING, b"still fine")
        frame = c.read_frame()
        self.assertEqual(frame.opcode, h.OP_PONG)
        c.send_frame(h.OP_TEXT, b"second")
        c.expect_close(1002)

    def test_7_x_valid_close_codes_are_echoed(self):
        # 1012-1014 are registered with IANA after RFC 6455; Autobahn accepts either answer,
        # hermod passes them through (ws/frame.cc).
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999):
            with self.subTest(code=code):
                c = self.open()
                c.send_frame(h.OP_CLOSE, h.close_payload(code, b"reason"))
                self.assertEqual(c.expect_close(code), b"reason")

    def test_7_x_invalid_close_codes_get_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
            with self.subTest(code=code):
                c = self.open()
                c.send_frame(h.OP_CLOSE, h.close_payload(code))
                c.expect_close(1002)

    def test_7_x_empty_close_is_answered_with_an_empty_close(self):
        c = self.open()
        c.send_frame(h.OP_CLOSE, b"")
        frame = c.read_frame()
        self.assertEqual((frame.opcode, frame.payload), (h.OP_CLOSE, b""))
        c.expect_end()

    def test_7_x_close_with_123_byte_reason_is_echoed(self):
        c = self.open()
        reason = ("\u00e9" * 61 + "x").encode()  # 123 bytes of UTF-8, two-byte sequences
        self.assertEqual(len(reason), 123)
        c.send_frame(h.OP_CLOSE, h.close_payload(1000, reason))
        self.assertEqual(c.expect_close(1000), reason)

    def test_7_x_close_payload_over_125_bytes_gets_1002(self):
        c = self.open()
        c.send_frame(h.OP_CLOSE, h.close_payload(1000, b"r" * 124))
        c.expect_close(1002)

    def test_7_x_chopped_close_is_echoed(self):
        c = self.open()
        c.send_chopped(h.encode_frame(h.OP_CLOSE, h.close_payload(1001, b"chopped")))
        self.assertEqual(c.expect_close(1001), b"chopped")

    def test_7_x_nothing_is_answered_after_a_close(self):
        # Autobahn 7.1.2-7.1.5: messages, pings and fragments after the client's Close are
        # ignored; the server sends its Close and ends TCP.
        tails = [h.encode_frame(h.OP_TEXT, b"after close"),
                 h.encode_frame(h.OP_PING, b"after close"),
                 h.encode_frame(h.OP_CLOSE, h.close_payload(1000)),
                 h.encode_frame(h.OP_TEXT, b"\xff invalid", rsv=7) + b"\x00garbage"]
        for tail in tails:
            with self.subTest(tail=tail[:2]):
                c = self.open()
                c.ws.send(h.encode_frame(h.OP_CLOSE, h.close_payload(1000)) + tail)
                c.expect_close(1000)

    def test_7_x_close_between_fragments_ends_the_message_unechoed(self):
        # Autobahn 7.1.5: fragment, Close, fragment: the half message is never echoed.
        c = self.open()
        c.ws.send(h.encode_frame(h.OP_TEXT, b"frag1", fin=False) +
                  h.encode_frame(h.OP_CLOSE, h.close_payload(1000)) +
                  h.encode_frame(h.OP_CONT, b"frag2"))
        c.expect_close(1000)

    def test_7_x_large_message_then_close(self):
        # Autobahn 7.1.6: the echo of the message precedes the Close.
        c = self.open()
        payload = b"BAsd7&jh23" * 26214
        c.ws.send(h.encode_frame(h.OP_TEXT, payload) + h.encode_frame(h.OP_PING, b"ping") +
                  h.encode_frame(h.OP_CLOSE, h.close_payload(1000)))
        c.expect_echo(h.OP_TEXT, payload)
        frame = c.read_frame()
        self.assertEqual((frame.opcode, frame.payload), (h.OP_PONG, b"ping"))
        c.expect_close(1000)


# --- 6.x UTF-8 ---------------------------------------------------------------------------

def _utf8_cases():
    valid = [
        "\u03ba\u1f79\u03c3\u03bc\u03b5".encode(),  # κόσμε
        b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80",  # first of each length
        b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf",  # last of each length
        b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd",  # around the surrogates, U+FFFD
        b"\xef\xbf\xbe", b"\xf0\x9f\xbf\xbe", b"\xf0\x9f\xbf\xbf", b"\xf4\x8f\xbf\xbe",
        b"\xef\xb7\x90\xef\xb7\xaf",  # noncharacters are valid UTF-8
        "\U0001F600 \u20ac \u00e9 ascii".encode(),
    ]
    invalid = [
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # 6.3
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",  # 6.4
        b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",  # 5 and 6 byte forms
        b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf",
        b"\xf4\x90\x80\x80", b"\xf7\xbf\xbf\xbf", b"\xf5\x80\x80\x80",  # above U+10FFFF
        b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf",  # continuations
        bytes(range(0x80, 0xC0)),
        b"".join(bytes([b]) + b" " for b in range(0xC0, 0xE0)),  # lonely start bytes
        b"".join(bytes([b]) + b" " for b in range(0xE0, 0xF0)),
        b"".join(bytes([b]) + b" " for b in range(0xF0, 0xF8)),
        b"\xf8 \xf9 \xfa \xfb ", b"\xfc \xfd ",
        b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",  # last byte missing
        b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf",
        b"\xfd\xbf\xbf\xbf\xbf",
        b"\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf\xf7\xbf"
        b"\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf",
        b"\xfe", b"\xff", b"\xfe\xfe\xff\xff",  # impossible bytes
        b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",  # overlong /
        b"\xfc\x80\x80\x80\x80\xaf",
        b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf",  # max overlong
        b"\xfc\x83\xbf\xbf\xbf\xbf",
        b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",  # overlong NUL
        b"\xfc\x80\x80\x80\x80\x80",
        b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",  # lone surrogates
        b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf",
        b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf", b"\xed\xad\xbf\xed\xb0\x80",
        b"\xed\xad\xbf\xed\xbf\xbf", b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
        b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf",
        b"edited\xce",  # truncated at the message end
        b"ok \xf0\x9f\x98",
    ]
    return valid, invalid


UTF8_VALID, UTF8_INVALID = _utf8_cases()


def _sequence_length(b):
    if b < 0x80:
        return 1
    if b < 0xC2:
        return 0
    if b < 0xE0:
        return 2
    if b < 0xF0:
        return 3
    return 4 if b < 0xF5 else 0


def _second_byte_ok(lead, b):
    low, high = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF),
                 0xF4: (0x80, 0x8F)}.get(lead, (0x80, 0xBF))
    return low <= b <= high


def first_invalid_byte(data):
    """Index of the byte that makes data no longer the prefix of valid UTF-8 (RFC 3629 §4),
    len(data) when only the end is missing, None when valid."""
    i = 0
    while i < len(data):
        need = _sequence_length(data[i])
        if need == 0:
            return i
        for j in range(1, need):
            if i + j >= len(data):
                return len(data)
            b = data[i + j]
            if not (_second_byte_ok(data[i], b) if j == 1 else 0x80 <= b <= 0xBF):
                return i + j
        i += need
    return None


class Utf8Test(ConformanceCase):
    def test_oracle_agrees_with_python(self):
        for case in UTF8_VALID:
            case.decode("utf-8")
            self.assertIsNone(first_invalid_byte(case))
        for case in UTF8_INVALID:
            with self.assertRaises(UnicodeDecodeError):
                case.decode("utf-8")
            self.assertIsNotNone(first_invalid_byte(case), case)

    def wrapped(self, case):
        """The case alone, inside text, and past 256 bytes (the SIMD validator's path)."""
        return [case, b"\xce\xba" + case + b"edited", b"a" * 300 + case + b"z" * 40]

    def test_6_x_valid_text_is_echoed_whole_chopped_and_fragmented(self):
        c = self.open()
        for case in UTF8_VALID:
            for text in self.wrapped(case):
                c.send_frame(h.OP_TEXT, text)
                c.expect_echo(h.OP_TEXT, text)
                c.send_chopped(h.encode_frame(h.OP_TEXT, text), 1 if len(text) < 40 else 7)
                c.expect_echo(h.OP_TEXT, text)
                c.ws.send(b"".join(
                    h.encode_frame(h.OP_TEXT if i == 0 else h.OP_CONT, text[i:i + 1],
                                   fin=i == len(text) - 1) for i in range(len(text))))
                c.expect_echo(h.OP_TEXT, text)
        c.close_cleanly()

    def test_6_x_four_byte_sequences_split_at_every_byte_boundary(self):
        c = self.open()
        for seq in (b"\xf0\x90\x80\x80", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf"):
            text = b"a" + seq + b"b" + seq
            for cut in range(1, len(text)):
                for second_cut in range(cut + 1, len(text) + 1):
                    pieces = [text[:cut], text[cut:second_cut], text[second_cut:]]
                    c.ws.send(h.encode_frame(h.OP_TEXT, pieces[0], fin=False) +
                              h.encode_frame(h.OP_CONT, pieces[1], fin=False) +
                              h.encode_frame(h.OP_CONT, pieces[2]))
                    c.expect_echo(h.OP_TEXT, text)
        c.close_cleanly()

    def check_invalid(self, text, mode):
        bad = first_invalid_byte(text)
        c = self.open()
        if mode == "whole":
            c.send_frame(h.OP_TEXT, text)
        elif mode == "chopped":
            # One frame, its bytes up to the one that proves the text invalid and no further
            # (fail fast, §8.1): the server must not wait for the rest of the frame.
            data = h.encode_frame(h.OP_TEXT, text)
            head = len(data) - len(text)
            c.send_chopped(data[:head + bad + 1] if bad < len(text) else data)
        else:
            # 1-byte fragments up to the proving byte, without the final fragment unless
            # only the end of the message makes the text invalid.
            last = min(bad, len(text) - 1)
            c.ws.send(b"".join(
                h.encode_frame(h.OP_TEXT if i == 0 else h.OP_CONT, text[i:i + 1],
                               fin=bad == len(text) and i == last)
                for i in range(last + 1)))
        c.expect_close(1007)

    def test_6_x_invalid_text_gets_1007_as_soon_as_it_is_invalid(self):
        for case in UTF8_INVALID:
            for text in self.wrapped(case):
                for mode in ("whole", "chopped", "fragments"):
                    with self.subTest(text=text[:24], length=len(text), mode=mode):
                        self.check_invalid(text, mode)


# --- 9.x large messages ------------------------------------------------------------------

class LargeMessageTest(ConformanceCase):
    def payload(self, opcode):
        rng = random.Random(SEED)
        if opcode == h.OP_BINARY:
            return rand_bytes(rng, LIMIT)
        unit = "\u00e9t\u00e9 \u20ac \U0001F600 ".encode()  # 2-, 3- and 4-byte sequences
        data = unit * (LIMIT // len(unit))
        return data + b"x" * (LIMIT - len(data))

    def test_9_x_one_mib_messages_echoed_in_one_frame_and_in_fragments(self):
        c = self.open()
        for opcode in (h.OP_TEXT, h.OP_BINARY):
            message = self.payload(opcode)
            for piece in (LIMIT, 64 * 1024, 256):
                with self.subTest(opcode=opcode, piece=piece):
                    count = LIMIT // piece
                    c.ws.send(b"".join(
                        h.encode_frame(h.OP_CONT if i else opcode,
                                       message[i * piece:(i + 1) * piece], fin=i == count - 1)
                        for i in range(count)))
                    c.expect_echo(opcode, message)
        c.close_cleanly()

    def test_9_x_one_byte_over_the_limit_gets_1009(self):
        for opcode, fragments in ((h.OP_TEXT, 1), (h.OP_BINARY, 1), (h.OP_BINARY, 16),
                                  (h.OP_TEXT, 4096)):
            with self.subTest(opcode=opcode, fragments=fragments):
                c = self.open()
                message = b"x" * (LIMIT + 1)
                piece = -(-len(message) // fragments)
                frames = [h.encode_frame(h.OP_CONT if i else opcode,
                                         message[i * piece:(i + 1) * piece],
                                         fin=i == fragments - 1) for i in range(fragments)]
                try:
                    c.ws.send(b"".join(frames))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server may have failed us before reading it all
                c.expect_close(1009)


# --- 12.x/13.x permessage-deflate ----------------------------------------------------------

DEFLATE_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
                  "server_max_window_bits", "client_max_window_bits")


def parse_extension(text):
    """[(name, {param: value or None})] of a Sec-WebSocket-Extensions value (no quotes in
    names; quoted values unquoted)."""
    out = []
    for element in text.split(","):
        parts = [p.strip() for p in element.split(";")]
        params = {}
        for p in parts[1:]:
            name, eq, value = p.partition("=")
            name, value = name.strip(), value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if name in params:
                raise AssertionError("parameter %s twice in %r" % (name, text))
            params[name] = value if eq else None
        out.append((parts[0], params))
    return out


def window_bits(value):
    if value is None or not value.isdigit() or value.startswith("0") or \
            not 8 <= int(value) <= 15:
        raise AssertionError("bad window bits %r" % value)
    return int(value)


def check_answer(offer, answer, config):
    """The server's answer to the offer text it accepted, per RFC 7692 §7.1; returns the
    agreed parameters."""
    elements = parse_extension(answer)
    if len(elements) != 1 or elements[0][0] != "permessage-deflate":
        raise AssertionError("answer %r is not one permessage-deflate element" % answer)
    got = elements[0][1]
    asked = parse_extension(offer)[0][1]
    for name, value in got.items():
        if name not in DEFLATE_PARAMS:
            raise AssertionError("unknown parameter %s in %r" % (name, answer))
        if name.endswith("takeover") and value is not None:
            raise AssertionError("%s with a value in %r" % (name, answer))
    # §7.1.1.1: an offered server_no_context_takeover is accepted by echoing it.
    if "server_no_context_takeover" in asked and "server_no_context_takeover" not in got:
        raise AssertionError("server_no_context_takeover offered, not answered: %r" % answer)
    # §7.1.2.1: server_max_window_bits no greater than offered.
    if "server_max_window_bits" in got:
        bits = window_bits(got["server_max_window_bits"])
        if "server_max_window_bits" in asked and bits > int(asked["server_max_window_bits"]):
            raise AssertionError("server_max_window_bits=%d above the offer %r" % (bits, offer))
    elif "server_max_window_bits" in asked:
        raise AssertionError("offered server_max_window_bits not answered: %r" % answer)
    # §7.1.2.2: client_max_window_bits only if offered, with a value no greater.
    if "client_max_window_bits" in got:
        if "client_max_window_bits" not in asked:
            raise AssertionError("client_max_window_bits not offered: %r" % answer)
        bits = window_bits(got["client_max_window_bits"])
        if asked["client_max_window_bits"] is not None and \
                bits > int(asked["client_max_window_bits"]):
            raise AssertionError("client_max_window_bits=%d above the offer %r" % (bits, offer))
    ws = config["websocket"]["compression"]
    server_bits = int(got.get("server_max_window_bits", 15))
    if server_bits > ws.get("server_max_window_bits", 15):
        raise AssertionError("server window %d above the config in %r" % (server_bits, answer))
    for name in ("server_no_context_takeover", "client_no_context_takeover"):
        if ws.get(name, True) and name not in got:
            raise AssertionError("config insists on %s, answer %r lacks it" % (name, answer))
    return got


class DeflateSession:
    """The client's side of the agreed parameters: zlib raw streams (wbits=-N)."""

    def __init__(self, params):
        # zlib cannot deflate with 8 bits; with 9 it never reaches back more than 250 bytes.
        self.client_bits = max(9, int(params.get("client_max_window_bits") or 15))
        self.server_bits = int(params.get("server_max_window_bits") or 15)
        self.client_reset = "client_no_context_takeover" in params
        self.server_reset = "server_no_context_takeover" in params
        self.compressor = self._new_compressor()
        self.decompressor = zlib.decompressobj(-self.server_bits)

    def _new_compressor(self):
        return zlib.compressobj(6, zlib.DEFLATED, -self.client_bits)

    def compress(self, data):
        if self.client_reset:
            self.compressor = self._new_compressor()
        out = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]

    def decompress(self, data):
        # With server_no_context_takeover a fresh stream per message: a server that reached
        # into an earlier message anyway fails here. The window is the agreed one: a longer
        # distance is "invalid distance too far back".
        if self.server_reset:
            self.decompressor = zlib.decompressobj(-self.server_bits)
        return self.decompressor.decompress(data + TAIL)


OFFERS = (
    ["permessage-deflate", "permessage-deflate; client_max_window_bits",
     'permessage-deflate; client_max_window_bits="10"',
     "permessage-deflate; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover",
     "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12; "
     "client_no_context_takeover; server_no_context_takeover",
     "PerMessage-Deflate ; Server_Max_Window_Bits = 11"]
    + ["permessage-deflate; client_max_window_bits=%d" % n for n in range(8, 16)]
    + ["permessage-deflate; server_max_window_bits=%d" % n for n in range(8, 16)]
    + ["permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d"
       % (n, 23 - n) for n in range(8, 16)]
)

# The first offer is declined (bad value, unknown or repeated parameter, another extension),
# so the answer must fit the second.
FALLBACK_OFFERS = [
    ("permessage-deflate; server_max_window_bits=7, permessage-deflate; "
     "server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9"),
    ("permessage-deflate; server_max_window_bits=16, permessage-deflate; "
     "client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"),
    ("permessage-deflate; server_max_window_bits, permessage-deflate; "
     "server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits=08, permessage-deflate",
     "permessage-deflate"),
    ("permessage-deflate; mystery=1, permessage-deflate; server_max_window_bits=12",
     "permessage-deflate; server_max_window_bits=12"),
    ("permessage-deflate; client_no_context_takeover; client_no_context_takeover, "
     "permessage-deflate; client_max_window_bits=11",
     "permessage-deflate; client_max_window_bits=11"),
    ("permessage-deflate; server_no_context_takeover=1, permessage-deflate; "
     "server_max_window_bits=8", "permessage-deflate; server_max_window_bits=8"),
    ("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=13",
     "permessage-deflate; server_max_window_bits=13"),
]

UNACCEPTABLE_OFFERS = [
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; unknown_param",
    "x-webkit-deflate-frame",
]


class DeflateMatrix:
    """Every offer against one server configuration (a mixin: three classes below)."""

    def negotiate(self, offer, accepted=None):
        c = self.open(offer)
        answer = c.ws.response.header("sec-websocket-extensions")
        self.assertIsNotNone(answer, "offer %r declined" % offer)
        params = check_answer(accepted or offer, answer, self.config)
        c.deflate = DeflateSession(params)
        return c

    def messages(self):
        rng = random.Random(SEED)
        text = "permessage-deflate \u00e9\u20ac ".encode()
        out = []
        for n in (0, 1, 63, 64, 126, 5000, 65536):
            out.append((h.OP_TEXT, (text * (n // len(text) + 1))[:n].decode(
                errors="ignore").encode()))
            out.append((h.OP_BINARY, rand_bytes(rng, n)))
        return out

    def window_probe(self, bits):
        """Random bytes repeated at a distance of 1.5 windows: a deflater with a window twice
        as large would reach back to them, which the client's inflater refuses."""
        rng = random.Random(SEED + bits)
        block = rand_bytes(rng, 3 << (bits - 1))
        return block + block

    def exchange(self, c, compressed=True):
        """Each message twice (context takeover has something to reuse), then the window
        probe; every echo must match."""
        session = c.deflate
        for opcode, payload in self.messages():
            for _ in range(2):
                if compressed:
                    c.send_frame(opcode, session.compress(payload), rsv=4)
                else:
                    c.send_frame(opcode, payload)
                c.expect_echo(opcode, payload)
        probe = self.window_probe(session.server_bits)
        c.send_frame(h.OP_BINARY, session.compress(probe), rsv=4)
        c.expect_echo(h.OP_BINARY, probe)

    # The offer loops read the echoed Close but not the end of TCP (FramingTest checks that):
    # on this loopback a FIN after a reply can take 0.2 s to arrive, times ~100 connections.
    def test_12_x_13_x_every_offer_is_answered_within_rfc_7692_and_works(self):
        for offer in OFFERS:
            with self.subTest(offer=offer):
                c = self.negotiate(offer)
                self.exchange(c)
                c.close_cleanly(wait_for_eof=False)

    def test_13_x_empty_messages_in_a_row_then_a_message(self):
        # RFC 7692 §7.2.1: even an empty message ends in an empty stored block (payload
        # 00). With context takeover the server once sent an empty payload for the second
        # empty message in a row, which the client inflates as the start of a stored block.
        c = self.negotiate("permessage-deflate; client_max_window_bits")
        for payload in (b"", b"", b"", b"after the empty ones " * 4):
            c.send_frame(h.OP_TEXT, c.deflate.compress(payload), rsv=4)
            frame = c.read_frame()
            self.assertEqual(frame.opcode, h.OP_TEXT)
            if frame.rsv & 4:
                self.assertNotEqual(frame.payload, b"", "compressed message with no payload")
                self.assertEqual(c.deflate.decompress(frame.payload), payload)
            else:
                self.assertEqual(frame.payload, payload)
        c.close_cleanly()

    def test_12_x_first_offer_unacceptable_second_is_taken(self):
        for offer, accepted in FALLBACK_OFFERS:
            with self.subTest(offer=offer):
                c = self.negotiate(offer, accepted)
                self.exchange(c)
                c.close_cleanly(wait_for_eof=False)

    def test_12_x_offers_in_two_header_lines(self):
        # RFC 7230 §3.2.2: two Sec-WebSocket-Extensions lines are one list; the first line's
        # offer is declined, the second's taken.
        ws = h.ws_open(self.server.port, extra_headers=[
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7",
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10"])
        self.addCleanup(ws.close)
        c = Client(ws)
        answer = ws.response.header("sec-websocket-extensions")
        self.assertIsNotNone(answer)
        c.deflate = DeflateSession(check_answer(
            "permessage-deflate; server_max_window_bits=10", answer, self.config))
        self.exchange(c)
        c.close_cleanly()

    def test_12_x_unacceptable_offers_get_no_extension_and_rsv1_fails(self):
        for offer in UNACCEPTABLE_OFFERS:
            with self.subTest(offer=offer):
                c = self.open(offer)
                self.assertIsNone(c.ws.response.header("sec-websocket-extensions"))
                c.send_frame(h.OP_TEXT, b"plain")
                c.expect_echo(h.OP_TEXT, b"plain")
                c.send_frame(h.OP_TEXT, raw_deflate(b"compressed"), rsv=4)
                c.expect_close(1002)

    def test_12_x_uncompressed_messages_on_a_deflate_connection(self):
        c = self.negotiate("permessage-deflate; client_max_window_bits")
        self.exchange(c, compressed=False)
        c.close_cleanly()

    def test_13_x_compressed_fragmented_messages_with_pings_between(self):
        c = self.negotiate("permessage-deflate; client_max_window_bits")
        s = c.deflate
        for n, piece, empty_ends in ((1000, 1, False), (70000, 997, False),
                                     (300000, 65536, False), (5000, 100, True)):
            message = (b"fragmented and compressed %d " % n) * (n // 20)
            data = s.compress(message)
            pieces = [data[i:i + piece] for i in range(0, len(data), piece)] or [b""]
            if empty_ends:  # an empty first frame (with RSV1) and an empty last one
                pieces = [b""] + pieces + [b""]
            for i, p in enumerate(pieces):
                c.send_frame(h.OP_CONT if i else h.OP_TEXT, p, rsv=0 if i else 4,
                             fin=i == len(pieces) - 1)
                if i == 1:
                    c.send_frame(h.OP_PING, b"inside")
                    frame = c.read_frame()
                    self.assertEqual((frame.opcode, frame.payload), (h.OP_PONG, b"inside"))
            c.expect_echo(h.OP_TEXT, message)
        c.close_cleanly()

    def test_13_x_compressed_message_of_exactly_the_limit_is_echoed(self):
        c = self.negotiate("permessage-deflate")
        message = b"L" * LIMIT
        c.send_frame(h.OP_BINARY, c.deflate.compress(message), rsv=4)
        c.expect_echo(h.OP_BINARY, message)
        c.close_cleanly()

    def test_13_x_inflating_past_the_limit_gets_1009(self):
        for fragments in (1, 3):
            with self.subTest(fragments=fragments):
                c = self.negotiate("permessage-deflate")
                data = c.deflate.compress(b"L" * (LIMIT + 1))
                piece = -(-len(data) // fragments)
                for i in range(fragments):
                    c.send_frame(h.OP_CONT if i else h.OP_BINARY,
                                 data[i * piece:(i + 1) * piece], rsv=0 if i else 4,
                                 fin=i == fragments - 1)
                c.expect_close(1009)

    def test_13_x_message_ended_with_a_final_deflate_block(self):
        # RFC 7692 §7.2.3.3 lets a sender end a message with BFINAL set; the receiver starts
        # a new stream for the next one.
        c = self.negotiate("permessage-deflate; client_no_context_takeover")
        for message in (b"final block " * 50, b"and again " * 50):
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
            c.send_frame(h.OP_TEXT, z.compress(message) + z.flush(zlib.Z_FINISH), rsv=4)
            c.expect_echo(h.OP_TEXT, message)
        c.close_cleanly()

    def test_13_x_rsv1_on_control_frames_fails_with_deflate(self):
        for opcode, payload in ((h.OP_PING, b"p"), (h.OP_PONG, b"p"),
                                (h.OP_CLOSE, h.close_payload(1000))):
            with self.subTest(opcode=opcode):
                c = self.negotiate("permessage-deflate")
                c.send_frame(opcode, payload, rsv=4)
                c.expect_close(1002)

    def test_13_x_corrupt_deflate_data_gets_1007(self):
        c = self.negotiate("permessage-deflate")
        c.send_frame(h.OP_BINARY, b"\xff\xff\xff\xff not deflate", rsv=4)
        c.expect_close(1007)


def raw_deflate(data):
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


class DeflateDefaultConfigTest(DeflateMatrix, ConformanceCase):
    """The defaults: no context takeover either way, 15-bit windows, min_size 64."""

    config = {"websocket": {"compression": {"enabled": True}}}


class DeflateContextTakeoverTest(DeflateMatrix, ConformanceCase):
    """Context takeover allowed both ways, every message compressed (min_size 0)."""

    config = {"websocket": {"compression": {
        "enabled": True, "server_no_context_takeover": False,
        "client_no_context_takeover": False, "min_size": 0, "level": 6}}}


class DeflateSmallWindowTest(DeflateMatrix, ConformanceCase):
    """Context takeover and the server's own small windows (9 and 10 bits)."""

    config = {"websocket": {"compression": {
        "enabled": True, "server_no_context_takeover": False,
        "client_no_context_takeover": False, "server_max_window_bits": 9,
        "client_max_window_bits": 10, "min_size": 0}}}


if __name__ == "__main__":
    print("seed %d (HERMOD_CONFORMANCE_SEED)" % SEED)
    h.main()
