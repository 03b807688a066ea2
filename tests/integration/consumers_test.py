"""Async consumers (`consumers`, type nats_jetstream) against a real nats-server -js.

The backend writes server API commands to a JetStream stream (published with the stream's
acknowledgement, so each is stored); hermod reads them through its durable consumer.

- Commands in both shapes (`{"method", "payload"}`, and the bare request with the
  `centrifugo-method` header) reach a WebSocket subscriber as publications, in stream order;
  the consumer settles every one (nothing pending, nothing unacked on the server).
- Bad messages (not JSON, an unknown method, a request the API refuses) are terminated and
  counted as permanent errors; the commands after them still run.
- A temporary failure (error 111: the channel's publish_rate_limit) is NAKed and delivered
  again later: every command of the rate-limited channel is published once in the end, and
  the retries are counted.
- kill -9 in the middle of a stream the backend is still writing, then a restart on the same
  SQLite file: every command is published (nothing skipped); keyed commands exactly once;
  unkeyed ones at most once more than once only for the window in flight at the kill
  (max_ack_pending), never for one acked before it.
- max_ack_pending bounds the commands in flight (hermod_consumers_in_flight never above it).

Run: python3 consumers_test.py --hermod PATH
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import guard_client as g
import hermod_harness as h

DEADLINE_S = 30
WINDOW = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=DEADLINE_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.02)  # polling interval of a condition wait, not synchronisation
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class JetStreamServer:
    """nats-server -js on a free port with its own store dir."""

    def __init__(self):
        self.binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="hermod-consumers-")
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-sd", self.dir.name, "-a", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("nats-server listening", self.accepts)

    def accepts(self):
        assert self.proc.poll() is None, "nats-server exited"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.dir.cleanup()


class Nats:
    """The few lines of the NATS protocol the backend needs: requests, with headers."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.line()  # INFO
        self.inbox = "_INBOX.%s" % os.urandom(8).hex()  # this connection's replies only
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\nSUB %s.* 1\r\n'
                          % self.inbox.encode())
        self.next = 0

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "nats-server closed the connection"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            assert chunk, "nats-server closed the connection"
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload, headers=None):
        self.next += 1
        reply = "%s.%d" % (self.inbox, self.next)
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        if headers:
            head = ("NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items())
                    + "\r\n").encode()
            self.sock.sendall(b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), reply.encode(), len(head), len(head) + len(payload), head,
                payload))
        else:
            self.sock.sendall(b"PUB %s %s %d\r\n%s\r\n" % (
                subject.encode(), reply.encode(), len(payload), payload))
        while True:
            line = self.line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise AssertionError(line)
            parts = line.split()
            if parts[0] == b"MSG":
                data = self.exact(int(parts[-1]))
            elif parts[0] == b"HMSG":
                data = self.exact(int(parts[-1]))[int(parts[-2]):]
            else:
                continue
            if parts[1].decode() == reply:
                return json.loads(data) if data else {}

    def publish(self, subject, payload, headers=None):
        """Stored in the stream once this returns (the stream's ack)."""
        answer = self.request(subject, payload, headers)
        assert "seq" in answer, answer
        return answer["seq"]

    def consumer(self, stream, name):
        return self.request("$JS.API.CONSUMER.INFO.%s.%s" % (stream, name), b"")

    def close(self):
        self.sock.close()


def publish_cmd(channel, n, key=None):
    payload = {"channel": channel, "data": {"n": n}}
    if key:
        payload["idempotency_key"] = key
    return {"method": "publish", "payload": payload}


def history(port, channel):
    r = g.api_call(port, "history", {"channel": channel, "limit": -1})
    assert r.status == 200, (r.status, r.body)
    return [p["data"]["n"] for p in json.loads(r.body)["result"]["publications"]]


def in_flight_samples(port):
    body = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body.decode()
    return [float(v) for v in re.findall(r"^hermod_consumers_in_flight\{[^}]*\} (\S+)$", body,
                                         re.M)]


