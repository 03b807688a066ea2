"""Bad input, all of it answered: each kind gets its documented code, and none
touches another client's state: a bystander subscribed to `news` before the abuse receives a
publication after each case.

Documented answers (docs/protocol.md, RFC 6455, RFC 7230):

| input on /connection/websocket                         | answer            |
| ------------------------------------------------------ | ----------------- |
| no Sec-WebSocket-Key, a bad one, or the key twice      | 400               |
| Sec-WebSocket-Version other than 13, or none           | 426 (+ version)   |
| Upgrade missing or not `websocket`                     | 426               |
| Connection without `upgrade`                           | 400               |
| HTTP/1.0, or no Host                                   | 400               |
| headers past http.max_header_bytes / max_headers       | 431               |
| Origin not allowed                                     | 403               |
| POST                                                   | 405               |
| not HTTP at all (a TLS hello, a bare `GET`)            | 400               |
| request trickled past the handshake timeout (slowloris)| 408 or close      |
| API body trickled past the timeout                     | 408 or close      |
| message past websocket.max_message_bytes               | close 1009        |
| permessage-deflate bomb                                | close 1009        |
| binary frame, or malformed JSON command                | disconnect 3501   |
| WebSocket open but no connect (slow client)            | disconnect 3502   |
| connect token: alg none, wrong key, wrong aud or iss,  | disconnect 3500   |
|   not yet valid (nbf), truncated signature, garbage    |                   |
| connect token expired                                  | error 109 (reply) |
| API call without a key, or with a wrong one            | 401               |
"""

import time
import zlib

import guard_client as g
import hermod_harness as h

CONFIG = {"token_hmac_secret_key": g.SECRET, "token_audience": "hermod",
          "token_issuer": "issuer", "allow_subscribe_for_client": True,
          "api_key": "k", "client_stale_close_delay": "2s",
          "websocket": {"max_message_bytes": 64 * 1024, "handshake_timeout_ms": 500},
          "http": {"max_header_bytes": 8192, "max_headers": 64}}


def good_claims(**extra):
    claims = {"sub": "u", "aud": "hermod", "iss": "issuer", "exp": int(time.time()) + 3600}
    claims.update(extra)
    return claims


class BadInputCase(h.HermodTestCase):
    def setUp(self):
        self.server = self.start_server(CONFIG, workers=2)
        self.port = self.server.port
        self.bystander = g.Client(self.port)
        self.addCleanup(self.bystander.close)
        self.bystander.connect({"token": g.jwt(good_claims(sub="bystander"))})
        self.bystander.call("subscribe", {"channel": "news"})
        self.sent = 0

    def assert_bystander_unaffected(self):
        self.sent += 1
        r = g.api_call(self.port, "publish", {"channel": "news", "data": {"n": self.sent}})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.bystander.next_publication("news")["data"], {"n": self.sent})


class TokenTest(BadInputCase):
    def connect_with(self, token):
        c = g.Client(self.port)
        self.addCleanup(c.close)
        c.send(("connect", {"token": token}))
        return c

    def assert_disconnected_3500(self, token):
        self.assertEqual(self.connect_with(token).expect_close(), 3500)
        self.assert_bystander_unaffected()

    def test_valid_token_connects(self):
        c = self.connect_with(g.jwt(good_claims()))
        self.assertIn("connect", c.read_message())

    def test_alg_none_is_invalid(self):
        self.assert_disconnected_3500(g.jwt(good_claims(), alg="none"))

    def test_wrong_key_is_invalid(self):
        self.assert_disconnected_3500(g.jwt(good_claims(), key="not-the-secret"))

    def test_expired_token_gets_error_109(self):
        c = self.connect_with(g.jwt(good_claims(exp=int(time.time()) - 60)))
        reply = c.read_message()
        self.assertEqual(reply["error"]["code"], 109, reply)
        self.assert_bystander_unaffected()

    def test_not_yet_valid_token_is_invalid(self):
        self.assert_disconnected_3500(g.jwt(good_claims(nbf=int(time.time()) + 3600)))

    def test_wrong_audience_is_invalid(self):
        self.assert_disconnected_3500(g.jwt(good_claims(aud="someone-else")))

    def test_wrong_issuer_is_invalid(self):
        self.assert_disconnected_3500(g.jwt(good_claims(iss="mallory")))

    def test_truncated_signature_is_invalid(self):
        self.assert_disconnected_3500(g.jwt(good_claims())[:-5])

    def test_garbage_tokens_are_invalid(self):
        for token in ["garbage", "a.b.c", "..", "e30.e30.", "\u00ff" * 100, "x" * 20000]:
            self.assert_disconnected_3500(token)


class ApiKeyTest(BadInputCase):
    def test_api_without_key_or_with_wrong_key_is_401(self):
        self.assertEqual(g.api_call(self.port, "publish", {"channel": "news", "data": 1},
                                    key=None).status, 401)
        self.assertEqual(g.api_call(self.port, "publish", {"channel": "news", "data": 1},
                                    key="wrong").status, 401)
        self.assert_bystander_unaffected()  # (with the right key)

    def test_malformed_api_bodies_are_answered(self):
        for body in [b"", b"{", b"[]", b"null", b'{"channel": 5}', b"\xff\xfe", b"{}" * 1000]:
            head = ("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey k\r\n"
                    "Content-Length: %d\r\n\r\n" % len(body)).encode()
            r = h.http_exchange(self.port, head + body)
            self.assertIn(r.status, (200, 400), body)
            if r.status == 200:
                self.assertIn(b'"error"', r.body, body)
        self.assert_bystander_unaffected()


