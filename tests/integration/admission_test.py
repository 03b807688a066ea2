"""Admission and rate limits, each limit reached and its answer checked.

Connection limits: node (503 + Retry-After before the 101, no WebSocket), per IP (429),
per-IP rate (429), per user (disconnect 3504 at connect), the soft band (a connect without
a recovery position gets error 111, temporary; one with `subs` recovering is admitted),
and the accept throttle (connections wait, none is refused). Command limits: publish burst
(error 111), sustained abuse (disconnect 3013), a namespace's publish_rate_limit; a
bystander client keeps receiving publications throughout. Every refusal shows in /metrics.
"""

import json
import time

import guard_client as g
import hermod_harness as h

ANON = {"allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True, "allow_publish_for_client": True,
        "api_key": "k", "admission": {"retry_after": "7s"}}


def upgrade(port):
    """The answer to a client-protocol upgrade: (status, headers, socket left open or None)."""
    sock = h.connect(port)
    sock.sendall(h.upgrade_request(port, "/connection/websocket"))
    response = h.ResponseReader(sock).read(head_only=True)
    return response, sock


class AdmissionTest(h.HermodTestCase):
    def client(self, port):
        c = g.Client(port)
        self.addCleanup(c.close)
        return c

    def assert_refused(self, port, status):
        response, sock = upgrade(port)
        with sock:
            self.assertEqual(response.status, status)
            self.assertEqual(response.header("retry-after"), "7")
            self.assertEqual(response.header("connection"), "close")
            # A whole HTTP answer, then the server closes: never a half-open WebSocket.
            h.recv_until_closed(sock)

    def test_node_limit_answers_503_with_retry_after_and_frees_places_on_close(self):
        server = self.start_server(dict(ANON, client_connection_limit=2), workers=2)
        first = self.client(server.port)
        first.connect()
        second = self.client(server.port)
        second.connect()
        self.assert_refused(server.port, 503)
        self.assertGreaterEqual(g.metric(server.port, "hermod_connections_rejected_total",
                                         reason="capacity"), 1)
        first.close()

        def admitted():
            response, sock = upgrade(server.port)
            sock.close()
            return response.status == 101
        g.wait_for(admitted, what="a place freed by the closed client")
        second.call("presence_stats", {"channel": "x"})  # the survivor is untouched

    def test_ip_connection_limit_answers_429(self):
        server = self.start_server(dict(ANON, admission=dict(ANON["admission"],
                                                             ip_connection_limit=2)))
        for _ in range(2):
            self.client(server.port).connect()
        self.assert_refused(server.port, 429)
        self.assertEqual(g.metric(server.port, "hermod_connections_rejected_total",
                                  reason="ip_limit"), 1)

    def test_ip_connection_rate_answers_429(self):
        server = self.start_server(dict(ANON, admission=dict(
            ANON["admission"], ip_connection_rate=1, ip_connection_burst=2)))
        statuses = []
        for _ in range(5):  # five upgrades need four seconds at 1/s with a burst of 2
            response, sock = upgrade(server.port)
            sock.close()
            statuses.append(response.status)
        self.assertEqual(statuses[:2], [101, 101])
        self.assertIn(429, statuses)
        self.assertGreaterEqual(g.metric(server.port, "hermod_connections_rejected_total",
                                         reason="ip_rate"), 1)

    def test_user_connection_limit_disconnects_with_3504(self):
        server = self.start_server({"token_hmac_secret_key": g.SECRET,
                                    "client_user_connection_limit": 1})
        alice = self.client(server.port)
        alice.connect({"token": g.jwt({"sub": "alice"})})
        again = self.client(server.port)
        again.send(("connect", {"token": g.jwt({"sub": "alice"})}))
        self.assertEqual(again.expect_close(), 3504)
        self.client(server.port).connect({"token": g.jwt({"sub": "bob"})})
        self.assertEqual(g.metric(server.port, "hermod_connections_rejected_total",
                                  reason="user_limit"), 1)
        alice.close()

        def admitted():
            c = g.Client(server.port)
            try:
                c.send(("connect", {"token": g.jwt({"sub": "alice"})}))
                return "connect" in c.read_message()
            except g.ClosedError:
                return False
            finally:
                c.close()
        g.wait_for(admitted, what="alice's place freed")

    def test_soft_band_admits_recovering_connects_first(self):
        server = self.start_server(dict(ANON, client_connection_limit=4,
                                        admission=dict(ANON["admission"],
                                                       soft_connection_limit=1)))
        self.client(server.port).connect()  # below the band: anyone
        fresh = self.client(server.port)
        r = fresh.call("connect", {})
        self.assertEqual(r["error"]["code"], 111)
        self.assertTrue(r["error"].get("temporary"), r)  # the SDK retries with backoff
        recovering = self.client(server.port)
        result = recovering.connect({"subs": {"news": {"recover": True, "offset": 3,
                                                       "epoch": "e"}}})
        self.assertIn("client", result)
        self.assertEqual(g.metric(server.port, "hermod_connections_rejected_total",
                                  reason="soft_limit"), 1)

    def test_accept_throttle_delays_a_storm_but_answers_everyone(self):
        server = self.start_server(dict(ANON, admission=dict(ANON["admission"],
                                                             accept_rate_per_loop=50)))
        count = 40  # the first 5 (a tenth of a second's worth) at once, the rest at 50/s
        socks = [h.connect(server.port) for _ in range(count)]
        try:
            start = time.monotonic()
            for s in socks:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            statuses = [h.ResponseReader(s).read().status for s in socks]
            elapsed = time.monotonic() - start
        finally:
            for s in socks:
                s.close()
        self.assertEqual(statuses, [200] * count)
        self.assertGreater(elapsed, 0.5)  # 35 accepts at 50/s take 0.7 s
        self.assertGreater(g.metric(server.port, "hermod_accept_throttled_total"), 0)


