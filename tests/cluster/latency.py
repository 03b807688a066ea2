"""Measures the cross-node hop: one client publishes on node A, one subscriber on node A and
one on node B (both nodes `broker: nats`, one nats-server), one publication at a time; prints
p50/p99 from the publish command's send to each subscriber's receipt. A measurement, not a
test (not in ctest); the figures in docs/benchmarks.md ("Cluster") come from it.

Run: python3 tests/cluster/latency.py --hermod build/hermod [--count 2000]

With --rate N: three nodes, a publisher client on node A sending N publications a second
(open loop: each at its own time, not after the previous one arrived) for --seconds, and a
subscriber on each node, each in its own process. It runs twice in the same invocation:
`broker: nats` without history, then `engine: nats` with history (JetStream append, then
delivery). The latency of a publication is its receipt minus the send time it carries
(one machine, one monotonic clock).

Run: python3 tests/cluster/latency.py --hermod build/hermod --rate 1000 [--seconds 20]
"""

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import guard_client as g  # noqa: E402
import hermod_harness as h  # noqa: E402
import nats_harness as nh  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hermod", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=int, help="publications a second, three nodes")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    if args.rate:
        return rate_main(args)
    nats = nh.NatsServer().start()
    unlimited = {"rate": 1000000, "burst": 100000}
    config = {"broker": "nats", "nats": {"url": nats.url}, "api_key": "k",
              "allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
              "allow_subscribe_for_anonymous": True, "allow_publish_for_client": True,
              "client_command_rate_limit": {"publish": unlimited, "total": unlimited}}
    nodes = []
    try:
        for _ in range(2):
            nodes.append(h.Hermod(os.path.abspath(args.hermod), config, workers=1,
                                  echo=False).start())
        a, b = nodes
        for node in nodes:
            nh.wait_for("connected", lambda: nh.metric(node.port, "hermod_broker_connected") == 1)
        on_a, on_b, publisher = g.Client(a.port), g.Client(b.port), g.Client(a.port)
        for c in (on_a, on_b, publisher):
            c.connect()
        on_a.subscribe("m")
        on_b.subscribe("m")
        local, cross = [], []
        for i in range(args.count):
            def is_i(m):
                return m.get("push", {}).get("pub", {}).get("data", {}).get("i") == i
            start = time.perf_counter()
            publisher.send({"publish": {"channel": "m", "data": {"i": i}}})
            on_a.wait(is_i)
            local.append(time.perf_counter() - start)
            on_b.wait(is_i)
            cross.append(time.perf_counter() - start)
        for name, v in (("node A (local)", local), ("node B (over NATS)", cross)):
            v.sort()
            print("%-20s p50 %4.0f us  p99 %5.0f us  (%d publications)"
                  % (name, v[len(v) // 2] * 1e6, v[int(0.99 * (len(v) - 1))] * 1e6, len(v)))
    finally:
        for node in nodes:
            node.signal_stop()
            node.wait_exit()
            node.cleanup()
        nats.stop()


UNLIMITED = {"rate": 1000000, "burst": 100000}


def rate_config(nats, history):
    config = {"nats": {"url": nats.url, "prefix": "latency"}, "api_key": "k",
              "allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
              "allow_subscribe_for_anonymous": True, "allow_publish_for_client": True,
              "client_command_rate_limit": {"publish": UNLIMITED, "total": UNLIMITED}}
    if history:
        config.update({"engine": "nats", "history_size": 100000, "history_ttl": "600s"})
    else:
        config.update({"broker": "nats", "history_size": 0})
    return config


def receive(port, count, ready, out):
    """A subscriber's process: the latency of each of `count` publications, in ns."""
    c = g.Client(port)
    c.connect()
    c.subscribe("m")
    ready.set()
    latencies = []
    seen = set()
    deadline = time.monotonic() + 120
    while len(seen) < count and time.monotonic() < deadline:
        try:
            m = c.read_message(timeout=10)
        except AssertionError:  # nothing for 10 s: what arrived is the answer
            break
        pub = m.get("push", {}).get("pub")
        if pub is None or "t" not in pub["data"]:
            continue
        latencies.append(time.monotonic_ns() - pub["data"]["t"])
        seen.add(pub["data"]["i"])
    c.close()
    out.put((port, latencies))


def percentile(v, q):
    return v[min(len(v) - 1, int(q * len(v)))] / 1000.0


def rate_run(args, history):
    nats = nh.NatsServer(jetstream=history).start()
    nodes = []
    procs = []
    try:
        for _ in range(3):
            nodes.append(h.Hermod(os.path.abspath(args.hermod), rate_config(nats, history),
                                  workers=1, echo=False).start())
        for node in nodes:
            nh.wait_for("connected", lambda: nh.metric(node.port, "hermod_broker_connected") == 1)
        count = int(args.rate * args.seconds)
        out = multiprocessing.Queue()
        for node in nodes:
            ready = multiprocessing.Event()
            p = multiprocessing.Process(target=receive, args=(node.port, count, ready, out))
            p.start()
            procs.append(p)
            assert ready.wait(30), "a subscriber did not subscribe"
        publisher = g.Client(nodes[0].port)
        publisher.connect()
        # Until the other nodes' subjects are live: probes until each subscriber could see one.
        for i in range(20):
            publisher.send({"publish": {"channel": "m", "data": {"probe": i}}})
            time.sleep(0.05)  # probes spread over a second, not a synchronisation
        errors = []

        def drain():
            for _ in range(count + 20):
                m = publisher.read_message(timeout=60)
                if "error" in m:
                    errors.append(m)
        drainer = threading.Thread(target=drain)
        drainer.start()
        start = time.monotonic()
        for i in range(count):
            due = start + i / args.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)  # pacing of the open loop
            publisher.send({"publish": {"channel": "m",
                                        "data": {"i": i, "t": time.monotonic_ns()}}})
        sent_in = time.monotonic() - start
        drainer.join()
        results = {}
        for _ in nodes:
            port, latencies = out.get(timeout=180)
            results[port] = sorted(latencies)
        for p in procs:
            p.join()
        name = "engine nats, history" if history else "broker nats, no history"
        print("%s: %d publications in %.1f s (%.0f/s), %d errors"
              % (name, count, sent_in, count / sent_in, len(errors)))
        for k, node in enumerate(nodes):
            v = results[node.port]
            where = "node A (local)" if k == 0 else "node %s (cross-node)" % "ABC"[k]
            print("  %-22s received %6d  p50 %6.0f us  p99 %7.0f us  p99.9 %7.0f us  max %7.0f us"
                  % (where, len(v), percentile(v, 0.5), percentile(v, 0.99),
                     percentile(v, 0.999), v[-1] / 1000.0))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for node in nodes:
            node.signal_stop()
            node.wait_exit()
            node.cleanup()
        nats.cleanup()


def rate_main(args):
    print(json.dumps({"rate": args.rate, "seconds": args.seconds, "load": os.getloadavg()}))
    rate_run(args, history=False)
    rate_run(args, history=True)


if __name__ == "__main__":
    main()
