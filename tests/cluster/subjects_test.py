"""Per-channel subjects over a real nats-server: three hermod nodes, `broker: nats`.

- A node receives a channel's publications only while it holds the channel: node C, with no
  subscriber, gets none of what node A publishes to node B's subscribers (its received
  count says so, and nats-server's /connz shows that only A's and B's connections are
  subscribed to the channel's subject). A channel name that is no NATS token ("room.1 *>")
  crosses as any other.
- Churn: many clients on node C subscribe and unsubscribe at once; node C ends subscribed
  while one of them stays, and unsubscribed once the last leaves, with far fewer SUBs than
  subscribes (batched, coalesced).
- No window: a subscribe reply on node B waits for B's SUB to be acknowledged by
  nats-server, so every publication node A makes after the reply reaches B's subscriber, in
  order, none lost (a fresh channel each time: B's first subscriber to it).

Every wait is a condition polled against a deadline; nats-server picks its own client port,
its monitoring port is a free one; every process is stopped at the end.

Run: python3 subjects_test.py --hermod PATH
"""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from nats_harness import DEADLINE_S, NatsServer, api, free_port, metric, wait_for  # noqa: E402

PREFIX = "hermodsubj"


class MonitoredNats(NatsServer):
    """nats-server with its HTTP monitoring (/connz) on a free port."""

    def __init__(self):
        self.monitor = free_port()
        super().__init__(extra=["-m", str(self.monitor)])

    def connz_subjects(self):
        url = "http://127.0.0.1:%d/connz?subs=1&limit=1024" % self.monitor
        with urllib.request.urlopen(url, timeout=5) as r:
            conns = json.loads(r.read())["connections"]
        return [(c.get("name", ""), set(c.get("subscriptions_list") or [])) for c in conns]


def subject(channel):
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:=@+,;~!")
    token = "".join(chr(b) if b in safe else "%%%02X" % b for b in channel.encode())
    return "%s.ch.%s" % (PREFIX, token or "%")


class SubjectsTest(h.HermodTestCase):
    def setUp(self):
        self.nats = MonitoredNats().start()
        self.addCleanup(lambda: self.nats.stop())

    def node(self):
        config = {
            "broker": "nats",
            "nats": {"url": self.nats.url, "prefix": PREFIX, "dial_timeout": "500ms",
                     "reconnect_wait": "100ms"},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "allow_publish_for_client": True,
        }
        s = self.start_server(config, workers=2, echo=False)
        wait_for("node connected", lambda: metric(s.port, "hermod_broker_connected") == 1)
        return s

    def client(self, server, channel=None):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        if channel:
            c.subscribe(channel)
        return c

    def subjects(self, server):
        return metric(server.port, "hermod_broker_subjects")

    def received(self, server):
        return metric(server.port, "hermod_broker_messages_total",
                      'direction="in",kind="publication"')

    def holders(self, channel):
        return sum(1 for _, subs in self.nats.connz_subjects() if subject(channel) in subs)

    def test_a_node_without_subscribers_receives_nothing(self):
        a, b, c = self.node(), self.node(), self.node()
        channel = "room.1 *>"
        on_b = self.client(b, channel)
        on_c = self.client(c, "sentinel")
        wait_for("B and C subscribed", lambda: self.subjects(b) == 1 and self.subjects(c) == 1)
        self.assertEqual(self.holders(channel), 1)  # B only: A publishes, holds nothing
        self.assertEqual(self.holders("sentinel"), 1)
        for n in range(50):
            api(a.port, "publish", {"channel": channel, "data": {"n": n}})
        # After what node A published to B's channel, one publication C holds: nats-server
        # keeps one publisher's order towards each subscriber, so once C has the sentinel,
        # anything of the 50 that was routed to C has arrived too.
        api(a.port, "publish", {"channel": "sentinel", "data": {"end": True}})
        self.assertEqual(on_c.try_publication("sentinel", DEADLINE_S), {"end": True})
        for n in range(50):
            self.assertEqual(on_b.try_publication(channel, DEADLINE_S), {"n": n})
        self.assertEqual(self.received(c), 1)
        self.assertEqual(self.received(b), 50)
        self.assertEqual(self.subjects(a), 0)

    def test_churn_ends_in_the_right_interest(self):
        a, c = self.node(), self.node()
        clients = [self.client(c) for _ in range(20)]
        for round_ in range(5):
            # Every client's command is on the wire before any reply is read: a storm.
            ids = [cl.send(("subscribe", {"channel": "churn"}))[0] for cl in clients]
            for cl, i in zip(clients, ids):
                self.assertIn("subscribe", cl.reply(i))
            leaving = clients[1:] if round_ == 4 else clients
            ids = [cl.send(("unsubscribe", {"channel": "churn"}))[0] for cl in leaving]
            for cl, i in zip(leaving, ids):
                self.assertNotIn("error", cl.reply(i))
        # One client stays: node C holds the channel, the server has its SUB.
        wait_for("C subscribed", lambda: self.subjects(c) == 1 and self.holders("churn") == 1)
        subs = metric(c.port, "hermod_broker_interest_changes_total", 'op="sub"')
        self.assertLessEqual(subs, 5)  # at most one SUB per round, not one per subscribe
        api(a.port, "publish", {"channel": "churn", "data": {"x": 1}})
        self.assertEqual(clients[0].try_publication("churn", DEADLINE_S), {"x": 1})
        # The last one leaves: the subject goes.
        clients[0].call("unsubscribe", {"channel": "churn"})
        wait_for("C unsubscribed", lambda: self.subjects(c) == 0 and self.holders("churn") == 0)

    def test_no_publication_made_after_the_subscribe_reply_is_lost(self):
        a, b = self.node(), self.node()
        for i in range(10):
            channel = "fresh-%d" % i
            on_b = self.client(b, channel)  # returns once the subscribe reply is read
            for n in range(100):
                api(a.port, "publish", {"channel": channel, "data": {"n": n}})
            for n in range(100):
                self.assertEqual(on_b.try_publication(channel, DEADLINE_S), {"n": n})


if __name__ == "__main__":
    h.main()
