"""HTTP/1.1 framing over raw sockets: request smuggling, long API answers,
Expect: 100-continue and the request-line forms of RFC 9112.

Smuggling: every request below carries, after what hermod must take as its end, a second,
authenticated POST /api/publish to a channel with history. A refusal must be one answer
(400, or 501 for an unknown coding) with `Connection: close`, then the end of the connection,
and the smuggled publish must never run: the channel's history stays empty. A control pair of
valid pipelined publishes, chunked and not, gets two answers and lands twice in history, so
the check that nothing landed can fail.
"""

import json
import os
import re
import subprocess
import tempfile
import time

import hermod_harness as h

KEY = "framing-key"
CONFIG = {
    "api_key": KEY,
    "history_size": 200,
    "history_ttl": "300s",
    "http": {"max_body_bytes": 1 << 20},
}
LOG_TIMEOUT_S = 10


def publish_request(channel, data, extra_headers=""):
    body = json.dumps({"channel": channel, "data": data}).encode()
    return (("POST /api/publish HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n%s"
             "Content-Length: %d\r\n\r\n" % (KEY, extra_headers, len(body))).encode() + body)


def chunked(body, extension=b"", trailer=b""):
    """body as one chunk (with an optional chunk extension) and the last chunk."""
    return b"%x%s\r\n%s\r\n0\r\n%s\r\n" % (len(body), extension, body, trailer)


