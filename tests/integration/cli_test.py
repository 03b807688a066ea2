"""The operator's commands and logs: `hermod version` and `--version`, `checkconfig` (with
the environment applied, syntax errors located), `gentoken` and `checktoken` against
the server's own verifier (the token a running server accepts on connect), and
`--log-format json` with its one line per config load, refused upgrade and client
disconnect with an error code, and the fields (client, user, code, reason, remote) of those
lines and of auth failures.

Keys are generated per run (openssl), never checked in.
"""

import json
import os
import re
import subprocess
import tempfile
import time

import guard_client as g
import hermod_harness as h

LOG_TIMEOUT_S = 10


def run(*args, env=None):
    """Runs hermod with args; returns (exit status, stdout, stderr)."""
    p = subprocess.run([h.HERMOD] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr


class CliCase(h.HermodTestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="hermod-cli-")
        self.addCleanup(self.dir.cleanup)

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def config(self, **keys):
        return self.write("config.json", json.dumps(keys))


class VersionTest(CliCase):
    def test_version_names_version_commit_compiler_and_build_type(self):
        code, out, _ = run("version")
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^hermod \d+\.\d+\.\d+$")
        fields = dict(line.split(": ", 1) for line in lines[1:])
        self.assertEqual(set(fields), {"commit", "compiler", "build type"})
        self.assertRegex(fields["commit"], r"^([0-9a-f]{7,40}|unknown)$")
        self.assertRegex(fields["compiler"], r"^(gcc|clang) \d")
        self.assertIn(fields["build type"], {"Release", "RelWithDebInfo", "Debug", "MinSizeRel", "Sanitize"})


    def test_version_flag_prints_the_version_cmake_was_given(self):
        cmake = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                             "CMakeLists.txt")
        with open(cmake) as f:
            project = re.search(r"project\(hermod VERSION (\d+\.\d+\.\d+)", f.read())
        self.assertIsNotNone(project)
        code, out, err = run("--version")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[0], "hermod " + project.group(1))
        self.assertEqual(out, run("version")[1])


class CheckConfigTest(CliCase):
    def test_environment_is_applied_as_serve_applies_it(self):
        config = self.config(port=8000)
        code, out, err = run("checkconfig", config)
        self.assertEqual(code, 0, err)
        self.assertIn(": ok", out)
        # A variable that would stop `serve` stops the check, naming the key.
        env = dict(os.environ, HERMOD_LOG_FORMAT="yaml")
        code, _, err = run("checkconfig", config, env=env)
        self.assertEqual(code, 2)
        self.assertIn("config key log_format: text or json", err)
        code, _, err = run("checkconfig", config, env=dict(os.environ, HERMOD_PORT="99999"))
        self.assertEqual(code, 2)
        self.assertIn("port", err)
        code, _, err = run("checkconfig", config, env=dict(os.environ, HERMOD_LOG_FORMAT="json"))
        self.assertEqual(code, 0, err)

    def test_json_syntax_error_names_line_and_column(self):
        path = self.write("broken.json", '{\n  "port": 8000,\n  "bind" "0.0.0.0"\n}\n')
        expected = (path + ": config is not valid JSON: line 3, column 10: "
                    "expected ':' after the key")
        for args in (["checkconfig", path], ["serve", "--config", path, "--port", "0"]):
            code, _, err = run(*args)
            self.assertEqual(code, 2, args)
            self.assertIn(expected, err, args)


