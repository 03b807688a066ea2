#!/usr/bin/env python3
"""RSS of a hermod at start, at the peak of a connection churn and after cool-down
(docs/benchmarks.md, "Memory after a connection peak").

Starts hermod (2 loops, anonymous clients) on a free port, reads VmRSS once it listens, then
per cycle: hermod-bench's fanout scenario holds --connections subscribers (forking a worker
past 18,000 per process) for 3 s, RSS sampled every 100 ms for the peak; after the bench
exits, --cooldown seconds idle, RSS again. Prints one JSON line. --env K=V sets the server's
environment (GLIBC_TUNABLES, LD_PRELOAD, HERMOD_MEMORY_TRIM_INTERVAL).

usage: bench/rss_after_peak.py build/hermod build/hermod-bench [--env K=V ...]
           [--connections N] [--cooldown S] [--cycles N]
"""
import argparse, json, os, resource, socket, subprocess, sys, time, tempfile

p = argparse.ArgumentParser()
p.add_argument("hermod"); p.add_argument("bench")
p.add_argument("--env", action="append", default=[])
p.add_argument("--connections", type=int, default=20000)
p.add_argument("--cooldown", type=float, default=15)
p.add_argument("--cycles", type=int, default=2)
a = p.parse_args()

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

cfg = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
json.dump({"allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
           "allow_subscribe_for_anonymous": True, "log_level": "warn",
           "client_command_rate_limit": {"total": {"rate": 0}}}, cfg)
cfg.close()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ)
for kv in a.env:
    k, v = kv.split("=", 1); env[k] = v
srv = subprocess.Popen([a.hermod, "serve", "--config", cfg.name, "--port", str(port), "-w", "2"],
                       env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
try:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError:
            assert time.monotonic() < deadline, "no listen"; time.sleep(0.05)
    time.sleep(1)
    start = rss_kib(srv.pid)
    result = {"start_kib": start, "cycles": []}
    url = "ws://127.0.0.1:%d/connection/websocket" % port
    for cycle in range(a.cycles):
        bench = subprocess.Popen([a.bench, "fanout", "-u", url, "-p", "hermod", "-c",
                                  str(a.connections), "--ramp", "5000", "-r", "1", "-d", "3",
                                  "--no-progress", "-q"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
        peak = 0
        while bench.poll() is None:
            peak = max(peak, rss_kib(srv.pid)); time.sleep(0.1)
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.cooldown:
            time.sleep(0.5)
        result["cycles"].append({"bench_rc": bench.returncode, "peak_kib": peak,
                                 "cooldown_kib": rss_kib(srv.pid)})
    print(json.dumps(result))
finally:
    srv.terminate(); srv.wait(timeout=20); os.unlink(cfg.name)
