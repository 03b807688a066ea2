#!/usr/bin/env python3
"""User-space instructions per echoed message, counted by callgrind (docs/benchmarks.md).

Starts `hermod serve --echo --workers 1` under callgrind, runs hermod-bench's echo scenario
three times with the same connection count (a warm-up, then a short and a longer run), dumps
the counters after each (the first dump holds start-up too), and prints (second - first) / (the messages the second run sent more). The
difference cancels what does not depend on the message count (start-up, connects, the
bench's drain). Instruction counts do not depend on the machine's load, unlike wall clock.

  bench/callgrind_echo.py                       # 1 x 20,000 and 100 x 1,000
  bench/callgrind_echo.py --case 1:1000:21000 --keep /tmp/cg   # keep the dumps to annotate
  bench/callgrind_echo.py --server /path/to/EchoServer --path /  # any server taking argv[1]=port
  bench/callgrind_echo.py --peer /work/peers/uws/uws-echo        # hermod and a peer, same run

A case is CONNECTIONS:FIRST:SECOND, messages per connection in the two runs. With --peer
(or UWS_ECHO set), each case runs against hermod and then against the peer (an echo server
taking argv[1]=port, path /), same client and same counts, and prints hermod / peer.
"""
import argparse
import glob
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("server exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("server did not listen")


def total_of(path):
    # callgrind writes "summary:" (or "totals:") with the event counts; Ir is the first.
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    sys.exit(f"no totals in {path}")


def dumps(out_dir):
    return sorted(glob.glob(os.path.join(out_dir, "cg.*")),
                  key=lambda p: int(p.rsplit(".", 1)[1]) if p.rsplit(".", 1)[1].isdigit() else 0)


def measure(args, server_cmd, path, connections, first, second):
    out_dir = args.keep or tempfile.mkdtemp(prefix="cg-echo-")
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "cg.*")):
        os.remove(old)
    port = free_port()
    proc = subprocess.Popen(["valgrind", "--tool=callgrind",
                             "--callgrind-out-file=" + os.path.join(out_dir, "cg"),
                             "--compress-strings=no"] + server_cmd(port),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        url = f"ws://127.0.0.1:{port}{path}"
        totals = []
        # The first dump holds start-up too: a warm-up run, then the two measured ones.
        for n in (first, first, second):
            subprocess.run([args.bench, "echo", "-u", url, "-c", str(connections), "-s",
                            str(args.size), "-n", str(n), "-d", "600", "-q"], check=True,
                           stdout=subprocess.DEVNULL)
            before = set(dumps(out_dir))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 60
            while time.time() < deadline:
                new = [p for p in dumps(out_dir) if p not in before]
                if new:
                    time.sleep(0.5)  # let callgrind finish writing
                    totals.append(total_of(new[0]))
                    break
                time.sleep(0.2)
            else:
                sys.exit("no dump appeared")
    finally:
        proc.terminate()
        proc.wait()
    messages = connections * (second - first)
    per = (totals[2] - totals[1]) / messages
    return totals[1:], messages, per


def hermod_cmd(args):
    return lambda port: [args.hermod, "serve", "--bind", "127.0.0.1", "--port", str(port),
                         "--echo", "--workers", "1", "--log-level", "warn"]


def report(name, c, a, b, totals, messages, per):
    print(f"{name}: {c} conn x {b - a} msgs: {totals[1]:,} - {totals[0]:,} instructions over "
          f"{messages:,} messages = {per:,.0f} per message", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hermod", default=os.path.join(ROOT, "build", "hermod"))
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "hermod-bench"))
    p.add_argument("--server", help="another echo server binary, started as SERVER PORT")
    p.add_argument("--path", default="/connection/echo")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--case", action="append",
                   help="CONNECTIONS:FIRST:SECOND (default 1:1000:21000 and 100:100:1100)")
    p.add_argument("--peer", default=os.environ.get("UWS_ECHO"),
                   help="a peer echo server (argv[1]=port, path /) measured beside hermod in "
                        "the same run (default: $UWS_ECHO)")
    p.add_argument("--keep", help="directory for the callgrind dumps (default: a temp dir; "
                                  "with --peer, hermod's go to KEEP/hermod, the peer's to KEEP/peer)")
    args = p.parse_args()
    cases = args.case or ["1:1000:21000", "100:100:1100"]
    if args.server:
        targets = [("server", lambda port: [args.server, str(port)], args.path)]
    else:
        targets = [("hermod", hermod_cmd(args), args.path)]
    if args.peer:
        targets.append(("peer", lambda port: [args.peer, str(port)], "/"))
    keep = args.keep
    for case in cases:
        c, a, b = (int(x) for x in case.split(":"))
        counts = {}
        for name, cmd, path in targets:
            args.keep = os.path.join(keep, name) if keep and len(targets) > 1 else keep
            totals, messages, per = measure(args, cmd, path, c, a, b)
            report(name, c, a, b, totals, messages, per)
            counts[name] = per
        if len(counts) == 2:
            mine, peer = (counts[n] for n, _, _ in targets)
            print(f"{c} conn x {b - a} msgs: {mine:,.0f} / {peer:,.0f} = {mine / peer:.2f}x "
                  f"the peer's instructions per message", flush=True)


if __name__ == "__main__":
    main()
