#!/usr/bin/env python3
"""Cluster fan-out cost: six hermod nodes on one nats-server, each node's subscribers on its
own channels, publications spread over the nodes through the server API (each published on a
node other than the one that holds its channel). Prints, per binary, each node's CPU
(user + system, /proc) per publication of the whole run, and what each node received.

With per-channel subjects a node receives only its own channels' publications; with one
subject for the cluster (hermod before per-channel subjects) every node receives every
publication made elsewhere.

With --engine nats (history on JetStream, presence on KV; implies --history) a channel's
publications reach the nodes through the stream's deliveries rather than the broker's
subjects; `received` then counts nothing, and a run ends when every node's CPU has stopped
moving.

Run: python3 bench/cluster_subjects.py --binary NAME=PATH [--binary NAME=PATH ...]
     [--nodes 6] [--channels 8] [--publications 60000] [--batch 200] [--history]
     [--engine nats] [--publish-on others|holder]
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))

import hermod_harness as h  # noqa: E402
from cluster_test import NatsServer, metric, wait_for  # noqa: E402
from guard_client import Client, api_call  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def drain(client):
    sock = client.ws.sock
    try:
        while sock.recv(1 << 16):
            pass
    except OSError:
        pass


def run(binary, args):
    nats = NatsServer(jetstream=args.engine == "nats").start()
    nodes, clients = [], []
    try:
        for _ in range(args.nodes):
            config = {
                "broker": "nats", "nats": {"url": nats.url, "prefix": "bench"},
                "api_key": "k", "allow_anonymous_connect_without_token": True,
                "allow_subscribe_for_client": True,
                "allow_subscribe_for_anonymous": True}
            if args.engine == "nats":
                config["engine"] = "nats"
                del config["broker"]
            if args.history or args.engine == "nats":
                config.update({"history_size": 100, "history_ttl": "300s"})
            nodes.append(h.Hermod(binary, config, workers=1, echo=False).start())
        for node in nodes:
            wait_for("connected", lambda: metric(node.port, "hermod_broker_connected") == 1)
        for i, node in enumerate(nodes):
            c = Client(node.port)
            c.connect()
            for j in range(args.channels):
                c.subscribe("room-%d.%d" % (i, j))  # '.': not a NATS token, mapped
            clients.append(c)
            threading.Thread(target=drain, args=(c,), daemon=True).start()
        time.sleep(0.5)  # SUBs settle (not synchronisation: outside the measured span)
        before = [cpu_s(n.proc.pid) for n in nodes]
        nats_before = cpu_s(nats.proc.pid)
        per_node = args.publications // args.nodes

        def publisher(k):
            # Node k publishes to the channels of node k+1 .. k+nodes-1, round robin (or,
            # with --publish-on holder, to its own).
            sent = 0
            while sent < per_node:
                commands = []
                for _ in range(min(args.batch, per_node - sent)):
                    holder = (k + 1 + sent % (args.nodes - 1)) % args.nodes
                    if args.publish_on == "holder":
                        holder = k
                    commands.append({"publish": {
                        "channel": "room-%d.%d" % (holder, sent % args.channels),
                        "data": {"n": sent}}})
                    sent += 1
                r = api_call(nodes[k].port, "batch", {"commands": commands})
                assert r.status == 200 and b"error" not in r.body[:2000], r.body[:300]

        start = time.monotonic()
        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(args.nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = per_node * args.nodes
        # Every node has received what was routed to it: its in-count stops moving.
        expected = None
        for node in nodes:
            last = -1
            while True:
                got = metric(node.port, "hermod_broker_messages_total",
                             'direction="in",kind="publication"')
                if got == last:
                    break
                last = got
                time.sleep(0.3)
        # JetStream's deliveries are not counted above: every node has handled its own once
        # its CPU stops moving.
        while args.engine == "nats":
            was = [cpu_s(n.proc.pid) for n in nodes]
            time.sleep(0.5)
            if sum(cpu_s(n.proc.pid) for n in nodes) - sum(was) < 0.03:  # timers only
                break
        elapsed = time.monotonic() - start
        after = [cpu_s(n.proc.pid) for n in nodes]
        nats_cpu = cpu_s(nats.proc.pid) - nats_before
        rows = []
        for i, node in enumerate(nodes):
            rows.append({
                "cpu_s": after[i] - before[i],
                "us_per_pub": (after[i] - before[i]) * 1e6 / total,
                "received": metric(node.port, "hermod_broker_messages_total",
                                   'direction="in",kind="publication"'),
                "unwanted": metric(node.port, "hermod_broker_received_dropped_total",
                                   'reason="unwanted"'),
            })
        del expected
        return total, elapsed, rows, nats_cpu
    finally:
        for c in clients:
            c.close()
        for n in nodes:
            n.stop()
            n.cleanup()
        nats.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", action="append", required=True, help="NAME=PATH")
    p.add_argument("--nodes", type=int, default=6)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--publications", type=int, default=60000)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--history", action="store_true", help="history on (100 per channel, 5 min)")
    p.add_argument("--publish-on", choices=("others", "holder"), default="others",
                   help="holder: each node publishes to the channels it serves")
    p.add_argument("--engine", choices=("memory", "nats"), default="memory",
                   help="nats: engine nats (history on JetStream), history on")
    args = p.parse_args()
    for spec in args.binary:
        name, path = spec.split("=", 1)
        total, elapsed, rows, nats_cpu = run(path, args)
        cpu = sum(r["cpu_s"] for r in rows)
        print("%s: %d publications in %.1f s; all nodes %.2f CPU s, %.1f us per publication; "
              "nats-server %.2f CPU s" % (name, total, elapsed, cpu, cpu * 1e6 / total, nats_cpu))
        for i, r in enumerate(rows):
            print("  node %d: %.2f CPU s, %.1f us/publication, received %d" %
                  (i, r["cpu_s"], r["us_per_pub"], r["received"] or 0))
        print(json.dumps({"name": name, "total": total, "rows": rows}))


if __name__ == "__main__":
    main()