class ConsumersTest(h.HermodTestCase):
    def setUp(self):
        self.nats = JetStreamServer()
        self.addCleanup(self.nats.cleanup)
        self.backend = Nats(self.nats.port)
        self.addCleanup(self.backend.close)
        created = self.backend.request("$JS.API.STREAM.CREATE.CMDS",
                                       {"name": "CMDS", "subjects": ["cmds.>"],
                                        "storage": "file"})
        self.assertNotIn("error", created)
        self.dir = tempfile.mkdtemp(prefix="hermod-consumers-db-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def config(self):
        return {
            "api_key": "k",
            "engine": "sqlite",
            "sqlite": {"path": os.path.join(self.dir, "hermod.db")},
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "history_size": 10000,
            "history_ttl": "600s",
            "namespaces": [{"name": "r", "history_size": 100, "history_ttl": "600s",
                            "publish_rate_limit": 5, "publish_rate_burst": 1}],
            "consumers": [{
                "enabled": True, "name": "outbox", "type": "nats_jetstream",
                "nats_jetstream": {
                    "url": self.nats.url, "stream_name": "CMDS", "subjects": ["cmds.>"],
                    "durable_consumer_name": "hermod", "deliver_policy": "all",
                    "max_ack_pending": WINDOW, "method_header": "centrifugo-method",
                    "ack_wait": "2s"}}],
        }

    def settled(self, count=None):
        """The durable consumer has nothing left to deliver and nothing unacked."""
        info = self.backend.consumer("CMDS", "hermod")
        done = info.get("num_pending") == 0 and info.get("num_ack_pending") == 0
        if count is not None:
            done = done and info.get("delivered", {}).get("stream_seq", 0) >= count
        return done and info

    def test_both_shapes_in_order_and_bad_messages_terminated(self):
        server = self.start_server(self.config(), workers=2)
        client = g.Client(server.port)
        self.addCleanup(client.close)
        client.connect()
        client.subscribe("s")
        seq = 0
        for n in range(40):
            if n % 2:
                seq = self.backend.publish("cmds.a", {"channel": "s", "data": {"n": n}},
                                           {"centrifugo-method": "publish"})
            else:
                seq = self.backend.publish("cmds.a", publish_cmd("s", n))
            if n == 20:  # bad ones in the middle: the commands after them still run
                self.backend.publish("cmds.a", b"not json")
                self.backend.publish("cmds.a", {"method": "no_such_method", "payload": {}})
                self.backend.publish("cmds.a", {"method": "publish", "payload": {"channel": "s"}})
                seq = self.backend.publish("cmds.a", b"{}", {"centrifugo-method": "nope"})
        got = [client.next_publication("s")["data"]["n"] for _ in range(40)]
        self.assertEqual(got, list(range(40)))
        wait_for("every message settled", lambda: self.settled(seq))
        self.assertEqual(g.metric(server.port, "hermod_consumers_messages_processed_total",
                                  consumer_name="outbox"), 40)
        self.assertEqual(g.metric(server.port, "hermod_consumers_errors_total",
                                  consumer_name="outbox", kind="permanent"), 4)
        self.assertEqual(history(server.port, "s"), list(range(40)))

    def test_temporary_failure_is_retried_until_done(self):
        server = self.start_server(self.config(), workers=2)
        seq = 0
        for n in range(5):
            seq = self.backend.publish("cmds.r", publish_cmd("r:x", n))
        wait_for("every message settled", lambda: self.settled(seq))
        self.assertEqual(sorted(history(server.port, "r:x")), list(range(5)))
        self.assertGreater(g.metric(server.port, "hermod_consumers_errors_total",
                                    consumer_name="outbox", kind="temporary"), 0)
        self.assertEqual(g.metric(server.port, "hermod_consumers_messages_processed_total",
                                  consumer_name="outbox"), 5)

    def killed_server(self):
        server = h.Hermod(h.HERMOD, self.config(), workers=2)
        self.addCleanup(server.cleanup)
        server.start()
        return server

    def test_kill_9_mid_stream_skips_nothing(self):
        server = self.killed_server()
        total = 1200
        written = []
        writer_error = []
        backend = Nats(self.nats.port)
        self.addCleanup(backend.close)

        def write():  # the backend keeps writing through the kill and the restart
            try:
                for n in range(total):
                    channel, key = ("k", "key-%d" % n) if n % 2 == 0 else ("u", None)
                    written.append(backend.publish("cmds.w", publish_cmd(channel, n, key)))
                    if n % 100 == 99:
                        time.sleep(0.05)  # pace: the stream outlives the first server
            except Exception as e:  # reported by the test thread
                writer_error.append(e)

        writer = threading.Thread(target=write)
        writer.start()
        self.addCleanup(writer.join)
        peak = [0.0]

        def processed_some():
            peak[0] = max([peak[0]] + in_flight_samples(server.port))
            return g.metric(server.port, "hermod_consumers_messages_processed_total") >= 200

        wait_for("200 commands processed", processed_some)
        self.assertLess(len(written), total, "the stream must still be written at the kill")
        server.kill()
        server = self.start_server(self.config(), workers=2)
        writer.join(timeout=DEADLINE_S)
        self.assertFalse(writer_error, writer_error)
        self.assertEqual(len(written), total)

        def all_settled():
            peak[0] = max([peak[0]] + in_flight_samples(server.port))
            return self.settled(written[-1])

        try:
            wait_for("every command settled after the restart", all_settled)
        except AssertionError:
            raise AssertionError("consumer: %r\nhermod:\n%s" % (
                self.backend.consumer("CMDS", "hermod"), server.stderr_text()))
        self.assertLessEqual(peak[0], WINDOW)
        keyed = history(server.port, "k")
        self.assertEqual(sorted(keyed), list(range(0, total, 2)))  # each once
        unkeyed = history(server.port, "u")
        self.assertEqual(sorted(set(unkeyed)), list(range(1, total, 2)))  # none skipped
        # Run twice: only what was in flight, not acked, at the kill.
        self.assertLessEqual(len(unkeyed) - len(set(unkeyed)), WINDOW)
        self.assertGreater(g.metric(server.port, "hermod_consumers_messages_processed_total"), 0)


if __name__ == "__main__":
    h.main()
