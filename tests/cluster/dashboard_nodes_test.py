"""The admin dashboard in cluster mode: every node tells the others about itself over NATS
(`<prefix>.nodes`, once a second), so /dashboard/data on one node lists every node of the
cluster, with its own figures; a node that stops drops out of the list within the expiry.
A node without `admin` still tells the others about itself.

Run: python3 dashboard_nodes_test.py --hermod PATH
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from nats_harness import NatsServer, wait_for  # noqa: E402

PASSWORD = "cluster-dashboard"


def nodes(port):
    auth = base64.b64encode(("admin:%s" % PASSWORD).encode()).decode()
    r = h.http_exchange(port, ("GET /dashboard/data HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Authorization: Basic %s\r\nConnection: close\r\n\r\n"
                               % auth).encode())
    assert r.status == 200, r.status
    return json.loads(r.body)["nodes"]


class DashboardNodesTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer().start()
        self.addCleanup(self.nats.stop)

    def config(self, admin):
        config = {
            "broker": "nats",
            "nats": {"url": self.nats.url, "prefix": "dashboardtest"},
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
        }
        if admin:
            config.update({"admin": True, "admin_password": PASSWORD})
        return config

    def test_every_node_is_listed_until_it_stops(self):
        a = self.start_server(self.config(admin=True))
        b = self.start_server(self.config(admin=False))
        # One client on node b: its figures travel to node a.
        client = Client(b.port)
        client.connect()
        client.subscribe("seen-from-a")

        listed = wait_for("node b with its client on node a's dashboard",
                          lambda: (lambda n: n if len(n) == 2 and n[1]["clients"] == 1
                                   and n[1]["subscriptions"] == 1 else None)(nodes(a.port)))
        this, other = listed
        self.assertNotEqual(this["id"], other["id"])
        self.assertNotEqual(this["id"], "local")
        self.assertEqual(this["clients"], 0)
        self.assertEqual(other["version"], this["version"])
        self.assertGreater(other["resident_bytes"], 1 << 20)
        for key in ("name", "uptime_s", "cpu_percent", "users", "channels",
                    "messages_in_per_s", "messages_out_per_s"):
            self.assertIn(key, other)

        client.ws.close()
        b.stop()
        wait_for("node b gone from node a's dashboard", lambda: len(nodes(a.port)) == 1)
        self.assertEqual(nodes(a.port)[0]["id"], this["id"])


if __name__ == "__main__":
    h.main()
