"""Backend proxies against a real backend: a small HTTP server in this process (http.server
in a thread, on a free port) answers as a Centrifugo application would, and the real
centrifuge SDK (centrifuge/proxy_client.mjs) or a raw WebSocket client talks to hermod.

Covered: connect with no token through the connect proxy (Cookie and Authorization forwarded,
nothing else), user, info, data and server-side channels from the backend; rpc answered by
the backend (result and error); a subscribe the subscribe proxy allows (with its data) and
one it refuses with its code; a publication the publish proxy rewrites; the backend's error
and disconnect answers; a backend that is down, answers 500, answers invalid JSON, answers
too much, or answers too late: error 100 (temporary), counted by outcome; the circuit
breaker opening (fail fast, /health degraded, the metric); the refresh proxy extending an
expiring connection, or expiring it (3005).
"""

import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

import hermod_harness as h

CENTRIFUGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "centrifuge")


class Backend:
    """The application: answers /connect, /rpc, /subscribe, /publish, /refresh, and the
    faulty /slow, /500, /invalid, /big. Every request is recorded (path, headers, body)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.release = threading.Event()  # /slow answers once set (or after 5 s)
        self.refresh_expired = False
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as hermod's pool expects

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with backend.lock:
                    backend.requests.append((self.path, dict(self.headers), body))
                    backend.arrived.notify_all()
                status, answer = backend.answer(self.path, self.headers, body)
                if isinstance(answer, (dict, list)):
                    answer = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # hermod gave up on it (a timeout)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # hermod closing a connection it gave up on (a timeout, a large answer)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def answer(self, path, headers, body):
        cookie = headers.get("Cookie", "")
        if path == "/connect":
            if cookie == "session=alice":
                return 200, {"result": {"user": "alice", "info": {"name": "Alice"},
                                        "data": {"welcome": True}, "channels": ["news"]}}
            if cookie == "session=expiring":
                return 200, {"result": {"user": "eve", "expire_at": int(time.time()) + 1}}
            if cookie == "session=gone":
                return 200, {"disconnect": {"code": 4501, "reason": "go away"}}
            return 200, {"error": {"code": 1000, "message": "bad session"}}
        if path == "/rpc":
            if body.get("method") == "echo":
                return 200, {"result": {"data": {"echo": body.get("data"), "user": body["user"]}}}
            return 200, {"error": {"code": 1001, "message": "boom"}}
        if path == "/subscribe":
            if body.get("channel") == "proxied:ok":
                return 200, {"result": {"info": {"role": "reader"}, "data": {"sub": "ok"}}}
            return 200, {"error": {"code": 1002, "message": "not allowed"}}
        if path == "/publish":
            data = body.get("data") or {}
            return 200, {"result": {"data": {"text": str(data.get("text", "")).upper()}}}
        if path == "/refresh":
            if self.refresh_expired:
                return 200, {"result": {"expired": True}}
            return 200, {"result": {"expire_at": int(time.time()) + 600}}
        if path == "/slow":
            self.release.wait(5)
            return 200, {"result": {"user": "late"}}
        if path == "/500":
            return 500, b"oops"
        if path == "/invalid":
            return 200, b"this is not json"
        if path == "/big":
            return 200, b"[" + b"1," * (64 * 1024) + b"1]"
        return 404, b""

    def wait_for(self, path, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(1 for p, _, _ in self.requests if p == path) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("backend got no %s request" % path)
                self.arrived.wait(left)
            return [r for r in self.requests if r[0] == path]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def free_port_closed():
    """A port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    total = None
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