class TokenTest(CliCase):
    def gentoken(self, config, *args):
        code, out, err = run("gentoken", "--config", config, *args)
        self.assertEqual(code, 0, err)
        return out.strip()

    def test_hmac_round_trip_claims(self):
        config = self.config(token_hmac_secret_key="s3cret", token_audience="app")
        token = self.gentoken(config, "--user", "42", "--ttl", "600", "--info", '{"name":"Ann"}')
        code, out, err = run("checktoken", token, "--config", config)
        self.assertEqual(code, 0, err)
        claims = json.loads(out)
        self.assertTrue(claims["valid"])
        self.assertEqual(claims["sub"], "42")
        self.assertEqual(claims["info"], {"name": "Ann"})
        self.assertTrue(595 <= claims["expires_in_s"] <= 600, claims)
        token = self.gentoken(config, "--user", "7", "--channel", "$room")
        code, out, err = run("checktoken", token, "--config", config)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["channel"], "$room")

    def test_checktoken_names_the_reason_and_fails(self):
        config = self.config(token_hmac_secret_key="s3cret")
        other = self.write("other.json", json.dumps({"token_hmac_secret_key": "other"}))
        token = self.gentoken(config, "--user", "42")
        code, _, err = run("checktoken", token, "--config", other)
        self.assertEqual(code, 1)
        self.assertIn("token invalid: the signature does not verify with the configured key",
                      err)
        code, _, err = run("checktoken", "garbage", "--config", config)
        self.assertEqual(code, 1)
        self.assertIn("token invalid: not a JWT", err)
        audience = self.write("aud.json", json.dumps({"token_hmac_secret_key": "s3cret",
                                                      "token_audience": "app"}))
        code, _, err = run("checktoken", token, "--config", audience)
        self.assertEqual(code, 1)
        self.assertIn("aud does not name the configured token_audience", err)

    def test_expired_token_is_refused_with_its_age(self):
        config = self.config(token_hmac_secret_key="s3cret")
        token = self.gentoken(config, "--user", "42", "--ttl", "1")
        # exp is whole seconds: wait (bounded) until the wall clock has passed it.
        deadline = time.monotonic() + 5
        while True:
            code, _, err = run("checktoken", token, "--config", config)
            if code != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(code, 1)
        self.assertRegex(err, r"token expired: expired \d+ s ago \(exp \d+\)")

    def test_public_key_only_config_needs_the_private_key(self):
        key = os.path.join(self.dir.name, "rsa.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
        public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True,
                                capture_output=True, text=True).stdout
        config = self.config(token_rsa_public_key=public)
        code, _, err = run("gentoken", "--user", "42", "--config", config)
        self.assertEqual(code, 2)
        self.assertIn("cannot sign: pass the matching private key with --key FILE", err)
        code, token, err = run("gentoken", "--user", "42", "--config", config, "--key", key)
        self.assertEqual(code, 0, err)
        self.assertIn("RS256 connection token", err)
        code, out, err = run("checktoken", token.strip(), "--config", config)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["sub"], "42")
        code, _, err = run("gentoken", "--user", "42", "--config", config, "--key", config)
        self.assertEqual(code, 2)
        self.assertIn("no PEM private key", err)

    def test_the_server_accepts_the_token_on_connect(self):
        server = self.start_server({"token_hmac_secret_key": "s3cret"})
        config = self.config(token_hmac_secret_key="s3cret")
        token = self.gentoken(config, "--user", "ann")
        c = g.Client(server.port)
        self.addCleanup(c.close)
        reply = c.call("connect", {"token": token})
        self.assertEqual(reply["id"], 1, reply)
        self.assertIn("client", reply["connect"], reply)


