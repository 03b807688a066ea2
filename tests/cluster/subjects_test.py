"""Per-channel subjects over a real nats-server: three hermod nodes, `broker: nats`, then
`engine: nats`.

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

The same three tests run again with `engine: nats` (nats-server -js; history on JetStream,
presence on KV), where a channel without history crosses the broker's subjects alike; and a
node's own subscriptions (its four NATS connections, told apart in /connz by when they
appeared) hold a channel's subject only while a client of the node is subscribed to it.
Known gap, an expected failure: a channel with history reaches every node under `engine:
nats`, held or not (each node subscribes <prefix>.deliver.>, JetStream's RePublish).

Every wait is a condition polled against a deadline; nats-server picks its own client port,
its monitoring port is a free one; every process is stopped at the end.

Run: python3 subjects_test.py --hermod PATH
"""

import base64
import json
import os
import re
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


class MonitoredJetStream(MonitoredNats):
    """nats-server -js (a temporary store directory) with its monitoring on a free port."""

    def __init__(self):
        self.monitor = free_port()
        NatsServer.__init__(self, jetstream=True, extra=["-m", str(self.monitor)])

    def connections(self):
        """cid -> (name, subscribed subjects) of every client connection."""
        url = "http://127.0.0.1:%d/connz?subs=1&limit=1024" % self.monitor
        with urllib.request.urlopen(url, timeout=5) as r:
            conns = json.loads(r.read())["connections"]
        return {c["cid"]: (c.get("name", ""), set(c.get("subscriptions_list") or []))
                for c in conns}


def history_token(channel):
    """store/nats_history.h's token: the name itself, or `~` and its unpadded base64url."""
    if channel and re.fullmatch(r"[A-Za-z0-9_:-]+", channel):
        return channel
    return "~" + base64.urlsafe_b64encode(channel.encode()).decode().rstrip("=")


