"""bench/compare keeps a server it starts serving for the whole comparison.

bench/compare finds hermod's port in its log. It used to read the log from a pipe only until
the port showed, so once hermod had logged 64 KiB more (the pipe's buffer: at 10,000
subscribers, one round's "disconnect 3008 slow" lines), the loop thread that logged next
blocked in write(2) for good, and the next round's connects to it timed out in setup.

Here hermod, started by compare's own Server, logs a disconnect line for each of 2,000
WebSocket clients (several pipe buffers' worth) on its only loop; every client must get its
Close and /health must still answer, and every line must be in the server's log.
"""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import hermod_harness as h

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENTS = 2000  # x ~130 bytes of log line each: about four 64 KiB pipe buffers


def load_compare():
    path = os.path.join(ROOT, "bench", "compare")
    loader = importlib.machinery.SourceFileLoader("bench_compare", path)
    spec = importlib.util.spec_from_loader("bench_compare", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class BenchCompareTest(h.HermodTestCase):
    def test_server_log_never_blocks_the_server(self):
        compare = load_compare()
        server = compare.Server("hermod", [h.HERMOD, "serve", "--bind", "127.0.0.1", "--port",
                                           "0", "--workers", "1", "-c",
                                           os.path.join(ROOT, "bench", "peers", "hermod.json")],
                                None, port_from_stderr=True)
        self.addCleanup(server.log.close)
        self.addCleanup(server.stop)
        self.assertTrue(server.ok, "hermod did not start")
        for i in range(CLIENTS):
            ws = h.ws_open(server.port, "/connection/websocket")
            try:
                ws.send_frame(h.OP_TEXT, b"not a command")  # the server disconnects, and logs
                code, _ = ws.expect_close()
                self.assertGreaterEqual(code, 3000, "client %d" % i)
            finally:
                ws.close()
        response = h.http_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(response.status, 200)
        server.stop()
        server.log.seek(0)
        lines = server.log.read().decode(errors="replace").count("): disconnect ")
        self.assertEqual(lines, CLIENTS)

    def test_each_round_is_reported_beside_the_median(self):
        # A median hides a round that collapsed: compare prints every round's first figure
        # and the spread, and writes them to --json.
        bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")
        with tempfile.TemporaryDirectory(prefix="hermod-compare-test-") as tmp:
            out = os.path.join(tmp, "c.json")
            run = subprocess.run(
                [sys.executable, os.path.join(ROOT, "bench", "compare"), "echo", "--rounds", "2",
                 "--peers", "hermod", "--hermod", h.HERMOD, "--bench", bench, "--json", out, "--",
                 "-c", "2", "-s", "32", "-d", "1"],
                capture_output=True, text=True, timeout=120)
            self.assertEqual(run.returncode, 0, run.stderr)
            report = json.load(open(out))
        rounds = report["per_round"]["hermod"]
        self.assertEqual(len(rounds), 2)
        self.assertTrue(all(r["deliveries_per_s"] > 0 for r in rounds), rounds)
        self.assertIn("deliveries/s per round: ", run.stdout)
        self.assertIn("(2 of 2 reported; spread ", run.stdout)


if __name__ == "__main__":
    h.main()
