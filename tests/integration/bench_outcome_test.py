"""hermod-bench says how a run went, in its exit code and its words.

Runs the real hermod-bench (built next to hermod) against the real hermod:

- an SLO the run misses exits 4 and names the objective; one it meets exits 0;
- a publisher the server refuses (no publish permission) stops the run at once, exit 5, with
  the server's error, instead of measuring "delivered 0" for the whole duration;
- `-r 0` on fan-out says it is an overload test and leads with the loss; the summary reads
  "errors 0, loss 0%", not a rate to decode;
- the HTML report has a latency-over-time chart, axis labels without exponents or long
  decimals, and every label inside its chart.
"""

import json
import os
import re
import subprocess
import tempfile
import time

import hermod_harness as h

CONFIG = {
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "allow_publish_for_client": True,
    "allow_publish_for_subscriber": True,
    "client_command_rate_limit": {"total": {"rate": 0}, "publish": {"rate": 0}},
}
LONG_S = 60  # a duration the refused run must not wait out


class BenchOutcomeTest(h.HermodTestCase):
    def setUp(self):
        self.bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")
        self.assertTrue(os.access(self.bench, os.X_OK), "hermod-bench not built next to hermod")
        self.dir = tempfile.TemporaryDirectory(prefix="hermod-bench-it-")
        self.addCleanup(self.dir.cleanup)

    def run_bench(self, server, *args, timeout=120):
        url = "ws://127.0.0.1:%d/connection/websocket" % server.port
        argv = [self.bench, "fanout", "-u", url, "-p", "hermod", "-c", "4", "--no-progress",
                "--drain", "2"] + list(args)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=h.raise_nofile_limit)

    def slo(self, objectives):
        path = os.path.join(self.dir.name, "slo-%d.json" % len(os.listdir(self.dir.name)))
        with open(path, "w") as f:
            json.dump(objectives, f)
        return path

    def test_missed_slo_exits_4_and_met_slo_exits_0(self):
        server = self.start_server(CONFIG, workers=1, echo=False)
        # No delivery takes under a nanosecond: grade F.
        r = self.run_bench(server, "-r", "50", "-d", "1", "--slo", self.slo({"p50_ms": 1e-6}))
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("grade F", r.stdout)
        self.assertRegex(r.stdout, r"SLO missed: p50_ms")
        self.assertIn("SLO is not met", r.stderr)
        r = self.run_bench(server, "-r", "50", "-d", "1", "--slo", self.slo({"p99_ms": 60000}))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("SLO missed", r.stdout)
        # The summary's error line: a count and a loss percentage.
        self.assertRegex(r.stdout, r"errors 0, loss 0%")
        self.assertNotIn("(rate", r.stdout)

    def test_refused_publisher_stops_at_once_with_the_servers_error(self):
        config = dict(CONFIG, allow_publish_for_client=False, allow_publish_for_subscriber=False)
        server = self.start_server(config, workers=1, echo=False)
        start = time.monotonic()
        r = self.run_bench(server, "-r", "100", "-d", str(LONG_S), timeout=LONG_S * 2)
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
        self.assertLess(elapsed, LONG_S / 2, "the refused run went on for %.1f s" % elapsed)
        self.assertRegex(r.stderr, r"refused the publisher.*\"code\":103")

    def test_overload_run_leads_with_loss_and_the_html_report_reads_well(self):
        server = self.start_server(CONFIG, workers=1, echo=False)
        html = os.path.join(self.dir.name, "report.html")
        r = self.run_bench(server, "-r", "0", "-d", "2", "-s", "64", "--html", html)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout.splitlines()[1], r"overload test .*loss \d+(\.\d+)?%")
        with open(html) as f:
            page = f.read()
        self.assertIn("Overload test", page)
        self.assertIn("Delivery latency over time", page)
        charts = re.findall(r"<figcaption>([^<]*)</figcaption>(<svg.*?</svg>)", page, re.S)
        self.assertGreaterEqual(len(charts), 3, page[:2000])
        over_time = dict(charts)["Delivery latency over time (per second, within 25 %)"]
        self.assertEqual(len(re.findall(r"<polyline", over_time)), 2)  # p99 and p50
        for title, svg in charts:
            width, height = map(float, re.search(r'viewBox="0 0 (\S+) (\S+)"', svg).groups())
            for attrs, text in re.findall(r"<text([^>]*)>([^<]*)</text>", svg):
                with self.subTest(chart=title, label=text):
                    self.assertNotRegex(text, r"\d[eE][+-]?\d", "an exponent")
                    self.assertNotRegex(text, r"\d\.\d{4,}", "too many decimals")
                    if "rotate" in attrs:
                        continue  # the y axis title, placed at the left edge on purpose
                    x = float(re.search(r' x="([^"]+)"', attrs).group(1))
                    y = float(re.search(r' y="([^"]+)"', attrs).group(1))
                    anchor = re.search(r'text-anchor="(\w+)"', attrs)
                    anchor = anchor.group(1) if anchor else "start"
                    w = 7.0 * len(text)  # 11px sans-serif: at most about 7px a character
                    left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
                    self.assertGreaterEqual(left, 0, "cut off on the left")
                    self.assertLessEqual(left + w, width, "cut off on the right")
                    self.assertGreater(y, 8)
                    self.assertLessEqual(y, height)


if __name__ == "__main__":
    h.main()
