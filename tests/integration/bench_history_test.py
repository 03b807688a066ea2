"""hermod-bench's `history` scenario (history read latency): a run of a second, not a benchmark.

Against the real hermod: 5 channels filled with 30 publications of 1 KiB each through the API,
then 4 readers read history with `since` and limit 10 for a second, through the client
`history` command (memory engine) and /api/history (sqlite engine on a temp file), on the nats
engine (a real nats-server -js, temporary store), and the peer: nats-server -js alone (`-p
nats`, direct gets by sequence over its WebSocket listener). Each run exits 0 and its JSON
report says it read and checked something, with nothing wrong or failed.

The check is what makes the figures honest: against a fake API (a Python HTTP server) whose
history answers skip a publication, or carry another offset's publication, or a stale top
offset, the run counts every read wrong, none as a read, and exits 6. No timing is asserted.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading

import hermod_harness as h
import nats_harness

CHANNELS, FILL, LIMIT = 5, 30, 10

CONFIG = {
    "api_key": "k",
    "allow_anonymous_connect_without_token": True,
    "allow_history_for_client": True,
    "history_size": 100,
    "history_ttl": "300s",
    "client_command_rate_limit": {"total": {"rate": 0}, "history": {"rate": 0}},
}


def nats_available():
    return os.access(shutil.which("nats-server") or "/usr/sbin/nats-server", os.X_OK)


def run_bench(port, tmp, extra=(), protocol="hermod"):
    bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")
    assert os.access(bench, os.X_OK), "hermod-bench not built next to hermod"
    report = os.path.join(tmp, "history.json")
    if os.path.exists(report):
        os.unlink(report)
    path = "/connection/websocket" if protocol == "hermod" else "/"
    argv = [bench, "history", "-u", "ws://127.0.0.1:%d%s" % (port, path), "-p", protocol, "--api-key", "k", "--channels", str(CHANNELS), "--fill", str(FILL),
            "-s", "1024", "--limit", str(LIMIT), "-c", "4", "-r", "200", "-d", "1", "--drain", "5",
            "--setup-timeout", "20", "--no-progress", "--json", report] + list(extra)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60, preexec_fn=h.raise_nofile_limit)
    summary = None
    if os.path.exists(report):
        with open(report) as f:
            summary = json.load(f)["summary"]
    return r, summary


class FakeApi(http.server.BaseHTTPRequestHandler):
    """hermod's publish and history API, with history answers spoiled as `fault` says."""

    protocol_version = "HTTP/1.1"
    fault = None
    stored = {}  # channel -> [data, ...], offset i + 1

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        pubs = self.stored.setdefault(body["channel"], [])
        if self.path == "/api/publish":
            pubs.append(body["data"])
            result = {"offset": len(pubs), "epoch": "e"}
        else:
            since = body.get("since", {"offset": 0})["offset"]
            first = since + 1
            if "since" in body and self.fault == "skip":
                first += 1
            picked = list(range(first, min(len(pubs), since + body["limit"]) + 1))
            data = [pubs[o - 1] for o in picked]
            if "since" in body and self.fault == "other_data":
                data = data[1:] + data[:1]
            result = {"publications": [{"data": d, "offset": o} for d, o in zip(data, picked)],
                      "epoch": "e", "offset": len(pubs)}
            if "since" in body and self.fault == "stale_top":
                result["offset"] = len(pubs) - 1
        out = json.dumps({"result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class BenchHistoryTest(h.HermodTestCase):
    def check_report(self, r, s):
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIsNotNone(s, out)
        self.assertGreater(s["reads"], 0, out)
        self.assertEqual(s["publications_read"], s["reads"] * LIMIT, out)
        for zero in ("wrong", "failed", "errors"):
            self.assertEqual(s[zero], 0, "%s: %s" % (zero, out))
        self.assertEqual(s["min_window"], FILL, out)
        self.assertGreaterEqual(s["latency_p99_ms"], s["latency_p50_ms"], out)
        self.assertRegex(r.stdout, r"reads checked %d \(" % s["reads"], out)

    def test_memory_engine_client_reads_checked(self):
        server = self.start_server(CONFIG, workers=1)
        with tempfile.TemporaryDirectory(prefix="hermod-bench-history-") as tmp:
            self.check_report(*run_bench(server.port, tmp))
            # Again on the same channels: they keep the first fill too, and the reads stay
            # within the second.
            self.check_report(*run_bench(server.port, tmp, ["--via", "api"]))

    def test_sqlite_engine_api_reads_checked(self):
        with tempfile.TemporaryDirectory(prefix="hermod-bench-history-") as tmp:
            config = dict(CONFIG, engine="sqlite", sqlite={"path": os.path.join(tmp, "h.db")})
            server = self.start_server(config, workers=1)
            self.check_report(*run_bench(server.port, tmp, ["--via", "api"]))

    def test_nats_engine_client_reads_checked(self):
        if not nats_available():
            self.skipTest("nats-server not installed")
        nats = nats_harness.NatsServer(jetstream=True)
        self.addCleanup(nats.cleanup)
        nats.start()
        server = self.start_server(dict(CONFIG, engine="nats", nats={"url": nats.url}), workers=1)
        with tempfile.TemporaryDirectory(prefix="hermod-bench-history-") as tmp:
            self.check_report(*run_bench(server.port, tmp))

    def test_jetstream_peer_reads_checked(self):
        if not nats_available():
            self.skipTest("nats-server not installed")
        with tempfile.TemporaryDirectory(prefix="hermod-bench-history-") as tmp:
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
            r, s = run_bench(ws_port, tmp, protocol="nats")
            self.check_report(r, s)
            self.assertIn("via jetstream", r.stdout)

    def test_wrong_answers_are_errors_not_reads(self):
        for fault in ("skip", "other_data", "stale_top"):
            with self.subTest(fault=fault):
                FakeApi.fault, FakeApi.stored = fault, {}
                fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
                thread = threading.Thread(target=fake.serve_forever, daemon=True)
                thread.start()
                try:
                    with tempfile.TemporaryDirectory(prefix="hermod-bench-history-") as tmp:
                        r, s = run_bench(fake.server_address[1], tmp, ["--via", "api"])
                finally:
                    fake.shutdown()
                    fake.server_close()
                    thread.join()
                out = r.stdout + r.stderr
                self.assertEqual(r.returncode, 6, out)
                self.assertEqual(s["reads"], 0, out)
                self.assertGreater(s["wrong"], 0, out)
                self.assertEqual(s["wrong"], s["issued"], out)
                self.assertIn("wrong answer", r.stdout, out)


if __name__ == "__main__":
    h.main()
