"""Starts the real hermod binary for integration tests, and speaks raw HTTP and RFC 6455.

A test file runs as `python3 <file>.py --hermod PATH [unittest args]`. `HermodTestCase`
starts a server on 127.0.0.1 port 0 with a temporary JSON config, reads the port from the
`listening on http(s)://ADDR:PORT` line on stderr (select with a deadline, never a sleep),
and on teardown stops it with SIGTERM and asserts exit status 0 (so an ASan report at exit
fails the test); whatever happens, the process is killed before the test ends.

The raw helpers (`http_exchange`, `ws_open`, `encode_frame`, `FrameReader`) exist for what
real clients refuse to send: protocol violations, slowloris, hand-made permessage-deflate.
"""

import argparse
import base64
import ctypes
import hashlib
import json
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERMOD = None  # path of the binary, set by main()

START_TIMEOUT_S = 30  # ASan builds start slowly
STOP_TIMEOUT_S = 20
IO_TIMEOUT_S = 10

_LISTENING = re.compile(rb"listening on (https?)://([^\s:]+):(\d+)")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE up to the hard limit (in this process or, as preexec_fn, a child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Hermod:
    """One running hermod process."""

    def __init__(self, binary, config=None, flags=(), workers=1, echo=True, port=0, env=None,
                 argv=None, cwd=None):
        self.binary = binary
        self.argv = argv  # `serve ...` exactly as given (no config file, no flags added)
        self.cwd = cwd
        self.config = dict(config or {})
        self.flags = list(flags)
        self.workers = workers
        self.echo = echo
        self.listen_port = port  # 0: a free one
        self.env = env  # the whole environment of the process; None: this one's
        self.proc = None
        self.port = None
        self.scheme = None
        self.log = []  # stderr lines, for failure messages
        self._dir = tempfile.TemporaryDirectory(prefix="hermod-it-")
        self._reader = None

    def start(self):
        config_path = os.path.join(self._dir.name, "hermod.json")
        with open(config_path, "w") as f:
            json.dump(self.config, f)
        argv = [self.binary, "serve", "--bind", "127.0.0.1", "--port", str(self.listen_port),
                "--workers", str(self.workers), "--config", config_path] + self.flags
        if self.echo:
            argv.append("--echo")
        if self.argv is not None:
            argv = [self.binary] + list(self.argv)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=raise_nofile_limit,
                                     env=self.env, cwd=self.cwd)
        self._wait_listening()
        self._reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._reader.start()
        return self

    def _wait_listening(self):
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError("hermod did not report listening within %ds; stderr:\n%s"
                                     % (START_TIMEOUT_S, self.stderr_text()))
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.wait(timeout=STOP_TIMEOUT_S)
                self.log.append(pending.decode(errors="replace"))
                raise AssertionError("hermod exited with %s before listening; stderr:\n%s"
                                     % (code, self.stderr_text()))
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                self.log.append(line.decode(errors="replace"))
                m = _LISTENING.search(line)
                if m:
                    self.scheme = m.group(1).decode()
                    self.port = int(m.group(3))
                    if pending:
                        self.log.append(pending.decode(errors="replace"))
                    return

    def _drain_stderr(self):
        # Keeps the pipe from filling up once the server is running.
        for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip("\n"))

    def stderr_text(self):
        return "\n".join(self.log[-200:])

    def sanitizer_summary(self):
        """A sanitizer's verdict and the top frames of its report, on the first line of a
        failure: a truncated log still shows why the process failed."""
        lines = self.log
        for i, line in enumerate(lines):
            if "ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line or \
                    "runtime error:" in line:
                frames = [l.strip() for l in lines[i + 1:i + 40] if l.strip().startswith("#")]
                return " (%s | %s)" % (line.strip(), " | ".join(frames[:12]))
        return ""

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal_stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT_S):
        """Waits for the process to exit; returns its status (kills it after the timeout)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("hermod did not exit within %ss after the signal; stderr:\n%s"
                                 % (timeout, self.stderr_text()))
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self):
        """SIGTERM, then the exit status must be 0."""
        if not self.running():
            code = self.proc.returncode if self.proc else None
        else:
            self.signal_stop()
            code = self.wait_exit()
        if code != 0:
            raise AssertionError("hermod exited with %s%s; stderr:\n%s"
                                 % (code, self.sanitizer_summary(), self.stderr_text()))

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        if self.proc is not None:
            if self._reader is not None:
                self._reader.join(timeout=5)
            self.proc.stderr.close()
        self._dir.cleanup()

    def rss_kib(self):
        """Resident set size of the server, from /proc."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d (exit status %s); stderr:\n%s"
                             % (self.pid, self.proc.poll(), self.stderr_text()))


