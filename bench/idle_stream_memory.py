# Bytes per idle streamed connection (/connection/fragments, /connection/uni_sse): hermod's RSS
# before and after N idle streams of one loop. Usage: python3 bench/idle_stream_memory.py
# HERMOD N PATH (N streams of GET PATH; a process with N+200 descriptors to spare).
import json, os, re, socket, subprocess, sys, tempfile, threading, time, select
HERMOD = sys.argv[1]; N = int(sys.argv[2]); path = sys.argv[3]
cfg = {"fragments": True, "uni_sse": True, "allow_anonymous_connect_without_token": True,
       "allow_subscribe_for_anonymous": True, "allow_subscribe_for_client": True,
       "history_size": 10, "history_ttl": "60s", "admission": {"ip_connection_limit": 0}}
d = tempfile.mkdtemp(); open(d + "/c.json", "w").write(json.dumps(cfg))
p = subprocess.Popen([HERMOD, "serve", "--bind", "127.0.0.1", "--port", "0", "--workers", "1",
                      "--config", d + "/c.json"], stderr=subprocess.PIPE)
port = None
buf = b""
while port is None:
    buf += os.read(p.stderr.fileno(), 4096)
    m = re.search(rb"listening on https?://[^\s:]+:(\d+)", buf)
    if m: port = int(m.group(1))
# Keep reading (and dropping) the log: a full pipe would block hermod's loop in write(2).
def drain():
    while os.read(p.stderr.fileno(), 65536): pass
threading.Thread(target=drain, daemon=True).start()
def rss():
    for line in open("/proc/%d/status" % p.pid):
        if line.startswith("VmRSS"): return int(line.split()[1]) * 1024
def open_n(n):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        socks.append(s)
    for s in socks:
        data = b""
        while b"\r\n\r\n" not in data: data += s.recv(4096)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
    return socks
warm = open_n(200)
before = rss()
socks = open_n(N)
after = rss()
print("%s: %d idle streams, RSS +%d bytes, %d bytes per connection" % (path, N, after - before, (after - before) // N))
p.terminate(); p.wait()
