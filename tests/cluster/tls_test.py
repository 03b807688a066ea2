"""TLS between hermod and nats-server: a nats-server -js with TLS on and client certificates
required (`--tlsverify`), certificates made with the openssl CLI at run time.

- Two nodes with `nats.url: tls://...` and nats.tls (CA, client certificate and key) deliver
  a publication across nodes, and keep history on JetStream and presence in a KV bucket
  (history_engine and presence_engine nats: libnats connections with the same settings):
  node B reads what node A published, node A lists node B's subscriber.
- A node trusting another CA is refused: every attempt a TLS failure
  (hermod_broker_connection_errors_total{kind="tls"}), logged once with OpenSSL's reason,
  retried; the node serves its own subscribers meanwhile and reports the broker degraded.
- A node without a client certificate is refused by the server (mutual TLS) the same way.
- A server that requires TLS gets it on a nats:// URL too (as nats.go does).
- checkconfig refuses a client certificate without its key and a CA file that is not there;
  serve refuses a CA file OpenSSL cannot load, naming the key.

Run: python3 tls_test.py --hermod PATH
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from guard_client import Client  # noqa: E402
from nats_harness import (DEADLINE_S, NatsServer, api, get, make_nats_pki, metric,  # noqa: E402
                          wait_connected, wait_for)


class TlsTest(h.HermodTestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="hermod-nats-tls-")
        self.addCleanup(self.dir.cleanup)
        self.pki = make_nats_pki(self.dir.name)
        self.nats = NatsServer(jetstream=True, extra=[
            "--tls", "--tlscert", self.pki("server.pem"), "--tlskey", self.pki("server.key"),
            "--tlsverify", "--tlscacert", self.pki("ca.pem")]).start()
        self.addCleanup(self.nats.cleanup)

    def tls(self, ca="ca.pem", client_cert=True):
        t = {"ca_file": self.pki(ca)}
        if client_cert:
            t.update(cert_file=self.pki("client.pem"), key_file=self.pki("client.key"))
        return t

    def node(self, tls, url=None, **extra):
        config = {
            "broker": "nats",
            "nats": {"url": url or "tls://127.0.0.1:%d" % self.nats.port, "prefix": "tlstest",
                     "dial_timeout": "1s", "reconnect_wait": "100ms", "tls": tls},
            "health": {"check_interval_ms": 100},
            "api_key": "k",
            "allow_anonymous_connect_without_token": True,
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "history_size": 10,
            "history_ttl": "60s",
        }
        config.update(extra)
        return self.start_server(config, workers=2, echo=False)

    def client(self, server, channel):
        c = Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        c.subscribe(channel)
        return c

    def wait_connected(self, *servers):
        wait_connected(*servers)

    def cross(self, a, receiver, channel):
        """Publishes on node a until receiver (on another node) gets one."""
        for n in range(100):
            api(a.port, "publish", {"channel": channel, "data": {"n": n}})
            data = receiver.try_publication(channel, 0.2)
            if data is not None:
                return data
        raise AssertionError("no publication crossed from node %d" % a.port)

    def test_two_nodes_over_mutual_tls_deliver_across_and_keep_history_and_presence(self):
        a = self.node(self.tls(), history_engine="nats", presence_engine="nats", presence=True)
        b = self.node(self.tls(), history_engine="nats", presence_engine="nats", presence=True)
        self.wait_connected(a, b)
        on_b = self.client(b, "secure")
        self.cross(a, on_b, "secure")
        on_b.forget()
        api(a.port, "publish", {"channel": "secure", "data": {"text": "over tls"}})
        self.assertEqual(on_b.try_publication("secure", DEADLINE_S), {"text": "over tls"})
        # History on JetStream, written by node A's libnats connection, read by node B's.
        history = api(b.port, "history", {"channel": "secure", "limit": -1})["result"]
        self.assertIn({"text": "over tls"}, [p["data"] for p in history["publications"]])
        # Presence in a KV bucket: node B's subscriber, listed by node A.
        wait_for("node B's subscriber in node A's presence",
                 lambda: len(api(a.port, "presence", {"channel": "secure"})["result"]
                             ["presence"]) == 1)
        for s in (a, b):
            self.assertEqual(metric(s.port, "hermod_broker_connection_errors_total",
                                    'kind="tls"'), 0, s.stderr_text())

    def assert_refused(self, node, reason):
        wait_for("two TLS failures on port %d" % node.port,
                 lambda: (metric(node.port, "hermod_broker_connection_errors_total",
                                 'kind="tls"') or 0) >= 2)
        self.assertEqual(metric(node.port, "hermod_broker_connected"), 0)
        # Logged once for the outage, with OpenSSL's reason; every attempt counted.
        lines = [line for line in node.log if "not reachable" in line]
        self.assertEqual(len(lines), 1, node.stderr_text())
        self.assertIn(reason, lines[0])
        # The node serves its own subscribers, and says the broker is not there.
        on_a = self.client(node, "local")
        api(node.port, "publish", {"channel": "local", "data": {"only": "here"}})
        self.assertEqual(on_a.try_publication("local", DEADLINE_S), {"only": "here"})
        health = json.loads(get(node.port, "/health"))
        broker = {c["name"]: c for c in health["checks"]}["broker"]
        self.assertNotEqual(broker["level"], "healthy", health)

    def test_a_wrong_ca_is_refused_counted_and_logged_and_the_node_serves_locally(self):
        node = self.node(self.tls(ca="other-ca.pem"))
        self.assert_refused(node, "certificate verify failed")

    def test_mutual_tls_needs_the_client_certificate(self):
        node = self.node(self.tls(client_cert=False))
        self.assert_refused(node, "TLS")
        # With one, the same server takes it.
        good = self.node(self.tls())
        self.wait_connected(good)

    def test_a_server_requiring_tls_gets_it_on_a_nats_url(self):
        node = self.node(self.tls(), url="nats://127.0.0.1:%d" % self.nats.port)
        self.wait_connected(node)

    def test_checkconfig_refuses_what_would_not_load(self):
        for tls, expected in (
                ({"cert_file": self.pki("client.pem")}, "nats.tls.cert_file and nats.tls.key_file"),
                ({"ca_file": self.pki("missing.pem")}, "nats.tls.ca_file: cannot read")):
            path = os.path.join(self.dir.name, "bad.json")
            with open(path, "w") as f:
                json.dump({"broker": "nats", "nats": {"tls": tls}}, f)
            p = subprocess.run([h.HERMOD, "checkconfig", path], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn(expected, p.stderr)


    def test_serve_refuses_a_ca_file_openssl_cannot_load(self):
        # Readable and not empty (checkconfig's test), but a key, not a certificate.
        with self.assertRaises(AssertionError) as refused:
            self.node(self.tls(ca="server.key"))
        self.assertIn("before listening", str(refused.exception))
        self.assertIn("config key nats.tls.ca_file " + self.pki("server.key"),
                      str(refused.exception))


if __name__ == "__main__":
    h.main()
