"""A reader that stops reading hermod's stderr never stops the server.

hermod's stderr goes to a pipe this test shrinks to one page and does not read. The server
then logs far more than the pipe and `log_buffer_bytes` hold (one info line per refused
upgrade): every request is still answered at once, a client still connects, subscribes and
receives a publication, /health answers, and /metrics counts the lines dropped. Once the test
reads the pipe, the lines come out whole and in order, followed by one line saying how many
were dropped. Run for both log formats, text and JSON. And a server whose stderr is never
read still exits at SIGTERM, with status 0.

Before the log buffer, the loop that logged blocked in write(2) once the pipe was full, and the
refused upgrade after it was never answered.
"""

import fcntl
import json
import os
import re
import select
import threading
import time

import hermod_harness as h
from guard_client import Client, api_call, metric
from hermod_harness import IO_TIMEOUT_S, HermodTestCase, http_exchange, main

CONFIG = {
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "api_key": "k",
    "log_buffer_bytes": 4096,
}
REQUESTS = 1500  # about 200 KiB of log lines at ~130 bytes each: 50 times pipe and buffer
ANSWER_TIMEOUT_S = 5  # a loop that answers at all answers a refused upgrade in microseconds
NOTICE = re.compile(r"(\d+) log lines dropped: the log output was not read")
REFUSED = (b"GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


class UnreadStderr(h.Hermod):
    """A server whose stderr nobody reads until `reading` is set (the harness's reader thread
    waits for it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading = threading.Event()

    def _drain_stderr(self):
        self.reading.wait()
        super()._drain_stderr()


class LogOutputTest(HermodTestCase):

    def test_an_unread_stderr_drops_text_lines_and_the_server_serves(self):
        self.check_unread_stderr("text")

    def test_an_unread_stderr_drops_json_lines_and_the_server_serves(self):
        self.check_unread_stderr("json")

    def test_a_server_whose_stderr_is_never_read_exits_at_sigterm(self):
        # The lines still buffered at exit wait log_flush_timeout_ms for the reader, no longer.
        server = self.start_unread_server(dict(CONFIG, log_flush_timeout_ms=200))
        for _ in range(REQUESTS):
            self.assertEqual(http_exchange(server.port, REFUSED, timeout=ANSWER_TIMEOUT_S).status,
                             426)
        self.assertGreater(metric(server.port, "hermod_log_lines_dropped_total"), 0)
        server.signal_stop()
        self.assertEqual(server.proc.wait(timeout=h.STOP_TIMEOUT_S), 0)

    def check_unread_stderr(self, log_format):
        server = self.start_unread_server(dict(CONFIG, log_format=log_format))
        for _ in range(REQUESTS):
            r = http_exchange(server.port, REFUSED, timeout=ANSWER_TIMEOUT_S)
            self.assertEqual(r.status, 426)
        client = Client(server.port)
        self.addCleanup(client.close)
        client.connect()
        client.subscribe("news")
        r = api_call(server.port, "publish", {"channel": "news", "data": {"n": 1}})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(client.next_publication("news", ANSWER_TIMEOUT_S)["data"], {"n": 1})
        health = http_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                               timeout=ANSWER_TIMEOUT_S)
        self.assertEqual(health.status, 200)
        dropped = metric(server.port, "hermod_log_lines_dropped_total")
        # The pipe and the buffer hold some 60 lines together; the rest were dropped.
        self.assertGreater(dropped, REQUESTS - 200)

        lines = self.read_until_reported(server, dropped)
        reported = self.reported(lines)
        self.assertEqual(reported, dropped)
        self.assertEqual(reported, metric(server.port, "hermod_log_lines_dropped_total"))
        times = [self.line_time(line, log_format) for line in lines]
        self.assertEqual(times, sorted(times), "lines out of order")
        # Every refusal's line is there or counted (another line dropped is counted too).
        refused = [line for line in lines if "refused with 426" in line]
        self.assertGreaterEqual(len(refused) + reported, REQUESTS)
        server.log.extend(lines)

    def start_unread_server(self, config):
        server = UnreadStderr(h.HERMOD, config)
        self.addCleanup(server.cleanup)
        server.start()
        self.addCleanup(self._stop_checked, server)
        self.addCleanup(server.reading.set)  # first: a failed test's server can stop
        # One page: the server overflows it after some 30 lines.
        fcntl.fcntl(server.proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)
        return server

    def reported(self, lines):
        return sum(int(m.group(1)) for m in map(NOTICE.search, lines) if m)

    def read_until_reported(self, server, dropped):
        """Whole lines from the pipe until notices of `dropped` lines were among them; the
        harness's reader takes over from there."""
        fd = server.proc.stderr.fileno()
        deadline = time.monotonic() + IO_TIMEOUT_S
        pending = b""
        lines = []
        while self.reported(lines) < dropped:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "no dropped-lines notice; read:\n" + "\n".join(lines))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                self.assertTrue(chunk, "stderr closed")
                pending += chunk
                *done, pending = pending.split(b"\n")
                lines += [line.decode() for line in done]
        server.log.append(pending.decode(errors="replace"))
        server.reading.set()
        return lines

    def line_time(self, line, log_format):
        if log_format == "json":
            record = json.loads(line)  # a line cut or mixed with another is not JSON
            self.assertLessEqual({"time", "level", "logger", "msg"}, set(record))
            return record["time"]
        self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \w+ \S")
        return line.split(" ", 1)[0]


if __name__ == "__main__":
    main()
