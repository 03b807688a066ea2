"""Inboxes through the server API and a raw client, on each engine (memory, sqlite, and nats
against a real nats-server -js):

- `dead_letters` pages: 25 dead letters (rejected by the user, and pushed out of a full
  inbox) read 10 at a time by following the cursor come as 10 + 10 + 5, in the order they
  died, none twice, none missing, the same on a second read; filtered by channel and by
  user (a user's own channels only); a removal between two pages, of the cursor's own entry
  too, leaves the next page exactly the rest.
- `dead_letters_remove`: forgets the offsets it names (or all of the channel's), the others
  unchanged; an offset that is not a dead letter of that channel (unknown, removed already,
  pending, another channel's), a channel that is not an inbox, no channel: error 107 and
  nothing changes; with sqlite, what was removed stays removed after a restart.
- /metrics: `hermod_inbox_*` move by exactly what happened: published, delivered,
  redelivered, acked, refused, dead by reason (max_deliveries, rejected, expired,
  overflow), pending by namespace, dead letters held.
- The memory engine warns at start-up that inboxes are not durable; sqlite does not.

Every wait is a condition polled against a deadline.

Run: python3 inbox_test.py --hermod PATH
"""

import json
import os
import re
import shutil
import tempfile

import guard_client as g
import hermod_harness as h
from nats_harness import NatsServer

ENGINES = ("memory", "sqlite", "nats")


def api(port, method, body):
    r = g.api_call(port, method, body)
    assert r.status == 200, (r.status, r.body)
    return json.loads(r.body)


def inbox_metrics(port):
    """Every hermod_inbox_* sample but the ack latency histogram: {"name{labels}": value}."""
    body = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body.decode()
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r"^(hermod_inbox_(?!ack_latency)\S+) (\S+)$", body, re.M)}


def delta(before, after):
    """The samples that changed, by how much (one absent before counts from 0)."""
    out = {}
    for key in set(before) | set(after):
        d = after.get(key, 0) - before.get(key, 0)
        if d:
            out[key] = d
    return out


def key(entry):
    return entry["channel"], entry["offset"]


