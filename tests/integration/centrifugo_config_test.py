"""A Centrifugo config starts hermod.

The fixtures in tests/fixtures/centrifugo are what `centrifugo genconfig` prints (v5.4 and v6,
uuids fixed), every Centrifugo v5 key at its default, and a v6 config with namespaces,
channel options and keys hermod does not support. For each: `hermod checkconfig` accepts it
and names each unsupported key on one warning line; `--strict` (checkconfig and serve) exits
2 naming the same keys; `hermod serve` starts with it, logs the same lines, admits a client
whose token is signed with the configured secret and answers the API with the configured key
(and 401 with another).
"""

import json
import os
import subprocess

import guard_client as g
import hermod_harness as h

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                        "centrifugo")

# fixture -> the keys hermod warns about.
EXPECTED_WARNINGS = {
    "v5_genconfig.json": {"admin_secret"},
    "v5_all_keys.json": {"health", "prometheus"},
    "v6_genconfig.json": {"admin.secret"},
    "v6.json": {"client.concurrency", "channel.without_namespace.allow_positioning",
                "rpc.namespaces", "admin.secret", "node.name"},
}


def fixture_path(name):
    return os.path.join(FIXTURES, name)


def load(name):
    with open(fixture_path(name)) as f:
        return json.load(f)


def environment():
    """This process's environment without HERMOD_* (they would apply to the file)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HERMOD_")}


def warned_keys(lines, marker):
    """The keys of the lines that carry marker ("ignoring "), up to ':' or ' ='."""
    keys = set()
    for line in lines:
        if marker not in line:
            continue
        rest = line.split(marker, 1)[1]
        keys.add(rest.split(" =", 1)[0].split(":", 1)[0])
    return keys


def checkconfig(path, *flags):
    return subprocess.run([h.HERMOD, "checkconfig", *flags, path], capture_output=True,
                          text=True, timeout=30, env=environment())


def secrets(name, config):
    """(token secret, API key) of a fixture, v5 or v6."""
    if "client" in config:
        return config["client"]["token"]["hmac_secret_key"], config["http_api"]["key"]
    return config["token_hmac_secret_key"], config["api_key"]


class CentrifugoConfigTest(h.HermodTestCase):
    def test_checkconfig_accepts_each_and_warns_once_per_unsupported_key(self):
        for name, expected in EXPECTED_WARNINGS.items():
            with self.subTest(fixture=name):
                p = checkconfig(fixture_path(name))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout.strip(), fixture_path(name) + ": ok")
                lines = p.stderr.splitlines()
                self.assertEqual(len(lines), len(expected), p.stderr)
                self.assertEqual(warned_keys(lines, "warning: ignoring "), expected, p.stderr)

    def test_strict_checkconfig_and_serve_exit_2_naming_the_keys(self):
        for name, expected in EXPECTED_WARNINGS.items():
            with self.subTest(fixture=name):
                p = checkconfig(fixture_path(name), "--strict")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("--strict: %d Centrifugo key(s) hermod does not support"
                              % len(expected), p.stderr)
                self.assertEqual(warned_keys(p.stderr.splitlines(), "  "), expected, p.stderr)
                s = subprocess.run([h.HERMOD, "serve", "--strict", "--port", "0", "--bind",
                                    "127.0.0.1", "--config", fixture_path(name)],
                                   capture_output=True, text=True, timeout=30,
                                   env=environment())
                self.assertEqual(s.returncode, 2, s.stderr)
                self.assertEqual(warned_keys(s.stderr.splitlines(), "  "), expected, s.stderr)

    def test_serve_starts_with_each_admits_clients_and_answers_the_api(self):
        for name, expected in EXPECTED_WARNINGS.items():
            with self.subTest(fixture=name):
                config = load(name)
                if name == "v5_all_keys.json":
                    # Every key at Centrifugo's default: no secret, no API key. Set both
                    # (they are v5 keys, hermod's too) so that a client and the API can be
                    # checked.
                    config["token_hmac_secret_key"] = "all-keys-secret"
                    config["api_key"] = "all-keys-api-key"
                secret, api_key = secrets(name, config)
                server = self.start_server(config, echo=False, env=environment())
                self.assertEqual(warned_keys(server.log, "config: ignoring "), expected,
                                 server.stderr_text())

                client = g.Client(server.port)
                self.addCleanup(client.close)
                reply = client.connect({"token": g.jwt({"sub": "u1"}, key=secret)})
                self.assertIn("client", reply)
                wrong = g.Client(server.port)
                self.addCleanup(wrong.close)
                wrong.send(("connect", {"token": g.jwt({"sub": "u1"}, key="not-it")}))
                self.assertEqual(wrong.expect_close(), 3500)  # invalid token

                r = g.api_call(server.port, "info", {}, key=api_key)
                self.assertEqual(r.status, 200, r.body)
                self.assertIn("nodes", json.loads(r.body)["result"])
                r = g.api_call(server.port, "info", {}, key="not-the-key")
                self.assertEqual(r.status, 401, r.body)
                server.stop()

    def test_v6_namespaces_and_channel_options_take_effect(self):
        config = load("v6.json")
        secret, api_key = secrets("v6.json", config)
        server = self.start_server(config, echo=False, env=environment())
        # channel.namespaces[chat]: history_size 100, history_ttl 300s.
        r = g.api_call(server.port, "publish", {"channel": "chat:room", "data": {"n": 1}},
                       key=api_key)
        self.assertEqual(r.status, 200, r.body)
        r = g.api_call(server.port, "history", {"channel": "chat:room", "limit": 10},
                       key=api_key)
        self.assertEqual(r.status, 200, r.body)
        pubs = json.loads(r.body)["result"]["publications"]
        self.assertEqual([p["data"] for p in pubs], [{"n": 1}])
        # channel.without_namespace: allow_subscribe_for_client, allow_publish_for_client.
        client = g.Client(server.port)
        self.addCleanup(client.close)
        client.connect({"token": g.jwt({"sub": "u1"}, key=secret)})
        self.assertNotIn("error", client.call("subscribe", {"channel": "lobby"}))
        self.assertNotIn("error", client.call("publish", {"channel": "lobby", "data": {"x": 1}}))
        self.assertEqual(client.next_publication("lobby")["data"], {"x": 1})


if __name__ == "__main__":
    h.main()
