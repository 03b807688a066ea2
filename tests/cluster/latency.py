"""Measures the cross-node hop: one client publishes on node A, one subscriber on node A and
one on node B (both nodes `broker: nats`, one nats-server), one publication at a time; prints
p50/p99 from the publish command's send to each subscriber's receipt. A measurement, not a
test (not in ctest); the figures in docs/benchmarks.md ("Cluster") come from it.

Run: python3 tests/cluster/latency.py --hermod build/hermod [--count 2000]
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cluster_test as ct  # noqa: E402
import hermod_harness as h  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hermod", required=True)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    nats = ct.NatsServer().start()
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
            ct.wait_for("connected", lambda: ct.metric(node.port, "hermod_broker_connected") == 1)
        on_a, on_b, publisher = ct.Client(a.port), ct.Client(b.port), ct.Client(a.port)
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


if __name__ == "__main__":
    main()
