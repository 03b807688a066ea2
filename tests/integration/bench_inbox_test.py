"""hermod-bench's `inbox` scenario against the real hermod: a run of seconds, not a benchmark.

20 users x 10 publications through the API `publish` into their inboxes (memory engine, then
sqlite on a temp file), each acked over the client protocol: the run exits 0, its JSON report
says every publication was published and acked once with nothing lost, duplicated or
redelivered, and hermod's own counters (hermod_inbox_published_total, _acked_total) agree
with it; and the same with 8 publications per API `batch` request (`--api-batch`). A server
that does not subscribe users to their inboxes fails the setup (exit 1), so the scenario
cannot pass by measuring nothing. And the peer: the same run against nats-server -js alone
(`-p nats`, one durable consumer per user, explicit acks, 3 publishes in flight per
publisher). No timing is asserted.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile

import hermod_harness as h
import nats_harness

USERS, PER_USER = 20, 10

CONFIG = {
    "api_key": "k",
    "token_hmac_secret_key": "bench-secret",
    "user_subscribe_to_personal": True,
    "user_personal_channel_namespace": "inbox",
    "client_command_rate_limit": {"total": {"rate": 0}},
    "namespaces": [{"name": "inbox", "inbox": True}],
}


def metric(port, name):
    r = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    m = re.search(r"^%s (\S+)$" % re.escape(name), r.body.decode(), re.M)
    return float(m.group(1)) if m else None


class BenchInboxTest(h.HermodTestCase):
    def bench(self, port, tmp, extra=(), protocol="hermod"):
        bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")
        self.assertTrue(os.access(bench, os.X_OK), "hermod-bench not built next to hermod")
        report = os.path.join(tmp, "inbox.json")
        path = "/connection/websocket" if protocol == "hermod" else "/"
        argv = [bench, "inbox", "-u", "ws://127.0.0.1:%d%s" % (port, path),
                "-p", protocol, "--hmac-secret", "bench-secret", "--api-key", "k",
                "-c", str(USERS), "-n", str(PER_USER), "--publishers", "4", "-d", "20",
                "--drain", "5", "--setup-timeout", "10", "--no-progress",
                "--json", report] + list(extra)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60, preexec_fn=h.raise_nofile_limit)
        summary = None
        if os.path.exists(report):
            with open(report) as f:
                summary = json.load(f)["summary"]
        return r, summary

    def check_report(self, r, s):
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        total = USERS * PER_USER
        self.assertEqual(s["published"], total, out)
        self.assertEqual(s["acked"], total, out)
        for zero in ("lost", "duplicates", "redelivered", "never_delivered", "publish_failed",
                     "errors"):
            self.assertEqual(s[zero], 0, "%s: %s" % (zero, out))
        self.assertGreater(s["acked_per_s"], 0, out)
        self.assertGreaterEqual(s["latency_p99_ms"], s["latency_p50_ms"], out)
        self.assertRegex(r.stdout, r"acked %d \(" % total, out)

    def check_run(self, config, tmp, extra=()):
        server = self.start_server(config, workers=1)
        r, s = self.bench(server.port, tmp, extra)
        self.check_report(r, s)
        total = USERS * PER_USER
        # The server saw the same: every publication stored and acked.
        self.assertEqual(metric(server.port, "hermod_inbox_published_total"), total)
        self.assertEqual(metric(server.port, "hermod_inbox_acked_total"), total)

    def test_memory_engine_every_publication_acked_once(self):
        with tempfile.TemporaryDirectory(prefix="hermod-bench-inbox-") as tmp:
            self.check_run(CONFIG, tmp)

    def test_sqlite_engine_every_publication_acked_once(self):
        with tempfile.TemporaryDirectory(prefix="hermod-bench-inbox-") as tmp:
            config = dict(CONFIG, engine="sqlite",
                          sqlite={"path": os.path.join(tmp, "inbox.db")})
            self.check_run(config, tmp)

    def test_sqlite_engine_batched_requests_every_publication_acked_once(self):
        # --api-batch: 8 publications per API `batch` (parallel), 200 = 25 requests.
        with tempfile.TemporaryDirectory(prefix="hermod-bench-inbox-") as tmp:
            config = dict(CONFIG, engine="sqlite",
                          sqlite={"path": os.path.join(tmp, "inbox.db")})
            self.check_run(config, tmp, ["--api-batch", "8"])

    def test_jetstream_peer_every_publication_acked_once(self):
        if not os.access(shutil.which("nats-server") or "/usr/sbin/nats-server", os.X_OK):
            self.skipTest("nats-server not installed")
        with tempfile.TemporaryDirectory(prefix="hermod-bench-inbox-") as tmp:
            ws_port = nats_harness.free_port()
            conf = os.path.join(tmp, "nats.conf")
            with open(conf, "w") as f:
                f.write("websocket { host: 127.0.0.1, port: %d, no_tls: true }\n" % ws_port)
            nats = nats_harness.NatsServer(jetstream=True, extra=["-c", conf])
            self.addCleanup(nats.cleanup)
            nats.start()

            def ws_listening():
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", ws_port)) == 0
            h.wait_for("nats-server's websocket listener", ws_listening)
            r, s = self.bench(ws_port, tmp, ["--ack", "each", "--api-batch", "3"],
                              protocol="nats")
            self.check_report(r, s)

    def test_users_not_subscribed_to_their_inbox_fail_the_setup(self):
        config = dict(CONFIG, user_subscribe_to_personal=False)
        server = self.start_server(config, workers=1)
        with tempfile.TemporaryDirectory(prefix="hermod-bench-inbox-") as tmp:
            r, _ = self.bench(server.port, tmp)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("user_subscribe_to_personal", r.stderr)


if __name__ == "__main__":
    h.main()