class ProxyTest(h.HermodTestCase):
    def setUp(self):
        self.backend = Backend()
        self.addCleanup(self.backend.stop)

    def config(self, **extra):
        b = self.backend
        config = {
            "proxy_connect_endpoint": b.url("/connect"),
            "proxy_rpc_endpoint": b.url("/rpc"),
            "proxy_subscribe_endpoint": b.url("/subscribe"),
            "proxy_publish_endpoint": b.url("/publish"),
            "proxy_refresh_endpoint": b.url("/refresh"),
            "proxy_http_headers": ["Cookie", "Authorization"],
            "namespaces": [{"name": "proxied", "proxy_subscribe": True, "proxy_publish": True}],
        }
        config.update(extra)
        return config

    def sdk(self, server, scenario, cookie="session=alice"):
        if not os.path.isdir(os.path.join(CENTRIFUGE_DIR, "node_modules")):
            self.fail("node modules missing: run `npm ci` in %s" % CENTRIFUGE_DIR)
        done = subprocess.run(["node", "proxy_client.mjs", str(server.port), scenario, cookie],
                              cwd=CENTRIFUGE_DIR, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, "proxy_client.mjs failed:\n%s\n%s\nhermod:\n%s"
                         % (done.stdout, done.stderr, server.stderr_text()))
        return json.loads(done.stdout.strip().splitlines()[-1])

    def raw_connect(self, server, cookie):
        ws = h.ws_open(server.port, "/connection/websocket",
                       extra_headers=["Cookie: " + cookie])
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 1, "connect": {}}))
        return ws

    def test_sdk_connects_rpcs_subscribes_and_publishes_through_the_backend(self):
        server = self.start_server(self.config())
        out = self.sdk(server, "full")
        self.assertEqual(out["connected"]["event"], "connected", out)
        self.assertEqual(out["connected"]["data"], {"welcome": True})
        self.assertEqual(out["server_sub"]["channel"], "news")
        self.assertEqual(out["rpc_echo"], {"data": {"echo": {"n": 7}, "user": "alice"}})
        self.assertEqual(out["rpc_fail"]["code"], 1001)
        self.assertEqual(out["rpc_fail"]["message"], "boom")
        self.assertEqual(out["sub_ok"], {"data": {"sub": "ok"}})
        self.assertEqual(out["sub_refused"]["code"], 1002, out)
        self.assertEqual(out["published"], {"text": "HELLO"})

        path, headers, body = self.backend.wait_for("/connect")[0]
        self.assertEqual(headers.get("Cookie"), "session=alice")
        self.assertEqual(headers.get("Authorization"), "Bearer t0ken")
        self.assertNotIn("X-Not-Forwarded", headers)
        self.assertEqual(headers.get("Content-Type"), "application/json")
        self.assertEqual(body["client"], out["connected"]["client"])
        self.assertEqual((body["transport"], body["protocol"], body["encoding"]),
                         ("websocket", "json", "json"))
        _, rpc_headers, rpc = self.backend.wait_for("/rpc")[0]
        self.assertEqual(rpc_headers.get("Cookie"), "session=alice")
        self.assertEqual((rpc["user"], rpc["method"], rpc["data"]), ("alice", "echo", {"n": 7}))
        _, _, sub = self.backend.wait_for("/subscribe")[0]
        self.assertEqual((sub["user"], sub["channel"]), ("alice", "proxied:ok"))
        _, _, pub = self.backend.wait_for("/publish")[0]
        self.assertEqual(pub["data"], {"text": "hello"})

        _, text = http_get(server.port, "/metrics")
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="rpc", outcome="ok"), 1)
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="rpc",
                                outcome="error"), 1)
        self.assertGreaterEqual(metric(text, "hermod_proxy_duration_seconds_count",
                                       kind="connect"), 1)

    def test_backend_error_and_disconnect_answers_reach_the_sdk(self):
        server = self.start_server(self.config())
        refused = self.sdk(server, "connect", "session=bad")
        self.assertEqual(refused, {"event": "disconnected", "code": 1000, "reason": "bad session"})
        gone = self.sdk(server, "connect", "session=gone")
        self.assertEqual(gone, {"event": "disconnected", "code": 4501, "reason": "go away"})

    def test_failing_backends_answer_error_100_temporary(self):
        down = "http://127.0.0.1:%d/connect" % free_port_closed()
        for name, endpoint in [("unavailable", down), ("http_status", self.backend.url("/500")),
                               ("invalid", self.backend.url("/invalid")),
                               ("too_large", self.backend.url("/big")),
                               ("timeout", self.backend.url("/slow"))]:
            with self.subTest(outcome=name):
                server = self.start_server(self.config(
                    proxy_connect_endpoint=endpoint, proxy_connect_timeout="300ms",
                    proxy_client={"max_response_bytes": 4096}))
                out = self.sdk(server, "connect")
                self.assertEqual(out, {"event": "error", "code": 100, "temporary": True})
                _, text = http_get(server.port, "/metrics")
                self.assertGreaterEqual(
                    metric(text, "hermod_proxy_requests_total", kind="connect", outcome=name) or 0,
                    1, text)
                server.stop()

    def test_open_breaker_fails_fast_and_degrades_health(self):
        down = "http://127.0.0.1:%d/rpc" % free_port_closed()
        server = self.start_server(self.config(
            proxy_rpc_endpoint=down, health={"check_interval_ms": 50},
            proxy_breaker={"failure_threshold": 2, "open_timeout": "60s"}))
        ws = self.raw_connect(server, "session=alice")
        self.addCleanup(ws.close)
        reply = json.loads(ws.read_frame().payload)
        self.assertIn("connect", reply)
        answers = []
        for i in range(2, 6):
            ws.send_frame(h.OP_TEXT, json.dumps({"id": i, "rpc": {"method": "echo", "data": {}}}))
            frame = ws.read_frame()
            for line in frame.payload.decode().splitlines():
                answers.append(json.loads(line))
        self.assertEqual([a["error"]["code"] for a in answers], [100] * 4)
        self.assertTrue(all(a["error"].get("temporary") for a in answers))
        _, text = http_get(server.port, "/metrics")
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="rpc",
                                outcome="unavailable"), 2)
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="rpc",
                                outcome="open"), 2)
        self.assertEqual(metric(text, "hermod_proxy_circuit_breaker_state", kind="rpc"), 1)
        # The monitor checks every 50 ms: its next result has the open breaker.
        deadline = time.monotonic() + 10
        while True:
            _, health = http_get(server.port, "/health")
            proxies = [c for c in json.loads(health)["checks"] if c["name"] == "proxies"][0]
            if proxies["level"] == "degraded" or time.monotonic() > deadline:
                break
        self.assertEqual(proxies["level"], "degraded", health)
        self.assertIn("circuit breaker open", proxies["detail"])
        self.assertEqual(json.loads(health)["level"], "degraded")

    def test_refresh_proxy_extends_or_expires_a_connection(self):
        server = self.start_server(self.config(client_expired_close_delay="0s"))
        ws = self.raw_connect(server, "session=expiring")
        self.addCleanup(ws.close)
        reply = json.loads(ws.read_frame().payload)
        # The server refreshes it: the client is not told to (no expires, no ttl).
        self.assertNotIn("expires", reply["connect"])
        _, _, body = self.backend.wait_for("/refresh")[0]
        self.assertEqual(body["user"], "eve")
        # Extended by ten minutes: the connection still answers.
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 2, "rpc": {"method": "echo", "data": 1}}))
        answer = json.loads(ws.read_frame().payload)
        self.assertEqual(answer["rpc"]["data"]["echo"], 1)

        self.backend.refresh_expired = True
        ws2 = self.raw_connect(server, "session=expiring")
        self.addCleanup(ws2.close)
        json.loads(ws2.read_frame().payload)
        code, reason = ws2.expect_close()
        self.assertEqual(code, 3005)


if __name__ == "__main__":
    h.main()
