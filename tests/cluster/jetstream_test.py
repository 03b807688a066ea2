"""History on JetStream (`history_engine: nats`): three hermod nodes on one nats-server -js.

- Publications made concurrently through the API of all three nodes to one channel get
  offsets 1..N, each once, and every node answers `history` identically.
- A subscriber on node A gets the publications made on every node, with the cluster's
  offsets, in order; node A dies (kill -9); the client subscribes on node B with its last
  position: recovered, exactly the publications it missed, no gap, no duplicate.
- idempotency_key is honoured across nodes: the same key on another node answers the first
  offset and publishes nothing.
- nats-server restarts (same store dir): history and epoch intact; while it is down, a
  publication to a channel with history is refused with an error (never answered 200 and
  lost), and one without history still goes out locally.
- nats-server killed (-9): publications with history are refused with the API's error (code
  100, no result), counted in hermod_store_errors_total{engine="nats"}; past the breaker's
  threshold they are refused without a request (reason breaker_open); /health's `store`
  check is degraded. Restarted on the same port and store dir: the next publications are
  stored after the last one answered, and the check is healthy again.
- A stream whose config conflicts with hermod's stops start-up with a message naming it.

Every wait is a condition polled against a deadline; nats-server runs on a free port with a
temporary store directory; every process is stopped at the end.

Run: python3 jetstream_test.py --hermod PATH
"""

import json
import os
import re
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client, api_call, metric  # noqa: E402
from nats_harness import DEADLINE_S, NatsServer, api, get, wait_for  # noqa: E402



def history(port, channel):
    result = api(port, "history", {"channel": channel, "limit": -1})["result"]
    return result


class JetStreamTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer(jetstream=True).start()
        self.addCleanup(self.nats.cleanup)

    def node(self, **extra):
        config = {
            "broker": "nats",
            "history_engine": "nats",
            "nats": {"url": self.nats.url, "prefix": "jstest", "dial_timeout": "1s",
                     "reconnect_wait": "100ms"},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "allow_publish_for_client": True,
            "history_size": 1000,
            "history_ttl": "600s",
            "force_recovery": True,
        }
        config.update(extra)
        return self.start_server(config, workers=2, echo=False)

    def client(self, server):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        return c

    def test_concurrent_publications_get_contiguous_offsets_and_one_history(self):
        nodes = [self.node(), self.node(), self.node()]
        each = 60
        offsets = []
        errors = []
        lock = threading.Lock()

        def publish(node, tag):
            for i in range(each):
                r = api(node.port, "publish", {"channel": "race", "data": {"n": tag, "i": i}})
                with lock:
                    if "error" in r:
                        errors.append(r)
                    else:
                        offsets.append(r["result"]["offset"])

        threads = [threading.Thread(target=publish, args=(n, k)) for k, n in enumerate(nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(sorted(offsets), list(range(1, 3 * each + 1)))
        views = [history(n.port, "race") for n in nodes]
        for view in views:
            self.assertEqual(view["offset"], 3 * each)
            self.assertEqual([p["offset"] for p in view["publications"]],
                             list(range(1, 3 * each + 1)))
        self.assertEqual(views[0], views[1])
        self.assertEqual(views[0], views[2])
        # Each node's own publications appear in its order.
        for k in range(3):
            mine = [p["data"]["i"] for p in views[0]["publications"] if p["data"]["n"] == k]
            self.assertEqual(mine, list(range(each)))

    def test_client_recovers_on_another_node_after_kill(self):
        a, b, c = self.node(), self.node(), self.node()
        on_a = self.client(a)
        sub = on_a.subscribe("feed", recover=False)
        epoch = sub["epoch"]
        seen = []
        # Publications made on every node reach node A's subscriber with the cluster's
        # offsets, in order.
        for i, node in enumerate([a, b, c, b, a, c]):
            r = api(node.port, "publish", {"channel": "feed", "data": {"i": i}})
            self.assertNotIn("error", r)
        for i in range(6):
            pub = on_a.next_publication("feed", DEADLINE_S)
            self.assertEqual(pub["data"], {"i": i})
            seen.append(pub["offset"])
        self.assertEqual(seen, list(range(1, 7)))
        a.kill()  # kill -9: no goodbye
        a.stop = lambda: None  # killed on purpose: no clean exit for the teardown to check
        for i in range(6, 10):
            self.assertNotIn("error", api(c.port, "publish", {"channel": "feed",
                                                              "data": {"i": i}}))
        on_b = self.client(b)
        again = on_b.subscribe("feed", recover=True, offset=seen[-1], epoch=epoch)
        self.assertTrue(again["recovered"], again)
        self.assertEqual(again["epoch"], epoch)
        got = [(p["offset"], p["data"]["i"]) for p in again.get("publications", [])]
        # What node B had not yet received from JetStream when it answered comes next, live.
        while not got or got[-1][0] < 10:
            pub = on_b.next_publication("feed", DEADLINE_S)
            got.append((pub["offset"], pub["data"]["i"]))
        self.assertEqual(got, [(7, 6), (8, 7), (9, 8), (10, 9)])
        # And it goes on live from node B, with the next offset.
        api(c.port, "publish", {"channel": "feed", "data": {"i": 10}})
        pub = on_b.next_publication("feed", DEADLINE_S)
        self.assertEqual((pub["offset"], pub["data"]), (11, {"i": 10}))

    def test_idempotency_key_across_nodes(self):
        a, b = self.node(), self.node()
        first = api(a.port, "publish", {"channel": "pay", "data": {"x": 1},
                                        "idempotency_key": "once"})["result"]
        again = api(b.port, "publish", {"channel": "pay", "data": {"x": 1},
                                        "idempotency_key": "once"})["result"]
        self.assertEqual(first["offset"], again["offset"])
        self.assertEqual(first["epoch"], again["epoch"])
        other = api(b.port, "publish", {"channel": "pay", "data": {"x": 2}})["result"]
        self.assertEqual(other["offset"], first["offset"] + 1)
        self.assertEqual(len(history(a.port, "pay")["publications"]), 2)

    def test_nats_server_restart_keeps_history_and_outage_refuses(self):
        a = self.node()
        for i in range(3):
            api(a.port, "publish", {"channel": "keep", "data": {"i": i}})
        before = history(a.port, "keep")
        self.nats.stop()
        # While JetStream is gone: refused with an error, never 200-and-lost.
        r = api_call(a.port, "publish", {"channel": "keep", "data": {"i": "lost"}})
        body = json.loads(r.body) if r.body else {}
        self.assertTrue(r.status != 200 or "error" in body, (r.status, r.body))
        failures = re.search(r'^hermod_store_append_failures_total\{engine="nats"\} (\d+)$',
                             get(a.port, "/metrics"), re.M)
        self.assertGreaterEqual(int(failures.group(1)), 1)
        self.nats.start()

        def stored():
            # Retried with a key, as a publisher that wants it once would.
            r = api(a.port, "publish", {"channel": "keep", "data": {"i": 3},
                                        "idempotency_key": "after-restart"})
            return r.get("result")
        after = wait_for("a publication stored after the restart", stored)
        self.assertEqual(after["epoch"], before["epoch"])
        self.assertEqual(after["offset"], 4)
        view = history(a.port, "keep")
        self.assertEqual([p["data"]["i"] for p in view["publications"]], [0, 1, 2, 3])
        self.assertNotIn("lost", json.dumps(view))

    def test_jetstream_killed_opens_the_breaker_and_degrades_health_until_it_returns(self):
        a = self.node()
        for i in range(2):
            api(a.port, "publish", {"channel": "kept", "data": {"i": i}})

        def store_check():
            health = json.loads(get(a.port, "/health"))
            return [k for k in health["checks"] if k["name"] == "store"][0]

        self.assertEqual(store_check()["level"], "healthy")
        self.nats.stop(kill=True)
        for _ in range(8):  # past the breaker's threshold (5 failures)
            r = json.loads(api_call(a.port, "publish",
                                    {"channel": "kept", "data": {"i": "lost"}}).body)
            self.assertNotIn("result", r)
            self.assertEqual(r["error"]["code"], 100, r)
        self.assertGreaterEqual(metric(a.port, "hermod_store_errors_total", engine="nats",
                                       reason="io"), 1)
        self.assertGreaterEqual(metric(a.port, "hermod_store_errors_total", engine="nats",
                                       reason="breaker_open"), 1)
        self.assertGreaterEqual(metric(a.port, "hermod_store_operations_total", engine="nats",
                                       kind="append"), 2)
        # /health evaluates its checks periodically: polled.
        check = wait_for("the store check degraded",
                         lambda: store_check()["level"] == "degraded" and store_check())
        self.assertIn("breaker open", check["detail"])
        self.nats.start()  # same port, same store dir

        def stored():
            r = json.loads(api_call(a.port, "publish", {"channel": "kept", "data": {"i": 2}}).body)
            return r.get("result")
        after = wait_for("a publication stored after the restart", stored)
        self.assertEqual(after["offset"], 3)
        wait_for("the store check healthy again", lambda: store_check()["level"] == "healthy")
        view = history(a.port, "kept")
        self.assertEqual([p["data"]["i"] for p in view["publications"]], [0, 1, 2])

    def test_conflicting_stream_stops_start(self):
        # A stream of hermod's name with other subjects, made before hermod starts.
        nats = h.Hermod(h.HERMOD, {
            "history_engine": "nats",
            "nats": {"url": self.nats.url, "prefix": "other", "jetstream": {"stream": "CLASH"}},
            "history_size": 10, "history_ttl": "60s"})
        self.addCleanup(nats.cleanup)
        nats.start()
        nats.stop()
        clash = h.Hermod(h.HERMOD, {
            "history_engine": "nats",
            "nats": {"url": self.nats.url, "prefix": "mine", "jetstream": {"stream": "CLASH"}},
            "history_size": 10, "history_ttl": "60s"})
        self.addCleanup(clash.cleanup)
        with self.assertRaises(AssertionError) as failed:
            clash.start()
        self.assertIn("CLASH", str(failed.exception))
        self.assertIn("fix", str(failed.exception))


if __name__ == "__main__":
    h.main()
