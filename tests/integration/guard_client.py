"""The one raw client of the Centrifugo JSON protocol every Python test shares: HS256 tokens
made here, commands sent in one text frame (several per frame when asked), replies read back
by id while the pushes that arrive meanwhile are kept, the protocol's ping (`{}`) answered
with a pong (`{}`), permessage-deflate inflated. Raw on purpose: tests send what a real SDK
would not and see the frames on the wire (`read_frame`, `read_objects`); the SDKs themselves
are tested with their own clients (`centrifuge/`, `node/`, python3-websockets)."""

import base64
import hashlib
import hmac
import json
import time
import zlib

import hermod_harness as h

SECRET = "guard-secret"
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


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
    """One connection to /connection/websocket (or `path`; `ws`: an already opened
    RawWebSocket, e.g. one with a small receive buffer).

    Messages are taken in two ways that are not mixed on one client: whole frames
    (`read_frame`, `read_objects`: what the server joined into one message), or message by
    message (`read_message`, `wait`, `reply`, `call`, ...), where what a wait skips is kept
    in `pushes` for a later wait."""

    def __init__(self, port=None, deflate=False, path="/connection/websocket", ws=None,
                 pong=True):
        if ws is None:
            ws = h.ws_open(port, path, [DEFLATE_OFFER] if deflate else [])
        self.ws = ws
        extensions = ws.response.header("sec-websocket-extensions") or ""
        self.deflate = "permessage-deflate" in extensions
        self.no_context = "server_no_context_takeover" in extensions
        self._inflate = zlib.decompressobj(-15)
        self.compressed = 0  # messages that arrived with RSV1
        self.pong = pong  # answer the protocol's ping; False: a client that never answers
        self.next_id = 1
        self.pending = []  # parsed messages of frames read, not yet taken by read_message
        self.pushes = []  # messages read_message returned that a wait skipped, in order
        self.connected = None  # the connect result, once connect() succeeded
        self.id = None  # the client id the server gave
        self.closed = None  # the ClosedError read_or_none met

    def close(self):
        self.ws.close()

    # --- sending ---

    def command(self, method, params):
        """A command with the next id: {"id": n, method: params}."""
        command = {"id": self.next_id, method: params}
        self.next_id += 1
        return command

    def frame(self, *commands):
        """One text frame of newline-joined commands, each a (method, params) pair or a dict
        (given the next id unless it has one)."""
        lines = []
        for c in commands:
            if isinstance(c, tuple):
                c = self.command(*c)
            elif "id" not in c:
                c = dict(c, id=self.next_id)
                self.next_id += 1
            lines.append(json.dumps(c))
        self._last_ids = [json.loads(line)["id"] for line in lines]
        return h.encode_frame(h.OP_TEXT, "\n".join(lines).encode())

    def send(self, *commands):
        """Sends the commands in one frame; returns their ids."""
        self.ws.send(self.frame(*commands))
        return self._last_ids

    # --- reading whole frames ---

    def read_frame(self, timeout=h.IO_TIMEOUT_S):
        """The next text message as (rsv1, text), inflated; raises ClosedError on a Close
        frame or the end of the connection."""
        assert not self.pending, "frames and messages mixed on one client: %r" % self.pending
        deadline = time.monotonic() + timeout
        while True:
            frame = self.ws.read_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                raise ClosedError(None, b"connection ended")
            if frame.opcode == h.OP_CLOSE:
                raise ClosedError(*h.parse_close(frame.payload))
            if frame.opcode in (h.OP_PING, h.OP_PONG):
                continue
            assert frame.opcode == h.OP_TEXT and frame.fin, frame
            payload = frame.payload
            rsv1 = bool(frame.rsv & 4)
            if rsv1:
                self.compressed += 1
                stream = self._inflate if not self.no_context else zlib.decompressobj(-15)
                payload = stream.decompress(payload + b"\x00\x00\xff\xff")
            return rsv1, payload.decode()

    def read_objects(self, timeout=h.IO_TIMEOUT_S):
        """(rsv1, [objects]) of the next text message, pings included."""
        rsv1, text = self.read_frame(timeout)
        return rsv1, [json.loads(line) for line in text.split("\n")]

    # --- reading message by message ---

    def read_message(self, timeout=h.IO_TIMEOUT_S):
        """The next reply or push; the protocol's pings (`{}`) are skipped, and answered with
        a pong (`{}`) when the connect result says `"pong": true`."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            _, text = self.read_frame(max(0.0, deadline - time.monotonic()))
            for line in text.split("\n"):
                message = json.loads(line)
                if message:
                    self.pending.append(message)
                elif self.pong and (self.connected or {}).get("pong", True):
                    # As the SDKs do: a pong when the connect result asked for one.
                    self.ws.send(h.encode_frame(h.OP_TEXT, b"{}"))
        return self.pending.pop(0)

    def read_or_none(self, timeout=h.IO_TIMEOUT_S):
        """read_message, or None once the connection closed (why: self.closed)."""
        try:
            return self.read_message(timeout)
        except ClosedError as e:
            self.closed = e
            return None

    def forget(self):
        """Drops every message read and not taken yet."""
        self.pending.clear()
        self.pushes.clear()

    def wait(self, predicate, timeout=h.IO_TIMEOUT_S):
        """The first message matching predicate, from those skipped before, then from the
        connection; messages skipped now are kept in self.pushes."""
        for i, message in enumerate(self.pushes):
            if predicate(message):
                return self.pushes.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching message within %ss; have %r"
                                     % (timeout, self.pushes[-5:]))
            try:
                message = self.read_message(left)
            except ClosedError:
                raise
            except AssertionError:  # the frame reader's own deadline
                raise AssertionError("no matching message within %ss; have %r"
                                     % (timeout, self.pushes[-5:]))
            if predicate(message):
                return message
            self.pushes.append(message)

    def reply(self, command_id, timeout=h.IO_TIMEOUT_S):
        """The reply with this id; pushes before it are kept in self.pushes."""
        return self.wait(lambda m: m.get("id") == command_id, timeout)

    def call(self, method, params, timeout=h.IO_TIMEOUT_S):
        """Sends one command; its reply (an error reply too)."""
        return self.reply(self.send((method, params))[0], timeout)

    def connect(self, params=None):
        """The connect command; fails on an error reply; returns the connect result."""
        r = self.call("connect", params or {})
        if "error" in r:
            raise AssertionError("connect failed: %r" % r)
        self.connected = r["connect"]
        self.id = self.connected.get("client")
        return self.connected

    def result(self, method, params):
        """Calls method; fails on an error reply; returns its result object."""
        r = self.call(method, params)
        assert method in r, r
        return r[method]

    def subscribe(self, channel, **params):
        return self.result("subscribe", dict(params, channel=channel))

    def unsubscribe(self, channel):
        return self.result("unsubscribe", {"channel": channel})

    def publish(self, channel, data):
        return self.result("publish", {"channel": channel, "data": data})

    def history(self, channel, **params):
        return self.result("history", dict(params, channel=channel))

    def presence(self, channel):
        return self.result("presence", {"channel": channel})

    def rpc(self, method, data):
        return self.result("rpc", {"method": method, "data": data})

    def next_publication(self, channel, timeout=h.IO_TIMEOUT_S):
        """The next publication pushed on channel (the `pub` object)."""
        return self.wait(lambda m: "pub" in m.get("push", {}) and
                         m["push"].get("channel") == channel, timeout)["push"]["pub"]

    def try_publication(self, channel, timeout):
        """The data of the next publication on channel within timeout, else None."""
        try:
            return self.next_publication(channel, timeout)["data"]
        except ClosedError:
            raise
        except (AssertionError, OSError):
            return None

    def expect_close(self, timeout=h.IO_TIMEOUT_S):
        """Reads until the server's Close; returns its code (messages before it skipped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.pending.clear()
                self.read_frame(max(0.0, deadline - time.monotonic()))
        except ClosedError as e:
            return e.code


class ClosedError(AssertionError):
    """The server closed the connection (code None: it ended without a Close frame)."""

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
