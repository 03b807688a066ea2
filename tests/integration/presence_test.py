"""Presence join/leave batching (a namespace's join_leave_batch_delay), end to end with a raw
client that counts WebSocket messages: a burst of joins reaches a watcher in fewer messages
than joins, every join present; a client that connects and leaves within one window is
never shown (its join and leave cancel), which /metrics counts; presence answers stay
immediate. Waits are on conditions with deadlines, never sleeps."""

import time

import guard_client as g
import hermod_harness as h

WINDOW_S = 0.5
CONFIG = {"allow_anonymous_connect_without_token": True, "api_key": "k",
          "namespaces": [{"name": "room", "presence": True, "join_leave": True,
                          "force_push_join_leave": True, "allow_subscribe_for_client": True,
                          "allow_subscribe_for_anonymous": True,
                          "allow_presence_for_subscriber": True,
                          "join_leave_batch_delay": "%dms" % (WINDOW_S * 1000),
                          "join_leave_batch_max": 100}]}
CHANNEL = "room:lobby"


class Watcher:
    """A subscriber that reads whole WebSocket messages and keeps the join/leave pushes of
    each, so the test can count the messages they came in."""

    def __init__(self, port):
        self.client = g.Client(port)
        self.id = self.client.connect()["client"]
        self.events = []    # ("join"|"leave", client id), in arrival order
        self.messages = 0   # WebSocket messages that carried join/leave pushes
        r = self.client.call("subscribe", {"channel": CHANNEL})
        assert "error" not in r, r
        # Its own join comes after the window, in a message of its own (never with the reply).
        assert not self.client.pushes, self.client.pushes
        self.wait_for({("join", self.id)})

    def close(self):
        self.client.close()

    def read_message(self, deadline):
        carried = False
        for message in self.client.read_objects(max(0.0, deadline - time.monotonic()))[1]:
            push = message.get("push", {})
            for kind in ("join", "leave"):
                if kind in push:
                    self.events.append((kind, push[kind]["info"]["client"]))
                    carried = True
        self.messages += carried

    def wait_for(self, events, timeout=h.IO_TIMEOUT_S):
        """Reads until every one of events has arrived."""
        deadline = time.monotonic() + timeout
        while not events <= set(self.events):
            if time.monotonic() > deadline:
                raise AssertionError("watcher still misses %r" % (events - set(self.events)))
            self.read_message(deadline)


class PresenceCase(h.HermodTestCase):
    workers = 1

    def setUp(self):
        self.server = self.start_server(CONFIG, workers=self.workers)
        self.watcher = Watcher(self.server.port)
        self.addCleanup(self.watcher.close)
        self.watcher.events.clear()
        self.watcher.messages = 0

    def clients(self, n):
        out = []
        for _ in range(n):
            c = g.Client(self.server.port)
            self.addCleanup(c.close)
            c.id = c.connect()["client"]
            out.append(c)
        return out

    def metric(self, kind, outcome):
        return g.metric(self.server.port, "hermod_presence_events_total", kind=kind,
                        outcome=outcome)


class JoinBurstTest(PresenceCase):
    workers = 2  # clients on both loops: one message per loop and window

    def test_twenty_joins_in_one_window_reach_a_watcher_in_few_messages(self):
        clients = self.clients(20)
        # All 20 subscribe at once: well within one window on each loop.
        ids = [c.send(("subscribe", {"channel": CHANNEL}))[0] for c in clients]
        for c, i in zip(clients, ids):
            self.assertNotIn("error", c.reply(i))
        # Presence is exact at once, before any join push left.
        stats = self.watcher.client.call("presence_stats", {"channel": CHANNEL})
        self.assertEqual(stats["presence_stats"]["num_clients"], 21, stats)
        self.watcher.wait_for({("join", c.id) for c in clients})
        self.assertEqual(sorted(self.watcher.events), sorted(("join", c.id) for c in clients))
        self.assertLess(self.watcher.messages, 20)
        # One window per loop, unless a loop's clients straddled a window's end.
        self.assertLessEqual(self.watcher.messages, 2 * self.workers)
        self.assertEqual(self.metric("join", "sent"), 21)  # and the watcher's own


class CancellationTest(PresenceCase):
    workers = 1  # the ordering argument below needs every client on one loop

    def test_a_client_that_joins_and_leaves_within_a_window_is_never_shown(self):
        brief, = self.clients(1)
        r = brief.call("subscribe", {"channel": CHANNEL})
        self.assertNotIn("error", r)
        brief.close()
        # The server saw the close: its join and leave cancelled (and presence is empty
        # of it at once).
        g.wait_for(lambda: self.metric("leave", "cancelled") == 1, what="the cancellation")
        self.assertEqual(self.metric("join", "cancelled"), 1)
        presence = self.watcher.client.call("presence", {"channel": CHANNEL})
        self.assertEqual(list(presence["presence"]["presence"]), [self.watcher.id])
        # A later client on the same loop (one worker): its join comes in a later batch
        # than anything of brief's could, so once it arrives, brief would have shown.
        marker, = self.clients(1)
        self.assertNotIn("error", marker.call("subscribe", {"channel": CHANNEL}))
        self.watcher.wait_for({("join", marker.id)})
        self.assertEqual(self.watcher.events, [("join", marker.id)])
        self.assertEqual(self.metric("join", "sent"), 2)  # the watcher's and the marker's
        self.assertEqual(self.metric("leave", "sent"), 0)


if __name__ == "__main__":
    h.main()
