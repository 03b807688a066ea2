"""Two-minute soak with connection churn, labelled `soak`.

hermod (2 loops) carries, for SOAK_S seconds, hermod-bench's `soak` scenario (a steady
fan-out: SUBSCRIBERS clients on one channel, one publisher at RATE/s, the server's RSS sampled
by the bench) while a second hermod-bench runs the `connect` scenario beside it (CHURN
concurrent clients connecting and closing at CHURN_RATE/s). Everything is fixed: counts,
rates, duration; nothing random. The test samples the server's live heap
(`hermod_memory_heap_live_bytes`), RSS and open descriptors once a second and fails:

- when the live heap grows faster than HEAP_SLOPE_KIB_PER_MIN over the second half of the run
  (a least squares slope: the first half is warm-up, while pools and the history fill). Not
  RSS: freed pages stay mapped until an idle loop trims them (memory_trim_interval, and only
  past a slack), and on a loaded machine the loops are rarely idle enough, so RSS creeps by
  what churn frees (measured under load: 300-500 KiB/min, untrimmed) with nothing leaked.
  RSS is printed;
- when, once both benches have ended, the open descriptors do not come back to the count
  before the load (+ FD_TOLERANCE) within a deadline: every connection's socket is closed;
- when either bench fails (exit code) or the fan-out lost deliveries.

The 30-minute variant is the same command with SOAK_SECONDS=1800 (docs/benchmarks.md).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import guard_client as g
import hermod_harness as h

SOAK_S = int(os.environ.get("SOAK_SECONDS", "120"))
SUBSCRIBERS = 200
RATE = 50
CHURN = 20
CHURN_RATE = 200
HEAP_SLOPE_KIB_PER_MIN = 512  # a 200-byte leak per churned connection is ~2,400 KiB/min
FD_TOLERANCE = 2

CONFIG = {"allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
          "allow_subscribe_for_anonymous": True, "allow_publish_for_client": True,
          "history_size": 100, "history_ttl": "60s",
          "client_command_rate_limit": {"publish": {"rate": 0}, "total": {"rate": 0}}}


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def slope_per_minute(samples):
    """Least-squares slope of (seconds, KiB) samples, in KiB per minute."""
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return 60.0 * sxy / sxx


class SoakTest(h.HermodTestCase):
    def test_two_minutes_of_fanout_and_churn_without_growth(self):
        bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")
        self.assertTrue(os.access(bench, os.X_OK), "hermod-bench not built next to hermod")
        server = self.start_server(CONFIG, workers=2, echo=False)
        url = "ws://127.0.0.1:%d/connection/websocket" % server.port
        fds_before = open_fds(server.pid)
        out = tempfile.TemporaryDirectory(prefix="hermod-soak-")
        self.addCleanup(out.cleanup)
        report = os.path.join(out.name, "soak.json")
        churn_report = os.path.join(out.name, "churn.json")
        common = ["-u", url, "-p", "hermod", "--no-progress", "-q"]
        soak = subprocess.Popen(
            [bench, "soak", "--load", "fanout", "-c", str(SUBSCRIBERS), "-r", str(RATE),
             "-d", str(SOAK_S), "--server-pid", str(server.pid), "--json", report] + common,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=h.raise_nofile_limit)
        self.addCleanup(lambda: soak.poll() is None and soak.kill())
        churn = subprocess.Popen(
            [bench, "connect", "-c", str(CHURN), "--connect-rate", str(CHURN_RATE),
             "-d", str(SOAK_S), "--json", churn_report] + common,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=h.raise_nofile_limit)
        self.addCleanup(lambda: churn.poll() is None and churn.kill())

        start = time.monotonic()
        samples = []  # (seconds since start, RSS KiB)
        heap = []  # (seconds since start, live heap KiB)
        fds_peak = 0
        while soak.poll() is None or churn.poll() is None:
            if time.monotonic() - start > SOAK_S + 120:
                self.fail("benches still running %ds after the soak's end" % 120)
            samples.append((time.monotonic() - start, server.rss_kib()))
            heap.append((time.monotonic() - start,
                         g.metric(server.port, "hermod_memory_heap_live_bytes") / 1024))
            fds_peak = max(fds_peak, open_fds(server.pid))
            time.sleep(1)  # the sampling period (not synchronisation: the loop polls the benches)
        soak_err = soak.stderr.read().decode(errors="replace")
        churn_err = churn.stderr.read().decode(errors="replace")
        soak.stderr.close()
        churn.stderr.close()
        self.assertEqual(soak.returncode, 0, soak_err[-2000:])
        self.assertEqual(churn.returncode, 0, churn_err[-2000:])

        second_half = lambda series: [(t, v) for t, v in series  # noqa: E731
                                      if t >= SOAK_S / 2 and t <= SOAK_S]
        slope = slope_per_minute(second_half(heap))
        rss_slope = slope_per_minute(second_half(samples))
        fds_after = g.wait_for(
            lambda: (lambda n: n if n <= fds_before + FD_TOLERANCE else None)(
                open_fds(server.pid)),
            timeout=30, what="descriptors back to %d (+%d)" % (fds_before, FD_TOLERANCE))
        with open(report) as f:
            result = json.load(f)["summary"]
        with open(churn_report) as f:
            connects = json.load(f)["summary"]["connect"]
        summary = {"heap_kib_start": round(heap[0][1]), "heap_kib_end": round(heap[-1][1]),
                   "heap_slope_kib_per_min": round(slope, 1),
                   "heap_slope_tolerance_kib_per_min": HEAP_SLOPE_KIB_PER_MIN,
                   "rss_kib_start": samples[0][1], "rss_kib_end": samples[-1][1],
                   "rss_slope_kib_per_min": round(rss_slope, 1),
                   "fds_before": fds_before, "fds_peak": fds_peak, "fds_after": fds_after,
                   "fanout": {k: result.get(k) for k in ("delivered", "expected", "lost",
                                                         "duplicates", "errors", "disconnects")},
                   "churn": {"connects_ok": connects.get("ok"),
                             "connects_failed": connects.get("failed")}}
        print("soak: " + json.dumps(summary), file=sys.stderr)
        self.assertLessEqual(slope, HEAP_SLOPE_KIB_PER_MIN, summary)
        self.assertGreater(result["delivered"], 0, summary)
        for key in ("lost", "duplicates", "errors", "disconnects"):
            self.assertEqual(result[key], 0, summary)
        self.assertGreater(connects["ok"], CHURN_RATE * SOAK_S // 4, summary)
        self.assertEqual(connects["failed"], 0, summary)


if __name__ == "__main__":
    h.main()