class JsonLogTest(CliCase):
    def wait_lines(self, server, predicate, count=1):
        deadline = time.monotonic() + LOG_TIMEOUT_S
        while True:
            lines = [line for line in list(server.log) if line.strip()]
            records = [json.loads(line) for line in lines]  # every line is one JSON object
            hits = [r for r in records if predicate(r)]
            if len(hits) >= count or time.monotonic() > deadline:
                return records, hits
            time.sleep(0.05)

    def test_one_json_object_per_line_and_one_line_per_event(self):
        server = self.start_server({"token_hmac_secret_key": "s3cret"},
                                   flags=["--log-format", "json"], echo=False)
        records, hits = self.wait_lines(server, lambda r: r["msg"].startswith("config: "))
        self.assertEqual(len(hits), 1, records)
        for r in records:
            self.assertEqual(set(r), {"time", "level", "logger", "msg"}, r)
            self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertIn("file ", hits[0]["msg"])
        self.assertIn("flags --bind --port --workers --log-format", hits[0]["msg"])

        # A refused upgrade (no Sec-WebSocket-Key): 400 and one line.
        response = h.http_exchange(server.port, h.upgrade_request(
            server.port, "/connection/websocket?token=secret", key=""))
        self.assertEqual(response.status, 400)
        records, hits = self.wait_lines(server, lambda r: "refused with 400" in r["msg"])
        self.assertEqual(len(hits), 1, records)
        self.assertEqual(hits[0]["level"], "info")
        self.assertNotIn("token=secret", hits[0]["msg"])

        # A client that sends garbage is disconnected with 3501: one line.
        ws = h.ws_open(server.port, "/connection/websocket")
        self.addCleanup(ws.close)
        ws.send_frame(h.OP_TEXT, b"{not json")
        code, _ = ws.expect_close()
        self.assertEqual(code, 3501)
        records, hits = self.wait_lines(server, lambda r: "disconnect 3501" in r["msg"])
        self.assertEqual(len(hits), 1, records)

    def test_lines_carry_client_user_code_reason_and_remote_as_fields(self):
        server = self.start_server({"token_hmac_secret_key": "s3cret", "api_key": "k3y"},
                                   flags=["--log-format", "json"], echo=False)
        config = self.config(token_hmac_secret_key="s3cret")
        code, token, err = run("gentoken", "--config", config, "--user", "ann")
        self.assertEqual(code, 0, err)

        # A connected client disconnected (3501 for a malformed command).
        ws = h.ws_open(server.port, "/connection/websocket")
        self.addCleanup(ws.close)
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 1, "connect": {"token": token.strip()}}))
        client = json.loads(ws.read_frame().payload)["connect"]["client"]
        ws.send_frame(h.OP_TEXT, b"{not json")
        self.assertEqual(ws.expect_close()[0], 3501)
        _, hits = self.wait_lines(server, lambda r: r.get("code") == 3501)
        self.assertEqual(len(hits), 1)
        self.assertEqual({k: hits[0][k] for k in ("client", "user", "code", "reason", "remote")},
                         {"client": client, "user": "ann", "code": 3501, "reason": "bad request",
                          "remote": "127.0.0.1"}, hits[0])

        # Auth failures: a bad token (disconnect 3500), no token (error 101), a bad API key.
        ws = h.ws_open(server.port, "/connection/websocket")
        self.addCleanup(ws.close)
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 1, "connect": {"token": "not.a.jwt"}}))
        self.assertEqual(ws.expect_close()[0], 3500)
        ws = h.ws_open(server.port, "/connection/websocket")
        self.addCleanup(ws.close)
        ws.send_frame(h.OP_TEXT, json.dumps({"id": 1, "connect": {}}))
        self.assertEqual(json.loads(ws.read_frame().payload)["error"]["code"], 101)
        response = h.http_exchange(server.port, (
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\n"
            "Content-Length: 2\r\n\r\n{}").encode())
        self.assertEqual(response.status, 401)
        records, _ = self.wait_lines(server, lambda r: r.get("code") in (3500, 101, 401), 3)
        by_code = {r["code"]: r for r in records if "code" in r}
        self.assertEqual(by_code[3500]["reason"], "invalid token", records)
        self.assertEqual(by_code[101]["reason"], "no connection token, anonymous not allowed")
        self.assertEqual(by_code[401]["method"], "publish")
        for c in (3500, 101, 401):
            self.assertEqual(by_code[c]["remote"], "127.0.0.1", by_code[c])
            self.assertEqual(by_code[c]["level"], "info")
            self.assertIsInstance(by_code[c]["msg"], str)

    def test_environment_selects_the_format_and_bad_values_name_the_key(self):
        env = dict(os.environ, HERMOD_LOG_FORMAT="yaml")
        code, _, err = run("serve", "--port", "0", env=env)
        self.assertEqual(code, 2)
        self.assertIn("config key log_format: text or json", err)
        code, out, err = run("genconfig", env=dict(os.environ, HERMOD_LOG_FORMAT="json"))
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["log_format"], "json")


