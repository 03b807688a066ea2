#!/usr/bin/env python3
"""Server memory per connected client with one subscription (docs/benchmarks.md, "Memory per
connection with one subscription").

Starts `hermod serve --workers 1` (anonymous clients) on a free port. A warm-up opens
--warmup clients (connect + subscribe) and closes them, so that code pages, the loop's
buffers and the allocator's first arenas are not counted. Then it reads the server's VmRSS,
opens --connections WebSocket clients that each send `connect` and `subscribe` (to
--channels channels, round robin) in one message and wait for both replies, reads VmRSS
again and prints one JSON line: the RSS difference per client. Clients are raw non-blocking
sockets in this process, so the figure is the server's alone. --wrap runs the server under a
command (e.g. "heaptrack -o /tmp/ht"), and the server is then killed (SIGKILL) with its clients
connected: what heaptrack_print --print-leaks lists is what they held, by call site.

usage: bench/conn_memory.py build/hermod [--connections N] [--channels K] [--warmup N]
           [--wrap CMD] [--env K=V ...] [--teardown]

--teardown then closes every client at once (a mass disconnect: a network blip, a deploy) and
adds the server's CPU time until its last client socket is closed, in total and per client.
"""
import argparse, base64, json, os, resource, selectors, shlex, socket, subprocess, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("hermod")
p.add_argument("--connections", type=int, default=10000)
p.add_argument("--channels", type=int, default=1)
p.add_argument("--warmup", type=int, default=1000)
p.add_argument("--wrap", default="")
p.add_argument("--env", action="append", default=[])
p.add_argument("--teardown", action="store_true",
               help="also close every client at once and report the server CPU that took")
a = p.parse_args()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


raise_nofile()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def frame(text):
    data = text.encode()
    head = bytes([0x81])
    if len(data) < 126:
        head += bytes([0x80 | len(data)])
    else:
        head += bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    return head + b"\0\0\0\0" + data  # mask 0: the payload is sent as it is


def open_clients(port, n, channels):
    """Opens n clients, each connected and subscribed; returns their sockets."""
    sel = selectors.DefaultSelector()
    socks, pending = [], 0
    key = base64.b64encode(os.urandom(16)).decode()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        cmds = '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"mem%d"}}' % (i % channels)
        s.sendall(("GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode() + frame(cmds))
        sel.register(s, selectors.EVENT_READ, [b""])
        socks.append(s)
        pending += 1
        # keep the number in flight bounded: the server's accept queue and our buffers
        while pending > 200 or (i == n - 1 and pending):
            for k, _ in sel.select(10):
                buf = k.data[0] + k.fileobj.recv(65536)
                k.data[0] = buf
                if b'"id":2' in buf:
                    assert b'"error"' not in buf, buf
                    sel.unregister(k.fileobj)
                    pending -= 1
    sel.close()
    return socks


cfg = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
json.dump({"allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
           "allow_subscribe_for_anonymous": True, "log_level": "warn",
           "client_command_rate_limit": {"total": {"rate": 0}},
           "client_connection_limit": 0, "client_stale_close_delay": "3600s",
           "memory_trim_interval": "0s"}, cfg)
cfg.close()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ)
for kv in a.env:
    k, v = kv.split("=", 1); env[k] = v
srv = subprocess.Popen(shlex.split(a.wrap) + [a.hermod, "serve", "--config", cfg.name, "--port",
                                              str(port), "-w", "1"],
                       env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
try:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError:
            assert time.monotonic() < deadline, "no listen"; time.sleep(0.05)
    # under a wrapper the server is its child
    pid = srv.pid
    if a.wrap:
        out = subprocess.run(["pgrep", "-n", "-f", "%s serve --config %s" % (a.hermod, cfg.name)],
                             capture_output=True, text=True)
        pid = int(out.stdout.split()[0])
    for c in open_clients(port, a.warmup, a.channels):
        c.close()
    time.sleep(1)
    before = rss_kib(pid)
    clients = open_clients(port, a.connections, a.channels)
    time.sleep(1)
    after = rss_kib(pid)
    figures = {"connections": a.connections, "channels": a.channels,
               "rss_before_kib": before, "rss_after_kib": after,
               "bytes_per_connection": round((after - before) * 1024 / a.connections)}
    if a.teardown:
        fds, cpu = open_fds(pid), cpu_ms(pid)
        for c in clients:
            c.close()
        clients = []
        deadline = time.monotonic() + 120
        while open_fds(pid) > fds - a.connections:  # polled: a bench's end, not a test's sync
            assert time.monotonic() < deadline, "clients not closed"
            time.sleep(0.02)
        figures["teardown_cpu_ms"] = round(cpu_ms(pid) - cpu, 1)
        figures["teardown_us_per_client"] = round((cpu_ms(pid) - cpu) * 1000 / a.connections, 2)
    print(json.dumps(figures))
    if a.wrap and pid != srv.pid:
        # killed with the clients connected: what the wrapper sees as never freed ("leaked")
        # is what the server held for them
        os.kill(pid, 9)
    for c in clients:
        c.close()
finally:
    if not (a.wrap and pid != srv.pid):
        srv.terminate()
    srv.wait(timeout=120); os.unlink(cfg.name)
