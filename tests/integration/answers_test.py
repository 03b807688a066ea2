"""Answers that were wrong, each as Centrifugo gives it.

- §4: `data` is any JSON text (RFC 8259): numbers past int64 or double (`10^20` wei,
  `1e99999`, -2^63-1) pass through verbatim, from a client's publish and from the API.
- §7: the API's `disconnect.code` is one of Centrifugo's custom ranges, 3000-4999; others
  (1005, 1006, 999, past 65535, negative) are refused with 107 naming the field, and the
  client stays connected.
- §12: a channel's epoch and top offset outlive its last subscriber (history_meta_ttl), so
  the next publication continues the stream and a client recovers from its position.
- `$rw:x` is the private channel `rw:x` of namespace `rw` (the prefix is not
  part of the namespace); channel names are ASCII unless channel_name_ascii_only is off.
"""

import json
import time

import guard_client as g
import hermod_harness as h

CONFIG = {
    "api_key": "k",
    "token_hmac_secret_key": g.SECRET,
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "namespaces": [
        {"name": "h", "history_size": 10, "history_ttl": "300s",
         "allow_subscribe_for_client": True, "allow_history_for_client": True},
        {"name": "rw", "allow_subscribe_for_client": True},
    ],
}


def token(user="u", **claims):
    body = {"sub": user, "exp": int(time.time()) + 3600}
    body.update(claims)
    return g.jwt(body)


def raw_api(port, method, body_text):
    data = body_text.encode()
    head = ("POST /api/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
            "Authorization: apikey k\r\n\r\n" % (method, len(data)))
    return h.http_exchange(port, head.encode() + data)


class AnswersCase(h.HermodTestCase):
    config = CONFIG

    def setUp(self):
        self.server = self.start_server(self.config, workers=2)
        self.port = self.server.port

    def client(self, user="u"):
        c = g.Client(self.port)
        self.addCleanup(c.close)
        c.connect({"token": token(user)})
        return c

    def next_raw_publication(self, c):
        """The next publication push's raw text (Python's json would turn 1e99999 into inf)."""
        while True:
            for line in c.read_frame()[1].split("\n"):
                if '"pub"' in line:
                    return line


class BigNumberTest(AnswersCase):
    DATA = ['{"wei": 100000000000000000000}', "1e99999", "-9223372036854775809",
            '[18446744073709551616, 0.1e-99999]']

    def test_client_publish_passes_big_numbers_verbatim(self):
        subscriber = self.client("s")
        subscriber.call("subscribe", {"channel": "news"})
        publisher = self.client("p")
        for i, data in enumerate(self.DATA):
            command = '{"id":%d,"publish":{"channel":"news","data":%s}}' % (100 + i, data)
            publisher.ws.send_frame(h.OP_TEXT, command.encode())
            self.assertEqual(publisher.reply(100 + i), {"id": 100 + i, "publish": {}})
            self.assertIn('"data":%s' % data, self.next_raw_publication(subscriber))

    def test_api_publish_passes_big_numbers_verbatim(self):
        subscriber = self.client("s")
        subscriber.call("subscribe", {"channel": "news"})
        for data in self.DATA:
            r = raw_api(self.port, "publish", '{"channel":"news","data":%s}' % data)
            self.assertEqual(r.status, 200, r.body)
            self.assertIn("result", json.loads(r.body))
            self.assertIn('"data":%s' % data, self.next_raw_publication(subscriber))

    def test_malformed_numbers_are_still_refused(self):
        r = raw_api(self.port, "publish", '{"channel":"news","data":01}')
        self.assertEqual(r.status, 400)
        c = self.client()
        c.ws.send_frame(h.OP_TEXT, b'{"id":9,"publish":{"channel":"news","data":1.}}')
        self.assertEqual(c.expect_close(), 3501)


class DisconnectCodeTest(AnswersCase):
    def test_codes_outside_centrifugo_ranges_are_refused_with_107(self):
        c = self.client("victim")
        for code in [1005, 1006, 999, 1000, 2999, 5000, 66536, 65535 + 4000, -1, "4000"]:
            r = g.api_call(self.port, "disconnect",
                           {"user": "victim", "disconnect": {"code": code, "reason": "x"}})
            self.assertEqual(r.status, 200, (code, r.body))
            error = json.loads(r.body)["error"]
            self.assertEqual(error["code"], 107, code)
            self.assertIn("disconnect.code", error["message"])
        # Still connected: every refusal left the client alone.
        self.assertIn("publish", c.call("publish", {"channel": "news", "data": {}}))

    def test_custom_and_builtin_ranges_reach_the_client(self):
        for code in [4000, 4999, 3000, 3999]:
            c = self.client("victim")
            r = g.api_call(self.port, "disconnect",
                           {"user": "victim", "disconnect": {"code": code, "reason": "bye"}})
            self.assertEqual(json.loads(r.body), {"result": {}})
            with self.assertRaises(g.ClosedError) as closed:
                while True:
                    c.read_message()
            self.assertEqual((closed.exception.code, closed.exception.reason), (code, b"bye"))


