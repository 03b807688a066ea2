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
expiring connection, or expiring it (3005); the sub_refresh proxy extending or expiring
an expiring subscription (unsubscribe 2501); the subscribe proxy's data on a subscribe whose
recovery the history engine completes later; proxy_static_http_headers and the connection's
meta (proxy_include_connection_meta) in the requests; granular proxy mode: each event, each
namespace and each rpc namespace reaching its own named proxy on one of two backends, with
that proxy's headers, breaker and metrics label.
"""

import http.client
import http.server
import json
import os
import random
import socket
import ssl
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import hermod_harness as h
from tls_test import make_certificate

CENTRIFUGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "centrifuge")


class Backend:
    """The application: answers /connect, /rpc, /subscribe, /publish, /refresh, and the
    faulty /slow, /500, /invalid, /big. Every request is recorded (path, headers, body)."""

    def __init__(self, tls=None):
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
            request_queue_size = 1024  # hermod opens up to 64 connections at once (the pool)

            def handle_error(self, request, client_address):
                pass  # hermod closing a connection it gave up on (a timeout, a large answer)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:  # (cert, key): an https backend with its own certificate
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def answer(self, path, headers, body):
        cookie = headers.get("Cookie", "")
        if path == "/connect":
            if cookie == "session=alice":
                return 200, {"result": {"user": "alice", "info": {"name": "Alice"},
                                        "data": {"welcome": True}, "channels": ["news"]}}
            if cookie.startswith("session=u"):
                # Answers held a little, in another order than asked.
                time.sleep(random.random() * 0.02)
                return 200, {"result": {"user": cookie[len("session="):]}}
            if cookie == "session=storm":
                self.release.wait(30)
                return 200, {"result": {"user": "storm"}}
            if cookie == "session=meta":
                return 200, {"result": {"user": "mia", "meta": {"tier": "gold"}}}
            if cookie == "session=expiring":
                return 200, {"result": {"user": "eve", "expire_at": int(time.time()) + 1}}
            if cookie == "session=gone":
                return 200, {"disconnect": {"code": 4501, "reason": "go away"}}
            return 200, {"error": {"code": 1000, "message": "bad session"}}
        if path == "/rpc":
            if body.get("method") == "hold":
                self.release.wait(30)
                return 200, {"result": {"data": {"held": body.get("data")}}}
            if body.get("method") == "echo":
                return 200, {"result": {"data": {"echo": body.get("data"), "user": body["user"]}}}
            return 200, {"error": {"code": 1001, "message": "boom"}}
        if path == "/subscribe":
            if body.get("channel") in ("proxied:extend", "proxied:expire"):
                return 200, {"result": {"expire_at": int(time.time()) + 1}}
            if body.get("channel") in ("proxied:ok", "plain:ok"):
                return 200, {"result": {"info": {"role": "reader"}, "data": {"sub": "ok"}}}
            return 200, {"error": {"code": 1002, "message": "not allowed"}}
        if path == "/publish":
            data = body.get("data") or {}
            return 200, {"result": {"data": {"text": str(data.get("text", "")).upper()}}}
        if path == "/refresh":
            if self.refresh_expired:
                return 200, {"result": {"expired": True}}
            return 200, {"result": {"expire_at": int(time.time()) + 600}}
        if path == "/sub_refresh":
            if body.get("channel") == "proxied:expire":
                return 200, {"result": {"expired": True}}
            return 200, {"result": {"expire_at": int(time.time()) + 600}}
        if path == "/slow":
            self.release.wait(5)
            return 200, {"result": {"user": "late"}}
        if path == "/huge":
            return 200, b'{"result": {"user": "' + b"x" * (40 << 20) + b'"}}'
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


# A child of the connect storm: opens `count` WebSocket connections to hermod, each sending a
# connect with the storm's cookie, says so on stdout, and holds them until stdin closes.
STORM_CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import hermod_harness as h
h.raise_nofile_limit()  # a soft limit below 1,024 (select() takes no descriptor past it)
port, count = int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(count):
    ws = h.ws_open(port, "/connection/websocket", extra_headers=["Cookie: session=storm"])
    ws.send_frame(h.OP_TEXT, json.dumps({"id": 1, "connect": {}}))
    held.append(ws)
print("open", flush=True)
sys.stdin.read()
'''


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1])


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmHWM:")][0].split()[1])


def metric(text, family, **labels):
    total = None
    for line in text.splitlines():
        if not line.startswith(family + "{") and not line.startswith(family + " "):
            continue
        if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def api_call(port, method, params):
    """The server HTTP API (api_key "k")."""
    request = urllib.request.Request("http://127.0.0.1:%d/api/%s" % (port, method),
                                     data=json.dumps(params).encode(), method="POST",
                                     headers={"Authorization": "apikey k"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def read_replies(ws, count):
    """The next `count` replies: a frame may carry several, one JSON value per line."""
    replies = []
    while len(replies) < count:
        replies += [json.loads(line) for line in ws.read_frame().payload.splitlines() if line]
    return replies


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

    def test_each_connection_gets_the_answer_to_its_own_request(self):
        # Many connects out at once on pooled keep-alive connections, answered out of order:
        # no client gets the user the backend named for another one.
        server = self.start_server(self.config())
        sockets = [self.raw_connect(server, "session=u%d" % i) for i in range(60)]
        for ws in sockets:
            self.addCleanup(ws.close)
        # Every connect is out before the first answer is read; then each asks its user back.
        for i, ws in enumerate(sockets):
            self.assertIn("connect", json.loads(ws.read_frame().payload))
            ws.send_frame(h.OP_TEXT, json.dumps({"id": 2, "rpc": {"method": "echo", "data": i}}))
        for i, ws in enumerate(sockets):
            reply = json.loads(ws.read_frame().payload)
            self.assertEqual(reply.get("rpc", reply).get("data"), {"echo": i, "user": "u%d" % i},
                             reply)
        _, text = http_get(server.port, "/metrics")
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="connect",
                                outcome="ok"), len(sockets))

    def test_one_connection_has_at_most_its_bound_of_calls_out(self):
        # proxy_client.max_in_flight_per_connection: 3. One connection sends 5 rpcs to a
        # backend that holds its answers: 3 go out, the other 2 are refused at once (111)
        # and counted; another connection's rpc is not held up by them (the bound is the
        # connection's, not the endpoint's). Once the answers come, the bound is free again.
        server = self.start_server(self.config(proxy_client={"max_in_flight_per_connection": 3}))
        busy = self.raw_connect(server, "session=alice")
        self.addCleanup(busy.close)
        self.assertIn("connect", json.loads(busy.read_frame().payload))
        for n in range(5):
            busy.send_frame(h.OP_TEXT, json.dumps(
                {"id": 10 + n, "rpc": {"method": "hold", "data": n}}))
        refused = read_replies(busy, 2)
        self.assertEqual(sorted(r["id"] for r in refused), [13, 14], refused)
        for r in refused:
            self.assertEqual(r["error"]["code"], 111, r)
        held = self.backend.wait_for("/rpc", 3)
        self.assertEqual(sorted(b["data"] for _, _, b in held), [0, 1, 2])
        _, text = http_get(server.port, "/metrics")
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="rpc",
                                outcome="connection_limit"), 2)
        self.assertEqual(metric(text, "hermod_proxy_in_flight", kind="rpc"), 3)

        other = self.raw_connect(server, "session=alice")
        self.addCleanup(other.close)
        self.assertIn("connect", json.loads(other.read_frame().payload))
        other.send_frame(h.OP_TEXT, json.dumps({"id": 2, "rpc": {"method": "echo", "data": 1}}))
        self.assertEqual(json.loads(other.read_frame().payload)["rpc"]["data"],
                         {"echo": 1, "user": "alice"})

        self.backend.release.set()
        answers = read_replies(busy, 3)
        self.assertEqual(sorted((a["id"], a["rpc"]["data"]["held"]) for a in answers),
                         [(10, 0), (11, 1), (12, 2)], answers)
        busy.send_frame(h.OP_TEXT, json.dumps({"id": 20, "rpc": {"method": "echo", "data": 2}}))
        again = json.loads(busy.read_frame().payload)
        self.assertEqual((again["id"], again["rpc"]["data"]["echo"]), (20, 2), again)
        self.assertEqual(self.backend.wait_for("/rpc", 5)[-1][2]["data"], 2)

    def test_a_subscription_the_proxy_allows_is_granted_delta(self):
        # The client's delta ask goes through the subscribe proxy: granted by the namespace's
        # allowed_delta_types, as for a subscription allowed without a proxy.
        server = self.start_server(self.config(api_key="k", namespaces=[
            {"name": "proxied", "proxy_subscribe": True, "allowed_delta_types": ["fossil"]},
            {"name": "plain", "proxy_subscribe": True}]))
        ws = self.raw_connect(server, "session=alice")
        self.addCleanup(ws.close)
        self.assertIn("connect", read_replies(ws, 1)[0])
        ws.send_frame(h.OP_TEXT, json.dumps(
            {"id": 2, "subscribe": {"channel": "proxied:ok", "delta": "fossil"}}))
        reply = read_replies(ws, 1)[0]
        self.assertEqual(reply["id"], 2, reply)
        self.assertIs(reply["subscribe"].get("delta"), True, reply)
        self.assertEqual(reply["subscribe"].get("data"), {"sub": "ok"}, reply)
        for n in (1, 2):
            self.assertIn("result", api_call(server.port, "publish", {
                "channel": "proxied:ok", "data": {"doc": "x" * 400, "n": n}, "delta": True}))
        pushes = [r["push"]["pub"] for r in read_replies(ws, 2)]
        self.assertNotIn("delta", pushes[0], pushes[0])  # the first in full
        self.assertIs(pushes[1].get("delta"), True, pushes[1])
        # A namespace without allowed_delta_types does not grant it.
        ws.send_frame(h.OP_TEXT, json.dumps(
            {"id": 3, "subscribe": {"channel": "plain:ok", "delta": "fossil"}}))
        plain = read_replies(ws, 1)[0]
        self.assertIn("subscribe", plain, plain)
        self.assertNotIn("delta", plain["subscribe"], plain)

    def test_a_forty_megabyte_answer_is_refused_at_the_bound(self):
        server = self.start_server(self.config(proxy_connect_endpoint=self.backend.url("/huge"),
                                               proxy_connect_timeout="20s"))
        peak_before = peak_rss_kb(server.proc.pid)
        out = self.sdk(server, "connect")
        self.assertEqual(out, {"event": "error", "code": 100, "temporary": True})
        _, text = http_get(server.port, "/metrics")
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="connect",
                                outcome="too_large"), 1)
        # Read up to proxy_client.max_response_bytes (1 MiB), not the 40 MB: the peak
        # grows by half of what holding the answer would take at most (ASan's allocator
        # alone adds about 8 MB on the first proxied connect).
        grown_kb = peak_rss_kb(server.proc.pid) - peak_before
        self.assertLess(grown_kb, 20 * 1024, grown_kb)

    def test_a_connect_storm_against_a_slow_backend_is_bounded_by_the_in_flight_limit(self):
        # 5,000 connects from 5 processes (each under select()'s 1,024 descriptors) against a backend that holds every answer: 100 are
        # out (proxy_client.max_in_flight), every other is refused at once (111, temporary),
        # and the memory the storm takes is bounded by the connections and that limit; the
        # whole storm is answered within the deadline.
        in_flight, processes, per_process = 100, 5, 1000
        clients = processes * per_process
        started = time.monotonic()
        server = self.start_server(self.config(
            proxy_connect_timeout="30s", proxy_client={"max_in_flight": in_flight}))
        rss_before = rss_kb(server.proc.pid)
        here = os.path.dirname(os.path.abspath(__file__))
        children = [subprocess.Popen([sys.executable, "-c", STORM_CHILD, here, str(server.port),
                                      str(per_process)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
                    for _ in range(processes)]
        for child in children:
            self.addCleanup(child.stdout.close)
            self.addCleanup(child.wait, 10)
            self.addCleanup(child.stdin.close)
        for child in children:
            self.assertEqual(child.stdout.readline().strip(), "open")
        deadline = time.monotonic() + 30
        while True:
            _, text = http_get(server.port, "/metrics")
            out = metric(text, "hermod_proxy_in_flight", kind="connect") or 0
            refused = metric(text, "hermod_proxy_requests_total", kind="connect",
                             outcome="overloaded") or 0
            if out + refused >= clients or time.monotonic() > deadline:
                break
        self.assertEqual((out, refused), (in_flight, clients - in_flight), text)
        self.assertLess(time.monotonic() - started, 60)
        # Each connection may hold its buffers (64 KiB is far above a connected client's) and
        # each call out its request and answer (the answer is bounded by max_response_bytes,
        # and these are small); the held answers do not grow with the storm.
        grown_kb = rss_kb(server.proc.pid) - rss_before
        self.assertLess(grown_kb, clients * 64 + in_flight * 16, grown_kb)
        self.backend.release.set()
        deadline = time.monotonic() + 30
        while True:
            _, text = http_get(server.port, "/metrics")
            ok = metric(text, "hermod_proxy_requests_total", kind="connect", outcome="ok") or 0
            if ok >= in_flight or time.monotonic() > deadline:
                break
        self.assertEqual(ok, in_flight)

    def test_static_headers_and_connection_meta_reach_the_backend(self):
        server = self.start_server(self.config(
            proxy_static_http_headers={"X-Static": "yes"}, proxy_include_connection_meta=True))
        ws = self.raw_connect(server, "session=meta")
        self.addCleanup(ws.close)
        self.assertIn("connect", json.loads(ws.read_frame().payload))
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 2, "rpc": {"method": "echo", "data": 1}}))
        self.assertEqual(json.loads(ws.read_frame().payload)["rpc"]["data"]["echo"], 1)
        _, connect_headers, connect = self.backend.wait_for("/connect")[0]
        self.assertEqual(connect_headers.get("X-Static"), "yes")
        self.assertEqual(connect_headers.get("Cookie"), "session=meta")
        self.assertNotIn("meta", connect)  # the backend gives it: nothing to send yet
        _, rpc_headers, rpc = self.backend.wait_for("/rpc")[0]
        self.assertEqual(rpc_headers.get("X-Static"), "yes")
        self.assertEqual(rpc["meta"], {"tier": "gold"})
        self.assertEqual(rpc["user"], "mia")

    def test_streamed_transports_forward_the_listed_headers_too(self):
        # The fallbacks carry the same session: a connect through the proxy needs the
        # browser's cookie whichever transport the SDK ended up on.
        server = self.start_server(self.config(http_stream=True, uni_http_stream=True))
        for path, body in (("/connection/http_stream", '{"id":1,"connect":{}}\n'),
                           ("/connection/uni_http_stream", "{}")):
            with self.subTest(path=path):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                self.addCleanup(conn.close)
                conn.request("POST", path, body, headers={
                    "Cookie": "session=alice", "Content-Type": "application/json"})
                response = conn.getresponse()
                self.assertEqual(response.status, 200)
                reply = json.loads(response.readline())
                self.assertEqual(reply["connect"]["data"], {"welcome": True}, reply)
                conn.close()
        connects = self.backend.wait_for("/connect", count=2)
        self.assertEqual([headers.get("Cookie") for _, headers, _ in connects],
                         ["session=alice", "session=alice"])

    def test_https_backends_are_verified_against_the_ca_store_or_the_ca_file(self):
        directory = tempfile.mkdtemp(prefix="hermod-proxy-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        cert, key = make_certificate(directory)
        secure = Backend(tls=(cert, key))
        self.addCleanup(secure.stop)
        config = {"proxy_connect_endpoint": secure.url("/connect"),
                  "proxy_http_headers": ["Cookie"]}
        # A self-signed certificate is in no system store: the call fails verification,
        # the client gets error 100 and the backend never sees the request.
        server = self.start_server(config)
        self.assertEqual(self.sdk(server, "connect"),
                         {"event": "error", "code": 100, "temporary": True})
        _, text = http_get(server.port, "/metrics")
        self.assertGreaterEqual(metric(text, "hermod_proxy_requests_total", kind="connect",
                                       outcome="unavailable") or 0, 1, text)
        self.assertEqual([r for r in secure.requests if r[0] == "/connect"], [])
        server.stop()
        # Trusted through proxy_client.ca_file: the same backend answers over TLS.
        server = self.start_server(dict(config, proxy_client={"ca_file": cert}))
        ws = self.raw_connect(server, "session=alice")
        self.addCleanup(ws.close)
        reply = json.loads(ws.read_frame().payload)
        self.assertEqual(reply["connect"]["data"], {"welcome": True}, reply)
        self.assertEqual(secure.wait_for("/connect")[0][1].get("Cookie"), "session=alice")

    def test_subscribe_data_survives_a_recovery_the_engine_completes_later(self):
        # The sqlite engine answers history later: the subscribe reply leaves from the
        # recovery's completion, and must still carry the subscribe proxy's data.
        store = tempfile.mkdtemp(prefix="hermod-proxy-sqlite-")
        self.addCleanup(shutil.rmtree, store, True)
        server = self.start_server(self.config(
            engine="sqlite", sqlite={"path": os.path.join(store, "h.db")},
            namespaces=[{"name": "proxied", "proxy_subscribe": True, "history_size": 10,
                         "history_ttl": "60s"}]))
        ws = self.raw_connect(server, "session=alice")
        self.addCleanup(ws.close)
        self.assertIn("connect", json.loads(ws.read_frame().payload))
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 2, "subscribe": {
            "channel": "proxied:ok", "recoverable": True, "recover": True, "offset": 0,
            "epoch": "x"}}))
        reply = json.loads(ws.read_frame().payload)
        self.assertEqual(reply["id"], 2, reply)
        self.assertTrue(reply["subscribe"].get("was_recovering"), reply)
        self.assertEqual(reply["subscribe"].get("data"), {"sub": "ok"}, reply)

    def test_sub_refresh_proxy_extends_or_expires_a_subscription(self):
        server = self.start_server(self.config(
            proxy_sub_refresh_endpoint=self.backend.url("/sub_refresh"),
            ping_interval="1s", pong_timeout="500ms",
            namespaces=[{"name": "proxied", "proxy_subscribe": True,
                         "proxy_sub_refresh": True}]))
        ws = self.raw_connect(server, "session=alice")
        self.addCleanup(ws.close)
        self.assertIn("connect", json.loads(ws.read_frame().payload))
        for i, channel in [(2, "proxied:extend"), (3, "proxied:expire")]:
            ws.send_frame(h.OP_TEXT, json.dumps({"id": i, "subscribe": {"channel": channel}}))
            reply = json.loads(ws.read_frame().payload)
            # The server refreshes it: the client is given no ttl to refresh by itself.
            self.assertEqual(reply["id"], i, reply)
            self.assertNotIn("expires", reply["subscribe"])
            self.assertNotIn("ttl", reply["subscribe"])
        # Within a ping interval of expiring, each asks the sub_refresh proxy: one is
        # extended, the other ends with unsubscribe 2501; the connection answers pings.
        unsubscribed = None
        pings = 0
        while unsubscribed is None or pings < 3:
            for line in ws.read_frame().payload.decode().splitlines():
                message = json.loads(line)
                if message == {}:
                    pings += 1
                    ws.send_frame(h.OP_TEXT, "{}")
                elif "push" in message and "unsubscribe" in message["push"]:
                    unsubscribed = message["push"]
        self.assertEqual(unsubscribed["channel"], "proxied:expire")
        self.assertEqual(unsubscribed["unsubscribe"]["code"], 2501)
        refreshes = [(b["channel"], b["user"]) for _, _, b in
                     self.backend.wait_for("/sub_refresh", 2)]
        # Extended by ten minutes: asked once, not at every ping since.
        self.assertEqual(sorted(refreshes), [("proxied:expire", "alice"),
                                             ("proxied:extend", "alice")])
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 9, "rpc": {"method": "echo", "data": 1}}))
        while True:
            answer = json.loads(ws.read_frame().payload.decode().splitlines()[-1])
            if answer.get("id") == 9:
                break
        self.assertEqual(answer["rpc"]["data"]["echo"], 1)
        _, text = http_get(server.port, "/metrics")
        self.assertEqual(metric(text, "hermod_proxy_requests_total", kind="sub_refresh",
                                outcome="ok"), 2)


    def test_granular_mode_routes_each_event_to_its_named_proxy(self):
        # Two backends; each named proxy has its own endpoint, headers, breaker and label.
        other = Backend()
        self.addCleanup(other.stop)
        one = self.backend
        server = self.start_server({
            "granular_proxy_mode": True,
            "proxies": [
                {"name": "auth", "endpoint": one.url("/connect"), "timeout": "2s",
                 "http_headers": ["Cookie"], "static_http_headers": {"X-Proxy": "auth"}},
                {"name": "sub_one", "endpoint": one.url("/subscribe")},
                {"name": "sub_two", "endpoint": other.url("/subscribe"),
                 "static_http_headers": {"X-Proxy": "sub_two"}},
                {"name": "pub_two", "endpoint": other.url("/publish")},
                {"name": "rpc_one", "endpoint": one.url("/rpc"), "http_headers": ["Cookie"]},
                {"name": "rpc_two", "endpoint": other.url("/rpc"),
                 "static_http_headers": {"X-Proxy": "rpc_two"}},
            ],
            "connect_proxy_name": "auth",
            "rpc_proxy_name": "rpc_one",
            "rpc_namespaces": [{"name": "two", "rpc_proxy_name": "rpc_two"}],
            # The flat keys do not apply in granular mode.
            "proxy_subscribe_endpoint": other.url("/never"),
            "namespaces": [
                {"name": "proxied", "subscribe_proxy_name": "sub_one"},
                {"name": "other", "subscribe_proxy_name": "sub_two",
                 "publish_proxy_name": "pub_two"},
                {"name": "plain", "allow_subscribe_for_client": True},
            ],
        })
        ws = self.raw_connect(server, "session=alice")
        self.addCleanup(ws.close)
        self.assertIn("connect", json.loads(ws.read_frame().payload))

        def ask(i, command):
            ws.send_frame(h.OP_TEXT, json.dumps(dict(id=i, **command)))
            while True:
                for line in ws.read_frame().payload.decode().splitlines():
                    message = json.loads(line)
                    if message.get("id") == i:
                        return message

        ok = ask(2, {"subscribe": {"channel": "proxied:ok"}})
        self.assertEqual(ok["subscribe"].get("data"), {"sub": "ok"}, ok)
        refused = ask(3, {"subscribe": {"channel": "other:ok"}})
        self.assertEqual(refused["error"]["code"], 1002, refused)
        plain = ask(4, {"subscribe": {"channel": "plain:x"}})
        self.assertIn("subscribe", plain)  # no proxy named: the namespace's rules
        published = ask(5, {"publish": {"channel": "other:x", "data": {"text": "hi"}}})
        self.assertIn("publish", published)
        echo = ask(6, {"rpc": {"method": "echo", "data": 1}})
        self.assertEqual(echo["rpc"]["data"]["echo"], 1)
        routed = ask(7, {"rpc": {"method": "two:echo", "data": 2}})
        self.assertEqual(routed["error"]["code"], 1001, routed)  # the other backend's answer

        connects = one.wait_for("/connect")
        self.assertEqual(connects[0][1].get("X-Proxy"), "auth")
        self.assertEqual(connects[0][1].get("Cookie"), "session=alice")
        self.assertEqual([b["channel"] for _, _, b in one.wait_for("/subscribe")], ["proxied:ok"])
        _, sub_headers, sub = other.wait_for("/subscribe")[0]
        self.assertEqual((sub["channel"], sub_headers.get("X-Proxy")), ("other:ok", "sub_two"))
        self.assertNotIn("Cookie", sub_headers)  # sub_two forwards no header
        self.assertEqual(other.wait_for("/publish")[0][2]["data"], {"text": "hi"})
        _, rpc_headers, rpc = one.wait_for("/rpc")[0]
        self.assertEqual((rpc["method"], rpc_headers.get("Cookie")), ("echo", "session=alice"))
        _, rpc_headers, rpc = other.wait_for("/rpc")[0]
        self.assertEqual((rpc["method"], rpc_headers.get("X-Proxy")), ("two:echo", "rpc_two"))
        self.assertNotIn("Cookie", rpc_headers)
        with one.lock, other.lock:
            paths = [p for p, _, _ in one.requests + other.requests]
        self.assertNotIn("/never", paths)
        self.assertEqual(len(paths), 6, paths)

        _, text = http_get(server.port, "/metrics")
        for name, kind in [("auth", "connect"), ("sub_one", "subscribe"),
                           ("sub_two", "subscribe"), ("pub_two", "publish"),
                           ("rpc_one", "rpc"), ("rpc_two", "rpc")]:
            self.assertEqual(metric(text, "hermod_proxy_requests_total", name=name, kind=kind), 1,
                             name)
            self.assertEqual(metric(text, "hermod_proxy_circuit_breaker_state", name=name,
                                    kind=kind), 0, name)

if __name__ == "__main__":
    h.main()
