"""nats-server and the helpers every cluster test uses (tests/cluster, tests/integration).

NatsServer runs one nats-server on 127.0.0.1: a port it picks itself (read from its log),
or a given one; with jetstream=True, `-js` on a temporary store directory. stop(kill=True)
then start() restarts it in place: the same port and the same store directory, so a test
can play a nats-server crash. cleanup() stops it and removes the directory.

wait_for polls a condition against a deadline (never a sleep for synchronisation); api,
get and metric talk to a hermod node's HTTP side.
"""

import json
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time

from guard_client import api_call
from hermod_harness import http_exchange, wait_for  # noqa: F401  (the cluster tests' wait)

DEADLINE_S = 20
_LISTENING = re.compile(rb"Listening for client connections on [^:]+:(\d+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One nats-server on 127.0.0.1; port None: it picks a free one (kept across restarts)."""

    def __init__(self, port=None, jetstream=False, extra=()):
        self.binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.port = port
        self.extra = list(extra)  # more nats-server arguments
        self.dir = tempfile.TemporaryDirectory(prefix="hermod-js-") if jetstream else None
        self.proc = None
        self.log = []

    def start(self):
        argv = [self.binary, "-a", "127.0.0.1", "-p", str(self.port or -1)] + self.extra
        if self.dir is not None:
            argv += ["-js", "-sd", self.dir.name]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + DEADLINE_S
        pending = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop(kill=True)
                raise AssertionError("nats-server did not listen: %s" % "\n".join(self.log))
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            pending += chunk
            self.log += [line.decode(errors="replace") for line in chunk.splitlines()]
            m = _LISTENING.search(pending)
            if m:
                self.port = int(m.group(1))
                # Later lines go nowhere; nats-server logs little and never blocks on it.
                return self

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def stop(self, kill=False):
        """SIGTERM (kill: SIGKILL) and wait; the store directory stays for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def cleanup(self):
        self.stop(kill=True)
        if self.dir is not None:
            self.dir.cleanup()


def make_nats_pki(directory):
    """A throwaway PKI made with the openssl CLI in directory: ca.pem (the CA), server.pem and
    server.key (for 127.0.0.1 and localhost, signed by it), client.pem and client.key (signed
    by it), other-ca.pem (a CA that signed nothing here). Returns directory's path joiner."""
    script = """set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1 2>/dev/null; }
key ca.key; key other-ca.key; key server.key; key client.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=hermod-test-ca
openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 2 -subj /CN=hermod-other-ca
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
printf 'extendedKeyUsage=clientAuth\\n' > client.ext
openssl req -new -key server.key -out server.csr -subj /CN=localhost
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \\
  -days 2 -extfile server.ext 2>/dev/null
openssl req -new -key client.key -out client.csr -subj /CN=hermod-node
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \\
  -days 2 -extfile client.ext 2>/dev/null
"""
    subprocess.run(["sh", "-c", script], cwd=directory, check=True, timeout=60)
    return lambda name: os.path.join(directory, name)


def api(port, method, params):
    """POST /api/<method> with the key "k"; the decoded answer (status 200 asserted)."""
    response = api_call(port, method, params)
    assert response.status == 200, (response.status, response.body)
    return json.loads(response.body)


def get(port, path):
    response = http_exchange(port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
    return response.body.decode()


def metric(port, name, labels=""):
    """The value of one sample (labels as written in the exposition, e.g. 'name="broker"')."""
    pattern = re.compile(r"^%s(\{%s\})? (\S+)$" % (re.escape(name), re.escape(labels)), re.M)
    m = pattern.search(get(port, "/metrics"))
    return float(m.group(2)) if m else None


def wait_connected(*servers):
    """Waits until each hermod node says its broker is connected to NATS."""
    for s in servers:
        wait_for("hermod_broker_connected 1 on port %d" % s.port,
                 lambda: metric(s.port, "hermod_broker_connected") == 1)