class HandshakeMatrixTest(BadInputCase):
    def request(self, lines, version="HTTP/1.1"):
        start = "GET /connection/websocket " + version
        return ("\r\n".join([start] + lines) + "\r\n\r\n").encode()

    def base(self, *drop, extra=()):
        headers = {"Host": "Host: 127.0.0.1:%d" % self.port, "Upgrade": "Upgrade: websocket",
                   "Connection": "Connection: Upgrade",
                   "Key": "Sec-WebSocket-Key: " + h.ws_key(),
                   "Version": "Sec-WebSocket-Version: 13"}
        return [v for k, v in headers.items() if k not in drop] + list(extra)

    def test_malformed_handshakes_get_their_documented_status(self):
        cases = [
            ("missing key", self.request(self.base("Key")), 400),
            ("duplicate key", self.request(self.base(extra=["Sec-WebSocket-Key: " +
                                                            h.ws_key()])), 400),
            ("bad key", self.request(self.base("Key", extra=["Sec-WebSocket-Key: abc"])), 400),
            ("version 12", self.request(self.base("Version",
                                                  extra=["Sec-WebSocket-Version: 12"])), 426),
            ("no version", self.request(self.base("Version")), 426),
            ("no upgrade", self.request(self.base("Upgrade")), 426),
            ("bad upgrade", self.request(self.base("Upgrade", extra=["Upgrade: h2c"])), 426),
            ("bad connection", self.request(self.base("Connection",
                                                      extra=["Connection: keep-alive"])), 400),
            ("HTTP/1.0", self.request(self.base(), "HTTP/1.0"), 400),
            ("no host", self.request(self.base("Host")), 400),
            ("huge header", self.request(self.base(extra=["X-Big: " + "a" * 20000])), 431),
            ("many headers", self.request(self.base(extra=["X-%d: a" % i
                                                           for i in range(100)])), 431),
            ("bad origin", self.request(self.base(extra=["Origin: http://evil.example"])), 403),
            ("POST", self.request(self.base(extra=["Content-Length: 0"]))
             .replace(b"GET ", b"POST ", 1), 405),
            ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
            ("bare GET", b"GET\r\n\r\n", 400),
        ]
        for name, raw, status in cases:
            with self.subTest(name):
                self.assertEqual(h.http_exchange(self.port, raw).status, status, name)
        self.assert_bystander_unaffected()

    def test_valid_handshake_after_the_matrix_still_upgrades(self):
        response, sock = None, h.connect(self.port)
        with sock:
            sock.sendall(self.request(self.base()))
            response = h.ResponseReader(sock).read(head_only=True)
        self.assertEqual(response.status, 101)


class SlowAndOversizedTest(BadInputCase):
    def test_many_slowloris_handshakes_are_timed_out_while_others_are_served(self):
        socks = [h.connect(self.port) for _ in range(20)]
        try:
            for s in socks:
                s.sendall(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpg")
            self.assert_bystander_unaffected()  # served while 20 requests hang
            start = time.monotonic()
            for s in socks:
                data = h.recv_until_closed(s, timeout=10)
                self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80])
            self.assertLess(time.monotonic() - start, 5)
        finally:
            for s in socks:
                s.close()

    def test_api_body_trickled_past_the_timeout_is_cut(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey k\r\n"
                         b"Content-Length: 100\r\n\r\n{\"chan")
            data = h.recv_until_closed(sock, timeout=10)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80])
        self.assert_bystander_unaffected()

    def test_open_websocket_without_connect_is_closed_with_3502(self):
        c = g.Client(self.port)
        self.addCleanup(c.close)
        c.ws.send(h.encode_frame(h.OP_TEXT, b'{"id":1,"conn')[:6])  # half a frame, then silence
        self.assertEqual(c.expect_close(timeout=10), 3502)
        self.assert_bystander_unaffected()

    def test_oversized_message_closes_with_1009(self):
        frame = h.encode_frame(h.OP_TEXT, b"x" * (64 * 1024 + 1))
        c = g.Client(self.port)
        self.addCleanup(c.close)
        c.ws.send(frame)
        code, _ = c.ws.expect_close()
        self.assertEqual(code, 1009)
        self.assert_bystander_unaffected()

    def test_oversized_length_header_closes_with_1009_before_the_bytes(self):
        c = g.Client(self.port)
        self.addCleanup(c.close)
        c.ws.send(h.encode_frame(h.OP_TEXT, b"", length=1 << 40)[:14])
        code, _ = c.ws.expect_close()
        self.assertEqual(code, 1009)
        self.assert_bystander_unaffected()

    def test_deflate_bomb_closes_with_1009(self):
        # Built before the connection opens: the stale timer (2 s) runs from the upgrade.
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = (c.compress(b" " * (32 << 20)) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        frame = h.encode_frame(h.OP_TEXT, bomb, rsv=4)
        ws = h.ws_open(self.port, path="/connection/websocket", extra_headers=[
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover"])
        self.addCleanup(ws.close)
        self.assertIn("permessage-deflate", ws.response.header("sec-websocket-extensions") or "")
        ws.send(frame)
        code, _ = ws.expect_close()
        self.assertEqual(code, 1009)
        self.assert_bystander_unaffected()

    def test_binary_and_malformed_commands_disconnect_with_3501(self):
        for frame in [h.encode_frame(h.OP_BINARY, b"\x00\x01"),
                      h.encode_frame(h.OP_TEXT, b"{not json"),
                      h.encode_frame(h.OP_TEXT, b'{"id":1,"publish":{"channel":"news"}}')]:
            c = g.Client(self.port)
            self.addCleanup(c.close)
            c.ws.send(frame)
            self.assertEqual(c.expect_close(), 3501)
        self.assert_bystander_unaffected()


if __name__ == "__main__":
    h.main()