class HermodTestCase(unittest.TestCase):
    """Each test starts the servers it needs with start_server(); teardown stops them."""

    def start_server(self, config=None, **kwargs):
        server = Hermod(HERMOD, config, **kwargs)
        self.addCleanup(server.cleanup)
        server.start()
        self.addCleanup(self._stop_checked, server)
        return server

    def _stop_checked(self, server):
        if server.proc is not None:
            server.stop()


def io_uring_refused():
    """Why this kernel refuses the io_uring ring hermod's `io_uring: true` makes (None: it
    gives one): io_uring_setup with IORING_SETUP_COOP_TASKRUN, Linux 5.19+, as the server
    asks for it. Containers often forbid io_uring altogether (seccomp)."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    struct.pack_into("I", params, 8, 1 << 8)  # .flags = IORING_SETUP_COOP_TASKRUN
    fd = libc.syscall(425, 2, params)  # __NR_io_uring_setup (one number on every arch)
    if fd < 0:
        return os.strerror(ctypes.get_errno())
    os.close(fd)
    return None


def main():
    """Entry point of every test file: `--hermod PATH` then unittest's own arguments."""
    global HERMOD
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--hermod", required=True)
    args, rest = parser.parse_known_args()
    HERMOD = os.path.abspath(args.hermod)
    if not os.access(HERMOD, os.X_OK):
        sys.exit("not an executable: %s" % HERMOD)
    # The io_uring variants of a test (ctest's io_uring label) on a kernel that refuses a
    # ring: skipped (ctest's SKIP_RETURN_CODE), not failed: the server would refuse to start.
    if os.environ.get("HERMOD_IO_URING") == "true":
        refused = io_uring_refused()
        if refused is not None:
            print("skipped: this kernel refuses io_uring (%s)" % refused)
            sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


# --- raw sockets -----------------------------------------------------------------------------

def wait_for(what, predicate, timeout=20, interval=0.02):
    """Polls predicate until it returns a truthy value (returned); fails with `what` at the
    deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # polling interval of a condition wait, not synchronisation
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def connect(port, timeout=IO_TIMEOUT_S):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def wait_readable(sock, timeout):
    ready, _, _ = select.select([sock], [], [], timeout)
    return bool(ready)


def recv_until_closed(sock, timeout=IO_TIMEOUT_S):
    """Everything the peer sends until it closes; fails if it stays open past the timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not wait_readable(sock, left):
            raise AssertionError("peer still open after %ss; got %r" % (timeout, data[:200]))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


class HttpResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value (last wins)
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())


