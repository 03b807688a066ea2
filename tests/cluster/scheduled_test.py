"""Scheduled delivery with `engine: nats`: three hermod nodes on one nats-server -js.

- A publication scheduled through node A, which is then killed (kill -9) before its time,
  fires once, on time (within 1 s), from another node: subscribers on B and C each receive
  it once, and the cluster's history holds it once.
- Every node lists a pending one (`scheduled`), and a cancel on one node holds on all: it
  never fires.
- A node killed after publishing a firing and before forgetting it, restarted after the
  duplicate window: published once, to a channel with history and to an inbox (stored once).
- The same crash for a channel without history: a subscriber on another node gets the
  firing once, whichever node repeats it (that node itself, or the restarted one).

Every wait is a condition polled against a deadline; nats-server runs on a free port with a
temporary store directory; every process is stopped at the end.

Run: python3 scheduled_test.py --hermod PATH
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from jetstream_test import history  # noqa: E402
from nats_harness import NatsServer, api, wait_for  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


def scheduled_metric(port, name):
    body = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body.decode()
    m = re.search(r"^" + name + r"(\{[^}]*\})? (\S+)$", body, re.M)
    return float(m.group(2)) if m else None


def fired(port):
    return scheduled_metric(port, "hermod_scheduled_fired_total")


def repeats_dropped(port):
    return scheduled_metric(port, "hermod_scheduled_repeats_dropped_total")


class ScheduledClusterTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer(jetstream=True).start()
        self.addCleanup(self.nats.cleanup)

    def config(self):
        return {
            "engine": "nats",
            "nats": {"url": self.nats.url, "prefix": "schedtest", "dial_timeout": "1s",
                     "reconnect_wait": "100ms"},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "history_size": 100,
            "history_ttl": "600s",
        }

    def node(self):
        return self.start_server(self.config(), workers=1, echo=False)

    def subscriber(self, server, channel):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        c.subscribe(channel)
        return c

    def test_fires_once_on_another_node_when_its_node_is_killed(self):
        a = h.Hermod(h.HERMOD, self.config(), workers=1, echo=False)
        self.addCleanup(a.cleanup)
        a.start()
        b, c = self.node(), self.node()
        subs = [self.subscriber(b, "job"), self.subscriber(c, "job")]
        at = now_ms() + 3000
        r = api(a.port, "publish", {"channel": "job", "data": {"run": 1}, "deliver_at": at})
        sid = r["result"]["schedule_id"]
        # B and C learn of it through the bucket.
        for n in (b, c):
            wait_for("node lists it", lambda n=n: [
                s for s in api(n.port, "scheduled", {})["result"]["scheduled"]
                if s["schedule_id"] == sid])
        a.kill()
        for s in subs:
            pub = s.next_publication("job", timeout=10)
            got = now_ms()
            self.assertEqual(pub["data"], {"run": 1})
            self.assertGreaterEqual(got - at, -5)
            self.assertLessEqual(got - at, 1000)
        for s in subs:
            self.assertIsNone(s.try_publication("job", 0.5))
        self.assertEqual(len(history(b.port, "job")["publications"]), 1)
        for n in (b, c):
            wait_for("nothing pending",
                     lambda n=n: api(n.port, "scheduled", {})["result"]["scheduled"] == [])

    def test_cancel_on_one_node_holds_on_all(self):
        a, b = self.node(), self.node()
        sub = self.subscriber(b, "c")
        r = api(a.port, "publish", {"channel": "c", "data": {"x": 1}, "delay": "1500ms"})
        sid = r["result"]["schedule_id"]
        wait_for("b lists it", lambda: api(b.port, "scheduled", {"channel": "c"})
                 ["result"]["scheduled"])
        self.assertEqual(api(b.port, "scheduled_cancel", {"schedule_id": sid}), {"result": {}})
        wait_for("a forgets it", lambda: api(a.port, "scheduled", {})["result"]["scheduled"] == [])
        self.assertIsNone(sub.try_publication("c", 2.5))
        self.assertEqual(history(b.port, "c")["publications"], [])

    def killed_after_firing_then_restarted(self, cfg, channel):
        """A node killed (fault_kill_at) after publishing a firing of {"run": 1} to channel
        and before forgetting it; the only node, restarted after idempotency_window
        (JetStream's duplicate window) has passed, once it fired again: that node."""
        cfg = dict(cfg, idempotency_window="1s")
        cfg["nats"] = dict(cfg["nats"], schedule_claim_lease="200ms")
        a = h.Hermod(h.HERMOD, dict(cfg, fault_kill_at="scheduled_published"), workers=1,
                     echo=False)
        self.addCleanup(a.cleanup)
        a.start()
        # Ahead, so its answer is out before the firing kills the node.
        api(a.port, "publish", {"channel": channel, "data": {"run": 1}, "delay": "300ms"})
        self.assertEqual(a.wait_exit(), -signal.SIGKILL)
        killed = now_ms()
        while now_ms() <= killed + 1500:
            time.sleep(0.05)  # the duplicate window passes while no node runs
        b = self.start_server(cfg, workers=1, echo=False)
        wait_for("the repeated firing done",
                 lambda: fired(b.port) == 1 and
                 api(b.port, "scheduled", {})["result"]["scheduled"] == [])
        return b

    def test_killed_after_publishing_publishes_once_after_the_duplicate_window(self):
        """kill -9 between publishing a firing and forgetting it (fault_kill_at), the only
        node restarted after idempotency_window (JetStream's duplicate window): the
        repeated firing finds the first in the channel's history and publishes nothing."""
        b = self.killed_after_firing_then_restarted(dict(self.config()), "job")
        self.assertEqual([p["data"] for p in history(b.port, "job")["publications"]],
                         [{"run": 1}])

    def test_killed_after_storing_in_an_inbox_stores_it_once_after_the_duplicate_window(self):
        """The same crash for an inbox channel: the repeated firing finds its key in the
        inbox's stored entry and stores nothing; the inbox holds the entry once."""
        cfg = dict(self.config(),
                   namespaces=[{"name": "inbox", "inbox": True, "ack_timeout": "60s"}])
        b = self.killed_after_firing_then_restarted(cfg, "inbox:#5")
        status = api(b.port, "inbox_status", {"channel": "inbox:#5"})["result"]
        self.assertEqual([(p["offset"], p["status"]) for p in status["publications"]],
                         [(1, "pending")])
        self.assertEqual(status["offset"], 1)

    def no_history_config(self):
        cfg = dict(self.config())
        del cfg["history_size"], cfg["history_ttl"]
        cfg["nats"] = dict(cfg["nats"], schedule_claim_lease="2s")
        return cfg

    def stopped(self, server):
        """SIGSTOP: the node neither claims nor reads NATS (what it is sent waits in its
        socket) until resumed (SIGCONT); resumed at cleanup too."""
        os.kill(server.pid, signal.SIGSTOP)
        self.addCleanup(lambda: server.running() and os.kill(server.pid, signal.SIGCONT))

    def first_firing_delivered_by_a_killed_node(self):
        """Node K publishes a firing to "job" (no history) and is killed before forgetting
        it, while node S, whose client subscribes, is stopped (so K alone claims it); S,
        resumed, delivers that first firing. (config, S, S's subscriber)."""
        cfg = self.no_history_config()
        s = self.start_server(cfg, workers=1, echo=False)
        sub = self.subscriber(s, "job")
        k = h.Hermod(h.HERMOD, dict(cfg, fault_kill_at="scheduled_published"), workers=1,
                     echo=False)
        self.addCleanup(k.cleanup)
        k.start()
        self.stopped(s)
        api(k.port, "publish", {"channel": "job", "data": {"run": 1}, "delay": "300ms"})
        self.assertEqual(k.wait_exit(), -signal.SIGKILL)
        os.kill(s.pid, signal.SIGCONT)
        self.assertEqual(sub.next_publication("job", timeout=10)["data"], {"run": 1})
        return cfg, s, sub

    def test_a_repeated_firing_without_history_reaches_a_subscriber_once(self):
        """No history: node K publishes a firing and is killed before forgetting it
        (fault_kill_at) while node S, whose client subscribes, is stopped (so K alone claims
        it). S, resumed, delivers the first (its key came with it over NATS); once K's claim
        expires S fires it again, and drops that repeat before fan-out (counted): the
        subscriber gets it once."""
        _, s, sub = self.first_firing_delivered_by_a_killed_node()
        wait_for("S fired the repeat",
                 lambda: fired(s.port) == 1 and
                 api(s.port, "scheduled", {})["result"]["scheduled"] == [])
        self.assertIsNone(sub.try_publication("job", 0.5))
        self.assertEqual(repeats_dropped(s.port), 1)

    def test_a_repeat_from_the_restarted_node_reaches_a_subscriber_once(self):
        """The same crash, but the repeat comes from K restarted while S is stopped again:
        S, resumed, finds the key of the firing it delivered on the repeat K sent, and drops
        it (counted): the subscriber gets it once."""
        cfg, s, sub = self.first_firing_delivered_by_a_killed_node()
        # Stopped again before K's claim expires: the restarted K fires the repeat.
        os.kill(s.pid, signal.SIGSTOP)
        k2 = self.start_server(cfg, workers=1, echo=False)
        wait_for("K fired the repeat",
                 lambda: fired(k2.port) == 1 and
                 api(k2.port, "scheduled", {})["result"]["scheduled"] == [])
        os.kill(s.pid, signal.SIGCONT)
        wait_for("S dropped the repeat", lambda: repeats_dropped(s.port) == 1)
        self.assertIsNone(sub.try_publication("job", 0.5))
        self.assertEqual(fired(s.port), 0)


if __name__ == "__main__":
    h.main()
