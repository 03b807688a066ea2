"""Inboxes with `engine: nats`: two hermod nodes on one nats-server -js share every inbox.

- A publication to an offline user, published through node A, reaches the user when they
  connect to node B, and their ack there shows on A (`inbox_status`).
- A node killed with kill -9 while its user had an unacknowledged publication: the user
  reconnects to the other node and gets it again (delivery 2), never the acked one.
- An ack on A shows at once in B's `inbox_status` (read from NATS), twenty times over.
- A dead letter (`hermod.reject` on A) is listed by B's `dead_letters`; a redrive through B
  reaches the user still connected to A.

Every wait is a condition polled against a deadline; nats-server runs on a free port with a
temporary store directory; every process is stopped at the end.

Run: python3 inbox_test.py --hermod PATH
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import guard_client as g  # noqa: E402
import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from nats_harness import NatsServer, api, wait_for  # noqa: E402


class InboxClusterTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer(jetstream=True).start()
        self.addCleanup(self.nats.cleanup)

    def config(self):
        return {
            "engine": "nats",
            "nats": {"url": self.nats.url, "prefix": "inboxtest", "dial_timeout": "1s",
                     "reconnect_wait": "100ms"},
            "api_key": "k",
            "token_hmac_secret_key": g.SECRET,
            "user_subscribe_to_personal": True,
            "user_personal_channel_namespace": "inbox",
            "namespaces": [{"name": "inbox", "inbox": True, "ack_timeout": "60s",
                            "max_deliveries": 5}],
        }

    def node(self):
        return self.start_server(self.config(), workers=1, echo=False)

    def user(self, server, user):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect({"token": g.jwt({"sub": user})})
        return c

    def status(self, server, channel):
        result = api(server.port, "inbox_status", {"channel": channel})["result"]
        return {p["offset"]: p for p in result["publications"]}

    def test_queued_on_one_node_received_and_acked_on_the_other(self):
        a, b = self.node(), self.node()
        for n in range(3):
            r = api(a.port, "publish", {"channel": "inbox:#42", "data": {"n": n}})
            self.assertEqual(r["result"]["offset"], n + 1)
        wait_for("b holds all three", lambda: len(self.status(b, "inbox:#42")) == 3)
        c = self.user(b, "42")
        got = [c.next_publication("inbox:#42") for _ in range(3)]
        self.assertEqual([p["data"] for p in got], [{"n": 0}, {"n": 1}, {"n": 2}])
        self.assertEqual([p["offset"] for p in got], [1, 2, 3])
        self.assertEqual({p["tags"]["hermod-delivery"] for p in got}, {"1"})
        self.assertEqual(c.rpc("hermod.ack", {"channel": "inbox:#42", "up_to": 3})["data"],
                         {"offsets": [1, 2, 3]})
        wait_for("a sees the acks", lambda: all(
            p["status"] == "acked" for p in self.status(a, "inbox:#42").values()))
        # Published through A while the user is on B: delivered at once, by B.
        api(a.port, "publish", {"channel": "inbox:#42", "data": {"n": 3}})
        self.assertEqual(c.next_publication("inbox:#42", timeout=5)["data"], {"n": 3})

    def test_unacked_on_a_killed_node_is_delivered_again_on_the_other(self):
        a = h.Hermod(h.HERMOD, self.config(), workers=1, echo=False)
        self.addCleanup(a.cleanup)
        a.start()
        b = self.node()
        c = self.user(a, "7")
        api(a.port, "publish", {"channel": "inbox:#7", "data": {"n": 1}})
        api(a.port, "publish", {"channel": "inbox:#7", "data": {"n": 2}})
        self.assertEqual(c.next_publication("inbox:#7")["offset"], 1)
        self.assertEqual(c.next_publication("inbox:#7")["offset"], 2)
        self.assertEqual(c.rpc("hermod.ack", {"channel": "inbox:#7", "offsets": [1]})["data"],
                         {"offsets": [1]})
        wait_for("b sees the ack and the delivery", lambda: (
            lambda s: s.get(1, {}).get("status") == "acked" and
            s.get(2, {}).get("deliveries") == 1)(self.status(b, "inbox:#7")))
        a.kill()
        c2 = self.user(b, "7")
        p = c2.next_publication("inbox:#7")
        self.assertEqual((p["offset"], p["data"], p["tags"]["hermod-delivery"]),
                         (2, {"n": 2}, "2"))
        self.assertIsNone(c2.try_publication("inbox:#7", 0.5))
        self.assertEqual(c2.rpc("hermod.ack", {"channel": "inbox:#7", "offsets": [2]})["data"],
                         {"offsets": [2]})
        self.assertEqual(self.status(b, "inbox:#7")[2]["status"], "acked")

    def test_status_on_the_other_node_right_after_an_ack_is_current(self):
        """An ack on A, then at once `inbox_status` on B, twenty times: B reads the entries
        it answers from NATS, so each shows acked, asked by offset and for the whole inbox,
        however far B's watcher is behind."""
        a, b = self.node(), self.node()
        c = self.user(a, "11")
        for n in range(1, 21):
            api(a.port, "publish", {"channel": "inbox:#11", "data": {"n": n}})
            self.assertEqual(c.next_publication("inbox:#11")["offset"], n)
            self.assertEqual(c.rpc("hermod.ack", {"channel": "inbox:#11", "offsets": [n]})
                             ["data"], {"offsets": [n]})
            asked = api(b.port, "inbox_status", {"channel": "inbox:#11", "offsets": [n]})
            self.assertEqual([(p["offset"], p["status"]) for p in
                              asked["result"]["publications"]], [(n, "acked")])
            whole = self.status(b, "inbox:#11")
            self.assertEqual(sorted(whole), list(range(1, n + 1)))
            self.assertEqual({p["status"] for p in whole.values()}, {"acked"})

    def test_dead_letters_are_seen_and_redriven_from_any_node(self):
        a, b = self.node(), self.node()
        c = self.user(a, "9")
        api(b.port, "publish", {"channel": "inbox:#9", "data": {"n": 1}})
        self.assertEqual(c.next_publication("inbox:#9", timeout=5)["offset"], 1)
        self.assertEqual(c.rpc("hermod.reject", {"channel": "inbox:#9", "offsets": [1],
                                                 "reason": "bad"})["data"], {"offsets": [1]})
        dead = wait_for("b lists the dead letter", lambda: api(
            b.port, "dead_letters", {"user": "9"})["result"]["dead_letters"])
        self.assertEqual((dead[0]["channel"], dead[0]["offset"], dead[0]["reason"]),
                         ("inbox:#9", 1, "bad"))
        self.assertEqual(api(b.port, "dead_letters_redrive", {"channel": "inbox:#9"})["result"],
                         {"offsets": [1]})
        p = c.next_publication("inbox:#9", timeout=5)
        self.assertEqual((p["offset"], p["tags"]["hermod-delivery"]), (1, "1"))
        wait_for("a forgets the dead letter", lambda: api(
            a.port, "dead_letters", {})["result"]["dead_letters"] == [])

    def test_sigterm_exits_at_once(self):
        """SIGTERM with every NATS user on (broker, history, schedules, inbox, presence): each
        closes its own connection and libnats is closed once, after them all. Closed by the
        broker first, it waited its whole 2 s timeout for the others' connections."""
        a = self.node()
        c = self.user(a, "5")
        api(a.port, "publish", {"channel": "inbox:#5", "data": {"n": 1}})
        self.assertEqual(c.next_publication("inbox:#5")["offset"], 1)
        # Gone first: a client that does not answer the close frame is waited for 2 s.
        c.close()
        wait_for("the client gone", lambda: api(a.port, "info", {})["result"]["nodes"][0][
            "num_clients"] == 0)
        started = time.monotonic()
        a.signal_stop()
        self.assertEqual(a.wait_exit(), 0, a.stderr_text())
        took = time.monotonic() - started
        self.assertEqual([line for line in a.log if "did not" in line], [])
        self.assertLess(took, 1.5, a.stderr_text())


if __name__ == "__main__":
    h.main()
