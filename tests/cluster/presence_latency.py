"""Measures `presence` latency on one node: N clients subscribed to one channel on node A,
and one client on node A asking `presence` (client command) and `presence_stats`, one at a
time, with presence_engine memory and then nats (one `nats-server -js`); prints p50/p99. A
measurement, not a test (not in ctest); the figures in docs/benchmarks.md come from it.

Run: python3 tests/cluster/presence_latency.py --hermod build/hermod [--count 1000]
     [--clients 100]
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from nats_harness import NatsServer  # noqa: E402


def measure(hermod, config, clients, count):
    node = h.Hermod(hermod, config, workers=1, echo=False).start()
    held = []
    try:
        for _ in range(clients):
            c = Client(node.port)
            c.connect()
            c.subscribe("room")
            held.append(c)
        asker = Client(node.port)
        asker.connect()
        out = {}
        for method in ("presence", "presence_stats"):
            times = []
            for _ in range(count):
                start = time.perf_counter()
                reply = asker.call(method, {"channel": "room"})
                times.append(time.perf_counter() - start)
                assert method in reply, reply
            listed = reply[method]
            size = len(listed["presence"]) if method == "presence" else listed["num_clients"]
            assert size == clients, (size, clients)
            times.sort()
            out[method] = (times[len(times) // 2] * 1e6, times[int(0.99 * (len(times) - 1))] * 1e6)
        return out
    finally:
        for c in held:
            c.close()
        node.signal_stop()
        node.wait_exit()
        node.cleanup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hermod", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    unlimited = {"rate": 1000000, "burst": 100000}
    nats = NatsServer(jetstream=True).start()
    try:
        base = {"allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
                "allow_subscribe_for_anonymous": True, "allow_presence_for_client": True,
                "allow_presence_for_anonymous": True, "presence": True,
                "client_command_rate_limit": {"presence": unlimited, "total": unlimited}}
        for engine in ("memory", "nats"):
            config = dict(base, presence_engine=engine, nats={"url": nats.url})
            result = measure(os.path.abspath(args.hermod), config, args.clients, args.count)
            for method, (p50, p99) in result.items():
                print("%-6s %-15s p50 %6.0f us  p99 %6.0f us  (%d calls, %d clients listed)"
                      % (engine, method, p50, p99, args.count, args.clients))
    finally:
        nats.cleanup()


if __name__ == "__main__":
    main()
