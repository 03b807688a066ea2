"""A loss only the publishing node sees is told to the other nodes' subscribers.

- Node A's send queue (nats.send_queue_bytes, 1 KiB) cannot take a 2 KiB publication, and
  with broker_breaker.failure_threshold 1 that failure opens its breaker, so the next
  publications are skipped. Node B's connection is fine all along: before the lost notice it
  would never tell. Every publication the API answered 200 on node A reaches node B's
  subscriber, or node B's subscriber is told (unsubscribe 2500) after it was made, once node
  A's breaker closes and its lost notice (`<prefix>.lost`) arrives.
- Only node A's connection dies (a TCP relay between node A and nats-server, stopped, then
  killed -9 and restarted): the publication node A wrote after its last confirmed round trip
  is gone with it, while node B, connected straight to nats-server, never disconnects. Node
  B's subscriber is told once node A is back and sends its notice.
- An idle cluster across a nats-server kill -9 and restart sends no lost notice: node B's
  subscriber is told once (its own reconnect), and a later deliberate loss on node A is the
  only channel any notice names.

Every wait is a condition polled against a deadline; nats-server picks its own port.

Run: python3 lost_notice_test.py --hermod PATH
"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from nats_harness import (DEADLINE_S, NatsServer, api, metric, wait_connected,  # noqa: E402
                          wait_for)

BIG = "b" * 2048  # past node A's send queue of 1 KiB


RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_relay.py")


class Relay:
    """tcp_relay.py to nats-server's port; port None: a free one (kept across restarts)."""

    def __init__(self, target, port=None):
        self.target, self.port, self.proc = target, port, None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, RELAY, str(self.port or 0),
                                      str(self.target)], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()  # once it accepts
        assert line.startswith("listening "), line
        self.port = int(line.split()[1])
        return self

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()


def is_tell(channel):
    return lambda m: (m.get("push", {}).get("channel") == channel
                      and "unsubscribe" in m.get("push", {}))


class LostNoticeTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer().start()
        self.addCleanup(lambda: self.nats.stop())

    def node(self, send_queue_bytes=16 << 20, failure_threshold=3, url=None,
             dial_timeout="500ms"):
        config = {
            "broker": "nats",
            "nats": {"url": url or self.nats.url, "prefix": "losttest", "dial_timeout": dial_timeout,
                     "reconnect_wait": "100ms", "send_queue_bytes": send_queue_bytes},
            "broker_breaker": {"failure_threshold": failure_threshold, "window": "30s",
                               "open_timeout": "1s", "half_open_trials": 1},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "history_size": 10,
            "history_ttl": "60s",
        }
        return self.start_server(config, workers=2, echo=False)

    def client(self, server, *channels):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        for channel in channels:
            c.subscribe(channel)
        return c

    def wait_connected(self, *servers):
        wait_connected(*servers)

    def cross(self, a, receiver, channel, tag):
        """Publishes on node a until receiver gets one: the path is up."""
        for n in range(200):
            api(a.port, "publish", {"channel": channel, "data": {"probe": tag, "n": n}})
            data = receiver.try_publication(channel, 0.1)
            if data is not None and data.get("probe") == tag:
                return
        raise AssertionError("no publication crossed from node %d" % a.port)

    def test_a_publication_dropped_on_the_publishing_node_is_told_on_the_others(self):
        a = self.node(send_queue_bytes=1024, failure_threshold=1)
        b = self.node()
        self.wait_connected(a, b)
        on_b = self.client(b, "lossy")
        self.cross(a, on_b, "lossy", "before")
        on_b.forget()

        made = [{"i": 0}, {"i": 1, "pad": BIG}] + [{"i": i} for i in range(2, 6)]
        for data in made:
            self.assertIn("result", api(a.port, "publish", {"channel": "lossy", "data": data}))
        # The 2 KiB one failed (the send queue) and opened the breaker: what followed was
        # skipped while it was open, or crossed as a trial once it half-opened.
        self.assertGreaterEqual(metric(a.port, "hermod_broker_publish_failures_total"), 1)

        delivered = set()

        def note(m):
            pub = m.get("push", {}).get("pub")
            if m.get("push", {}).get("channel") == "lossy" and pub:
                delivered.add(pub["data"]["i"])
            return is_tell("lossy")(m)
        # All were made before it: the tell covers whatever was not delivered.
        told = on_b.wait(note, DEADLINE_S)
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertNotIn(1, delivered)
        self.assertIn(0, delivered)
        # Node B never lost its connection: the tell is node A's notice.
        self.assertEqual(metric(b.port, "hermod_broker_lost_notices_total",
                                'direction="in"'), 1)
        self.assertEqual(metric(b.port, "hermod_broker_lost_told_total"), 1)
        # Node A counts its notice once the server's PONG after it is back, which may come
        # after node B handed the notice on.
        wait_for("node A's notice counted", lambda: metric(
            a.port, "hermod_broker_lost_notices_total", 'direction="out"') == 1)
        self.assertEqual(metric(b.port, "hermod_broker_connection_errors_total",
                                'kind="ping"'), 0)
        # Resubscribed (as the SDK does), it gets node A's publications again.
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "lossy"}))
        wait_for("node A's breaker closed", lambda: metric(
            a.port, "hermod_circuit_breaker_state", 'name="broker"') == 0)
        self.cross(a, on_b, "lossy", "after")

    def test_a_publication_lost_with_only_its_nodes_connection_is_told_on_the_others(self):
        relay = Relay(self.nats.port).start()
        self.addCleanup(lambda: relay.kill())  # the current one, after a restart too
        a = self.node(url="nats://127.0.0.1:%d" % relay.port)
        b = self.node()
        self.wait_connected(a, b)
        on_b = self.client(b, "cut")
        self.cross(a, on_b, "cut", "before")
        on_b.forget()
        sent = metric(a.port, "hermod_broker_messages_total",
                      'direction="out",kind="publication"')
        os.kill(relay.proc.pid, signal.SIGSTOP)  # the kernel still takes what node A writes
        self.assertIn("result", api(a.port, "publish", {"channel": "cut", "data": {"cut": 1}}))
        wait_for("node A wrote it", lambda: metric(
            a.port, "hermod_broker_messages_total",
            'direction="out",kind="publication"') == sent + 1)
        relay.kill()
        wait_for("node A disconnected", lambda: metric(a.port, "hermod_broker_connected") == 0)
        relay.start()  # same port
        self.wait_connected(a)
        told = on_b.wait(is_tell("cut"), DEADLINE_S)
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertEqual([m for m in on_b.pushes if "pub" in m.get("push", {})], [])
        self.assertEqual(metric(b.port, "hermod_broker_lost_notices_total",
                                'direction="in"'), 1)
        self.assertEqual(metric(b.port, "hermod_broker_connected"), 1)
        self.assertEqual(metric(a.port, "hermod_broker_lost_notices_total",
                                'direction="out"'), 1)
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "cut"}))
        self.cross(a, on_b, "cut", "after")

    def test_a_subscribe_during_the_first_connect_waits_for_it_and_is_not_told(self):
        # Node A's first attempt hangs in its handshake (the relay stopped: the kernel accepts
        # the connection, nothing answers). A subscribe made meanwhile is answered once the
        # server has the SUB, so it missed nothing and the first connect tells nobody. (It was
        # answered at once and then told: a needless resubscribe at every node's start-up.)
        relay = Relay(self.nats.port).start()
        self.addCleanup(lambda: relay.kill())
        os.kill(relay.proc.pid, signal.SIGSTOP)
        a = self.node(url="nats://127.0.0.1:%d" % relay.port, dial_timeout="60s")
        b = self.node()
        self.wait_connected(b)
        on_a = Client(a.port)
        self.addCleanup(on_a.close)
        on_a.connect()
        sub = on_a.send(("subscribe", {"channel": "early"}))[0]
        wait_for("node A's interest round holds the channel",
                 lambda: metric(a.port, "hermod_broker_subjects") == 1)
        self.assertEqual(metric(a.port, "hermod_broker_connected"), 0)
        os.kill(relay.proc.pid, signal.SIGCONT)
        self.assertNotIn("error", on_a.reply(sub, DEADLINE_S))
        self.wait_connected(a)
        # A later round's reply follows any tell of the first connect on the session's loop.
        on_a.subscribe("later")
        self.cross(b, on_a, "early", "first")
        self.assertEqual([m for m in on_a.pushes if is_tell("early")(m)], [])

    def test_a_subscription_confirmed_after_dial_timeout_is_told(self):
        # Node A's link stalls (the relay stopped: its writes still go into the kernel, so the
        # connection lives): a subscribe is answered when dial_timeout runs out, before the
        # server has the SUB. The PONG that comes later tells the channel's subscribers (they
        # may have missed what was routed meanwhile); it was silent.
        relay = Relay(self.nats.port).start()
        self.addCleanup(lambda: relay.kill())
        a = self.node(url="nats://127.0.0.1:%d" % relay.port)
        self.wait_connected(a)
        on_a = Client(a.port)
        self.addCleanup(on_a.close)
        on_a.connect()
        os.kill(relay.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: relay.proc.poll() is None and
                        os.kill(relay.proc.pid, signal.SIGCONT))
        self.assertNotIn("error", on_a.call("subscribe", {"channel": "slow"}, DEADLINE_S))
        os.kill(relay.proc.pid, signal.SIGCONT)
        told = on_a.wait(is_tell("slow"), DEADLINE_S)
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertEqual(metric(a.port, "hermod_broker_connected"), 1)

    def test_an_idle_cluster_across_a_nats_restart_sends_no_lost_notice(self):
        a = self.node(send_queue_bytes=1024)
        b = self.node()
        self.wait_connected(a, b)
        on_b = self.client(b, "idle", "other")
        self.cross(a, on_b, "idle", "before")
        # A subscribe reply on node A waits for its connection's PONG after its SUB, so every
        # earlier PING of that connection (the publications' confirm) was answered: A is idle.
        self.client(a, "sync")
        port = self.nats.port
        self.nats.stop(kill=True)
        wait_for("nodes disconnected", lambda: metric(a.port, "hermod_broker_connected") == 0
                 and metric(b.port, "hermod_broker_connected") == 0)
        self.nats = NatsServer(port).start()
        self.wait_connected(a, b)
        told = on_b.wait(is_tell("idle"), DEADLINE_S)  # node B's own reconnect
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "idle"}))
        on_b.wait(is_tell("other"), DEADLINE_S)
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "other"}))
        on_b.forget()
        self.cross(a, on_b, "other", "after")
        # A loss on node A now: any notice the restart had left pending would go first, or
        # with it, and name "idle" too.
        self.assertIn("result", api(a.port, "publish", {"channel": "other", "data": {"pad": BIG}}))
        wait_for("node B told for node A's loss",
                 lambda: metric(b.port, "hermod_broker_lost_told_total") >= 1)
        on_b.wait(is_tell("other"), DEADLINE_S)
        self.assertEqual(metric(b.port, "hermod_broker_lost_told_total"), 1)
        self.assertEqual(metric(b.port, "hermod_broker_lost_notices_total",
                                'direction="in"'), 1)
        self.assertEqual(metric(a.port, "hermod_broker_lost_notices_total",
                                'direction="out"'), 1)
        self.assertEqual([m for m in on_b.pushes if is_tell("idle")(m)], [])


if __name__ == "__main__":
    h.main()
