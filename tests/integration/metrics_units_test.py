"""Units of /metrics, checked against the wall clock.

hermod records durations in whatever unit suits the recorder (microseconds for latencies,
milliseconds for connection lifetimes) and converts at exposition; a wrong divisor once
exposed connection durations in microseconds under a `_seconds` name. So, for every
histogram whose name ends in `_seconds`, whatever it measures:

- its finite `le` bounds look like seconds: the smallest between 1 microsecond and 1 s, the
  largest at most 10^6 s (11.6 days);
- a short scripted session (a client connects, subscribes, gets one publication from the
  API and one in its inbox, which it acks, stays a measured while, closes) moves its count, and its `_sum` by no more than the
  wall time the whole session took (the session is sequential: no two timed things overlap);
- the connection's lifetime, held for a known time, shows up in
  hermod_websocket_connection_duration_seconds_sum within the time measured around it.

A new `_seconds` histogram the session does not move fails the test: extend the session.
The standard `process_*` families are checked against /proc and the hermod_process_* ones.
"""

import json
import os
import re
import shutil
import tempfile
import threading
import time

import guard_client as g
import hermod_harness as h

HOLD_S = 0.5  # how long the client connection stays open, measured around it
SLACK_S = 0.05  # the loop clock's millisecond ticks and the scheduling between two reads
CONFIG = {
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "api_key": "k",
    # An inbox, so that the ack latency histogram records an ack.
    "token_hmac_secret_key": g.SECRET,
    "user_subscribe_to_personal": True,
    "user_personal_channel_namespace": "inbox",
    "namespaces": [{"name": "inbox", "inbox": True}],
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(port):
    r = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r.status
    return r.body.decode()


def families(text):
    """{name: type} from the # TYPE lines."""
    return {line.split()[2]: line.split()[3] for line in text.splitlines()
            if line.startswith("# TYPE ")}


def samples(text):
    """[(name, labels text, value)]."""
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m, line
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def total(parsed, name):
    return sum(v for n, _, v in parsed if n == name)


def bucket_bounds(parsed, family):
    bounds = set()
    for name, labels, _ in parsed:
        if name == family + "_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            if le != "+Inf":
                bounds.add(float(le))
    return sorted(bounds)


class HistogramUnitsTest(h.HermodTestCase):
    def api(self, port, method, body):
        data = json.dumps(body).encode()
        r = h.http_exchange(port, ("POST /api/%s HTTP/1.1\r\nHost: x\r\nAuthorization: apikey k"
                                   "\r\nContent-Length: %d\r\n\r\n" % (method, len(data))).encode()
                            + data)
        self.assertEqual(r.status, 200, r.body)

    def test_every_seconds_histogram_is_in_seconds(self):
        # The sqlite engine with history on: its store latency histogram gets samples too.
        store = tempfile.mkdtemp(prefix="hermod-units-")
        self.addCleanup(shutil.rmtree, store, True)
        config = dict(CONFIG, engine="sqlite", sqlite={"path": os.path.join(store, "h.db")},
                      history_size=10, history_ttl="60s")
        server = self.start_server(config, workers=1)
        before = samples(scrape(server.port))
        start = time.monotonic()
        c = g.Client(server.port)
        ws = c.ws
        opened = time.monotonic()  # the server took its open time before answering 101
        try:
            c.send(("connect", {"token": g.jwt({"sub": "u1"})}),
                   ("subscribe", {"channel": "units"}))
            self.assertIn('"subscribe"', c.read_frame()[1])
            self.api(server.port, "publish", {"channel": "units", "data": {"n": 1}})
            self.assertIn('"pub"', c.read_frame()[1])
            # An inbox publication, delivered and acked.
            self.api(server.port, "publish", {"channel": "inbox:#u1", "data": {"n": 2}})
            self.assertIn('"inbox:#u1"', c.read_frame()[1])
            c.send(("rpc", {"method": "hermod.ack",
                            "data": {"channel": "inbox:#u1", "offsets": [1]}}))
            self.assertIn('"offsets":[1]', c.read_frame()[1])
            # Scheduled for now: fired at once, into hermod_scheduled_lateness_seconds.
            self.api(server.port, "publish", {"channel": "units", "data": {"n": 2},
                                              "deliver_at": int(time.time() * 1000)})
            self.assertIn('"pub"', c.read_frame()[1])
            # Holding the connection open is what is measured here, not a synchronisation.
            threading.Event().wait(max(0.0, HOLD_S - (time.monotonic() - opened)))
            held = time.monotonic() - opened
            ws.send_frame(h.OP_CLOSE, h.close_payload(1000))
            self.assertEqual(ws.expect_close()[0], 1000)
        finally:
            ws.close()
        lifetime = time.monotonic() - start  # bounds every duration the session recorded
        # The close is recorded on the server's loop once it sent its Close: poll for it.
        deadline = time.monotonic() + h.IO_TIMEOUT_S
        while True:
            text = scrape(server.port)
            after = samples(text)
            closed = (total(after, "hermod_websocket_connection_duration_seconds_count")
                      - total(before, "hermod_websocket_connection_duration_seconds_count"))
            if closed >= 1 or time.monotonic() > deadline:
                break
            threading.Event().wait(0.02)
        self.assertEqual(closed, 1)

        seconds = sorted(n for n, t in families(text).items()
                         if t == "histogram" and n.endswith("_seconds"))
        self.assertIn("hermod_websocket_connection_duration_seconds", seconds)
        self.assertIn("hermod_client_command_duration_seconds", seconds)
        self.assertIn("hermod_publish_to_queue_seconds", seconds)
        self.assertIn("hermod_api_call_duration_seconds", seconds)
        self.assertIn("hermod_store_latency_seconds", seconds)
        for family in seconds:
            with self.subTest(family=family):
                bounds = bucket_bounds(after, family)
                self.assertTrue(bounds, "no finite buckets")
                self.assertGreaterEqual(bounds[0], 1e-6, "smallest bucket below a microsecond: "
                                        "not seconds? %s" % bounds)
                self.assertLessEqual(bounds[0], 1.0, "smallest bucket above a second: not "
                                     "seconds? %s" % bounds)
                self.assertLessEqual(bounds[-1], 1e6, "largest bucket above 11 days: not "
                                     "seconds? %s" % bounds)
                count = total(after, family + "_count") - total(before, family + "_count")
                moved = total(after, family + "_sum") - total(before, family + "_sum")
                self.assertGreater(count, 0, "the session did not record into it: extend the "
                                   "session so that its unit is checked")
                self.assertGreaterEqual(moved, 0)
                self.assertLessEqual(moved, lifetime + SLACK_S,
                                     "%d observations sum to %g s in a %.3f s session: not "
                                     "seconds?" % (count, moved, lifetime))
        duration = (total(after, "hermod_websocket_connection_duration_seconds_sum")
                    - total(before, "hermod_websocket_connection_duration_seconds_sum"))
        self.assertGreaterEqual(duration, held - SLACK_S,
                                "a connection held %.3f s recorded as %g s" % (held, duration))


class ProcessMetricsTest(h.HermodTestCase):
    """The families every Prometheus client library exports, so that stock dashboards and
    alerts work (prometheus.io/docs/instrumenting/writing_clientlibs, process metrics)."""

    def test_standard_process_families_match_the_process(self):
        server = self.start_server(workers=2)
        text = scrape(server.port)
        types = families(text)
        parsed = samples(text)
        expected = {"process_cpu_seconds_total": "counter",
                    "process_resident_memory_bytes": "gauge",
                    "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge",
                    "process_max_fds": "gauge", "process_start_time_seconds": "gauge"}
        for name, kind in expected.items():
            self.assertEqual(types.get(name), kind, name)
            self.assertEqual(len([n for n, _, _ in parsed if n == name]), 1, name)
        self.assertEqual(total(parsed, "process_start_time_seconds"),
                         total(parsed, "hermod_process_start_time_seconds"))
        self.assertAlmostEqual(total(parsed, "process_start_time_seconds"), time.time(),
                               delta=120)
        self.assertGreaterEqual(total(parsed, "process_cpu_seconds_total"), 0)
        with open("/proc/%d/status" % server.pid) as f:
            rss_kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        rss = total(parsed, "process_resident_memory_bytes")
        self.assertGreater(rss, rss_kib * 1024 / 2)  # the same order: bytes, not pages or KiB
        self.assertLess(rss, rss_kib * 1024 * 2)
        self.assertGreater(total(parsed, "process_virtual_memory_bytes"), rss)
        fds = total(parsed, "process_open_fds")
        self.assertGreater(fds, 3)
        self.assertLessEqual(fds, len(os.listdir("/proc/%d/fd" % server.pid)) + 2)
        with open("/proc/%d/limits" % server.pid) as f:
            soft = re.search(r"Max open files\s+(\d+)", f.read()).group(1)
        self.assertEqual(total(parsed, "process_max_fds"), float(soft))


if __name__ == "__main__":
    h.main()
