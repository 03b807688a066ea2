"""Presence across a cluster (presence_engine nats) over a real `nats-server -js`.

Three hermod nodes share one NATS KV bucket. Clients subscribed on nodes A and B are listed
by `presence` and counted by `presence_stats` on node C, which has no client in the channel,
through the server API and the client command alike. Node A is killed (SIGKILL: nothing is
removed): its entries are gone within presence_ttl (2 s here), while node B's, refreshed by
B, stay past the TTL. With nats-server gone, presence on a node answers an error (never an
empty list), counted, and /health shows the `presence` check degraded.
A client that leaves while its node cannot reach NATS is removed once nats-server is back
(killed -9, restarted on the same port and store directory), not left until presence_ttl.

Every wait is a condition polled against a deadline; nats-server picks its own port and
keeps JetStream in a temporary directory; every process is stopped at the end.

Run: python3 kv_presence_test.py --hermod PATH
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import SECRET, Client, jwt  # noqa: E402
from nats_harness import DEADLINE_S, NatsServer, api, get, metric, wait_for  # noqa: E402

TTL_S = 2.0
CHANNEL = "room.1 *"  # not a NATS token: escaped into the bucket's keys


def listed(port):
    """{client id: user} of CHANNEL from node port's API."""
    answer = api(port, "presence", {"channel": CHANNEL})
    assert "result" in answer, answer
    return {c: info["user"] for c, info in answer["result"]["presence"].items()}


class PresenceClusterTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer(jetstream=True).start()
        self.addCleanup(self.nats.cleanup)

    def node(self, killed=False, ttl_s=TTL_S, bucket="presence_test"):
        """A node; killed: one the test kills, whose exit status is not checked."""
        config = {
            "broker": "nats",
            "presence_engine": "nats",
            "presence_ttl": "%dms" % int(ttl_s * 1000),
            "nats": {"url": self.nats.url, "prefix": "presencetest", "dial_timeout": "500ms",
                     "reconnect_wait": "100ms", "presence": {"bucket": bucket}},
            "health": {"check_interval_ms": 100},
            "api_key": "k",
            "token_hmac_secret_key": SECRET,
            "allow_subscribe_for_client": True,
            "allow_presence_for_client": True,
            "presence": True,
        }
        if not killed:
            return self.start_server(config, workers=2, echo=False)
        server = h.Hermod(h.HERMOD, config, workers=2, echo=False)
        self.addCleanup(server.cleanup)
        server.start()
        return server

    def client(self, server, user, channel=None):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect({"token": jwt({"sub": user})})
        if channel:
            c.subscribe(channel)
        return c

    def test_every_node_lists_every_node_and_a_killed_nodes_entries_expire(self):
        a, b, c = self.node(killed=True), self.node(), self.node()
        on_a = self.client(a, "alice", CHANNEL)
        bob = self.client(b, "bob", CHANNEL)
        alice_on_b = self.client(b, "alice", CHANNEL)
        everyone = {on_a.id: "alice", bob.id: "bob", alice_on_b.id: "alice"}

        # Node C has nobody in the channel, and lists both other nodes' clients.
        wait_for("node C to list A's and B's clients", lambda: listed(c.port) == everyone)
        stats = api(c.port, "presence_stats", {"channel": CHANNEL})["result"]
        self.assertEqual(stats, {"num_clients": 3, "num_users": 2})
        asker = self.client(c, "carol")  # not subscribed: allow_presence_for_client
        presence = asker.presence(CHANNEL)["presence"]
        self.assertEqual({k: v["user"] for k, v in presence.items()}, everyone)
        self.assertEqual(asker.result("presence_stats", {"channel": CHANNEL}),
                         {"num_clients": 3, "num_users": 2})
        # Node A's own view is the same.
        self.assertEqual(listed(a.port), everyone)

        # A dies without a word: its entry outlives it until the TTL.
        subscribed = time.monotonic()
        a.kill()
        killed = time.monotonic()
        wait_for("A's client to expire", lambda: on_a.id not in listed(c.port),
                 timeout=TTL_S * 2 + 5)
        gone_after = time.monotonic() - killed
        self.assertLess(gone_after, TTL_S + 2.0, "A's entry outlived presence_ttl by far")
        # B's entries are older than the TTL by now (or become so): B refreshes them.
        while time.monotonic() - subscribed < TTL_S * 1.5:
            self.assertEqual(listed(c.port), {bob.id: "bob", alice_on_b.id: "alice"})
            time.sleep(0.1)  # sampling a condition that must hold throughout, not a sync
        self.assertEqual(api(c.port, "presence_stats", {"channel": CHANNEL})["result"],
                         {"num_clients": 2, "num_users": 2})

        # A clean leave is seen at once (no TTL wait).
        bob.unsubscribe(CHANNEL)
        wait_for("bob's leave", lambda: listed(c.port) == {alice_on_b.id: "alice"}, timeout=5)

        # nats-server gone: an error, never an empty list; counted; health degraded.
        self.nats.stop()

        def refused():
            answer = api(c.port, "presence", {"channel": CHANNEL})
            return answer.get("error", {}).get("code") == 100
        wait_for("presence to answer an error", refused)
        reply = asker.call("presence", {"channel": CHANNEL})
        self.assertEqual(reply.get("error", {}).get("code"), 100, reply)
        self.assertGreaterEqual(
            metric(c.port, "hermod_store_presence_errors_total", 'kind="read"'), 2)

        def degraded():
            checks = {x["name"]: x for x in json.loads(get(c.port, "/health"))["checks"]}
            return checks.get("presence", {}).get("level") == "degraded"
        wait_for("/health's presence check degraded", degraded)

    def test_a_leave_during_a_nats_outage_is_removed_once_nats_returns(self):
        # A TTL far past the deadline: only the delete sent after the outage can remove it.
        ttl_s = 300
        a = self.node(ttl_s=ttl_s, bucket="presence_outage")
        b = self.node(ttl_s=ttl_s, bucket="presence_outage")
        on_a = self.client(a, "alice", CHANNEL)
        bob = self.client(b, "bob", CHANNEL)
        wait_for("both listed", lambda: listed(b.port) == {on_a.id: "alice", bob.id: "bob"})

        self.nats.stop(kill=True)  # its file store keeps alice's entry
        wait_for("node A to see NATS gone",
                 lambda: api(a.port, "presence", {"channel": CHANNEL}).get("error"))
        on_a.close()  # alice leaves while node A cannot tell NATS
        wait_for("the delete kept", lambda: metric(
            a.port, "hermod_store_presence_pending_deletes") == 1)

        self.nats.start()  # the same port and store directory
        # Back on NATS, node B tells its subscribers they may have missed publications from
        # other nodes (unsubscribe 2500); bob resubscribes, as the SDK does.
        told = bob.wait(lambda m: "unsubscribe" in m.get("push", {}), timeout=DEADLINE_S)
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        bob.subscribe(CHANNEL)

        def only_bob():
            answer = api(b.port, "presence", {"channel": CHANNEL})  # an error until B is back
            return "result" in answer and set(answer["result"]["presence"]) == {bob.id}
        wait_for("alice's entry removed long before presence_ttl", only_bob)
        self.assertEqual(metric(a.port, "hermod_store_presence_pending_deletes"), 0)
        self.assertEqual(
            metric(a.port, "hermod_store_presence_errors_total", 'kind="delete_dropped"'), 0)


if __name__ == "__main__":
    h.main()