# Values that once passed checkconfig and then aborted serve (bad_alloc, exit
# 134) or wrapped silently. Each is refused by both, naming the key and its range.
HOSTILE = [
    ({"read_buffer_bytes": 1099511627776}, "read_buffer_bytes", "4096..67108864"),
    ({"read_buffer_bytes": 18446744073709551615}, "read_buffer_bytes", "4096..67108864"),
    ({"backlog": 4294967296}, "backlog", "0..65535"),
    ({"workers": 1000000}, "workers", "0..1024"),
    ({"websocket": {"handshake_timeout_ms": 18446744073709551000}},
     "websocket.handshake_timeout_ms", "0..2147483648"),
    ({"http": {"keepalive_timeout_ms": 18446744073709551615}}, "http.keepalive_timeout_ms",
     "0..2147483648"),
    ({"idempotency_window": "5124095576031h"}, "idempotency_window", " is out of range "),
    ({"idempotency_window": "18446744073709551615ms"}, "idempotency_window",
     " is out of range "),
    ({"idempotency_window": 18446744073709551}, "idempotency_window", " is out of range "),
    ({"history_ttl": "999999999h", "history_size": 10}, "history_ttl", " is out of range "),
    ({"namespaces": [{"name": "n", "history_size": 18446744073709551615, "history_ttl": "1s"}]},
     "namespaces[0].history_size", "0..10000000"),
    ({"send_queue": {"loop_budget_bytes": 18446744073709551615}}, "send_queue.loop_budget_bytes",
     " is out of range "),
    ({"health": {"memory_budget_bytes": 18446744073709551615}}, "health.memory_budget_bytes",
     " is out of range "),
    ({"admission": {"ip_table_size": 18446744073709551615}}, "admission.ip_table_size",
     " is out of range "),
    ({"client_channel_limit": 18446744073709551615}, "client_channel_limit", " is out of range "),
    ({"websocket": {"compression": {"min_size": 18446744073709551615}}},
     "websocket.compression.min_size", " is out of range "),
]


class ConfigRangeTest(CliCase):
    def test_checkconfig_and_serve_refuse_hostile_numbers_naming_the_key(self):
        for keys, key, detail in HOSTILE:
            with self.subTest(key=key, keys=keys):
                path = self.write("hostile.json", json.dumps(keys))
                code, out, err = run("checkconfig", path)
                self.assertEqual(code, 2, out + err)
                self.assertIn("config key %s: " % key, err)
                self.assertIn(detail, err)
                # serve refuses it the same way: a clean error, never an abort (134).
                code, _, serve_err = run("serve", "--config", path, "--port", "0")
                self.assertEqual(code, 2, serve_err)
                self.assertIn("config key %s: " % key, serve_err)

    def test_serve_runs_with_the_largest_values_checkconfig_accepts(self):
        # The upper ends of the keys that allocate or arm timers: serve starts, answers and
        # stops cleanly (a value checkconfig accepts never aborts serve).
        keys = {"read_buffer_bytes": 67108864, "backlog": 65535,
                "websocket": {"handshake_timeout_ms": 2147483648,
                              "close_timeout_ms": 2147483648, "idle_timeout_ms": 2147483648},
                "http": {"keepalive_timeout_ms": 2147483648},
                "idempotency_window": "2147483648ms", "history_ttl": "8760h",
                "history_size": 10000000}
        path = self.write("edge.json", json.dumps(keys))
        code, out, err = run("checkconfig", path)
        self.assertEqual(code, 0, err)
        server = self.start_server(keys)
        r = h.http_exchange(server.port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    h.main()