class EngineNatsSubjectsTest(SubjectsTest):
    """The same fan-out by channel subject with `engine: nats` (history on JetStream, presence
    on KV): a channel without history crosses the broker's per-channel subjects; one with
    history reaches the nodes through JetStream's RePublish to <prefix>.deliver.<token>."""

    def setUp(self):
        self.nats = MonitoredJetStream().start()
        self.addCleanup(self.nats.cleanup)
        self.owners = {}  # node port -> the cids of its NATS connections

    def node(self):
        config = {
            "engine": "nats",
            "nats": {"url": self.nats.url, "prefix": PREFIX, "dial_timeout": "500ms",
                     "reconnect_wait": "100ms"},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "allow_publish_for_client": True,
            "namespaces": [{"name": "h", "history_size": 100, "history_ttl": "600s",
                            "allow_subscribe_for_client": True,
                            "allow_subscribe_for_anonymous": True}],
        }
        before = set(self.nats.connections())
        s = self.start_server(config, workers=2, echo=False)
        wait_for("node connected", lambda: metric(s.port, "hermod_broker_connected") == 1)
        # Its connections: those that appeared while it started (nodes start one at a time):
        # the broker's, history's, presence's and schedules'.
        mine = wait_for("the node's four NATS connections", lambda: (lambda new: len(new) == 4
                        and new)(set(self.nats.connections()) - before))
        self.owners[s.port] = mine
        return s

    def subscribed(self, server):
        """Every subject the node's NATS connections are subscribed to."""
        conns = self.nats.connections()
        return set().union(*[conns[cid][1] for cid in self.owners[server.port] if cid in conns])

    def deliveries_to(self, server, channel):
        """The node's subscriptions that receive channel's history deliveries."""
        exact = "%s.deliver.%s" % (PREFIX, history_token(channel))
        return {s for s in self.subscribed(server)
                if s == exact or s in ("%s.deliver.>" % PREFIX, ">", "%s.>" % PREFIX)}

    def test_a_node_subscribes_a_channel_only_while_a_client_holds_it(self):
        a, b = self.node(), self.node()
        channel = "live 2.*>"
        self.client(b, channel)
        wait_for("B subscribed", lambda: subject(channel) in self.subscribed(b))
        self.assertNotIn(subject(channel), self.subscribed(a))
        on_a = self.client(a, channel)
        wait_for("A subscribed", lambda: subject(channel) in self.subscribed(a))
        api(b.port, "publish", {"channel": channel, "data": {"x": 1}})
        self.assertEqual(on_a.try_publication(channel, DEADLINE_S), {"x": 1})
        on_a.call("unsubscribe", {"channel": channel})
        wait_for("A unsubscribed", lambda: subject(channel) not in self.subscribed(a))
        self.assertIn(subject(channel), self.subscribed(b))

    def test_history_deliveries_reach_only_the_nodes_holding_the_channel(self):
        a, b, c = self.node(), self.node(), self.node()
        channel = "h:room.1"
        on_b = self.client(b, channel)
        for n in range(20):
            self.assertIn("result", api(a.port, "publish", {"channel": channel,
                                                            "data": {"n": n}}))
        for n in range(20):
            self.assertEqual(on_b.try_publication(channel, DEADLINE_S), {"n": n})
        self.assertEqual(self.deliveries_to(c, channel), set())
        self.client(c, channel)
        wait_for("C subscribed", lambda: self.deliveries_to(c, channel))

    def test_no_history_publication_made_after_the_subscribe_reply_is_lost(self):
        # The reply waits for the node's delivery subscription to be in place; what was
        # appended between the position it carries and that moment is read back.
        a, b = self.node(), self.node()
        for i in range(5):
            channel = "h:fresh-%d" % i
            on_b = self.client(b, channel)  # returns once the subscribe reply is read
            for n in range(50):
                api(a.port, "publish", {"channel": channel, "data": {"n": n}})
            for n in range(50):
                self.assertEqual(on_b.try_publication(channel, DEADLINE_S), {"n": n})

    def test_a_publication_racing_the_subscribe_arrives_with_no_later_one(self):
        # A publication appended while B's delivery subscription is on its way is never
        # RePublished to B; it must still reach the subscriber whose reply is before it,
        # without waiting for a later publication to show the gap (here there is none).
        a, b = self.node(), self.node()
        for i in range(20):
            channel = "h:race-%d" % i
            on_b = self.client(b)
            sub_id = on_b.send(("subscribe", {"channel": channel, "recoverable": True}))[0]
            api(a.port, "publish", {"channel": channel, "data": {"n": i}})
            reply = on_b.reply(sub_id)
            self.assertIn("subscribe", reply)
            if reply["subscribe"].get("offset", 0) == 0:  # published after the reply's position
                pub = on_b.next_publication(channel, DEADLINE_S)
                self.assertEqual((pub["data"], pub.get("offset")), ({"n": i}, 1))

    def test_history_resubscribe_gets_what_follows_its_reply_and_nothing_before(self):
        # A node that held a channel, let it go and holds it again: the reply carries the
        # channel's position now (not the one cached when its deliveries stopped), and the
        # subscriber gets exactly the publications after it, none made while the node held
        # nothing, none lost between the reply and the node's subscription being in place.
        a, b = self.node(), self.node()
        channel = "h:again"
        on_b = self.client(b)
        self.assertEqual(on_b.subscribe(channel, recoverable=True).get("offset", 0), 0)
        for n in range(5):
            api(a.port, "publish", {"channel": channel, "data": {"n": n}})
        for n in range(5):
            self.assertEqual(on_b.try_publication(channel, DEADLINE_S), {"n": n})
        on_b.unsubscribe(channel)
        wait_for("B let the channel go", lambda: not self.deliveries_to(b, channel))
        for n in range(5, 35):
            api(a.port, "publish", {"channel": channel, "data": {"n": n}})
        self.assertEqual(on_b.subscribe(channel, recoverable=True).get("offset"), 35)
        for n in range(35, 55):
            api(a.port, "publish", {"channel": channel, "data": {"n": n}})
        for n in range(35, 55):
            pub = on_b.next_publication(channel, DEADLINE_S)
            self.assertEqual((pub["data"], pub.get("offset")), ({"n": n}, n + 1))
        # Nothing was read back from the stream: the stretch without interest is no gap.
        for result in ("filled", "lost"):
            self.assertEqual(metric(b.port, "hermod_store_delivery_gaps_total",
                                    'result="%s"' % result), 0, result)


if __name__ == "__main__":
    h.main()
