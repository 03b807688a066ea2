"""A raw client of the Centrifugo JSON protocol for the admission, rate-limit and bad-input
tests: HS256 tokens made here, commands sent as one text frame, replies and pushes read
back with a deadline. Raw on purpose: the tests send what a real SDK would not."""

import base64
import hashlib
import hmac
import json
import time

import hermod_harness as h

SECRET = "guard-secret"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, key=SECRET, alg="HS256"):
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}))
    body = b64url(json.dumps(claims))
    signing = (header + "." + body).encode()
    if alg == "none":
        return header + "." + body + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    return header + "." + body + "." + b64url(hmac.new(key.encode(), signing, digest).digest())


def api_call(port, method, body, key="k"):
    """POST /api/<method>; returns the HttpResponse. key None: no Authorization header."""
    data = json.dumps(body).encode()
    head = "POST /api/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % (method,
                                                                                 len(data))
    if key is not None:
        head += "Authorization: apikey %s\r\n" % key
    return h.http_exchange(port, (head + "\r\n").encode() + data)


class Client:
    """One connection to /connection/websocket."""

    def __init__(self, port):
        self.ws = h.ws_open(port, path="/connection/websocket")
        self.next_id = 1
        self.pending = []  # parsed messages read but not yet consumed

    def close(self):
        self.ws.close()

    def send(self, *commands):
        """Sends the commands in one frame; gives each an id; returns the ids."""
        ids = []
        lines = []
        for method, params in commands:
            ids.append(self.next_id)
            lines.append(json.dumps({"id": self.next_id, method: params}))
            self.next_id += 1
        self.ws.send_frame(h.OP_TEXT, "\n".join(lines).encode())
        return ids

    def read_message(self, timeout=h.IO_TIMEOUT_S):
        """The next reply or push (pings `{}` skipped); raises on a Close frame."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            frame = self.ws.read_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                raise AssertionError("connection ended")
            if frame.opcode == h.OP_CLOSE:
                raise ClosedError(*h.parse_close(frame.payload))
            if frame.opcode != h.OP_TEXT:
                continue
            for line in frame.payload.decode().split("\n"):
                message = json.loads(line)
                if message:
                    self.pending.append(message)
        return self.pending.pop(0)

    def reply(self, command_id, timeout=h.IO_TIMEOUT_S):
        """Reads until the reply with this id; pushes before it are kept in self.pushes."""
        while True:
            message = self.read_message(timeout)
            if message.get("id") == command_id:
                return message
            self.pushes.append(message)

    pushes = None

    def call(self, method, params, timeout=h.IO_TIMEOUT_S):
        if self.pushes is None:
            self.pushes = []
        return self.reply(self.send((method, params))[0], timeout)

    def connect(self, params=None):
        r = self.call("connect", params or {})
        if "error" in r:
            raise AssertionError("connect failed: %r" % r)
        return r["connect"]

    def expect_close(self, timeout=h.IO_TIMEOUT_S):
        """Reads until the server's Close; returns its code (replies before it skipped)."""
        try:
            while True:
                self.read_message(timeout)
        except ClosedError as e:
            return e.code

    def next_publication(self, channel, timeout=h.IO_TIMEOUT_S):
        if self.pushes is None:
            self.pushes = []
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.pushes):
                push = m.get("push", {})
                if push.get("channel") == channel and "pub" in push:
                    del self.pushes[i]
                    return push["pub"]
            self.pushes.append(self.read_message(max(0.0, deadline - time.monotonic())))


class ClosedError(Exception):
    def __init__(self, code, reason):
        super().__init__("closed with %s %r" % (code, reason))
        self.code = code
        self.reason = reason


def wait_for(predicate, timeout=h.IO_TIMEOUT_S, what="condition"):
    """Polls predicate until it is true or the deadline passes (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def metric(port, name, **labels):
    """Sum of the samples of one family whose labels include `labels`."""
    r = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    total = 0.0
    for line in r.body.decode().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all('%s="%s"' % kv in head for kv in labels.items()):
            total += float(value)
    return total