class FramingTest(h.HermodTestCase):
    def setUp(self):
        self.server = self.start_server(CONFIG, workers=2, echo=False)
        self.port = self.server.port

    # --- helpers ---

    def api(self, method, body):
        data = json.dumps(body).encode()
        request = ("POST /api/%s HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\nContent-Length: %d\r\n"
                   "Connection: close\r\n\r\n" % (method, KEY, len(data))).encode() + data
        with h.connect(self.port) as sock:
            sock.sendall(request)
            reader = h.ResponseReader(sock)
            response = reader.read(timeout=30)
            self.assertEqual(response.status, 200, response.body[:200])
            return json.loads(response.body)

    def history(self, channel):
        return self.api("history", {"channel": channel, "limit": -1})["result"].get(
            "publications", [])

    def refused_once(self, request, status=400):
        """Sends request; expects exactly one answer of status that closes, then EOF."""
        with h.connect(self.port) as sock:
            try:
                sock.sendall(request)
            except OSError:
                pass  # the server may close while we still send
            reader = h.ResponseReader(sock)
            response = reader.read()
            rest = reader.buf + h.recv_until_closed(sock)
        self.assertEqual(response.status, status, request[:200])
        self.assertEqual((response.header("connection") or "").lower(), "close", request[:200])
        self.assertEqual(rest, b"", "a second answer came: %r" % rest[:200])
        return response

    def scrape(self):
        with h.connect(self.port) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            body = h.ResponseReader(sock).read().body.decode()
        counts = {}
        for m in re.finditer(r'^hermod_http_rejected_total\{reason="(\w+)"\} (\d+)$', body,
                             re.M):
            counts[m.group(1)] = int(m.group(2))
        return counts

    def wait_log(self, text):
        # The log line is written before the answer; the harness's reader thread may not have
        # taken it off the pipe yet.
        deadline = time.monotonic() + LOG_TIMEOUT_S
        while not any(text in line for line in list(self.server.log)):
            if time.monotonic() > deadline:
                self.fail("no log line with %r; stderr:\n%s" % (text, self.server.stderr_text()))
            time.sleep(0.01)

    # --- request smuggling ---

    def test_ambiguous_framing_is_refused_once_and_the_smuggled_request_never_runs(self):
        smuggled = publish_request("smuggled", {"x": 1})
        post = ("POST /api/publish HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n" % KEY).encode()
        cases = {
            # The final coding is not chunked (RFC 9112 §6.3).
            "te chunked, identity": post + b"Transfer-Encoding: chunked, identity\r\n\r\n",
            "te xchunked": post + b"Transfer-Encoding: xchunked\r\n\r\n",
            "te identity": post + b"Transfer-Encoding: identity\r\n\r\n",
            "te chunked twice": post + b"Transfer-Encoding: chunked\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n",
            "te in http/1.0": post.replace(b"HTTP/1.1", b"HTTP/1.0")
            + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"{}"),
            # TE and CL together, both orders (§6.1).
            "te xchunked then cl": post + b"Transfer-Encoding: xchunked\r\nContent-Length: %d"
                                          b"\r\n\r\n" % len(smuggled),
            "cl then te xchunked": post + b"Content-Length: 5\r\nTransfer-Encoding: xchunked"
                                          b"\r\n\r\n",
            "te chunked then cl": post + b"Transfer-Encoding: chunked\r\nContent-Length: 5"
                                         b"\r\n\r\n" + chunked(b"{}"),
            "cl then te chunked": post + b"Content-Length: %d\r\nTransfer-Encoding: chunked"
                                         b"\r\n\r\n0\r\n\r\n" % 5,
            "two differing cl": post + b"Content-Length: 2\r\nContent-Length: 0\r\n\r\n{}",
            # obs-fold (§5.2) and whitespace before the colon (§5.1).
            "obs-fold": post + b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            "obs-fold te": post + b"Transfer-Encoding:\r\n chunked\r\n\r\n" + chunked(b"{}"),
            "space before colon": post + b"Content-Length : 0\r\n\r\n",
            # Chunks (§7.1).
            "chunk size not hex": post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            "chunk size 0x": post + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
            "chunk size overflow": post + b"Transfer-Encoding: chunked\r\n\r\n"
                                          b"1ffffffffffffffff\r\n",
            "chunk data overrun": post + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
            "chunk extension bare lf": post + b"Transfer-Encoding: chunked\r\n\r\n"
                                              b"2;a\n{}\r\n0\r\n\r\n",
            "chunk extension empty": post + b"Transfer-Encoding: chunked\r\n\r\n"
                                            b"2;\r\n{}\r\n0\r\n\r\n",
            # Trailers (§7.1.2).
            "trailer malformed": post + b"Transfer-Encoding: chunked\r\n\r\n"
                                        + chunked(b"{}", trailer=b"Not a field\r\n"),
            "trailer content-length": post + b"Transfer-Encoding: chunked\r\n\r\n"
                                             + chunked(b"{}", trailer=b"Content-Length: 9\r\n"),
            # Empty lines beyond the few that are skipped (§2.2).
            "many empty lines": b"\r\n" * 9 + post + b"Content-Length: 0\r\n\r\n",
            # Host missing in HTTP/1.1, or given twice (§3.2): two readers could each take
            # a different one.
            "no host": post.replace(b"Host: a\r\n", b"") + b"Content-Length: 0\r\n\r\n",
            "two hosts": post + b"Host: b\r\nContent-Length: 0\r\n\r\n",
        }
        before = self.scrape()
        for name, request in cases.items():
            with self.subTest(name):
                self.refused_once(request + smuggled)
        self.refused_once(post + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(b"{}")
                          + smuggled, status=501)
        self.assertEqual(self.history("smuggled"), [])
        after = self.scrape()
        refused = sum(after.values()) - sum(before.values())
        self.assertEqual(refused, len(cases) + 1, after)
        self.assertGreaterEqual(after["transfer_encoding"] - before["transfer_encoding"], 4)
        self.assertEqual(after["obs_fold"] - before["obs_fold"], 2)
        self.assertEqual(after["unsupported_coding"] - before["unsupported_coding"], 1)
        self.assertEqual(after["host"] - before["host"], 2)
        self.wait_log("refused with 400 (te_with_content_length)")

    def test_another_http_version_gets_505_and_an_unknown_coding_501_named_in_the_status_line(self):
        # RFC 9110 §15.6.6 and §15.6.2: each with its own status and reason phrase.
        before = self.scrape()
        for line in (b"GET /health HTTP/2.0", b"PRI * HTTP/2.0", b"GET /health HTTP/0.9"):
            with self.subTest(line):
                response = self.refused_once(line + b"\r\nHost: a\r\n\r\n", status=505)
                self.assertEqual(response.reason, "HTTP Version Not Supported")
        post = ("POST /api/publish HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n" % KEY).encode()
        response = self.refused_once(post + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                                     + chunked(b"{}"), status=501)
        self.assertEqual(response.reason, "Not Implemented")
        after = self.scrape()
        self.assertEqual(after["version"] - before.get("version", 0), 3, after)
        self.wait_log("refused with 505 (version)")

    def test_a_pipelined_control_pair_gets_two_answers_and_runs_twice(self):
        # Valid framing of both kinds, a chunk extension and a trailer included: what the
        # refusals above must not catch.
        body = json.dumps({"channel": "control", "data": {"n": 1}}).encode()
        first = (("POST /api/publish HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n" % KEY).encode()
                 + chunked(body, extension=b';ext="v"', trailer=b"X-Trailer: t\r\n"))
        second = b"\r\n" + publish_request("control", {"n": 2})  # one empty line is skipped
        with h.connect(self.port) as sock:
            sock.sendall(first + second)
            reader = h.ResponseReader(sock)
            answers = [reader.read(), reader.read()]
        self.assertEqual([a.status for a in answers], [200, 200], [a.body for a in answers])
        self.assertEqual([p["data"] for p in self.history("control")], [{"n": 1}, {"n": 2}])

    def test_an_api_key_sent_as_a_trailer_authorizes_nothing(self):
        # RFC 9110 §6.5.1: trailer fields are not merged into the header.
        body = json.dumps({"channel": "trailer", "data": 1}).encode()
        request = (b"POST /api/publish HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   b"Connection: close\r\n\r\n"
                   + chunked(body, trailer=b"X-API-Key: %s\r\n" % KEY.encode()))
        self.assertEqual(h.http_exchange(self.port, request).status, 401)
        self.assertEqual(self.history("trailer"), [])

    # --- request-line forms ---

    def test_absolute_form_and_empty_lines_before_the_request_line_are_accepted(self):
        r = h.http_exchange(self.port, b"GET http://x/health HTTP/1.1\r\nHost: y\r\n"
                                       b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.body).get("status"), "ok")
        r = h.http_exchange(self.port, b"\r\n\r\nGET /health HTTP/1.1\r\nHost: y\r\n"
                                       b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 200)

    # --- Expect: 100-continue ---

    def test_expect_100_continue_is_answered_before_the_body_is_sent(self):
        body = json.dumps({"channel": "expect", "data": {"big": "x" * 2000}}).encode()
        head = ("POST /api/publish HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
                "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (KEY, len(body))).encode()
        with h.connect(self.port) as sock:
            sock.sendall(head)
            reader = h.ResponseReader(sock)
            interim = reader.read(head_only=True)  # fails on timeout: no body was sent
            self.assertEqual(interim.status, 100)
            self.assertEqual(reader.buf, b"")
            sock.sendall(body)
            final = reader.read()
        self.assertEqual(final.status, 200, final.body)
        self.assertEqual(len(self.history("expect")), 1)

    def test_curl_gets_100_continue(self):
        body = json.dumps({"channel": "curl", "data": {"big": "x" * 2000}})
        run = subprocess.run(
            ["curl", "-sS", "-v", "--max-time", "20", "--expect100-timeout", "15",
             "-H", "X-API-Key: " + KEY, "-H", "Content-Type: application/json",
             "-H", "Expect: 100-continue", "--data-binary", body,
             "http://127.0.0.1:%d/api/publish" % self.port],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 0, run.stderr)
        # curl -v shows what it received; with the 15 s expect timeout the call above would
        # also have taken 15 s without it.
        self.assertIn("< HTTP/1.1 100 Continue", run.stderr)
        self.assertEqual(json.loads(run.stdout), {"result": {"offset": 1, "epoch": json.loads(
            run.stdout)["result"]["epoch"]}})


class LongResponseTest(h.HermodTestCase):
    """Answers above websocket.max_write_buffer_bytes (4 MiB) come whole."""

    def setUp(self):
        self.server = self.start_server(CONFIG, workers=1, echo=False)
        self.port = self.server.port
        payload = "p" * 50000
        requests = b"".join(publish_request("big", {"i": i, "p": payload}) for i in range(100))
        with h.connect(self.port) as sock:
            sock.sendall(requests)
            reader = h.ResponseReader(sock)
            for _ in range(100):
                self.assertEqual(reader.read(timeout=30).status, 200)

    def call(self, method, body, reader_sock=None):
        data = json.dumps(body).encode()
        request = ("POST /api/%s HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\nContent-Length: %d"
                   "\r\n\r\n" % (method, KEY, len(data))).encode() + data
        with h.connect(self.port) as sock:
            # Twice on one connection: the second answer must follow the first whole.
            sock.sendall(request + request)
            reader = h.ResponseReader(sock)
            return [reader.read(timeout=60) for _ in range(2)]

    def test_history_of_5_mb_answers_whole_directly_and_in_a_batch(self):
        for r in self.call("history", {"channel": "big", "limit": 100}):
            self.assertEqual(r.status, 200)
            self.assertGreater(len(r.body), 5_000_000)
            pubs = json.loads(r.body)["result"]["publications"]
            self.assertEqual([p["data"]["i"] for p in pubs], list(range(100)))
        batch = {"commands": [{"history": {"channel": "big", "limit": 100}}]}
        for r in self.call("batch", batch):
            self.assertEqual(r.status, 200)
            pubs = json.loads(r.body)["replies"][0]["history"]["publications"]
            self.assertEqual(len(pubs), 100)
            self.assertEqual(pubs[-1]["data"]["i"], 99)


class LongResponseTlsTest(h.HermodTestCase):
    """The same answers over TLS, where the socket drains through SSL_write, read by curl."""

    def test_history_of_5_mb_answers_whole_over_tls(self):
        directory = tempfile.TemporaryDirectory(prefix="hermod-tls-")
        self.addCleanup(directory.cleanup)
        cert = os.path.join(directory.name, "cert.pem")
        key = os.path.join(directory.name, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        server = self.start_server(dict(CONFIG, tls={"cert_file": cert, "key_file": key}),
                                   workers=1, echo=False)
        url = "https://127.0.0.1:%d/api/" % server.port
        body_path = os.path.join(directory.name, "publish.json")
        with open(body_path, "w") as f:
            json.dump({"channel": "big", "data": {"p": "p" * 50000}}, f)
        # One curl, 100 publishes (each its own request: --next) on one connection.
        one = ["-sS", "--fail", "--cacert", cert, "-H", "X-API-Key: " + KEY,
               "--data-binary", "@" + body_path, url + "publish"]
        run = subprocess.run(["curl"] + one + sum((["--next"] + one for _ in range(99)), []),
                             capture_output=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        for method, body in (("history", {"channel": "big", "limit": 100}),
                             ("batch", {"commands": [{"history": {"channel": "big",
                                                                  "limit": 100}}]})):
            run = subprocess.run(["curl", "-sS", "--fail", "--cacert", cert, "-H",
                                  "X-API-Key: " + KEY, "--data-binary", json.dumps(body),
                                  url + method], capture_output=True, timeout=120)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertGreater(len(run.stdout), 5_000_000)
            answer = json.loads(run.stdout)
            result = answer["result"] if method == "history" else answer["replies"][0]["history"]
            self.assertEqual(len(result["publications"]), 100)


class StalledReaderTest(h.HermodTestCase):
    """A peer that reads none of a long answer for http.keepalive_timeout_ms is cut, logged and
    counted; it pins the answer no longer than that."""

    def test_a_reader_that_stops_is_cut_after_the_keepalive_timeout(self):
        config = dict(CONFIG, http={"keepalive_timeout_ms": 300})
        server = self.start_server(config, workers=1, echo=False)
        payload = "p" * 50000
        with h.connect(server.port) as sock:
            sock.sendall(b"".join(publish_request("big", {"p": payload}) for _ in range(200)))
            reader = h.ResponseReader(sock)
            for _ in range(200):
                self.assertEqual(reader.read(timeout=30).status, 200)
        with h.connect(server.port) as sock:
            # A small receive window and 10 MB of answer: more than the kernel buffers on both
            # ends hold (tcp_wmem's maximum is 4 MiB by default), so the answer must wait on
            # this reader.
            sock.setsockopt(h.socket.SOL_SOCKET, h.socket.SO_RCVBUF, 4096)
            data = json.dumps({"channel": "big", "limit": 200}).encode()
            sock.sendall(("POST /api/history HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
                          "Content-Length: %d\r\n\r\n" % (KEY, len(data))).encode() + data)
            deadline = time.monotonic() + LOG_TIMEOUT_S
            while not any("read none of a" in line for line in list(server.log)):
                if time.monotonic() > deadline:
                    self.fail("no log line; stderr:\n%s" % server.stderr_text())
                time.sleep(0.01)
        # (What the kernel already took still trickles out after the close: not measured.)
        with h.connect(server.port) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            body = h.ResponseReader(sock).read().body.decode()
        self.assertIn('hermod_http_rejected_total{reason="response_stalled"} 1', body)


class ResponseBoundTest(h.HermodTestCase):
    """A response over http.max_response_bytes is refused with 500 and a log line."""

    def test_an_answer_over_the_bound_is_500_and_logged_and_the_connection_serves_on(self):
        config = dict(CONFIG, http={"max_response_bytes": 1 << 20})
        server = self.start_server(config, workers=1, echo=False)
        payload = "p" * 50000
        with h.connect(server.port) as sock:
            sock.sendall(b"".join(publish_request("big", {"p": payload}) for _ in range(30)))
            reader = h.ResponseReader(sock)
            for _ in range(30):
                self.assertEqual(reader.read().status, 200)
            data = json.dumps({"channel": "big", "limit": 30}).encode()
            sock.sendall(("POST /api/history HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
                          "Content-Length: %d\r\n\r\n" % (KEY, len(data))).encode() + data)
            self.assertEqual(reader.read().status, 500)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual(reader.read().status, 200)
        deadline = time.monotonic() + LOG_TIMEOUT_S
        while not any("over http.max_response_bytes" in line for line in list(server.log)):
            if time.monotonic() > deadline:
                self.fail("no log line; stderr:\n%s" % server.stderr_text())
            time.sleep(0.01)

    def test_a_batch_over_the_bound_runs_only_what_its_answer_can_report(self):
        """A batch's answers past the bound were once a 500 sent after every publish in it
        had run; now a command runs only while its answer fits, the rest answer 106."""
        config = dict(CONFIG, http={"max_response_bytes": 4096})
        server = self.start_server(config, workers=1, echo=False)

        def post(method, body):
            data = json.dumps(body).encode()
            with h.connect(server.port) as sock:
                sock.sendall(("POST /api/%s HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
                              "Content-Length: %d\r\nConnection: close\r\n\r\n"
                              % (method, KEY, len(data))).encode() + data)
                response = h.ResponseReader(sock).read()
            is_json = response.body.startswith(b"{")
            return response.status, json.loads(response.body) if is_json else response.body

        def published(channel):
            status, answer = post("history", {"channel": channel, "limit": -1})
            self.assertEqual(status, 200, answer)
            return [p["data"] for p in answer["result"]["publications"]]

        not_run = {"error": {"code": 106, "message": "limit exceeded"}}
        many = {"commands": [{"publish": {"channel": "many", "data": i}} for i in range(300)]}
        self.assertEqual(post("batch", many), (413, not_run))
        self.assertEqual(published("many"), [])

        for _ in range(3):
            self.assertEqual(post("publish", {"channel": "long", "data": "x" * 1500})[0], 200)
        status, answer = post("batch", {"commands": [
            {"publish": {"channel": "c", "data": 1}},
            {"history": {"channel": "long", "limit": -1}},
            {"publish": {"channel": "c", "data": 2}}]})
        self.assertEqual(status, 200)
        self.assertEqual(answer["replies"][0]["publish"]["offset"], 1)
        self.assertEqual(answer["replies"][1:], [not_run, not_run])
        self.assertEqual(published("c"), [1])


if __name__ == "__main__":
    h.main()
