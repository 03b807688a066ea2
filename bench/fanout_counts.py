#!/usr/bin/env python3
"""Per-delivery counts of one fan-out run: figures that hold still on a loaded machine.

Starts one server (hermod, or a peer broadcast server taking its port as argv[1]) in a
session of its own, runs `hermod-bench fanout` against it, and over the measured phase and
drain (from `--phases`' "measure start" to the bench's exit) counts the server's write
syscalls (sendto, sendmsg, writev), epoll_wait calls and context switches (`perf stat -p`),
its CPU (user and system) and, per thread, the share of wall time it ran and the share it was
runnable but waited for a core (/proc/PID/task/TID/schedstat); the same for the bench. Prints
one JSON line: the bench's p50/p99 and loss, and every count divided by the deliveries.
Deliveries/s and latency move with whatever else the machine runs; writes and epoll_waits per
delivery and CPU per delivery follow the server's batching (docs/benchmarks.md).

  bench/fanout_counts.py -- -c 1000 -r 400 -d 8
  bench/fanout_counts.py --env HERMOD_PUSH_COALESCE_DELAY=10ms -- -c 1000 -r 400 -d 8
  bench/fanout_counts.py --peer $PEERS/uws/uws-broadcast -- -c 10000 -r 40 -d 10

Needs perf with the syscalls tracepoints readable (perf_event_paranoid ≤ 1, or root).
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EVENTS = ["syscalls:sys_enter_sendto", "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_writev",
          "syscalls:sys_enter_epoll_wait", "context-switches"]
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, tmp):
    log_path = os.path.join(tmp, "server.log")
    log = open(log_path, "w")
    env = dict(os.environ)
    for assign in args.env:
        key, _, value = assign.partition("=")
        env[key] = value
    if args.peer:
        port = free_port()
        proc = subprocess.Popen([args.peer, str(port)], stdout=log, stderr=log, env=env,
                                start_new_session=True)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        sys.exit("fanout_counts: the peer does not listen")
    proc = subprocess.Popen([args.hermod, "serve", "--bind", "127.0.0.1", "--port", "0", "--echo",
                             "-c", os.path.join(HERE, "peers", "hermod.json")],
                            stdout=log, stderr=log, env=env, start_new_session=True)
    end = time.time() + 10
    while time.time() < end:
        found = re.search(r"listening on [^ ]*:(\d+)", open(log_path).read())
        if found:
            return proc, int(found.group(1))
        time.sleep(0.05)
    sys.exit("fanout_counts: hermod does not listen:\n" + open(log_path).read()[-2000:])


def tasks(pid):
    """Per thread: (name, utime + stime ticks, utime ticks, ran ns, waited ns)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            ran, waited, _ = open(f"/proc/{pid}/task/{tid}/schedstat").read().split()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        out[tid] = (name, int(fields[11]) + int(fields[12]), int(fields[11]), int(ran), int(waited))
    return out


def sample_until_exit(proc, samples):
    while proc.poll() is None:
        now = tasks(proc.pid) if os.path.exists(f"/proc/{proc.pid}/task") else {}
        if len(now) >= len(samples[-1]) and proc.poll() is None:
            samples.append(now)
        time.sleep(0.1)


