"""RFC 6455 violations over raw sockets: each one must end in the right Close code.

Also the handshake refusals (426, 400, 403, 405) and the timers: handshake timeout
(slowloris), server pings and the pong deadline, the idle timeout. Timing assertions use
select with generous deadlines; nothing waits by sleeping.
"""

import time
import zlib

import hermod_harness as h

SMALL_LIMIT = 4096


class ViolationTest(h.HermodTestCase):
    config = {"websocket": {"max_message_bytes": SMALL_LIMIT}}

    def setUp(self):
        self.server = self.start_server(self.config)
        self.port = self.server.port

    def open(self, **kwargs):
        ws = h.ws_open(self.port, **kwargs)
        self.addCleanup(ws.close)
        return ws

    def assert_closes_with(self, ws, code):
        got, reason = ws.expect_close()
        self.assertEqual(got, code, "close reason %r" % reason)
        # Finish the close handshake; the server then ends the TCP connection.
        try:
            ws.send_frame(h.OP_CLOSE, h.close_payload(got or 1000))
        except (BrokenPipeError, ConnectionResetError):
            return
        h.recv_until_closed(ws.sock)

    def test_closes_with_1002_on_unmasked_frame(self):
        ws = self.open()
        ws.send_frame(h.OP_TEXT, b"hello", mask=False)
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_rsv2(self):
        ws = self.open()
        ws.send_frame(h.OP_TEXT, b"hello", rsv=2)
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_rsv1_without_deflate(self):
        ws = self.open()
        ws.send_frame(h.OP_TEXT, b"hello", rsv=4)
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_reserved_opcode(self):
        ws = self.open()
        ws.send_frame(3, b"hello")
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_fragmented_ping(self):
        ws = self.open()
        ws.send_frame(h.OP_PING, b"half", fin=False)
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_126_byte_ping(self):
        ws = self.open()
        ws.send_frame(h.OP_PING, b"p" * 126)
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_continuation_without_start(self):
        ws = self.open()
        ws.send_frame(h.OP_CONT, b"orphan")
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_new_message_inside_fragmented_one(self):
        ws = self.open()
        ws.send_frame(h.OP_TEXT, b"first", fin=False)
        ws.send_frame(h.OP_TEXT, b"second")
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_close_code_1005_in_frame(self):
        ws = self.open()
        ws.send_frame(h.OP_CLOSE, h.close_payload(1005))
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1002_on_one_byte_close_payload(self):
        ws = self.open()
        ws.send_frame(h.OP_CLOSE, b"\x03")
        self.assert_closes_with(ws, 1002)

    def test_closes_with_1007_on_invalid_utf8_text(self):
        ws = self.open()
        ws.send_frame(h.OP_TEXT, b"caf\xc3\x28")
        self.assert_closes_with(ws, 1007)

    def test_closes_with_1007_on_invalid_utf8_across_fragments_before_the_end(self):
        ws = self.open()
        # "\xe2\x82" starts a 3-byte sequence that "A" in the next fragment breaks. The final
        # fragment is never sent: the server must fail fast.
        ws.send_frame(h.OP_TEXT, b"price: \xe2\x82", fin=False)
        ws.send_frame(h.OP_CONT, b"A and more", fin=False)
        self.assert_closes_with(ws, 1007)

    def test_valid_utf8_split_across_fragments_is_echoed(self):
        ws = self.open()
        ws.send_frame(h.OP_TEXT, b"price: \xe2\x82", fin=False)
        ws.send_frame(h.OP_CONT, b"\xac", fin=False)
        ws.send_frame(h.OP_CONT, b" only")
        frame = ws.read_frame()
        self.assertEqual((frame.opcode, frame.payload), (h.OP_TEXT, "price: \u20ac only".encode()))

    def test_closes_with_1007_on_invalid_utf8_close_reason(self):
        ws = self.open()
        ws.send_frame(h.OP_CLOSE, h.close_payload(1000, b"\xff\xfe"))
        self.assert_closes_with(ws, 1007)

    def test_closes_with_1009_on_oversized_message(self):
        ws = self.open()
        ws.send_frame(h.OP_BINARY, b"x" * (SMALL_LIMIT + 1))
        self.assert_closes_with(ws, 1009)

    def test_message_of_exactly_the_limit_is_echoed(self):
        ws = self.open()
        ws.send_frame(h.OP_BINARY, b"x" * SMALL_LIMIT)
        frame = ws.read_frame()
        self.assertEqual((frame.opcode, len(frame.payload)), (h.OP_BINARY, SMALL_LIMIT))

    def test_closes_with_1009_on_oversized_message_in_fragments(self):
        ws = self.open()
        piece = b"y" * (SMALL_LIMIT // 3 + 1)
        ws.send_frame(h.OP_BINARY, piece, fin=False)
        ws.send_frame(h.OP_CONT, piece, fin=False)
        ws.send_frame(h.OP_CONT, piece, fin=False)
        self.assert_closes_with(ws, 1009)

    def test_client_ping_gets_pong_with_same_payload(self):
        ws = self.open()
        ws.send_frame(h.OP_PING, b"\x00ping payload\xff")
        frame = ws.read_frame()
        self.assertEqual((frame.opcode, frame.payload), (h.OP_PONG, b"\x00ping payload\xff"))

    def test_close_handshake_echoes_code_then_ends_tcp(self):
        ws = self.open()
        ws.send_frame(h.OP_CLOSE, h.close_payload(1000, b"bye"))
        frame = ws.read_frame()
        self.assertEqual(frame.opcode, h.OP_CLOSE)
        self.assertEqual(h.parse_close(frame.payload)[0], 1000)
        self.assertIsNone(ws.read_frame(), "server kept the connection open after Close")


def raw_deflate(data):
    """permessage-deflate payload (RFC 7692 §7.2.1): raw deflate, sync flush, tail removed."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def raw_inflate(data):
    d = zlib.decompressobj(-15)
    return d.decompress(data + b"\x00\x00\xff\xff")


class DeflateViolationTest(h.HermodTestCase):
    LIMIT = 64 * 1024

    def setUp(self):
        self.server = self.start_server({"websocket": {"max_message_bytes": self.LIMIT}})
        self.ws = h.ws_open(self.server.port, extra_headers=[
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
            "server_no_context_takeover"])
        self.addCleanup(self.ws.close)
        self.assertIn("permessage-deflate",
                      self.ws.response.header("sec-websocket-extensions") or "")

    def test_hand_made_compressed_message_is_echoed(self):
        message = b"hermod " * 1000
        self.ws.send_frame(h.OP_BINARY, raw_deflate(message), rsv=4)
        frame = self.ws.read_frame()
        self.assertEqual(frame.opcode, h.OP_BINARY)
        payload = raw_inflate(frame.payload) if frame.rsv & 4 else frame.payload
        self.assertEqual(payload, message)

    def test_closes_with_1009_on_zip_bomb(self):
        bomb = raw_deflate(b"\x00" * (16 << 20))  # 16 MiB inflates from ~16 KiB
        self.assertLess(len(bomb), self.LIMIT)
        self.ws.send_frame(h.OP_BINARY, bomb, rsv=4)
        got, reason = self.ws.expect_close()
        self.assertEqual(got, 1009, reason)

    def test_closes_with_1007_on_invalid_utf8_after_inflate(self):
        self.ws.send_frame(h.OP_TEXT, raw_deflate(b"ok \xff\xff" * 30), rsv=4)
        got, reason = self.ws.expect_close()
        self.assertEqual(got, 1007, reason)

    def test_closes_with_1002_on_rsv1_on_continuation(self):
        part = raw_deflate(b"abc" * 50)
        self.ws.send_frame(h.OP_BINARY, part[:10], rsv=4, fin=False)
        self.ws.send_frame(h.OP_CONT, part[10:], rsv=4)
        got, reason = self.ws.expect_close()
        self.assertEqual(got, 1002, reason)


class HandshakeRefusalTest(h.HermodTestCase):
    def setUp(self):
        self.server = self.start_server(
            {"websocket": {"allowed_origins": ["https://good.example"]}})
        self.port = self.server.port

    def handshake(self, **kwargs):
        return h.http_exchange(self.port, h.upgrade_request(self.port, **kwargs))

    def test_version_12_is_426_with_supported_version(self):
        r = self.handshake(version="12")
        self.assertEqual(r.status, 426)
        self.assertEqual(r.header("sec-websocket-version"), "13")

    def test_missing_key_is_400(self):
        self.assertEqual(self.handshake(key="").status, 400)

    def test_bad_origin_is_403(self):
        self.assertEqual(self.handshake(extra_headers=["Origin: https://evil.example"]).status,
                         403)

    def test_allowed_origin_is_accepted(self):
        ws = h.ws_open(self.port, extra_headers=["Origin: https://good.example"])
        ws.close()

    def test_post_upgrade_is_405(self):
        self.assertEqual(self.handshake(method="POST").status, 405)


class SameOriginPolicyTest(h.HermodTestCase):
    def test_default_policy_accepts_same_host_origin_and_refuses_others(self):
        server = self.start_server()
        port = server.port
        h.ws_open(port, extra_headers=["Origin: http://127.0.0.1:%d" % port]).close()
        h.ws_open(port).close()  # no Origin: not a browser
        r = h.http_exchange(port, h.upgrade_request(
            port, extra_headers=["Origin: http://evil.example"]))
        self.assertEqual(r.status, 403)


class TimerTest(h.HermodTestCase):
    def test_handshake_timeout_closes_slowloris(self):
        server = self.start_server({"websocket": {"handshake_timeout_ms": 300}})
        with h.connect(server.port) as sock:
            start = time.monotonic()
            sock.sendall(b"GET /connection/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")
            data = h.recv_until_closed(sock, timeout=10)
            elapsed = time.monotonic() - start
        print("slowloris closed after %.3f s with %r" % (elapsed, data[:40]))
        self.assertGreaterEqual(elapsed, 0.25)
        self.assertLess(elapsed, 5)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100])

    def test_server_pings_at_interval_and_closes_without_pong(self):
        server = self.start_server({"websocket": {"ping_interval_ms": 300,
                                                  "pong_timeout_ms": 300}})
        start = time.monotonic()
        ws = h.ws_open(server.port)
        self.addCleanup(ws.close)
        frame = ws.read_frame(timeout=10)
        ping_after = time.monotonic() - start
        self.assertIsNotNone(frame)
        self.assertEqual(frame.opcode, h.OP_PING)
        self.assertGreaterEqual(ping_after, 0.2)
        # No pong: the server gives up (Close frame or plain EOF).
        frame = ws.read_frame(timeout=10)
        closed_after = time.monotonic() - start
        print("ping after %.3f s, closed after %.3f s, last frame %r"
              % (ping_after, closed_after, frame))
        self.assertTrue(frame is None or frame.opcode == h.OP_CLOSE, frame)
        self.assertGreaterEqual(closed_after - ping_after, 0.2)

    def test_answered_pings_keep_the_connection_open(self):
        server = self.start_server({"websocket": {"ping_interval_ms": 250,
                                                  "pong_timeout_ms": 1000}})
        ws = h.ws_open(server.port)
        self.addCleanup(ws.close)
        for _ in range(4):
            frame = ws.read_frame(timeout=10)
            self.assertIsNotNone(frame, "closed although every ping was answered")
            self.assertEqual(frame.opcode, h.OP_PING)
            ws.send_frame(h.OP_PONG, frame.payload)
        ws.send_frame(h.OP_TEXT, b"still here")
        frame = ws.read_frame()
        while frame.opcode == h.OP_PING:
            frame = ws.read_frame()
        self.assertEqual(frame.payload, b"still here")

    def test_idle_timeout_closes_silent_connection(self):
        server = self.start_server({"websocket": {"idle_timeout_ms": 500,
                                                  "ping_interval_ms": 0}})
        ws = h.ws_open(server.port)
        self.addCleanup(ws.close)
        # Traffic keeps it open: echo for twice the idle timeout, a message every 100 ms.
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            silent_since = time.monotonic()
            ws.send_frame(h.OP_TEXT, b"tick")
            frame = ws.read_frame()
            self.assertIsNotNone(frame, "closed although traffic flowed")
            self.assertEqual(frame.payload, b"tick")
            self.assertFalse(h.wait_readable(ws.sock, 0.1), "unexpected data from server")
        frame = ws.read_frame(timeout=10)
        closed_after = time.monotonic() - silent_since
        print("idle close after %.3f s: %r" % (closed_after, frame))
        self.assertTrue(frame is None or frame.opcode == h.OP_CLOSE, frame)
        # Loose: a loaded machine can stall the server's loop between its clock and our bytes.
        self.assertGreaterEqual(closed_after, 0.25)


if __name__ == "__main__":
    h.main()
