"""The fan-out path to mixed receivers: a publication reaches a permessage-deflate client and a
plain client of /connection/websocket, and both read the same push; and push coalescing:
publications that reach a loop together leave as one frame of newline-joined pushes.

Raw sockets, so the test sees what is on the wire: the deflate client's push frame has RSV1
set and inflates (from a fresh window when server_no_context_takeover was negotiated: the
frame compressed once and shared) to exactly the plain client's uncompressed payload. With
context takeover the receiver compresses for itself, and its frames inflate in one stream.

Run: python3 fanout_test.py --hermod PATH
"""

import json

from guard_client import Client
from hermod_harness import HermodTestCase, http_exchange, main

CONFIG = {
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "api_key": "k",
    "history_size": 10,
    "history_ttl": "60s",
}


def api_publish(port, channel, data):
    body = json.dumps({"channel": channel, "data": data}).encode()
    request = ("POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: apikey k\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % len(body)).encode() + body
    response = http_exchange(port, request)
    assert response.status == 200, (response.status, response.body)


class FanoutTest(HermodTestCase):
    def client(self, port, deflate):
        c = Client(port, deflate=deflate)
        self.addCleanup(c.close)
        return c

    def connect_and_subscribe(self, c, channel):
        c.connect()
        c.subscribe(channel)
        c.compressed = 0  # count pushes only

    def publish_to_both(self, config):
        server = self.start_server(config, workers=2)
        deflated = self.client(server.port, deflate=True)
        plain = self.client(server.port, deflate=False)
        self.assertTrue(deflated.deflate)
        self.assertFalse(plain.deflate)
        self.connect_and_subscribe(deflated, "news")
        self.connect_and_subscribe(plain, "news")
        for n in range(1, 6):
            data = {"n": n, "text": "the same words again and again " * 8}
            api_publish(server.port, "news", data)
            rsv1_d, got_d = deflated.read_frame()
            rsv1_p, got_p = plain.read_frame()
            self.assertTrue(rsv1_d, "the deflate client's push is compressed")
            self.assertFalse(rsv1_p, "the plain client's push is not")
            self.assertEqual(got_d, got_p)
            push = json.loads(got_p)["push"]
            self.assertEqual(push["channel"], "news")
            self.assertEqual(push["pub"]["data"], data)
            self.assertEqual(push["pub"]["offset"], n)
        # A push shorter than compression.min_size leaves uncompressed for both.
        api_publish(server.port, "news", 1)
        self.assertEqual(deflated.read_frame(), plain.read_frame())
        self.assertEqual(deflated.compressed, 5)
        return deflated

    def test_deflate_and_plain_subscribers_get_the_same_push(self):
        deflated = self.publish_to_both(CONFIG)
        self.assertTrue(deflated.no_context)

    def test_a_receiver_with_context_takeover_compresses_for_itself(self):
        config = dict(CONFIG, websocket={"compression": {"server_no_context_takeover": False}})
        deflated = self.publish_to_both(config)
        self.assertFalse(deflated.no_context)

    def publish_together(self, config, count):
        """A client publishes count times in one message (one worker: every publication
        reaches the subscribers' loop in one mailbox run); returns the frames each
        subscriber read, as lists of pushes, once count pushes arrived."""
        config = dict(config, allow_publish_for_client=True)
        server = self.start_server(config, workers=1)
        subscribers = [self.client(server.port, True), self.client(server.port, False)]
        for c in subscribers:
            self.connect_and_subscribe(c, "news")
        publisher = self.client(server.port, deflate=False)
        publisher.connect()
        publisher.send(*[("publish", {"channel": "news", "data": {"n": n}})
                         for n in range(count)])
        frames = []
        for c in subscribers:
            got = []
            while sum(len(f) for f in got) < count:
                got.append([o["push"] for o in c.read_objects()[1]])
            frames.append(got)
        for got in frames:
            pushes = [p for frame in got for p in frame]
            self.assertEqual([p["pub"]["data"]["n"] for p in pushes], list(range(count)))
            self.assertEqual([p["pub"]["offset"] for p in pushes], list(range(1, count + 1)))
        return frames

    def test_pushes_that_reach_a_loop_together_leave_as_one_frame(self):
        for got in self.publish_together(CONFIG, 5):
            self.assertEqual([len(frame) for frame in got], [5])

    def test_coalescing_respects_the_size_bound_and_can_be_off(self):
        # Room for two pushes (and their newline) but not three.
        one = len(json.dumps({"push": {"channel": "news", "pub": {
            "data": {"n": 0}, "info": {"user": "", "client": "c" * 36}, "offset": 1}}},
            separators=(",", ":"))) + 1
        # Per-connection joining (join_test.py) would join the channel's frames again: off.
        config = dict(CONFIG, websocket={"join_max_bytes": 0})
        bound = dict(config, push_coalesce_max_bytes=2 * one + 10)
        for got in self.publish_together(bound, 5):
            self.assertEqual([len(frame) for frame in got], [2, 2, 1])
        for got in self.publish_together(dict(config, push_coalesce_max_bytes=0), 3):
            self.assertEqual([len(frame) for frame in got], [1, 1, 1])


if __name__ == "__main__":
    main()