def writes_metric(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return None
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith("hermod_network_writes_total"):
            total += float(line.split()[-1])
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hermod", default=os.path.join(ROOT, "build", "hermod"))
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "hermod-bench"))
    p.add_argument("--peer", help="a broadcast server taking its port as argv[1] (raw protocol)")
    p.add_argument("--env", action="append", default=[], help="VAR=VALUE for the server")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])
    bench_args = argv[split + 1:]
    tmp = tempfile.mkdtemp(prefix="fanout-counts-")
    server, port = start_server(args, tmp)
    report_path = os.path.join(tmp, "report.json")
    url = f"ws://127.0.0.1:{port}/" if args.peer else \
        f"ws://127.0.0.1:{port}/connection/websocket"
    argv = [args.bench, "fanout", "-u", url, "-p", "raw" if args.peer else "hermod",
            "--no-progress", "-q", "--json", report_path, "--phases",
            "--server-pid", str(server.pid)] + bench_args
    # perf attaches now, counting nothing until told (its control fifo), so that its window
    # is exactly the one of the other figures.
    ctl_path, ack_path = os.path.join(tmp, "perf.ctl"), os.path.join(tmp, "perf.ack")
    os.mkfifo(ctl_path)
    os.mkfifo(ack_path)
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-D", "-1",
                             "--control", f"fifo:{ctl_path},{ack_path}", "-p", str(server.pid)],
                            stderr=subprocess.PIPE, text=True)
    ctl, ack = open(ctl_path, "w"), open(ack_path)

    def tell_perf(command):
        ctl.write(command + "\n")
        ctl.flush()
        ack.readline()

    bench = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in bench.stderr:
            if "measure start" in line:
                break
        writes_before = None if args.peer else writes_metric(port)
        server_before, bench_before, started = tasks(server.pid), tasks(bench.pid), time.time()
        tell_perf("enable")
        # The bench's threads' figures go with it: sampled while it runs, the last one kept
        # (the last 0.1 s of its drain is not in them).
        samples = [bench_before]
        sampler = threading.Thread(target=sample_until_exit, args=(bench, samples))
        sampler.start()
        bench.stderr.read()
        bench.wait()
        sampler.join()
        bench_after = samples[-1]
        tell_perf("disable")
        server_after, wall = tasks(server.pid), time.time() - started
        writes_after = None if args.peer else writes_metric(port)
        perf.send_signal(signal.SIGINT)
        perf_out = perf.communicate()[1]
    finally:
        if perf.poll() is None:
            perf.kill()
        if bench.poll() is None:
            bench.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    if not os.path.exists(report_path):
        sys.exit("fanout_counts: the bench wrote no report")
    summary = json.load(open(report_path))["summary"]
    delivered = summary.get("delivered", 0)
    if not delivered:
        sys.exit("fanout_counts: nothing delivered")
    counts = {}
    for line in perf_out.splitlines():
        cells = line.split(",")
        if len(cells) > 2 and cells[0].strip().isdigit():
            counts[cells[2].replace("syscalls:sys_enter_", "")] = int(cells[0])

    def per_thread(before, after):
        rows = {}
        for tid, now in after.items():
            if tid in before and now[3] > before[tid][3]:
                rows[f"{now[0]}:{tid}"] = {"ran": round((now[3] - before[tid][3]) / wall / 1e9, 3),
                                           "waited": round((now[4] - before[tid][4]) / wall / 1e9, 3)}
        return rows

    def cpu_us(before, after, index):
        ticks = sum(now[index] - before[t][index] for t, now in after.items() if t in before)
        return ticks / HZ * 1e6 / delivered

    latency = summary.get("latency_us", {})
    writes = sum(counts.get(k, 0) for k in ("sendto", "sendmsg", "writev"))
    result = {
        "delivered": delivered,
        "lost": summary.get("lost"),
        "p50_ms": round(latency.get("p50", 0) / 1000, 1),
        "p99_ms": round(latency.get("p99", 0) / 1000, 1),
        "writes_per_delivery": round(writes / delivered, 4),
        "epoll_waits_per_delivery": round(counts.get("epoll_wait", 0) / delivered, 5),
        "context_switches_per_delivery": round(counts.get("context-switches", 0) / delivered, 5),
        "server_cpu_us_per_delivery": round(cpu_us(server_before, server_after, 1), 3),
        "server_user_us_per_delivery": round(cpu_us(server_before, server_after, 2), 3),
        "server_threads": per_thread(server_before, server_after),
        "bench_threads": per_thread(bench_before, bench_after),
    }
    if writes_before is not None and writes_after is not None:
        result["hermod_writes_per_delivery"] = round((writes_after - writes_before) / delivered, 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
