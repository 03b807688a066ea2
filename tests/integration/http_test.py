"""hermod's HTTP/1.1 front door over raw sockets: routes, status codes, limits, keep-alive."""

import json

import hermod_harness as h


class HttpTest(h.HermodTestCase):
    def setUp(self):
        self.server = self.start_server({
            "http": {"max_header_bytes": 2048, "max_headers": 16, "max_body_bytes": 1024},
        })
        self.port = self.server.port

    def get(self, path, extra=""):
        return h.http_exchange(self.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                                           "Connection: close\r\n\r\n" % (path, extra)).encode())

    def test_health_answers_200_with_json(self):
        r = self.get("/health")
        self.assertEqual(r.status, 200)
        self.assertIn("application/json", r.header("content-type") or "")
        body = json.loads(r.body)
        self.assertEqual(body.get("status"), "ok")

    def test_unknown_path_is_404(self):
        self.assertEqual(self.get("/no/such/path").status, 404)

    def test_known_path_with_wrong_method_is_405(self):
        r = h.http_exchange(self.port, b"DELETE /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 405)

    def test_garbage_request_line_is_400(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            data = h.recv_until_closed(sock)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])

    def test_too_many_headers_is_431(self):
        extra = "".join("X-Filler-%d: x\r\n" % i for i in range(40))
        self.assertEqual(self.get("/health", extra).status, 431)

    def test_header_bigger_than_the_configured_limit_is_431(self):
        self.assertEqual(self.get("/health", "X-Big: %s\r\n" % ("a" * 4000)).status, 431)

    def test_headers_just_under_the_limits_are_accepted(self):
        extra = "".join("X-Filler-%d: x\r\n" % i for i in range(10))
        extra += "X-Big: %s\r\n" % ("a" * 1000)
        self.assertEqual(self.get("/health", extra).status, 200)

    def test_body_larger_than_max_body_bytes_is_413(self):
        r = h.http_exchange(self.port, b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       b"Content-Length: 100000\r\n\r\n")
        self.assertEqual(r.status, 413)

    def test_keep_alive_serves_two_requests_on_one_socket(self):
        with h.connect(self.port) as sock:
            reader = h.ResponseReader(sock)
            for _ in range(2):
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                r = reader.read()
                self.assertEqual(r.status, 200)
                self.assertNotEqual((r.header("connection") or "").lower(), "close")

    def test_pipelined_requests_are_answered_in_order(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
                         b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                         b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            reader = h.ResponseReader(sock)
            self.assertEqual([reader.read().status for _ in range(3)], [200, 404, 200])
            self.assertEqual(h.recv_until_closed(sock), b"")

    def test_connection_close_is_honoured(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = h.recv_until_closed(sock)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])

    def test_head_gets_get_headers_without_a_body(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"HEAD /health/live HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = h.recv_until_closed(sock)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), data[:100])
        self.assertIn(b"Content-Length: %d" % len(b'{"status":"live"}\n'), head)
        self.assertEqual(body, b"")

    def test_endless_chunk_size_line_is_cut_at_the_header_limit(self):
        # Beast bounds headers, not chunk-size lines or trailers: hermod must.
        with h.connect(self.port) as sock:
            sock.sendall(b"POST /health HTTP/1.1\r\nHost: a\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n1;")
            try:
                for _ in range(64):
                    sock.sendall(b"a" * 1024)
            except OSError:
                pass  # the server may close while we still send
            data = h.recv_until_closed(sock)
        self.assertTrue(data.startswith(b"HTTP/1.1 431"), data[:100])

    def test_half_closed_client_still_gets_its_response(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
            sock.shutdown(2 - 1)  # SHUT_WR
            data = h.recv_until_closed(sock)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])

    def test_first_request_after_an_idle_spell_is_served(self):
        # Regression: a timer wheel left at a stale tick fired a new connection's request
        # timeout at once. Idle the server without any timer, then connect.
        import time
        server = self.start_server({"websocket": {"handshake_timeout_ms": 200}})
        time.sleep(0.5)  # not synchronisation: the idle spell is the condition under test
        r = h.http_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: a\r\n"
                                         b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    h.main()
