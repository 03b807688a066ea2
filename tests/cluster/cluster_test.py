"""Cluster mode over a real nats-server: two hermod nodes with `broker: nats`.

- A subscriber on node B receives what the API and a client publish on node A, and the joins
  and leaves of node A's subscribers.
- With join_leave_batch_delay: a client that joins and leaves within node A's window is
  never shown on node B (nothing of it is sent); ten joins on node A, and their leaves,
  reach node B's watcher in fewer messages than events.
- publish_rate_limit is not applied again on the receiving node: node B, with a smaller
  burst, delivers every publication node A admitted, and its own bucket stays whole.
- nats-server stops: node A's circuit breaker opens after broker_breaker.failure_threshold
  failed sends (past nats.reconnect_buffer_bytes held), /health is degraded with the
  `broker` check, hermod_circuit_breaker_state {name="broker"} is 1, and node A's own
  subscribers still get node A's publications.
- A publication larger than the server's max_payload is refused to its publisher (client
  error 106, API 413 with error 106) and counted, never a broker failure: the breaker stays
  closed and the next publications cross.
- nats-server stops answering (SIGSTOP: the connection stays open, TCP says nothing): the
  nodes' keepalive PINGs (nats.ping_interval, nats.max_pings_out) go unanswered, the
  connection is closed (hermod_broker_connection_errors_total{kind="ping"}), and once the
  server answers again the node reconnects and its subscribers are told they missed some.
- A node answers a subscriber before its first connect to NATS (its first URL does not
  resolve): the subscriber is told once the node connects (it missed what others published).
- nats.url names a host that does not resolve: the node starts all the same and serves its
  own subscribers, retrying the name (no NATS ever connected).
- nats-server is killed and restarted, node A reconnects seconds after node B: what node A
  accepted in between (held) reaches node B's subscriber, which was told before.
- nats-server comes back on the same port: the node reconnects, after open_timeout a trial
  closes the breaker, node A sends its lost notice for what it failed to send, /health is
  healthy again, and cross-node delivery resumes.

Every wait is a condition polled against a deadline; nats-server picks its own port (-p -1)
and every process is stopped at the end.

Run: python3 cluster_test.py --hermod PATH
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client, api_call  # noqa: E402  (the one raw protocol client)
from nats_harness import (DEADLINE_S, NatsServer, api, get, metric,  # noqa: E402
                          wait_connected, wait_for)

THRESHOLD = 3
BATCH_WINDOW_MS = 500


def broker_check(port):
    health = json.loads(get(port, "/health"))
    checks = {c["name"]: c for c in health["checks"]}
    return health, checks.get("broker")


class ClusterTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer().start()
        self.addCleanup(lambda: self.nats.stop())  # the current one, after a restart too

    def node(self, **extra):
        config = {
            "broker": "nats",
            "nats": {"url": self.nats.url, "prefix": "hermodtest", "dial_timeout": "500ms",
                     "reconnect_wait": "100ms"},
            "broker_breaker": {"failure_threshold": THRESHOLD, "window": "30s",
                               "open_timeout": "1s", "half_open_trials": 1},
            "health": {"check_interval_ms": 100},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "allow_publish_for_client": True,
            "join_leave": True,
            "force_push_join_leave": True,
            "presence": True,
            "history_size": 10,
            "history_ttl": "60s",
        }
        config.update(extra)
        return self.start_server(config, workers=2, echo=False)

    def client(self, server, channel=None):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        if channel:
            c.subscribe(channel)
        return c

    def wait_connected(self, *servers):
        wait_connected(*servers)

    def first_cross_node(self, a, receiver, channel, tag):
        """Publishes on node a until receiver (on another node) gets one: the path is up."""
        deadline = time.monotonic() + DEADLINE_S
        n = 0
        while time.monotonic() < deadline:
            n += 1
            api(a.port, "publish", {"channel": channel, "data": {"probe": tag, "n": n}})
            data = receiver.try_publication(channel, 0.2)
            if data is not None and data.get("probe") == tag:
                return data
        raise AssertionError("no publication crossed from node %d" % a.port)

    def test_publications_joins_and_leaves_cross_nodes(self):
        a, b = self.node(), self.node()
        self.wait_connected(a, b)
        on_b = self.client(b, "chat")
        self.first_cross_node(a, on_b, "chat", "warmup")
        on_b.forget()

        # The API on node A.
        api(a.port, "publish", {"channel": "chat", "data": {"text": "from the api"}})
        self.assertEqual(on_b.try_publication("chat", DEADLINE_S), {"text": "from the api"})
        # A client on node A: it joins (node B's subscriber sees the join), publishes, leaves.
        on_a = self.client(a)
        on_a.subscribe("chat")
        join = on_b.wait(lambda m: "join" in m.get("push", {}))
        self.assertEqual(join["push"]["channel"], "chat")
        self.assertNotIn("error", on_a.call("publish", {"channel": "chat",
                                                        "data": {"text": "from a client"}}))
        self.assertEqual(on_b.try_publication("chat", DEADLINE_S), {"text": "from a client"})
        # Node A's subscriber gets its own node's publication once, not again from NATS: the
        # next publication it sees is the one published after it.
        self.assertEqual(on_a.try_publication("chat", DEADLINE_S), {"text": "from a client"})
        api(a.port, "publish", {"channel": "chat", "data": {"text": "next"}})
        self.assertEqual(on_a.try_publication("chat", DEADLINE_S), {"text": "next"})
        self.assertEqual(on_b.try_publication("chat", DEADLINE_S), {"text": "next"})
        self.assertNotIn("error", on_a.call("unsubscribe", {"channel": "chat"}))
        leave = on_b.wait(lambda m: "leave" in m.get("push", {}))
        self.assertEqual(leave["push"]["channel"], "chat")
        # History is per node: node B kept what it received, at its own offsets.
        history = api(b.port, "history", {"channel": "chat", "limit": -1})["result"]
        datas = [p["data"] for p in history["publications"]]
        self.assertIn({"text": "from the api"}, datas)
        self.assertIn({"text": "from a client"}, datas)
        self.assertGreaterEqual(metric(a.port, "hermod_broker_messages_total",
                                       'direction="out",kind="publication"'), 2)
        self.assertGreaterEqual(metric(b.port, "hermod_broker_messages_total",
                                       'direction="in",kind="join"'), 1)
        # Nothing echoed: node A never received its own messages.
        self.assertEqual(metric(a.port, "hermod_broker_received_dropped_total",
                                'reason="own"'), 0)

    def test_breaker_opens_without_nats_and_closes_when_it_returns(self):
        # Node A holds at most 1 KiB of publications while disconnected: two, then its sends
        # fail.
        a = self.node(nats={"url": self.nats.url, "prefix": "hermodtest", "dial_timeout": "500ms",
                            "reconnect_wait": "100ms", "reconnect_buffer_bytes": 1024})
        b = self.node()
        self.wait_connected(a, b)
        on_a = self.client(a, "news")
        on_b = self.client(b, "news")
        self.first_cross_node(a, on_b, "news", "before")
        self.assertEqual(metric(a.port, "hermod_circuit_breaker_state", 'name="broker"'), 0)

        port = self.nats.port
        self.nats.stop()
        wait_for("node A disconnected", lambda: metric(a.port, "hermod_broker_connected") == 0)
        # Every publication still reaches node A's own subscriber, NATS or not.
        on_a.forget()
        for i in range(THRESHOLD + 2):
            api(a.port, "publish", {"channel": "news", "data": {"local": i, "pad": "p" * 400}})
            got = on_a.wait(lambda m: m.get("push", {}).get("pub", {}).get("data", {})
                            .get("local") == i)
            self.assertIsNotNone(got)
        wait_for("breaker open", lambda: metric(a.port, "hermod_circuit_breaker_state",
                                                'name="broker"') == 1)
        # The disconnect counted as one failure, each send past the held bound as one more
        # (sends admitted before the breaker opened may fail after it did).
        self.assertGreaterEqual(metric(a.port, "hermod_broker_publish_failures_total"),
                                THRESHOLD - 1)
        self.assertGreaterEqual(metric(a.port, "hermod_circuit_breaker_transitions_total",
                                       'name="broker",to="open"'), 1)

        def degraded():
            health, check = broker_check(a.port)
            return (health["level"] == "degraded" and check and check["level"] == "degraded"
                    and "open" in check["detail"] and health) or None
        health = wait_for("/health degraded by the broker check", degraded)
        self.assertTrue(health["ready"], health)  # degraded: still serving
        # Open: sends are skipped, not attempted, and local delivery goes on.
        skipped = metric(a.port, "hermod_broker_publish_skipped_total")
        api(a.port, "publish", {"channel": "news", "data": {"local": "open"}})
        on_a.wait(lambda m: m.get("push", {}).get("pub", {}).get("data", {}).get("local")
                  == "open")
        self.assertGreater(metric(a.port, "hermod_broker_publish_skipped_total"), skipped)

        self.nats = NatsServer(port).start()
        self.wait_connected(a, b)
        # What node A published while NATS was gone never reached node B: B's subscriber is
        # told (unsubscribe 2500) once B is back, not left with a silent gap; it resubscribes
        # as the SDK does.
        told = on_b.wait(lambda m: m.get("push", {}).get("channel") == "news"
                         and "unsubscribe" in m.get("push", {}))
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        wait_for("breaker closed", lambda: metric(a.port, "hermod_circuit_breaker_state",
                                                  'name="broker"') == 0)
        # What node A failed to send is named in its lost notice once its breaker is closed
        # (docs/cluster.md, "Lost on the publishing node"); node B tells again if the notice
        # finds it connected. Sent, and so received before a later publication of node A's.
        wait_for("node A's lost notice sent", lambda: metric(
            a.port, "hermod_broker_lost_notices_total", 'direction="out"') >= 1)
        self.first_cross_node(a, self.client(b, "sync"), "sync", "notice")
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "news"}))
        wait_for("/health healthy", lambda: json.loads(get(a.port, "/health"))["level"]
                 == "healthy")
        self.assertGreaterEqual(metric(a.port, "hermod_circuit_breaker_transitions_total",
                                       'name="broker",to="closed"'), 1)
        on_b.forget()
        self.first_cross_node(a, on_b, "news", "after")

        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing: apt-get install prometheus")
        result = subprocess.run([promtool, "check", "metrics"],
                                input=get(a.port, "/metrics").encode(), capture_output=True,
                                timeout=30)
        self.assertEqual(result.stdout + result.stderr, b"", "promtool lint findings")

    def test_a_silent_server_is_found_by_keepalive_and_subscribers_are_told(self):
        nats = {"url": self.nats.url, "prefix": "hermodtest", "dial_timeout": "500ms",
                "reconnect_wait": "100ms", "ping_interval": "1s", "max_pings_out": 1}
        a, b = self.node(nats=nats), self.node(nats=nats)
        self.wait_connected(a, b)
        on_b = self.client(b, "quiet")
        self.first_cross_node(a, on_b, "quiet", "before")
        self.assertEqual(metric(b.port, "hermod_broker_connection_errors_total",
                                'kind="ping"'), 0)
        self.nats.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for("node B's keepalive gave up",
                     lambda: metric(b.port, "hermod_broker_connection_errors_total",
                                    'kind="ping"') >= 1)
            self.assertEqual(metric(b.port, "hermod_broker_connected"), 0)
        finally:
            self.nats.proc.send_signal(signal.SIGCONT)
        self.wait_connected(a, b)
        told = on_b.wait(lambda m: m.get("push", {}).get("channel") == "quiet"
                         and "unsubscribe" in m.get("push", {}))
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "quiet"}))
        on_b.forget()
        self.first_cross_node(a, on_b, "quiet", "after")

    def test_what_a_node_publishes_while_it_reconnects_after_the_others_crosses(self):
        """nats-server is killed (-9) and restarted on its port: node B reconnects at once and
        tells its subscriber, node A waits longer (its nats.reconnect_wait). What the API
        accepts on node A in between (200) reaches node B's subscriber once node A is back
        (held while it reconnects, nats.reconnect_buffer_bytes): B was told before it was
        published, so dropping it would be a silent gap."""
        a = self.node(nats={"url": self.nats.url, "prefix": "hermodtest",
                            "dial_timeout": "500ms", "reconnect_wait": "8s"})
        b = self.node()
        self.wait_connected(a, b)
        on_b = self.client(b, "gap")
        self.first_cross_node(a, on_b, "gap", "before")
        port = self.nats.port
        self.nats.stop(kill=True)
        wait_for("node A disconnected", lambda: metric(a.port, "hermod_broker_connected") == 0)
        self.nats = NatsServer(port).start()
        self.wait_connected(b)
        told = on_b.wait(lambda m: m.get("push", {}).get("channel") == "gap"
                         and "unsubscribe" in m.get("push", {}))
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "gap"}))
        on_b.forget()
        self.assertEqual(metric(a.port, "hermod_broker_connected"), 0, "node A is back early")
        for i in range(3):
            api(a.port, "publish", {"channel": "gap", "data": {"away": i}})
        self.wait_connected(a)
        for i in range(3):
            self.assertEqual(on_b.try_publication("gap", DEADLINE_S), {"away": i})
        self.assertEqual(metric(a.port, "hermod_broker_publish_failures_total"), 0)

    def test_subscribers_answered_before_the_first_connect_are_told(self):
        """Node B cannot reach NATS at start (its first URL does not resolve, the next is tried
        after its nats.reconnect_wait): a subscriber it answers meanwhile misses what node A
        publishes until B's SUB is in, so it is told once B connects, as after a reconnect."""
        a = self.node()
        b = self.node(nats={"url": "nats://no-such-host.invalid:4222," + self.nats.url,
                            "prefix": "hermodtest", "dial_timeout": "500ms",
                            "reconnect_wait": "4s"})
        self.wait_connected(a)
        on_b = self.client(b, "early")
        self.assertEqual(metric(b.port, "hermod_broker_connected"), 0, "node B is in early")
        api(a.port, "publish", {"channel": "early", "data": {"missed": 1}})
        self.wait_connected(b)
        told = on_b.wait(lambda m: m.get("push", {}).get("channel") == "early"
                         and "unsubscribe" in m.get("push", {}))
        self.assertEqual(told["push"]["unsubscribe"]["code"], 2500, told)
        self.assertNotIn("error", on_b.call("subscribe", {"channel": "early"}))
        on_b.forget()
        self.first_cross_node(a, on_b, "early", "after")

    def test_a_node_whose_nats_host_does_not_resolve_starts_and_serves_locally(self):
        a = self.node(nats={"url": "nats://no-such-host.invalid:4222", "prefix": "hermodtest",
                            "dial_timeout": "500ms", "reconnect_wait": "100ms"})
        on_a = self.client(a, "local")
        api(a.port, "publish", {"channel": "local", "data": {"only": "here"}})
        self.assertEqual(on_a.try_publication("local", DEADLINE_S), {"only": "here"})
        self.assertEqual(metric(a.port, "hermod_broker_connected"), 0)

    def test_a_publication_larger_than_max_payload_is_refused_and_partitions_nothing(self):
        # nats-server's default max_payload is 1 MiB; the nodes accept larger messages and
        # bodies, so only the broker's bound can refuse.
        big = {"websocket": {"max_message_bytes": 4 << 20},
               "http": {"max_body_bytes": 4 << 20}}
        a, b = self.node(**big), self.node(**big)
        self.wait_connected(a, b)
        on_a = self.client(a, "big")
        on_b = self.client(b, "big")
        self.first_cross_node(a, on_b, "big", "before")
        on_a.forget()
        on_b.forget()
        oversized = "x" * (1 << 20)  # with its framing and info, past 1,048,576 bytes
        # A client's publication: error 106 (not temporary), and no push on either node.
        for _ in range(5):
            i = on_a.send({"publish": {"channel": "big", "data": oversized}})[0]
            reply = on_a.wait(lambda m: m.get("id") == i)
            self.assertEqual(reply.get("error", {}).get("code"), 106, str(reply)[:200])
        # The API's: HTTP 413 with the same error in the body, never a 200.
        response = api_call(a.port, "publish", {"channel": "big", "data": oversized})
        self.assertEqual(response.status, 413, response.body[:200])
        self.assertEqual(json.loads(response.body)["error"]["code"], 106)
        # In a batch: the command's reply is the error, the others are answered.
        response = api_call(a.port, "batch", {"commands": [
            {"publish": {"channel": "big", "data": oversized}},
            {"publish": {"channel": "big", "data": {"in": "batch"}}}]})
        self.assertEqual(response.status, 200)
        replies = json.loads(response.body)["replies"]
        self.assertEqual(replies[0]["error"]["code"], 106)
        self.assertIn("publish", replies[1])
        self.assertEqual(metric(a.port, "hermod_broker_publish_too_large_total",
                                'kind="publication"'), 7)
        # Not a broker failure: the breaker stays closed and the next publications cross.
        self.assertEqual(metric(a.port, "hermod_broker_publish_failures_total"), 0)
        self.assertEqual(metric(a.port, "hermod_circuit_breaker_state", 'name="broker"'), 0)
        self.assertEqual(on_b.try_publication("big", DEADLINE_S), {"in": "batch"})
        api(a.port, "publish", {"channel": "big", "data": {"unrelated": 1}})
        self.assertEqual(on_b.try_publication("big", DEADLINE_S), {"unrelated": 1})
        # Node A's own subscriber never saw the refused ones either: only the warm-up probes
        # come before the batch's.
        seen = []
        while not seen or seen[-1] != {"in": "batch"}:
            seen.append(on_a.try_publication("big", DEADLINE_S))
            self.assertIsNotNone(seen[-1])
        self.assertTrue(all(isinstance(d, dict) and "probe" in d for d in seen[:-1]),
                        str(seen)[:300])
        # Just under the bound crosses: the limit is the server's, not a guess.
        fits = "y" * ((1 << 20) - 4096)
        api(a.port, "publish", {"channel": "big", "data": fits})
        self.assertEqual(on_b.try_publication("big", DEADLINE_S), fits)
        self.assertEqual(metric(a.port, "hermod_broker_publish_failures_total"), 0)

    def test_join_leave_batched_across_nodes(self):
        """With join_leave_batch_delay, node A sends a client's join/leave only when its batch
        is flushed, after cancellation, and node B batches what it receives."""
        room = {"name": "room", "presence": True, "join_leave": True,
                "force_push_join_leave": True, "allow_subscribe_for_client": True,
                "allow_subscribe_for_anonymous": True,
                "join_leave_batch_delay": "%dms" % BATCH_WINDOW_MS, "join_leave_batch_max": 100}
        a, b = self.node(namespaces=[room]), self.node(namespaces=[room])
        self.wait_connected(a, b)
        watcher = JoinLeaveWatcher(self.client(b))
        watcher.client.subscribe("room:x")
        watcher.wait_for({("join", watcher.client.id)})  # its own, after the window
        self.first_cross_node(a, watcher.client, "room:x", "warmup")
        watcher.client.forget()  # the watcher reads whole messages from here

        # Connects, subscribes and leaves within node A's window: cancelled there, so nothing
        # of it may reach node B. A marker client that stays is shown after it.
        gone = self.client(a)
        gone_id = gone.id
        gone.subscribe("room:x")
        self.assertNotIn("error", gone.call("unsubscribe", {"channel": "room:x"}))
        wait_for("node A cancelled the pair", lambda: metric(
            a.port, "hermod_presence_events_total", 'kind="join",outcome="cancelled"') == 1)
        marker = self.client(a)
        marker_id = marker.id
        marker.subscribe("room:x")
        watcher.wait_for({("join", marker_id)})
        self.assertNotIn(gone_id, [c for _, c in watcher.events], watcher.events)
        self.assertEqual(metric(a.port, "hermod_broker_messages_total",
                                'direction="out",kind="join"'), 1)  # the marker's only
        self.assertIn(metric(a.port, "hermod_broker_messages_total",
                             'direction="out",kind="leave"'), (None, 0))

        # Ten joins on node A reach node B's watcher in fewer messages than joins; their
        # leaves too.
        # After each join, a publication from node A crosses to the watcher before the next:
        # without batching each join would have reached node B (in order, before that
        # publication) and been shown in a message of its own.
        watcher.reset()
        joiners = []
        for n in range(10):
            c = self.client(a)
            joiners.append((c, c.id))
            c.subscribe("room:x")
            api(a.port, "publish", {"channel": "room:x", "data": {"after_join": n}})
            watcher.wait_until(lambda n=n: {"after_join": n} in watcher.publications)
        watcher.wait_for({("join", i) for _, i in joiners})
        self.assertLess(watcher.messages, 10, watcher.events)
        self.assertEqual(len(watcher.events), 10, watcher.events)
        # Node B's presence is its own: the watcher (NATS carries no presence).
        self.assertEqual(api(b.port, "presence_stats", {"channel": "room:x"})["result"]
                         ["num_clients"], 1)
        watcher.reset()
        for n, (c, _) in enumerate(joiners):
            c.ws.close()
            api(a.port, "publish", {"channel": "room:x", "data": {"after_leave": n}})
            watcher.wait_until(lambda n=n: {"after_leave": n} in watcher.publications)
        watcher.wait_for({("leave", i) for _, i in joiners})
        self.assertLess(watcher.messages, 10, watcher.events)
        self.assertEqual(len(watcher.events), 10, watcher.events)

    def test_a_received_publication_refused_past_the_inbox_budget_is_told(self):
        """Node B's loop refuses what it receives while over send_queue.inbox_budget_bytes
        (publications posted to it and not yet delivered). Node A answered the publisher, so
        B's subscriber must be told (unsubscribe 2500) where its stream has the gap, never
        left with a silent one: what it gets is gap-free up to the tell."""
        a = self.node()
        b = self.node(send_queue={"inbox_budget_bytes": 1024})
        self.wait_connected(a, b)
        on_b = self.client(b, "burst")
        self.first_cross_node(a, on_b, "burst", "warmup")
        on_b.forget()
        blob = "x" * 4096
        sent, deadline = 0, time.monotonic() + DEADLINE_S
        # Bursts of 4 KiB publications, each posted to B's loop before it drains the last,
        # until B has refused one (bounded by the deadline).
        while metric(b.port, "hermod_broker_received_dropped_total", 'reason="refused"') == 0:
            self.assertLess(time.monotonic(), deadline, "node B refused nothing")
            commands = [{"publish": {"channel": "burst", "data": {"n": sent + i, "blob": blob}}}
                        for i in range(50)]
            replies = api(a.port, "batch", {"parallel": True, "commands": commands})["replies"]
            self.assertTrue(all("error" not in r for r in replies), replies[:3])
            sent += len(commands)
        got = []
        while True:
            push = on_b.wait(lambda m: m.get("push", {}).get("channel") == "burst")["push"]
            if "unsubscribe" in push:
                self.assertEqual(push["unsubscribe"]["code"], 2500, push)
                break
            got.append(push["pub"]["data"]["n"])
            self.assertLess(len(got), sent, "every publication delivered, yet one was refused")
        self.assertEqual(got, list(range(len(got))))

    def test_received_publications_are_not_rate_limited_again(self):
        """publish_rate_limit is applied on the node a publication is made on: node B, whose
        own burst is smaller than what node A admits, still delivers every publication it
        receives, and they take nothing from its own bucket."""
        burst_a, burst_b = 8, 2

        def limited(burst):
            return [{"name": "limited", "allow_subscribe_for_client": True,
                     "allow_subscribe_for_anonymous": True, "publish_rate_limit": 1,
                     "publish_rate_burst": burst}]
        a, b = self.node(namespaces=limited(burst_a)), self.node(namespaces=limited(burst_b))
        self.wait_connected(a, b)
        on_b = self.client(b, "limited:x")
        on_b.subscribe("warm")
        self.first_cross_node(a, on_b, "warm", "warmup")  # not on limited:x: no token taken

        for n in range(burst_a):
            reply = api(a.port, "publish", {"channel": "limited:x", "data": {"n": n}})
            self.assertNotIn("error", reply, (n, reply))
        # Node A's limit is on: one more within the same second is refused there.
        over = api(a.port, "publish", {"channel": "limited:x", "data": {"n": "over"}})
        self.assertEqual(over.get("error", {}).get("code"), 111, over)
        got, deadline = [], time.monotonic() + DEADLINE_S
        while len(got) < burst_a and got[-1:] != [None]:
            got.append(on_b.try_publication("limited:x", max(0, deadline - time.monotonic())))
        self.assertEqual(got, [{"n": n} for n in range(burst_a)])
        # Node B's own bucket is whole: its burst is admitted, and then it refuses.
        for n in range(burst_b):
            reply = api(b.port, "publish", {"channel": "limited:x", "data": {"b": n}})
            self.assertNotIn("error", reply, (n, reply))
        over = api(b.port, "publish", {"channel": "limited:x", "data": {"b": "over"}})
        self.assertEqual(over.get("error", {}).get("code"), 111, over)


class JoinLeaveWatcher:
    """Reads a client's WebSocket messages, keeping the join/leave pushes of each, so a test
    can count the messages they came in."""

    def __init__(self, client):
        self.client = client
        self.reset()

    def reset(self):
        self.events = []        # ("join"|"leave", client id), in arrival order
        self.messages = 0       # WebSocket messages that carried join/leave pushes
        self.publications = []  # their data

    def wait_for(self, events, timeout=DEADLINE_S):
        self.wait_until(lambda: events <= set(self.events), timeout,
                        lambda: "watcher still misses %r" % (events - set(self.events)))

    def wait_until(self, predicate, timeout=DEADLINE_S, what=lambda: "watcher's condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out: %s" % what())
            carried = False
            for message in self.client.read_objects(timeout=left)[1]:
                push = message.get("push", {})
                for kind in ("join", "leave"):
                    if kind in push:
                        self.events.append((kind, push[kind]["info"]["client"]))
                        carried = True
                if "pub" in push:
                    self.publications.append(push["pub"]["data"])
            self.messages += carried


if __name__ == "__main__":
    h.main()