class HistoryMetaTest(AnswersCase):
    def test_epoch_survives_the_last_subscriber_and_the_client_recovers(self):
        c = self.client()
        first = c.call("subscribe", {"channel": "h:x", "recoverable": True})["subscribe"]
        epoch = first["epoch"]
        self.assertTrue(epoch)
        self.assertNotIn("offset", first)  # nothing published yet
        c.call("unsubscribe", {"channel": "h:x"})
        r = json.loads(g.api_call(self.port, "publish",
                                  {"channel": "h:x", "data": {"n": 1}}).body)
        self.assertEqual(r, {"result": {"offset": 1, "epoch": epoch}})
        # History of the channel answers in the same stream.
        hist = c.call("history", {"channel": "h:x", "limit": 10})["history"]
        self.assertEqual((hist["epoch"], hist["offset"]), (epoch, 1))
        again = c.call("subscribe", {"channel": "h:x", "recoverable": True, "recover": True,
                                     "offset": 0, "epoch": epoch})["subscribe"]
        self.assertTrue(again.get("recovered"), again)
        self.assertEqual(again["epoch"], epoch)
        self.assertEqual([p["data"] for p in again["publications"]], [{"n": 1}])

    def test_position_outlives_the_publications_and_the_last_subscriber(self):
        for n in range(3):
            g.api_call(self.port, "publish", {"channel": "h:y", "data": {"n": n}})
        g.api_call(self.port, "history_remove", {"channel": "h:y"})
        c = self.client()
        sub = c.call("subscribe", {"channel": "h:y", "recoverable": True})["subscribe"]
        self.assertEqual(sub["offset"], 3)
        # The last subscriber leaves a channel with no publications: its state is freed.
        c.call("unsubscribe", {"channel": "h:y"})
        r = json.loads(g.api_call(self.port, "publish", {"channel": "h:y", "data": {}}).body)
        self.assertEqual(r["result"], {"offset": 4, "epoch": sub["epoch"]})


class HistoryMetaBoundTest(AnswersCase):
    config = dict(CONFIG, history_meta_max_channels=1)

    def test_positions_beyond_the_cap_are_forgotten_and_counted(self):
        # The cap is split over the hub's 64 shards (at least one each): of 200 channels
        # emptied, at most 64 positions stay and the rest are counted as evicted.
        c = self.client()
        for i in range(200):
            channel = "h:c%d" % i
            c.call("subscribe", {"channel": channel, "recoverable": True})
            c.call("unsubscribe", {"channel": channel})
        self.assertGreaterEqual(g.metric(self.port, "hermod_history_meta_evicted_total"), 136)


class PrivateNamespaceTest(AnswersCase):
    def test_private_channel_in_a_namespace_subscribes_with_a_token(self):
        c = self.client("u")
        r = c.call("subscribe", {"channel": "$rw:x",
                                 "token": token("u", channel="$rw:x")})
        self.assertIn("subscribe", r, r)
        # Without a token the namespace is found and access is refused (103), not 102.
        r = c.call("subscribe", {"channel": "$rw:y"})
        self.assertEqual(r["error"]["code"], 103, r)
        r = c.call("subscribe", {"channel": "$nope:y", "token": token("u", channel="$nope:y")})
        self.assertEqual(r["error"]["code"], 102, r)


class AsciiNameTest(AnswersCase):
    def test_non_ascii_names_are_refused_with_107(self):
        c = self.client()
        for method in ["subscribe", "publish", "history"]:
            r = c.call(method, {"channel": "caf\u00e9", "data": {}})
            self.assertEqual(r["error"]["code"], 107, (method, r))
        r = g.api_call(self.port, "publish", {"channel": "caf\u00e9", "data": {}})
        self.assertEqual(json.loads(r.body)["error"]["code"], 107)
        self.assertIn("subscribe", c.call("subscribe", {"channel": "cafe"}))


class AnyNameTest(AnswersCase):
    config = dict(CONFIG, channel_name_ascii_only=False)

    def test_utf8_names_are_accepted_when_the_option_is_off(self):
        c = self.client()
        self.assertIn("subscribe", c.call("subscribe", {"channel": "caf\u00e9"}))
        r = g.api_call(self.port, "publish", {"channel": "caf\u00e9", "data": {"a": 1}})
        self.assertIn("result", json.loads(r.body))
        self.assertEqual(c.next_publication("caf\u00e9")["data"], {"a": 1})


if __name__ == "__main__":
    h.main()
