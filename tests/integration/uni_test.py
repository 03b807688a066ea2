"""The unidirectional transports (uni_websocket, uni_sse, uni_http_stream) and the HTML
fragments for htmx, against real clients: curl -N, the npm `ws` client, Chromium's
EventSource and an htmx page (htmx.org and htmx-ext-sse from npm) in headless Chromium.

Publications go through the server API; subscriptions are the token's `channels` claim.
A disabled transport answers 404; bad input (a body over the limit, a cf_connect that is not
JSON, a bad Last-Event-ID, a refused channel) gets an HTTP error, never a stream.
"""

import json
import os
import select
import shutil
import subprocess
import time
import urllib.parse

import guard_client as g
import hermod_harness as h
import node_runner

KEY = "api-key"
SECRET = "hmac-secret"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CURL = shutil.which("curl") or "/usr/bin/curl"

CONFIG = {
    "api_key": KEY,
    "token_hmac_secret_key": SECRET,
    "uni_websocket": True,
    "uni_sse": True,
    "uni_http_stream": True,
    "uni_http_stream_max_request_body_size": 4096,
    "fragments": True,
    "fragments_websocket": True,
    "allow_publish_for_client": True,
    "history_size": 50,
    "history_ttl": "300s",
    "force_recovery": True,
    "allow_subscribe_for_client": True,
    "namespaces": [{"name": "private", "allow_subscribe_for_client": False}],
}


def token(user="u1", channels=("news",)):
    return g.jwt({"sub": user, "channels": list(channels)}, key=SECRET)