class ResponseReader:
    """Reads HTTP/1.1 responses (Content-Length bodies) off one socket, one after another."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or not wait_readable(self.sock, left):
            raise AssertionError("timed out waiting for a response; have %r" % self.buf[:300])
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; have %r" % self.buf[:300])
        self.buf += chunk

    def read(self, timeout=IO_TIMEOUT_S, head_only=False):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        if not version.startswith("HTTP/1."):
            raise AssertionError("bad status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if not head_only:
            length = int(headers.get("content-length", "0"))
            while len(self.buf) < length:
                self._fill(deadline)
            body, self.buf = self.buf[:length], self.buf[length:]
        return HttpResponse(int(status), reason, headers, body)


def http_exchange(port, request, timeout=IO_TIMEOUT_S):
    """Sends raw request bytes on a new connection and returns the first response."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        return ResponseReader(sock).read(timeout)


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def upgrade_request(port, path="/connection/echo", key=None, version="13", method="GET",
                    extra_headers=()):
    key = key if key is not None else ws_key()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port,
             "Upgrade: websocket", "Connection: Upgrade"]
    if key:
        lines.append("Sec-WebSocket-Key: " + key)
    if version:
        lines.append("Sec-WebSocket-Version: " + version)
    lines.extend(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawWebSocket:
    """A client WebSocket over a plain socket, for sending what real clients will not."""

    def __init__(self, sock, response, leftover):
        self.sock = sock
        self.response = response
        self.reader = FrameReader(sock, leftover)

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kwargs):
        self.sock.sendall(encode_frame(opcode, payload, **kwargs))

    def read_frame(self, timeout=IO_TIMEOUT_S):
        return self.reader.read(timeout)

    def expect_close(self, timeout=IO_TIMEOUT_S):
        """Reads until the server's Close frame; returns (code, reason bytes).

        Pings and data frames before it are skipped. Fails on EOF without a Close."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.reader.read(max(0.0, deadline - time.monotonic()))
            if frame is None:
                raise AssertionError("connection ended without a Close frame")
            if frame.opcode == OP_CLOSE:
                return parse_close(frame.payload)

    def close(self):
        self.sock.close()


def ws_open(port, path="/connection/echo", extra_headers=(), timeout=IO_TIMEOUT_S):
    """Performs the opening handshake; fails unless the answer is 101 with the right accept."""
    sock = connect(port, timeout)
    key = ws_key()
    sock.sendall(upgrade_request(port, path, key=key, extra_headers=extra_headers))
    reader = ResponseReader(sock)
    response = reader.read(timeout, head_only=True)
    if response.status != 101:
        sock.close()
        raise AssertionError("expected 101, got %d %s" % (response.status, response.reason))
    if response.header("sec-websocket-accept") != ws_accept(key):
        sock.close()
        raise AssertionError("bad Sec-WebSocket-Accept %r" % response.header(
            "sec-websocket-accept"))
    return RawWebSocket(sock, response, reader.buf)


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """One frame; rsv is the 3-bit RSV1..RSV3 field (4 = RSV1); length overrides the header."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_bytes(payload, key)


def mask_bytes(payload, key):
    if not payload:
        return b""
    # XOR through a big integer: fast enough for a few MiB.
    reps = (len(payload) + 3) // 4
    k = int.from_bytes((key * reps)[:len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(len(payload), "big")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def parse_close(payload):
    if len(payload) < 2:
        return None, payload
    return struct.unpack("!H", payload[:2])[0], payload[2:]


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload

    def __repr__(self):
        return "Frame(fin=%s rsv=%d opcode=%d len=%d)" % (self.fin, self.rsv, self.opcode,
                                                           len(self.payload))


class FrameReader:
    """Reads server frames; fails on a masked one (RFC 6455 §5.1)."""

    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.eof = False

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                return False
            left = deadline - time.monotonic()
            if left <= 0 or not wait_readable(self.sock, left):
                raise AssertionError("timed out waiting for a frame (have %d bytes)"
                                     % len(self.buf))
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def read(self, timeout=IO_TIMEOUT_S):
        """The next frame, or None at EOF."""
        deadline = time.monotonic() + timeout
        if not self._need(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError("server sent a masked frame")
        n = b1 & 0x7F
        header = 2
        if n == 126:
            header = 4
            if not self._need(header, deadline):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
        elif n == 127:
            header = 10
            if not self._need(header, deadline):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
        if not self._need(header + n, deadline):
            return None
        payload = bytes(self.buf[header:header + n])
        del self.buf[:header + n]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)