class InboxTest(h.HermodTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = NatsServer(jetstream=True).start()
        cls.prefixes = 0

    @classmethod
    def tearDownClass(cls):
        cls.nats.cleanup()

    def config(self, engine, namespaces, **extra):
        c = {"api_key": "k", "token_hmac_secret_key": g.SECRET,
             "user_subscribe_to_personal": True, "user_personal_channel_namespace": "inbox",
             "namespaces": namespaces}
        if engine == "sqlite":
            d = tempfile.mkdtemp(prefix="hermod-inbox-")
            self.addCleanup(shutil.rmtree, d, True)
            c.update(engine="sqlite", sqlite={"path": os.path.join(d, "hermod.db")})
        elif engine == "nats":
            InboxTest.prefixes += 1  # buckets and a stream of its own per server
            n = InboxTest.prefixes
            c.update(engine="nats", nats={"url": self.nats.url, "prefix": "inboxit%d" % n,
                                          "jetstream": {"stream": "INBOXIT%d" % n}})
        c.update(extra)
        return c

    def user(self, port, user):
        c = g.Client(port)
        self.addCleanup(c.close)
        c.connect({"token": g.jwt({"sub": user})})
        return c

    def publish(self, port, channel, n):
        r = api(port, "publish", {"channel": channel, "data": {"n": n}})
        self.assertIn("result", r, r)
        return r["result"]["offset"]

    # --- 25 dead letters, in a known order ---

    DEAD_NAMESPACES = [
        {"name": "inbox", "inbox": True, "ack_timeout": "600s"},
        {"name": "work", "inbox": True, "inbox_size": 5, "inbox_overflow": "dead_letter_oldest",
         "ack_timeout": "600s"},
    ]

    def make_dead_letters(self, engine):
        """A server with 25 dead letters; (server, [(channel, offset)] in the order they
        died). inbox:#42: 15 rejected by user 42, 5 at a time; work:#7 and work:#42 (5
        each): pushed out of their full inbox, between those rejects."""
        server = self.start_server(self.config(engine, self.DEAD_NAMESPACES))
        port = server.port
        for n in range(1, 16):
            self.publish(port, "inbox:#42", n)
        for n in range(1, 6):
            self.publish(port, "work:#7", n)
        c = self.user(port, "42")
        self.assertEqual([c.next_publication("inbox:#42")["offset"] for _ in range(15)],
                         list(range(1, 16)))
        order = []

        def reject(offsets, **reason):
            r = c.rpc("hermod.reject", dict(reason, channel="inbox:#42", offsets=offsets))
            self.assertEqual(r["data"], {"offsets": offsets})
            order.extend(("inbox:#42", o) for o in offsets)

        def overflow(channel, first):
            for n in range(first, first + 5):
                self.publish(port, channel, n)
            order.extend((channel, o) for o in range(1, 6))

        reject([1, 2, 3, 4, 5], reason="bad")
        overflow("work:#7", 6)
        reject([6, 7, 8, 9, 10])
        for n in range(1, 6):
            self.publish(port, "work:#42", n)
        overflow("work:#42", 6)
        reject([11, 12, 13, 14, 15], reason="late")
        return server, order

    def pages(self, port, query, limit=10):
        """Every page of dead_letters for query, following the cursor: [(entries, cursor)]."""
        out, cursor = [], None
        while True:
            body = dict(query, limit=limit)
            if cursor is not None:
                body["cursor"] = cursor
            result = api(port, "dead_letters", body)["result"]
            out.append((result["dead_letters"], result["cursor"]))
            cursor = result["cursor"]
            if cursor == "":
                return out
            self.assertLessEqual(len(out), 10, "the cursor does not end")

    def all_dead(self, port):
        return api(port, "dead_letters", {"limit": 1000})["result"]["dead_letters"]

    def test_dead_letters_pages_follow_the_cursor(self):
        for engine in ENGINES:
            with self.subTest(engine):
                server, order = self.make_dead_letters(engine)
                port = server.port
                whole = self.all_dead(port)
                self.assertEqual([key(e) for e in whole], order)
                by_key = {key(e): e for e in whole}
                for e in whole:
                    reason = {"inbox:#42": None, "work:#7": "overflow",
                              "work:#42": "overflow"}[e["channel"]]
                    if reason is None:
                        reason = {0: "bad", 1: "rejected", 2: "late"}[(e["offset"] - 1) // 5]
                    self.assertEqual((e["status"], e["reason"]), ("dead", reason), e)
                    self.assertEqual(e["deliveries"], 1 if e["channel"] == "inbox:#42" else 0)
                    self.assertEqual(e["data"]["n"], e["offset"])
                    self.assertGreaterEqual(e["dead_at"], e["published_at"])
                cases = [
                    ({}, order, [10, 10, 5]),
                    ({"channel": "inbox:#42"}, [k for k in order if k[0] == "inbox:#42"],
                     [10, 5]),
                    ({"channel": "work:#7"}, [k for k in order if k[0] == "work:#7"], [5]),
                    ({"user": "42"}, [k for k in order if k[0].endswith("#42")], [10, 10]),
                    ({"user": "7"}, [k for k in order if k[0] == "work:#7"], [5]),
                    ({"user": "4"}, [], [0]),
                    ({"channel": "inbox:#42", "user": "7"}, [], [0]),
                ]
                for query, expected, sizes in cases:
                    pages = self.pages(port, query)
                    self.assertEqual([len(p) for p, _ in pages], sizes, query)
                    got = [e for p, _ in pages for e in p]
                    self.assertEqual([key(e) for e in got], expected, query)
                    self.assertEqual(got, [by_key[key(e)] for e in got], query)
                    self.assertTrue(all(c != "" for _, c in pages[:-1]), (query, pages))
                    self.assertEqual(self.pages(port, query), pages, query)  # stable
                # A removal between pages: of an entry already paged, of the first page's last
                # entry (the cursor's own), and of one ahead; the next pages are the rest.
                first, cursor = self.pages(port, {"user": "42"})[0]
                self.assertEqual(key(first[-1]), ("inbox:#42", 10))
                r = api(port, "dead_letters_remove", {"channel": "inbox:#42",
                                                      "offsets": [1, 10, 12]})
                self.assertEqual(r, {"result": {"offsets": [1, 10, 12]}})
                rest = []
                while cursor:
                    result = api(port, "dead_letters",
                                 {"user": "42", "limit": 10, "cursor": cursor})["result"]
                    rest += [key(e) for e in result["dead_letters"]]
                    cursor = result["cursor"]
                self.assertEqual(rest, [k for k in order[15:] if k[0].endswith("#42")
                                        and k != ("inbox:#42", 12)])

    def test_dead_letters_remove(self):
        for engine in ENGINES:
            with self.subTest(engine):
                server, order = self.make_dead_letters(engine)
                port = server.port
                before = self.all_dead(port)
                self.assertEqual(g.metric(port, "hermod_inbox_dead_letters"), 25)

                def unchanged_but(removed):
                    self.assertEqual(self.all_dead(port),
                                     [e for e in before if key(e) not in removed])

                r = api(port, "dead_letters_remove", {"channel": "inbox:#42", "offsets": [4, 2]})
                self.assertEqual(r, {"result": {"offsets": [2, 4]}})
                removed = {("inbox:#42", 2), ("inbox:#42", 4)}
                unchanged_but(removed)
                status = api(port, "inbox_status", {"channel": "inbox:#42",
                                                    "offsets": [2, 3, 4]})["result"]
                self.assertEqual([(p["offset"], p["status"]) for p in status["publications"]],
                                 [(3, "dead")])
                self.assertEqual(g.metric(port, "hermod_inbox_dead_letters"), 23)
                # Not a dead letter of that channel: 107 naming the offset, nothing changes.
                bad = [
                    ({"channel": "inbox:#42", "offsets": [2]}, "offset 2"),  # removed already
                    ({"channel": "inbox:#42", "offsets": [3, 999]}, "offset 999"),  # unknown
                    ({"channel": "inbox:#7", "offsets": [1]}, "offset 1"),  # work:#7's
                    ({"channel": "work:#7", "offsets": [6]}, "offset 6"),  # pending
                    ({"channel": "news", "offsets": [1]}, "inbox namespace"),
                    ({"channel": "nope:#42", "offsets": [1]}, "inbox namespace"),
                    ({"offsets": [1]}, "channel"),
                    ({"channel": "", "offsets": [1]}, "channel"),
                ]
                for body, message in bad:
                    r = api(port, "dead_letters_remove", body)
                    self.assertEqual(r.get("error", {}).get("code"), 107, (body, r))
                    self.assertIn(message, r["error"]["message"], (body, r))
                unchanged_but(removed)
                status = api(port, "inbox_status", {"channel": "work:#7"})["result"]
                self.assertEqual([(p["offset"], p["status"]) for p in status["publications"]],
                                 [(o, "dead") for o in range(1, 6)]
                                 + [(o, "pending") for o in range(6, 11)])
                # Not the method's request at all: HTTP 400.
                for body in ({"channel": "inbox:#42", "offsets": ["3"]},
                             {"channel": 42}, [1]):
                    self.assertEqual(g.api_call(port, "dead_letters_remove", body).status, 400)
                unchanged_but(removed)
                # Without offsets: every dead letter of that channel, no other's.
                r = api(port, "dead_letters_remove", {"channel": "work:#7"})
                self.assertEqual(r, {"result": {"offsets": [1, 2, 3, 4, 5]}})
                removed |= {("work:#7", o) for o in range(1, 6)}
                unchanged_but(removed)
                self.assertEqual(api(port, "dead_letters_remove", {"channel": "work:#7"}),
                                 {"result": {"offsets": []}})
                status = api(port, "inbox_status", {"channel": "work:#7"})["result"]
                self.assertEqual([(p["offset"], p["status"]) for p in status["publications"]],
                                 [(o, "pending") for o in range(6, 11)])
                # Forgotten: not redriven.
                r = api(port, "dead_letters_redrive", {"channel": "inbox:#42", "offsets": [2]})
                self.assertEqual(r.get("error", {}).get("code"), 107, r)
                self.assertEqual(g.metric(port, "hermod_inbox_dead_letters"), 18)
                kept = self.all_dead(port)
                if engine == "sqlite":
                    server.stop()
                    server = self.start_server(server.config)
                    self.assertEqual(self.all_dead(server.port), kept)
                    self.assertEqual(g.metric(server.port, "hermod_inbox_dead_letters"), 18)
                server.stop()

    # --- metrics ---

    def test_inbox_metrics_move_by_what_happened(self):
        namespaces = [
            {"name": "inbox", "inbox": True, "ack_timeout": "600s"},
            # Redelivered after 100 ms, then 200 ms; dead after the second delivery.
            {"name": "m", "inbox": True, "ack_timeout": "100ms", "max_deliveries": 2,
             "allow_user_limited_channels": True, "allow_subscribe_for_client": True},
            {"name": "t", "inbox": True, "inbox_ttl": "1s"},
            {"name": "o", "inbox": True, "inbox_size": 1, "inbox_overflow": "dead_letter_oldest"},
            {"name": "r", "inbox": True, "inbox_size": 1},
        ]
        for engine in ENGINES:
            with self.subTest(engine):
                server = self.start_server(self.config(engine, namespaces))
                port = server.port
                start = inbox_metrics(port)
                for ns in ("inbox", "m", "t", "o", "r"):
                    self.assertEqual(start['hermod_inbox_pending{namespace="%s"}' % ns], 0)
                for reason in ("max_deliveries", "rejected", "expired", "overflow"):
                    self.assertEqual(start['hermod_inbox_dead_total{reason="%s"}' % reason], 0)
                last = start

                def step(expected):
                    nonlocal last
                    now = inbox_metrics(port)
                    self.assertEqual(delta(last, now), expected)
                    last = now

                for n in range(1, 4):
                    self.publish(port, "inbox:#42", n)
                step({"hermod_inbox_published_total": 3,
                      'hermod_inbox_pending{namespace="inbox"}': 3})
                c = self.user(port, "42")
                self.assertEqual([c.next_publication("inbox:#42")["offset"] for _ in range(3)],
                                 [1, 2, 3])
                step({"hermod_inbox_delivered_total": 3})
                self.assertEqual(c.rpc("hermod.ack", {"channel": "inbox:#42", "offsets": [1]})
                                 ["data"], {"offsets": [1]})
                step({"hermod_inbox_acked_total": 1,
                      'hermod_inbox_pending{namespace="inbox"}': -1})
                # A reject without a reason and one with the client's own: both "rejected".
                c.rpc("hermod.reject", {"channel": "inbox:#42", "offsets": [2]})
                c.rpc("hermod.reject", {"channel": "inbox:#42", "offsets": [3], "reason": "x"})
                step({'hermod_inbox_dead_total{reason="rejected"}': 2,
                      'hermod_inbox_pending{namespace="inbox"}': -2,
                      "hermod_inbox_dead_letters": 2})
                # Never acked: delivered, redelivered once, then dead (max_deliveries 2).
                c.subscribe("m:#42")
                self.publish(port, "m:#42", 1)
                got = [c.next_publication("m:#42") for _ in range(2)]
                self.assertEqual([p["tags"]["hermod-delivery"] for p in got], ["1", "2"])
                h.wait_for("the dead letter", lambda: inbox_metrics(port).get(
                    'hermod_inbox_dead_total{reason="max_deliveries"}') == 1)
                step({"hermod_inbox_published_total": 1, "hermod_inbox_delivered_total": 1,
                      "hermod_inbox_redelivered_total": 1,
                      'hermod_inbox_dead_total{reason="max_deliveries"}': 1,
                      "hermod_inbox_dead_letters": 1})
                self.assertIsNone(c.try_publication("m:#42", 0.5))
                step({})
                # Past inbox_ttl unacknowledged: expired.
                self.publish(port, "t:#9", 1)
                step({"hermod_inbox_published_total": 1,
                      'hermod_inbox_pending{namespace="t"}': 1})
                h.wait_for("the expiry", lambda: inbox_metrics(port).get(
                    'hermod_inbox_dead_total{reason="expired"}') == 1)
                step({'hermod_inbox_dead_total{reason="expired"}': 1,
                      'hermod_inbox_pending{namespace="t"}': -1,
                      "hermod_inbox_dead_letters": 1})
                # A full inbox makes room: overflow.
                self.publish(port, "o:#9", 1)
                self.publish(port, "o:#9", 2)
                step({"hermod_inbox_published_total": 2,
                      'hermod_inbox_pending{namespace="o"}': 1,
                      'hermod_inbox_dead_total{reason="overflow"}': 1,
                      "hermod_inbox_dead_letters": 1})
                # A full inbox that refuses: 111, HTTP 429, counted as refused.
                self.publish(port, "r:#9", 1)
                r = g.api_call(port, "publish", {"channel": "r:#9", "data": {"n": 2}})
                self.assertEqual(r.status, 429, r.body)
                self.assertEqual(json.loads(r.body)["error"]["code"], 111)
                step({"hermod_inbox_published_total": 1, "hermod_inbox_refused_total": 1,
                      'hermod_inbox_pending{namespace="r"}': 1})
                # Redriven: pending again (not a new publication), no longer held dead.
                r = api(port, "dead_letters_redrive", {"channel": "inbox:#42", "offsets": [2]})
                self.assertEqual(r, {"result": {"offsets": [2]}})
                self.assertEqual(c.next_publication("inbox:#42")["offset"], 2)
                step({"hermod_inbox_delivered_total": 1, "hermod_inbox_dead_letters": -1,
                      'hermod_inbox_pending{namespace="inbox"}': 1})
                self.assertEqual(delta(start, last), {
                    "hermod_inbox_published_total": 8,
                    "hermod_inbox_delivered_total": 5,
                    "hermod_inbox_redelivered_total": 1,
                    "hermod_inbox_acked_total": 1,
                    "hermod_inbox_refused_total": 1,
                    'hermod_inbox_dead_total{reason="rejected"}': 2,
                    'hermod_inbox_dead_total{reason="max_deliveries"}': 1,
                    'hermod_inbox_dead_total{reason="expired"}': 1,
                    'hermod_inbox_dead_total{reason="overflow"}': 1,
                    "hermod_inbox_dead_letters": 4,
                    'hermod_inbox_pending{namespace="inbox"}': 1,
                    'hermod_inbox_pending{namespace="o"}': 1,
                    'hermod_inbox_pending{namespace="r"}': 1,
                })
                server.stop()

    # --- start-up ---

    WARNING = "inboxes are kept in memory (engine memory): they are NOT durable"

    def startup_log(self, engine, namespaces):
        server = self.start_server(self.config(engine, namespaces))
        log = list(server.log)  # every line up to "listening on": the inboxes are built first
        server.stop()
        return log

    def test_memory_engine_warns_that_inboxes_are_not_durable(self):
        inbox = [{"name": "inbox", "inbox": True}]
        warned = [l for l in self.startup_log("memory", inbox) if self.WARNING in l]
        self.assertEqual(len(warned), 1, warned)
        self.assertRegex(warned[0], r"\bwarn")
        for engine, namespaces in (("memory", [{"name": "news"}]), ("sqlite", inbox),
                                   ("nats", inbox)):
            log = self.startup_log(engine, namespaces)
            self.assertFalse([l for l in log if "NOT durable" in l], (engine, log))
            if namespaces is inbox:
                self.assertTrue([l for l in log if "(durable" in l], (engine, log))


if __name__ == "__main__":
    h.main()
