"""Per-connection joining: the JSON protocol's replies and pushes queued to one connection in a
loop iteration leave as ONE WebSocket message of newline-joined objects (websocket.
join_max_bytes; net/output_queue.h), whatever channels they come from. Deflated messages and
control frames are never joined.

Raw sockets, so the test sees the frames on the wire. One worker: everything a test publishes
reaches the client's loop in the same iteration.

Run: python3 join_test.py --hermod PATH
"""

import json
import zlib

from guard_client import api_call
from hermod_harness import (OP_TEXT, HermodTestCase, encode_frame, http_exchange, main,
                            ws_open)

DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
CONFIG = {
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "api_key": "k",
    "ping_interval": "60s",
}
BIG = "the same words again and again " * 8  # past compression.min_size


class Client:
    """The JSON protocol over a raw WebSocket; read() returns one message, inflated."""

    def __init__(self, port, deflate=False):
        self.ws = ws_open(port, "/connection/websocket", [DEFLATE_OFFER] if deflate else [])
        extensions = self.ws.response.header("sec-websocket-extensions") or ""
        assert ("permessage-deflate" in extensions) == deflate, extensions
        self.next_id = 1

    def frame(self, *commands):
        text = "\n".join(json.dumps(c) for c in commands)
        return encode_frame(OP_TEXT, text.encode())

    def command(self, method, params):
        command = {"id": self.next_id, method: params}
        self.next_id += 1
        return command

    def read(self):
        """(rsv1, [objects]) of the next message."""
        frame = self.ws.read_frame()
        assert frame is not None and frame.opcode == OP_TEXT and frame.fin, frame
        payload = frame.payload
        rsv1 = bool(frame.rsv & 4)
        if rsv1:
            payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        return rsv1, [json.loads(line) for line in payload.decode().split("\n")]

    def call(self, method, params):
        self.ws.send(self.frame(self.command(method, params)))
        _, objects = self.read()
        assert len(objects) == 1 and method in objects[0], objects
        return objects[0]


def api(port, method, body):
    """POST /api/<method> with the key "k"; the decoded answer (status 200 asserted)."""
    response = api_call(port, method, body)
    assert response.status == 200, (response.status, response.body)
    return json.loads(response.body)


def joined_total(port):
    response = http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    total = {}
    for line in response.body.decode().splitlines():
        for name in ("hermod_websocket_frames_joined_total",
                     "hermod_websocket_joined_messages_total"):
            if line.startswith(name + "{"):
                total[name] = total.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return total


class JoinTest(HermodTestCase):
    def client(self, port, deflate=False):
        c = Client(port, deflate)
        self.addCleanup(c.ws.close)
        c.call("connect", {})
        return c

    def batch_to_two_channels(self, config, deflate=False, data=None):
        """A client subscribed to a and b; one API batch publishes to both; returns the
        client's messages until both pushes arrived, as (rsv1, [pushes])."""
        server = self.start_server(config, workers=1)
        c = self.client(server.port, deflate)
        c.call("subscribe", {"channel": "a"})
        c.call("subscribe", {"channel": "b"})
        result = api(server.port, "batch", {"commands": [
            {"publish": {"channel": "a", "data": data or {"n": 1}}},
            {"publish": {"channel": "b", "data": data or {"n": 2}}}]})
        self.assertNotIn("error", json.dumps(result))
        messages = []
        while sum(len(objects) for _, objects in messages) < 2:
            messages.append(c.read())
        return server, messages

    def test_a_batch_to_two_channels_arrives_as_one_message(self):
        server, messages = self.batch_to_two_channels(CONFIG)
        self.assertEqual(len(messages), 1, messages)
        rsv1, pushes = messages[0]
        self.assertFalse(rsv1)
        self.assertEqual([p["push"]["channel"] for p in pushes], ["a", "b"])
        self.assertEqual([p["push"]["pub"]["data"] for p in pushes], [{"n": 1}, {"n": 2}])
        total = joined_total(server.port)
        self.assertGreaterEqual(total["hermod_websocket_frames_joined_total"], 1)
        self.assertGreaterEqual(total["hermod_websocket_joined_messages_total"], 2)

    def test_with_joining_off_each_push_is_its_own_message(self):
        config = dict(CONFIG, websocket={"join_max_bytes": 0})
        server, messages = self.batch_to_two_channels(config)
        self.assertEqual([[p["push"]["channel"] for p in objects] for _, objects in messages],
                         [["a"], ["b"]])
        self.assertEqual(joined_total(server.port)["hermod_websocket_frames_joined_total"], 0)

    def test_deflated_pushes_are_not_joined(self):
        _, messages = self.batch_to_two_channels(CONFIG, deflate=True, data={"text": BIG})
        self.assertEqual([rsv1 for rsv1, _ in messages], [True, True])
        self.assertEqual([objects[0]["push"]["channel"] for _, objects in messages], ["a", "b"])

    def test_replies_to_messages_read_together_leave_as_one_message(self):
        server = self.start_server(CONFIG, workers=1)
        c = self.client(server.port)
        # Two WebSocket messages in one write: one read on the server, two replies queued.
        c.ws.send(c.frame(c.command("subscribe", {"channel": "x"})) +
                  c.frame(c.command("subscribe", {"channel": "y"})))
        _, objects = c.read()
        self.assertEqual([o["id"] for o in objects], [2, 3])
        self.assertTrue(all("subscribe" in o for o in objects), objects)
        # Two commands in one message: one reply message, as before.
        c.ws.send(c.frame(c.command("presence_stats", {"channel": "x"}),
                          c.command("unsubscribe", {"channel": "y"})))
        _, objects = c.read()
        self.assertEqual([o["id"] for o in objects], [4, 5])

    def test_replies_and_a_push_arrive_whole_and_in_order(self):
        # The client publishes to a channel it is subscribed to, in the same message as a
        # second command; the publication's push reaches it after its replies, and replies
        # queued in the iteration that delivers pushes join them. Whatever the split, every
        # message holds whole objects in order: replies by id, then the push.
        server = self.start_server(dict(CONFIG, allow_publish_for_client=True), workers=1)
        c = self.client(server.port)
        c.call("subscribe", {"channel": "p"})
        c.ws.send(c.frame(c.command("publish", {"channel": "p", "data": {"n": 7}}),
                          c.command("presence_stats", {"channel": "p"})))
        seen = []
        while not any("push" in o for o in seen):
            seen.extend(c.read()[1])
        self.assertEqual([o.get("id") for o in seen], [3, 4, None])
        self.assertEqual(seen[2]["push"]["pub"]["data"], {"n": 7})


if __name__ == "__main__":
    main()