class RateLimitTest(h.HermodTestCase):
    def setUp(self):
        config = dict(ANON, client_command_rate_limit={"disconnect_after": 8,
                                                       "disconnect_window": "10s"},
                      namespaces=[{"name": "slow", "publish_rate_limit": 1,
                                   "publish_rate_burst": 3, "allow_subscribe_for_client": True,
                                   "allow_subscribe_for_anonymous": True,
                                   "allow_publish_for_client": True}])
        self.server = self.start_server(config, workers=1)
        self.bystander = g.Client(self.server.port)
        self.addCleanup(self.bystander.close)
        self.bystander.connect()
        self.bystander.call("subscribe", {"channel": "news"})

    def assert_bystander_receives(self, n):
        r = g.api_call(self.server.port, "publish", {"channel": "news", "data": {"n": n}})
        self.assertEqual(r.status, 200, r.body)
        while True:
            pub = self.bystander.next_publication("news")
            if pub["data"] == {"n": n}:
                return

    def publisher(self):
        c = g.Client(self.server.port)
        self.addCleanup(c.close)
        c.connect()
        return c

    def test_publish_past_the_burst_gets_111(self):
        c = self.publisher()
        ids = c.send(*[("publish", {"channel": "news", "data": {"n": i}}) for i in range(13)])
        replies = [c.reply(i) for i in ids]
        self.assertEqual([("error" in r) for r in replies], [False] * 10 + [True] * 3)
        for r in replies[10:]:
            self.assertEqual(r["error"]["code"], 111)
        got = [self.bystander.next_publication("news")["data"]["n"] for _ in range(10)]
        self.assertEqual(got, list(range(10)))
        self.assert_bystander_receives("after")
        self.assertEqual(g.metric(self.server.port, "hermod_client_commands_rate_limited_total",
                                  kind="publish"), 3)

    def test_sustained_abuse_is_disconnected_with_3013(self):
        c = self.publisher()
        c.send(*[("publish", {"channel": "flood", "data": 1}) for _ in range(40)])
        self.assertEqual(c.expect_close(), 3013)
        self.assert_bystander_receives("still here")
        self.assertEqual(g.metric(self.server.port,
                                  "hermod_client_rate_limit_disconnects_total"), 1)

    def test_namespace_publish_limit_is_per_channel_across_clients(self):
        a, b = self.publisher(), self.publisher()
        replies = []
        for c in (a, b):
            ids = c.send(*[("publish", {"channel": "slow:room", "data": 1}) for _ in range(2)])
            replies += [c.reply(i) for i in ids]
        self.assertEqual(sum("error" not in r for r in replies), 3)  # the channel's burst
        self.assertEqual([r["error"]["code"] for r in replies if "error" in r], [111])
        r = a.call("publish", {"channel": "slow:other", "data": 1})  # another channel: its own
        self.assertNotIn("error", r)
        self.assertEqual(g.metric(self.server.port, "hermod_client_commands_rate_limited_total",
                                  kind="channel"), 1)


class NodeWideChannelLimitTest(h.HermodTestCase):
    def test_clients_on_every_loop_and_the_api_share_one_bucket_per_channel(self):
        config = dict(ANON, namespaces=[{"name": "slow", "publish_rate_limit": 1,
                                         "publish_rate_burst": 4,
                                         "allow_publish_for_client": True}])
        server = self.start_server(config, workers=2)
        start = time.monotonic()
        replies = []
        for _ in range(4):  # connections are spread over both loops
            c = g.Client(server.port)
            self.addCleanup(c.close)
            c.connect()
            ids = c.send(*[("publish", {"channel": "slow:room", "data": 1}) for _ in range(2)])
            replies += [c.reply(i) for i in ids]
        for _ in range(2):
            r = g.api_call(server.port, "publish", {"channel": "slow:room", "data": 1})
            self.assertEqual(r.status, 200, r.body)
            replies.append(json.loads(r.body))
        elapsed = time.monotonic() - start
        admitted = sum("error" not in r for r in replies)
        # The burst, plus the one token a second that time may have repaid meanwhile.
        self.assertGreaterEqual(admitted, 4)
        self.assertLessEqual(admitted, 4 + int(elapsed))
        self.assertEqual({r["error"]["code"] for r in replies if "error" in r}, {111})


if __name__ == "__main__":
    h.main()