class CurlStream:
    """`curl -sN` reading a streamed response; lines taken with a deadline (no sleeps)."""

    def __init__(self, test, args):
        self.proc = subprocess.Popen([CURL, "-sN", "--no-buffer", "-D", "-"] + args,
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        test.addCleanup(self.stop)
        self.buffer = b""

    def line(self, timeout=h.IO_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no line within %ss; have %r" % (timeout, self.buffer))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("stream ended; have %r" % self.buffer)
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().rstrip("\r")

    def head(self):
        """The status line and headers (curl -D -), as (status, {lower name: value})."""
        status = int(self.line().split()[1])
        headers = {}
        while True:
            line = self.line()
            if not line:
                return status, headers
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()

    def rest(self, timeout=h.IO_TIMEOUT_S):
        """Everything until the stream ends."""
        self.proc.wait(timeout=timeout)
        data = self.buffer + self.proc.stdout.read()
        self.buffer = b""
        return data.decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class EventSourceLike:
    """An EventSource as the HTML spec reads a stream (fields, `id` kept across events, events
    dispatched at a blank line, comments ignored), reconnecting with the Last-Event-ID it was
    last given. Over curl -N; events taken with a deadline."""

    def __init__(self, test, url):
        self.test = test
        self.url = url
        self.last_event_id = ""
        self.stream = None

    def connect(self):
        args = [self.url]
        if self.last_event_id:
            args = ["-H", "Last-Event-ID: " + self.last_event_id] + args
        self.stream = CurlStream(self.test, args)
        status, _ = self.stream.head()
        return status

    def close(self):
        self.stream.stop()

    def event(self):
        """The next dispatched event as (type, data)."""
        kind, data, pending_id = "message", [], None
        while True:
            line = self.stream.line()
            if line == "":
                if pending_id is not None:
                    self.last_event_id = pending_id
                if data:
                    return kind, "\n".join(data)
                kind, pending_id = "message", None
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                pending_id = value


class UniTest(h.HermodTestCase):
    def setUp(self):
        self.server = self.start_server(CONFIG, workers=2, echo=False)
        self.url = "http://127.0.0.1:%d" % self.server.port

    def publish(self, channel, data):
        r = g.api_call(self.server.port, "publish", {"channel": channel, "data": data}, key=KEY)
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn(b'"error"', r.body)

    def sse_events(self, stream):
        """One SSE event's fields as a list of (name, value)."""
        fields = []
        while True:
            line = stream.line()
            if line == "":
                # The stream's `retry:` alone is no event.
                if fields and any(name != "retry" for name, _ in fields):
                    return fields
                fields = []
                continue
            name, _, value = line.partition(":")
            fields.append((name, value[1:] if value.startswith(" ") else value))

    def test_uni_http_stream_with_curl(self):
        s = CurlStream(self, ["-X", "POST", "--data-binary", json.dumps({"token": token()}),
                              self.url + "/connection/uni_http_stream"])
        status, headers = s.head()
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        connect = json.loads(s.line())
        self.assertIn("client", connect["connect"])
        self.assertIn("news", connect["connect"]["subs"])
        # Data with raw newlines as JSON whitespace: still one value on one line.
        body = b'{"channel":"news","data":{"a":\n1,\n"b":"x\\ny"}}'
        raw = h.http_exchange(self.server.port, (
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
            "Content-Length: %d\r\n\r\n" % (KEY, len(body))).encode() + body)
        self.assertEqual(raw.status, 200)
        self.publish("news", {"n": 2})
        first = json.loads(s.line())
        self.assertEqual(first["channel"], "news")
        self.assertEqual(first["pub"]["data"], {"a": 1, "b": "x\ny"})
        self.assertEqual(json.loads(s.line())["pub"]["data"], {"n": 2})

    def test_uni_sse_with_curl_get_and_post(self):
        connect = urllib.parse.quote(json.dumps({"token": token()}))
        get = CurlStream(self, [self.url + "/connection/uni_sse?cf_connect=" + connect])
        post = CurlStream(self, ["-X", "POST", "--data-binary", json.dumps({"token": token()}),
                                 self.url + "/connection/uni_sse"])
        for s in (get, post):
            status, headers = s.head()
            self.assertEqual(status, 200)
            self.assertEqual(headers["content-type"], "text/event-stream")
            fields = self.sse_events(s)
            # news has history: the event's id is its position (uni_sse recovers with it).
            self.assertEqual([n for n, _ in fields], ["id", "data"])
            value = dict(fields)["data"]
            epoch = json.loads(value)["connect"]["subs"]["news"]["epoch"]
            self.assertEqual(dict(fields)["id"], "news=%s:0" % epoch)
        self.publish("news", "<p>one\ntwo</p>")
        for s in (get, post):
            fields = self.sse_events(s)
            self.assertEqual(dict(fields)["id"], "news=%s:1" % epoch)
            value = dict(fields)["data"]
            self.assertEqual(json.loads(value), {"channel": "news",
                                                 "pub": json.loads(value)["pub"]})
            self.assertEqual(json.loads(value)["pub"]["data"], "<p>one\ntwo</p>")

    def test_uni_sse_recovers_from_positions(self):
        self.publish("news", {"n": 0})
        s = CurlStream(self, ["-X", "POST", "--data-binary", json.dumps({"token": token()}),
                              self.url + "/connection/uni_http_stream"])
        s.head()
        sub = json.loads(s.line())["connect"]["subs"]["news"]
        epoch, offset = sub["epoch"], sub["offset"]
        s.stop()
        self.publish("news", {"n": 1})
        self.publish("news", {"n": 2})
        again = CurlStream(self, ["-X", "POST", "--data-binary", json.dumps(
            {"token": token(), "subs": {"news": {"recover": True, "epoch": epoch,
                                                 "offset": offset}}}),
            self.url + "/connection/uni_http_stream"])
        again.head()
        result = json.loads(again.line())["connect"]["subs"]["news"]
        self.assertTrue(result.get("recovered"), result)
        self.assertEqual([p["data"] for p in result["publications"]], [{"n": 1}, {"n": 2}])

    def test_uni_websocket_with_ws(self):
        node_runner.run_node_script(self, "uni_clients.mjs", self.server, "ws", token(), KEY)

    def test_uni_sse_with_browser_eventsource(self):
        node_runner.run_node_script(self, "uni_clients.mjs", self.server, "eventsource",
                                    token(), KEY, CHROMIUM, timeout=180)

    def test_fragments_with_htmx_in_chromium(self):
        node_runner.run_node_script(self, "uni_clients.mjs", self.server, "htmx",
                                    token("htmx-user", ()), KEY, CHROMIUM, timeout=180)

    def test_fragments_websocket_with_htmx_ws_in_chromium(self):
        node_runner.run_node_script(self, "uni_clients.mjs", self.server, "htmxws",
                                    token("page", ()), KEY, CHROMIUM,
                                    token("listener", ("chat",)), timeout=180)

    def test_fragments_with_curl_and_last_event_id(self):
        url = (self.url + "/connection/fragments?channel=news&channel=sport&token="
               + token("reader", ()))
        s = CurlStream(self, [url])
        status, headers = s.head()
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/event-stream")
        self.publish("news", "<li>a</li>\n<li>b</li>")
        self.publish("sport", {"json": "as is"})
        news = dict(self.sse_events(s))
        fields = self.sse_events(s)
        self.assertEqual(dict(fields)["event"], "sport")
        # Not a string: its JSON text as published (verbatim, the API's spacing kept).
        self.assertEqual(dict(fields)["data"], json.dumps({"json": "as is"}))
        s.stop()
        # One event's fields, with two data lines for the two lines of HTML.
        self.assertEqual(news["event"], "news")
        # The id: both channels' positions, in the URL's order.
        (epoch, offset), (sport_epoch, sport_offset) = [
            p.split(":") for p in dict(fields)["id"].split(",")]
        self.assertEqual((offset, sport_offset), ("1", "1"))
        self.assertEqual(news["id"], "%s:1,%s:0" % (epoch, sport_epoch))
        self.publish("news", "<li>c</li>")
        self.publish("news", "<li>d</li>")
        again = CurlStream(self, ["-H", "Last-Event-ID: " + dict(fields)["id"], url])
        self.assertEqual(again.head()[0], 200)
        replayed = [self.sse_events(again) for _ in range(2)]
        self.assertEqual([dict(e)["data"] for e in replayed], ["<li>c</li>", "<li>d</li>"])
        self.assertEqual([dict(e)["id"] for e in replayed],
                         ["%s:2,%s:1" % (epoch, sport_epoch), "%s:3,%s:1" % (epoch, sport_epoch)])

    def test_fragments_reconnect_recovers_every_channel(self):
        channels = ["news", "sport", "weather"]
        url = (self.url + "/connection/fragments?" + "&".join("channel=" + c for c in channels)
               + "&token=" + token("reader", ()))
        es = EventSourceLike(self, url)
        self.assertEqual(es.connect(), 200)
        for c in channels:
            self.publish(c, "%s-live" % c)
        self.assertEqual([es.event() for _ in channels], [(c, c + "-live") for c in channels])
        # The id names every channel's position, in the request's order.
        positions = es.last_event_id.split(",")
        self.assertEqual(len(positions), 3)
        self.assertEqual([p.split(":")[1] for p in positions], ["1", "1", "1"])
        es.close()
        # Away: publications land on every channel, interleaved.
        away = [("news", "n2"), ("sport", "s2"), ("sport", "s3"), ("weather", "w2"),
                ("news", "n3"), ("sport", "s4")]
        for c, d in away:
            self.publish(c, d)
        self.assertEqual(es.connect(), 200)
        got = [es.event() for _ in away]
        for c in channels:
            self.assertEqual([d for k, d in got if k == c], [d for k, d in away if k == c], c)
        # Exactly once: the next events are live ones, nothing replayed twice.
        for c in channels:
            self.publish(c, c + "-after")
        self.assertEqual([es.event() for _ in channels], [(c, c + "-after") for c in channels])
        self.assertEqual([p.split(":")[1] for p in es.last_event_id.split(",")], ["4", "5", "3"])
        es.close()
        # A channel whose position cannot be recovered (another epoch) is told, never skipped
        # silently; the others still recover.
        self.publish("news", "n5")
        self.publish("sport", "s6")
        parts = es.last_event_id.split(",")
        parts[1] = "stale:5"
        es.last_event_id = ",".join(parts)
        self.assertEqual(es.connect(), 200)
        got = [es.event() for _ in range(2)]
        self.assertIn(("news", "n5"), got)
        self.assertIn(("unrecovered", "sport"), got)
        # Its new position is the stream's top: the next reconnect recovers it again.
        self.assertEqual(es.last_event_id.split(",")[1].split(":")[1], "6")
        es.close()

    def test_fragments_recover_the_token_channels_too(self):
        # news from the URL, chat only from the token's `channels`: both in the id (the URL's
        # channels by position, then the token's by name), both recovered.
        es = EventSourceLike(self, self.url + "/connection/fragments?channel=news&token="
                             + token("reader", ("chat",)))
        self.assertEqual(es.connect(), 200)
        self.publish("news", "n1")
        self.publish("chat", "c1")
        self.assertEqual([es.event() for _ in range(2)], [("news", "n1"), ("chat", "c1")])
        news, chat = es.last_event_id.split(",")
        self.assertEqual(news.split(":")[1], "1")
        self.assertEqual(chat.split("=")[0], "chat")
        self.assertEqual(chat.split(":")[-1], "1")
        es.close()
        away = [("chat", "c2"), ("news", "n2"), ("chat", "c3")]
        for c, d in away:
            self.publish(c, d)
        self.assertEqual(es.connect(), 200)
        got = [es.event() for _ in away]
        for c in ("news", "chat"):
            self.assertEqual([d for k, d in got if k == c], [d for k, d in away if k == c], c)
        # Exactly once: the next event is live.
        self.publish("chat", "c-after")
        self.assertEqual(es.event(), ("chat", "c-after"))
        self.assertTrue(es.last_event_id.endswith(":4"), es.last_event_id)
        es.close()
        # A token channel that cannot recover (another epoch) is told, as a URL channel is.
        self.publish("chat", "c5")
        es.last_event_id = es.last_event_id.split(",")[0] + ",chat=stale:4"
        self.assertEqual(es.connect(), 200)
        self.assertEqual(es.event(), ("unrecovered", "chat"))
        self.assertTrue(es.last_event_id.endswith(":5"), es.last_event_id)
        es.close()

    def uni_sse_url(self, request):
        return (self.url + "/connection/uni_sse?cf_connect="
                + urllib.parse.quote(json.dumps(request)))

    def test_uni_sse_event_ids_recover_an_eventsource_reconnect(self):
        # The reconnect sends the URL it began with (cf_connect with an old position) and the
        # id of the last event seen: the id wins.
        self.publish("news", "n0")
        es = EventSourceLike(self, self.uni_sse_url({"token": token()}))
        self.assertEqual(es.connect(), 200)
        kind, data = es.event()
        sub = json.loads(data)["connect"]["subs"]["news"]
        epoch = sub["epoch"]
        self.assertEqual(es.last_event_id, "news=%s:%d" % (epoch, sub["offset"]))
        self.publish("news", "n1")
        self.assertEqual(json.loads(es.event()[1])["pub"]["data"], "n1")
        self.assertEqual(es.last_event_id, "news=%s:2" % epoch)
        es.close()
        for d in ("n2", "n3"):
            self.publish("news", d)
        es.url = self.uni_sse_url({"token": token(), "subs": {
            "news": {"recover": True, "epoch": epoch, "offset": 0}}})
        self.assertEqual(es.connect(), 200)
        result = json.loads(es.event()[1])["connect"]["subs"]["news"]
        self.assertTrue(result.get("recovered"), result)
        self.assertEqual([p["data"] for p in result["publications"]], ["n2", "n3"])
        self.assertEqual(es.last_event_id, "news=%s:4" % epoch)
        self.publish("news", "n4")
        self.assertEqual(json.loads(es.event()[1])["pub"]["data"], "n4")
        self.assertEqual(es.last_event_id, "news=%s:5" % epoch)
        es.close()
        # A position that cannot recover: the connect says so (recovered false, as Centrifugo's
        # uni transports do), and the id moves to the stream's top.
        es.last_event_id = "news=stale:5"
        self.assertEqual(es.connect(), 200)
        result = json.loads(es.event()[1])["connect"]["subs"]["news"]
        self.assertFalse(result.get("recovered", False), result)
        self.assertTrue(result.get("was_recovering"), result)
        self.assertEqual(es.last_event_id, "news=%s:5" % epoch)
        es.close()
        # A malformed id: refused, counted.
        before = g.metric(self.server.port, "hermod_connections_rejected_total",
                          reason="bad_last_event_id")
        raw = h.http_exchange(self.server.port, (
            "GET /connection/uni_sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: e:1\r\n\r\n"
        ).encode())
        self.assertEqual(raw.status, 400)
        self.assertEqual(g.metric(self.server.port, "hermod_connections_rejected_total",
                                  reason="bad_last_event_id"), before + 1)

    def test_uni_sse_no_ids_without_history(self):
        # private has no history: nothing to recover, so no event carries an id.
        s = CurlStream(self, [self.uni_sse_url({"token": token("u2", ("private:x",))})])
        self.assertEqual(s.head()[0], 200)
        fields = self.sse_events(s)
        self.assertIn("private:x", json.loads(dict(fields)["data"])["connect"]["subs"])
        self.publish("private:x", "p1")
        fields += self.sse_events(s)
        self.assertEqual([n for n, _ in fields], ["data", "data"])

    def test_fragments_bad_last_event_id(self):
        frag = "/connection/fragments?channel=news&channel=sport&token=" + token("reader", ())

        def get(last):
            return h.http_exchange(self.server.port, (
                "GET %s HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s\r\n\r\n"
                % (frag, last)).encode()).status

        before = g.metric(self.server.port, "hermod_connections_rejected_total",
                          reason="bad_last_event_id")
        self.assertEqual(get("a:1,b:2,c:3"), 400)  # more positions than channels
        self.assertEqual(get("a:1,b:x"), 400)
        self.assertEqual(get(",".join(["e" * 64 + ":1"] * 100)), 400)  # over the bound
        self.assertEqual(g.metric(self.server.port, "hermod_connections_rejected_total",
                                  reason="bad_last_event_id"), before + 3)
        # More channels than an id has room for: refused before any stream.
        many = "&".join("channel=c%d" % i for i in range(100))
        self.assertEqual(h.http_exchange(self.server.port, (
            "GET /connection/fragments?%s&token=%s HTTP/1.1\r\nHost: x\r\n\r\n"
            % (many, token("reader", ()))).encode()).status, 400)

    def test_fragments_multiline_data(self):
        # The token's `channels` already has news: its server-side subscription streams.
        s = CurlStream(self, [self.url + "/connection/fragments?channel=news&token=" + token()])
        self.assertEqual(s.head()[0], 200)
        self.publish("news", "<ul>\n<li>x</li>\r\n</ul>")
        fields = self.sse_events(s)
        self.assertEqual([v for n, v in fields if n == "data"], ["<ul>", "<li>x</li>", "</ul>"])

    def test_bad_input_gets_http_errors(self):
        def get(path, headers=""):
            return h.http_exchange(self.server.port, (
                "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, headers)).encode())

        def post(path, body):
            return h.http_exchange(self.server.port, (
                "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % (path, len(body))).encode() + body)

        self.assertEqual(post("/connection/uni_http_stream", b'{"token":"' + b"x" * 5000 + b'"}')
                         .status, 413)
        self.assertEqual(post("/connection/uni_http_stream", b'{"token":').status, 400)
        self.assertEqual(post("/connection/uni_http_stream", b'[]').status, 400)
        self.assertEqual(get("/connection/uni_sse?cf_connect=%7Bnot-json").status, 400)
        self.assertEqual(get("/connection/uni_sse?cf_connect=%zz").status, 400)
        # A bad token: 401 before any stream.
        self.assertEqual(post("/connection/uni_http_stream", b'{"token":"bad"}').status, 401)
        frag = "/connection/fragments?channel=news&token=" + token()
        self.assertEqual(get(frag, "Last-Event-ID: nonsense\r\n").status, 400)
        self.assertEqual(get(frag, "Last-Event-ID: e:-5\r\n").status, 400)
        self.assertEqual(get("/connection/fragments?token=" + token()).status, 400)
        # A channel the token does not open: refused like a subscribe (103), with 403.
        self.assertEqual(get("/connection/fragments?channel=private:x&token=" + token())
                         .status, 403)
        self.assertEqual(get("/connection/fragments?channel=news&token=bad").status, 401)
        # The server is still fine.
        s = CurlStream(self, [self.url + "/connection/fragments?channel=news&token=" + token()])
        self.assertEqual(s.head()[0], 200)


class DisabledTest(h.HermodTestCase):
    def test_disabled_transports_answer_404(self):
        server = self.start_server({"api_key": KEY}, echo=False)
        for method, path in [("GET", "/connection/uni_websocket"),
                             ("GET", "/connection/uni_sse"),
                             ("POST", "/connection/uni_sse"),
                             ("POST", "/connection/uni_http_stream"),
                             ("GET", "/connection/fragments?channel=a"),
                             ("GET", "/connection/fragments/websocket?channel=a")]:
            r = h.http_exchange(server.port, ("%s %s HTTP/1.1\r\nHost: x\r\n"
                                              "Content-Length: 0\r\n\r\n" % (method, path))
                                .encode())
            self.assertEqual(r.status, 404, path)


if __name__ == "__main__":
    h.main()
