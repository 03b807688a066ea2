"""The server HTTP API (Centrifugo's shapes) over plain HTTP: every method, its errors, batch,
tags, b64data, skip_history, channel patterns and the idempotency window (within it; its end is
unit-tested in tests/unit/core/hub_test.cc with the injectable clock).

Clients are raw WebSockets speaking the JSON protocol (guard_client.Client), so what a
subscriber receives is checked byte for byte where it matters (tags, chan_info are not
SDK-visible everywhere).
"""

import base64
import json
import time

import guard_client as g
import hermod_harness as h

KEY = "api-key"
SECRET = "hmac-secret"

CONFIG = {
    "api_key": KEY,
    "token_hmac_secret_key": SECRET,
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "presence": True,
    "history_size": 10,
    "history_ttl": "300s",
    "ping_interval": "1s",
    "pong_timeout": "900ms",
    "client_expired_close_delay": "0s",
    "namespaces": [{"name": "bare", "allow_subscribe_for_client": True,
                    "allow_subscribe_for_anonymous": True}],
}


def jwt(claims):
    return g.jwt(claims, key=SECRET)


def b64(text):
    return base64.b64encode(text.encode()).decode()


class ApiTest(h.HermodTestCase):
    def setUp(self):
        self.server = self.start_server(CONFIG, workers=2, echo=False)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, token=None):
        c = g.Client(self.server.port)
        self.clients.append(c)
        c.connect({"token": token} if token else {})
        return c

    def raw(self, method, body, headers=None):
        headers = headers if headers is not None else ["X-API-Key: " + KEY]
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = ("POST /api/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (
            method, len(data), "".join(line + "\r\n" for line in headers))).encode() + data
        return h.http_exchange(self.server.port, request)

    def api(self, method, body):
        response = self.raw(method, body)
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.header("content-type"), "application/json")
        return json.loads(response.body)

    def error(self, method, body):
        return self.api(method, body)["error"]["code"]

    # --- authentication and envelopes ---

    def test_api_key_in_either_header_and_401_without(self):
        body = {"channel": "a", "data": 1}
        self.assertEqual(self.raw("publish", body, ["X-API-Key: " + KEY]).status, 200)
        self.assertEqual(self.raw("publish", body, ["Authorization: apikey " + KEY]).status, 200)
        self.assertEqual(self.raw("publish", body, ["X-API-Key: wrong"]).status, 401)
        self.assertEqual(self.raw("publish", body, []).status, 401)

    def test_400_for_bodies_that_are_not_json_objects_and_404_for_unknown_methods(self):
        for body in (b"", b"[]", b"{\"channel\":", b"nonsense", b"{\"data\":1}{}"):
            self.assertEqual(self.raw("publish", body).status, 400, body)
        self.assertEqual(self.raw("publish", {"channel": 5, "data": 1}).status, 400)
        self.assertEqual(self.raw("nosuchmethod", {}).status, 404)

    # --- publish ---

    def test_publish_answers_the_position_and_centrifugo_errors(self):
        first = self.api("publish", {"channel": "news", "data": {"n": 1}})["result"]
        self.assertEqual(first["offset"], 1)
        self.assertTrue(first["epoch"])
        second = self.api("publish", {"channel": "news", "data": 2})["result"]
        self.assertEqual(second, {"offset": 2, "epoch": first["epoch"]})
        self.assertEqual(self.api("publish", {"channel": "nowhere:x", "data": 1}),
                         {"error": {"code": 102, "message": "unknown channel"}})
        self.assertEqual(self.api("publish", {"channel": "news"}),
                         {"error": {"code": 107, "message": "bad request"}})
        self.assertEqual(self.error("publish", {"data": 1}), 107)
        self.assertEqual(self.error("publish", {"channel": "x" * 1000, "data": 1}), 107)
        # No history in the namespace: nothing to position.
        self.assertEqual(self.api("publish", {"channel": "bare:x", "data": 1}), {"result": {}})

    def test_tags_reach_subscribers_and_history(self):
        c = self.client()
        c.subscribe("tagged")
        tags = {"kind": "alert", "é": "\"q\""}
        self.api("publish", {"channel": "tagged", "data": {"x": 1}, "tags": tags})
        self.assertEqual(c.next_publication("tagged")["tags"], tags)
        history = self.api("history", {"channel": "tagged", "limit": -1})["result"]
        self.assertEqual(history["publications"][0]["tags"], tags)
        self.assertEqual(history["publications"][0]["data"], {"x": 1})
        self.assertEqual(self.raw("publish", {"channel": "tagged", "data": 1,
                                              "tags": {"k": 1}}).status, 400)

    def test_data_with_line_breaks_reaches_subscribers_and_history_whole(self):
        # Line breaks as JSON whitespace would split the push across the JSON protocol's
        # lines: the publication is stored and sent without them.
        c = self.client()
        c.subscribe("lines")
        body = b'{"channel": "lines", "data": {"a":\r\n  [1,\n 2], "s": "x y"}\n}'
        response = self.raw("publish", body)
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(json.loads(response.body)["result"]["offset"], 1)
        self.assertEqual(c.next_publication("lines")["data"], {"a": [1, 2], "s": "x y"})
        history = self.api("history", {"channel": "lines", "limit": -1})["result"]
        self.assertEqual([p["data"] for p in history["publications"]],
                         [{"a": [1, 2], "s": "x y"}])
        # A raw line break inside a string is not JSON.
        self.assertEqual(self.raw("publish", b'{"channel": "lines", "data": "a\nb"}').status, 400)

    def test_b64data_publishes_json_and_refuses_what_is_not(self):
        c = self.client()
        c.subscribe("bin")
        result = self.api("publish", {"channel": "bin", "b64data": b64('{"from":"b64"}')})
        self.assertEqual(result["result"]["offset"], 1)
        self.assertEqual(c.next_publication("bin")["data"], {"from": "b64"})
        # Valid base64 of bytes that are not JSON: the JSON protocol cannot carry them.
        self.assertEqual(self.error("publish", {"channel": "bin", "b64data": b64("not json")}),
                         107)
        self.assertEqual(self.raw("publish", {"channel": "bin", "b64data": "***"}).status, 400)
        history = self.api("history", {"channel": "bin", "limit": -1})["result"]
        self.assertEqual(len(history["publications"]), 1)

    def test_skip_history_delivers_without_storing(self):
        c = self.client()
        c.subscribe("skip")
        self.api("publish", {"channel": "skip", "data": 1})
        self.assertEqual(self.api("publish", {"channel": "skip", "data": 2,
                                              "skip_history": True}), {"result": {}})
        self.assertEqual(c.next_publication("skip")["data"], 1)
        delivered = c.next_publication("skip")
        self.assertEqual(delivered["data"], 2)
        self.assertNotIn("offset", delivered)
        history = self.api("history", {"channel": "skip", "limit": -1})["result"]
        self.assertEqual([p["data"] for p in history["publications"]], [1])

    # --- idempotency ---

    def test_idempotency_key_publishes_once_per_channel_within_the_window(self):
        body = {"channel": "once", "data": {"n": 1}, "idempotency_key": "k1"}
        first = self.api("publish", body)
        self.assertEqual(self.api("publish", body), first)
        self.assertEqual(self.api("publish", dict(body, data={"n": 2})), first)
        other_key = self.api("publish", dict(body, idempotency_key="k2"))["result"]
        self.assertEqual(other_key["offset"], first["result"]["offset"] + 1)
        # The key acts per channel.
        elsewhere = self.api("publish", dict(body, channel="once2"))["result"]
        self.assertEqual(elsewhere["offset"], 1)
        history = self.api("history", {"channel": "once", "limit": -1})["result"]
        self.assertEqual([p["data"] for p in history["publications"]], [{"n": 1}, {"n": 1}])

    def test_broadcast_honours_the_idempotency_key_per_channel(self):
        body = {"channels": ["b1", "b2"], "data": "x", "idempotency_key": "bk"}
        first = self.api("broadcast", body)["result"]["responses"]
        self.assertEqual([r["result"]["offset"] for r in first], [1, 1])
        again = self.api("broadcast", dict(body, channels=["b1", "b2", "b3"]))
        responses = again["result"]["responses"]
        self.assertEqual(responses[:2], first)
        self.assertEqual(responses[2]["result"]["offset"], 1)
        for channel in ("b1", "b2", "b3"):
            history = self.api("history", {"channel": channel, "limit": -1})["result"]
            self.assertEqual(len(history["publications"]), 1, channel)

    # --- broadcast ---

    def test_broadcast_answers_each_channel_and_refuses_empty_requests(self):
        a = self.client()
        a.subscribe("bc1")
        a.subscribe("bare:bc2")
        body = {"channels": ["bc1", "nowhere:1", "bare:bc2"], "data": {"v": 1},
                "tags": {"t": "1"}}
        responses = self.api("broadcast", body)["result"]["responses"]
        self.assertEqual(responses[0]["result"]["offset"], 1)
        self.assertEqual(responses[1], {"error": {"code": 102, "message": "unknown channel"}})
        self.assertEqual(responses[2], {"result": {}})
        for channel in ("bc1", "bare:bc2"):
            pub = a.next_publication(channel)
            self.assertEqual((pub["data"], pub["tags"]), ({"v": 1}, {"t": "1"}))
        self.assertEqual(self.error("broadcast", {"channels": [], "data": 1}), 107)
        self.assertEqual(self.error("broadcast", {"channels": ["bc1"]}), 107)
        by_b64 = self.api("broadcast", {"channels": ["bc1"], "b64data": b64("[1]")})
        self.assertEqual(by_b64["result"]["responses"][0]["result"]["offset"], 2)

    # --- batch ---

    def test_batch_answers_every_command_in_order(self):
        body = {"commands": [
            {"publish": {"channel": "bt", "data": {"i": 1}}},
            {"publish": {"channel": "x:bt", "data": {}}},
            {"history": {"channel": "bt", "limit": -1}},
            {"presence_stats": {"channel": "bt"}},
            {"nosuchmethod": {}},
            {},
            {"batch": {"commands": []}},
            {"publish": {"channel": "bt"}},
            {"publish": {"channel": 1}},
        ]}
        replies = self.api("batch", body)["replies"]
        self.assertEqual(len(replies), 9)
        self.assertEqual(replies[0]["publish"]["offset"], 1)
        self.assertEqual(replies[1], {"error": {"code": 102, "message": "unknown channel"}})
        self.assertEqual([p["data"] for p in replies[2]["history"]["publications"]], [{"i": 1}])
        self.assertEqual(replies[3], {"presence_stats": {"num_clients": 0, "num_users": 0}})
        self.assertEqual(replies[4], {"error": {"code": 104, "message": "method not found"}})
        for reply in replies[5:]:
            self.assertEqual(reply, {"error": {"code": 107, "message": "bad request"}})
        parallel = self.api("batch", {"parallel": True, "commands": [
            {"publish": {"channel": "bt", "data": 2}}, {"publish": {"channel": "bt", "data": 3}}]})
        self.assertEqual([r["publish"]["offset"] for r in parallel["replies"]], [2, 3])
        self.assertEqual(self.api("batch", {}), {"replies": []})
        self.assertEqual(self.raw("batch", {"commands": {}}).status, 400)
        self.assertEqual(self.raw("batch", {"commands": [1]}).status, 400)

    def test_the_legacy_api_route_answers_one_line_per_command(self):
        """Centrifugo's older form, still served by v5: POST /api, one command per line."""
        def post(body, key=KEY):
            request = ("POST /api HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                       "Content-Length: %d\r\n\r\n" % (key, len(body))).encode() + body
            return h.http_exchange(self.server.port, request)
        body = b"\n".join(json.dumps(c).encode() for c in [
            {"method": "publish", "params": {"channel": "legacy", "data": {"n": 1}}, "id": 1},
            {"method": "HISTORY", "params": {"channel": "legacy", "limit": -1}, "id": 2},
            {"method": "batch", "params": {"commands": []}, "id": 3},
            {"method": "info"}])
        response = post(body)
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.header("content-type"), "application/json")
        lines = [json.loads(line) for line in response.body.decode().splitlines()]
        self.assertEqual(len(lines), 4, response.body)
        self.assertEqual((lines[0]["id"], lines[0]["result"]["offset"]), (1, 1))
        self.assertEqual([p["data"] for p in lines[1]["result"]["publications"]], [{"n": 1}])
        self.assertEqual(lines[2], {"id": 3, "error": {"code": 104, "message": "method not found"}})
        self.assertEqual(lines[3]["result"]["nodes"][0]["name"], "hermod")
        self.assertEqual(post(b"{not json").status, 400)
        self.assertEqual(post(body, key="wrong").status, 401)

    # --- channels, info, presence ---

    def test_channels_lists_subscribed_channels_filtered_by_pattern(self):
        a, b = self.client(), self.client()
        for channel in ("chat.room1", "chat.room2", "news"):
            a.subscribe(channel)
        b.subscribe("chat.room1")
        everything = self.api("channels", {})["result"]["channels"]
        self.assertEqual(everything, {"chat.room1": {"num_clients": 2},
                                      "chat.room2": {"num_clients": 1},
                                      "news": {"num_clients": 1}})
        def names(pattern):
            result = self.api("channels", {"pattern": pattern})["result"]["channels"]
            return sorted(result)
        self.assertEqual(names("chat.*"), ["chat.room1", "chat.room2"])
        self.assertEqual(names("*1"), ["chat.room1"])
        self.assertEqual(names("{news,chat.room2}"), ["chat.room2", "news"])
        self.assertEqual(names("chat.room[!1]"), ["chat.room2"])
        self.assertEqual(names("n?ws"), ["news"])
        self.assertEqual(names("nothing*"), [])
        self.assertEqual(self.error("channels", {"pattern": "chat.[room"}), 107)

    def test_info_reports_this_node(self):
        self.client(jwt({"sub": "u1"}))
        self.client(jwt({"sub": "u1"})).subscribe("infochan")
        self.client()
        nodes = self.api("info", {})["result"]["nodes"]
        self.assertEqual(len(nodes), 1)
        node = nodes[0]
        self.assertEqual(node["name"], "hermod")
        self.assertRegex(node["uid"], r"^[0-9a-f-]{36}$")
        self.assertTrue(node["version"])
        self.assertEqual((node["num_clients"], node["num_users"]), (3, 2))  # u1 and anonymous
        self.assertEqual((node["num_channels"], node["num_subs"]), (1, 1))
        self.assertGreaterEqual(node["uptime"], 0)

    def test_presence_and_presence_stats(self):
        a = self.client(jwt({"sub": "ann", "info": {"name": "Ann"}}))
        b = self.client()
        a.subscribe("room")
        b.subscribe("room")
        presence = self.api("presence", {"channel": "room"})["result"]["presence"]
        self.assertEqual(presence[a.id], {"user": "ann", "client": a.id,
                                          "conn_info": {"name": "Ann"}})
        self.assertEqual(presence[b.id], {"user": "", "client": b.id})
        self.assertEqual(self.api("presence_stats", {"channel": "room"}),
                         {"result": {"num_clients": 2, "num_users": 2}})
        self.assertEqual(self.error("presence", {"channel": "bare:room"}), 108)
        self.assertEqual(self.error("presence_stats", {"channel": "nowhere:x"}), 102)
        self.assertEqual(self.error("presence", {}), 107)

    # --- history ---

    def test_history_limit_since_reverse_and_remove(self):
        for i in range(1, 6):
            self.api("publish", {"channel": "log", "data": i})
        position = self.api("history", {"channel": "log"})["result"]
        self.assertEqual((position["publications"], position["offset"]), ([], 5))
        epoch = position["epoch"]
        last2 = self.api("history", {"channel": "log", "limit": 2, "reverse": True})["result"]
        self.assertEqual([p["data"] for p in last2["publications"]], [5, 4])
        since = self.api("history", {"channel": "log", "limit": -1,
                                     "since": {"offset": 3, "epoch": epoch}})["result"]
        self.assertEqual([p["offset"] for p in since["publications"]], [4, 5])
        self.assertEqual(self.error("history", {"channel": "log", "limit": 1,
                                                "since": {"offset": 1, "epoch": "other"}}), 112)
        self.assertEqual(self.error("history", {"channel": "bare:log"}), 108)
        self.assertEqual(self.error("history", {"channel": "nowhere:x"}), 102)
        self.assertEqual(self.api("history_remove", {"channel": "log"}), {"result": {}})
        emptied = self.api("history", {"channel": "log", "limit": -1})["result"]
        self.assertEqual((emptied["publications"], emptied["offset"], emptied["epoch"]),
                         ([], 5, epoch))
        self.assertEqual(self.error("history_remove", {"channel": "nowhere:x"}), 102)

    # --- per-client methods ---

    def test_subscribe_and_unsubscribe_a_user_from_the_server(self):
        c = self.client(jwt({"sub": "sam"}))
        self.assertEqual(self.api("subscribe", {"user": "sam", "channel": "ops"}),
                         {"result": {}})
        push = c.wait(lambda m: "subscribe" in m.get("push", {}))["push"]
        self.assertEqual(push["channel"], "ops")
        self.api("publish", {"channel": "ops", "data": "go"})
        self.assertEqual(c.next_publication("ops")["data"], "go")
        self.assertEqual(self.api("unsubscribe", {"user": "sam", "channel": "ops"}),
                         {"result": {}})
        push = c.wait(lambda m: "unsubscribe" in m.get("push", {}))["push"]
        self.assertEqual(push["unsubscribe"]["code"], 2000)
        self.assertEqual(self.error("subscribe", {"channel": "ops"}), 107)
        self.assertEqual(self.error("subscribe", {"user": "sam", "channel": "nowhere:x"}), 102)
        self.assertEqual(self.error("unsubscribe", {"user": "sam"}), 107)

    def test_disconnect_closes_with_the_given_or_default_code(self):
        a = self.client(jwt({"sub": "dan"}))
        b = self.client(jwt({"sub": "dan"}))
        self.assertEqual(self.api("disconnect", {"user": "dan", "client": a.id}),
                         {"result": {}})
        self.assertEqual(a.ws.expect_close(), (3503, b"force disconnect"))
        self.api("disconnect", {"user": "dan",
                                "disconnect": {"code": 4000, "reason": "custom"}})
        self.assertEqual(b.ws.expect_close(), (4000, b"custom"))
        self.assertEqual(self.error("disconnect", {}), 107)

    def test_refresh_expires_or_extends_connections(self):
        a = self.client(jwt({"sub": "eve"}))
        b = self.client(jwt({"sub": "eve", "exp": int(time.time()) + 2}))
        self.assertIn("ttl", b.connected)
        # expired: disconnected now, with 3005.
        self.assertEqual(self.api("refresh", {"user": "eve", "client": a.id, "expired": True}),
                         {"result": {}})
        self.assertEqual(a.ws.expect_close(), (3005, b"expired"))
        # expire_at 0: the expiring connection no longer expires. It outlives its token's
        # exp (plus a second of margin), answering pings meanwhile, and still answers.
        self.api("refresh", {"user": "eve", "client": b.id, "expire_at": 0})
        deadline = time.time() + 3.5
        while time.time() < deadline:
            try:
                b.wait(lambda m: False, timeout=max(0.05, deadline - time.time()))
            except AssertionError as e:
                self.assertIn("no matching message", str(e))
        self.assertIn("unsubscribe", b.call("unsubscribe", {"channel": "none"}))
        # expire_at in the near future: disconnected with 3005 when it comes.
        self.api("refresh", {"user": "eve", "expire_at": int(time.time()) + 1})
        self.assertEqual(b.ws.expect_close(timeout=5), (3005, b"expired"))
        self.assertEqual(self.error("refresh", {}), 107)
        self.assertEqual(self.error("refresh", {"user": "eve", "expire_at": -1}), 107)


if __name__ == "__main__":
    h.main()
