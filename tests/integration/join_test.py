"""Per-connection joining: the JSON protocol's replies and pushes queued to one connection in a
loop iteration leave as ONE WebSocket message of newline-joined objects (websocket.
join_max_bytes; net/output_queue.h), whatever channels they come from. Deflated messages and
control frames are never joined.

Raw sockets, so the test sees the frames on the wire. One worker: everything a test publishes
reaches the client's loop in the same iteration.

Run: python3 join_test.py --hermod PATH
"""

import json

from guard_client import Client, api_call
from hermod_harness import HermodTestCase, http_exchange, main

CONFIG = {
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "api_key": "k",
    "ping_interval": "60s",
}
BIG = "the same words again and again " * 8  # past compression.min_size


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
        c = Client(port, deflate=deflate)
        self.addCleanup(c.close)
        self.assertEqual(c.deflate, deflate)
        c.connect()
        return c

    def batch_to_two_channels(self, config, deflate=False, data=None):
        """A client subscribed to a and b; one API batch publishes to both; returns the
        client's messages until both pushes arrived, as (rsv1, [pushes])."""
        server = self.start_server(config, workers=1)
        c = self.client(server.port, deflate)
        c.subscribe("a")
        c.subscribe("b")
        result = api(server.port, "batch", {"commands": [
            {"publish": {"channel": "a", "data": data or {"n": 1}}},
            {"publish": {"channel": "b", "data": data or {"n": 2}}}]})
        self.assertNotIn("error", json.dumps(result))
        messages = []
        while sum(len(objects) for _, objects in messages) < 2:
            messages.append(c.read_objects())
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
        _, objects = c.read_objects()
        self.assertEqual([o["id"] for o in objects], [2, 3])
        self.assertTrue(all("subscribe" in o for o in objects), objects)
        # Two commands in one message: one reply message, as before.
        c.ws.send(c.frame(c.command("presence_stats", {"channel": "x"}),
                          c.command("unsubscribe", {"channel": "y"})))
        _, objects = c.read_objects()
        self.assertEqual([o["id"] for o in objects], [4, 5])

    def test_replies_and_a_push_arrive_whole_and_in_order(self):
        # The client publishes to a channel it is subscribed to, in the same message as a
        # second command; the publication's push reaches it after its replies, and replies
        # queued in the iteration that delivers pushes join them. Whatever the split, every
        # message holds whole objects in order: replies by id, then the push.
        server = self.start_server(dict(CONFIG, allow_publish_for_client=True), workers=1)
        c = self.client(server.port)
        c.subscribe("p")
        c.ws.send(c.frame(c.command("publish", {"channel": "p", "data": {"n": 7}}),
                          c.command("presence_stats", {"channel": "p"})))
        seen = []
        while not any("push" in o for o in seen):
            seen.extend(c.read_objects()[1])
        self.assertEqual([o.get("id") for o in seen], [3, 4, None])
        self.assertEqual(seen[2]["push"]["pub"]["data"], {"n": 7})


if __name__ == "__main__":
    main()
