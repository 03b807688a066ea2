"""GET /dashboard: the admin dashboard, in headless Debian Chromium driven by playwright-core
while a bounded load runs (node/dashboard_client.mjs) and through an operator's actions
(node/dashboard_actions.mjs), plus its routes over raw HTTP: 401 without the admin password
or with a wrong one, 404 when `admin` is off, the server-kept history, and the server API
with the admin's credentials (403 without X-Hermod-Admin).

Screenshots are kept as test artifacts in <build dir>/test-artifacts/dashboard*.png (the
paths are printed) and checked here: a PNG of the viewport's width, and (measured by
Chromium) pixel variance over the page and over the chart.
"""

import base64
import json
import os
import shutil
import struct
import time

import hermod_harness as h
import node_runner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "dashboard-password"
CONFIG = {
    "admin": True,
    "admin_password": PASSWORD,
    "api_key": "k",
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
}


SECRET = "dashboard-hmac-secret"
ACTIONS_CONFIG = dict(CONFIG, token_hmac_secret_key=SECRET, presence=True, history_size=10,
                      history_ttl="300s")
DEADLINE_S = 15


def basic(password):
    return "Authorization: Basic %s\r\n" % base64.b64encode(
        ("admin:%s" % password).encode()).decode()


def post(port, path, body, headers=""):
    data = json.dumps(body).encode()
    return h.http_exchange(port, ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                                  "Content-Length: %d\r\nConnection: close\r\n\r\n"
                                  % (path, headers, len(data))).encode() + data)


def png_size(path):
    """(width, height) from a PNG's IHDR; fails unless the file is a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


def wait_logged(test, server, line):
    """hermod's stderr is read by a thread: the line may come a moment after the answer."""
    deadline = time.monotonic() + DEADLINE_S
    while line not in server.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a condition against a deadline
    test.assertIn(line, server.stderr_text())


def get(port, path, password=None):
    auth = ""
    if password is not None:
        auth = "Authorization: Basic %s\r\n" % base64.b64encode(
            ("admin:%s" % password).encode()).decode()
    return h.http_exchange(port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                                  "Connection: close\r\n\r\n" % (path, auth)).encode())


class DashboardAccessTest(h.HermodTestCase):
    def test_password_is_required_for_the_page_and_its_data(self):
        server = self.start_server(CONFIG)
        for path in ("/dashboard", "/dashboard/data"):
            for password in (None, "", "wrong", PASSWORD + "x", PASSWORD[:-1]):
                r = get(server.port, path, password)
                self.assertEqual(r.status, 401, (path, password))
                self.assertIn("Basic", r.header("www-authenticate"))
        r = get(server.port, "/dashboard", PASSWORD)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("text/html"))
        self.assertIn(b"<title>hermod dashboard</title>", r.body)
        # Self-contained: nothing loaded from elsewhere.
        self.assertNotIn(b"http://", r.body)
        self.assertNotIn(b"https://", r.body)
        r = get(server.port, "/dashboard/data", PASSWORD)
        self.assertEqual(r.status, 200)
        data = json.loads(r.body)
        self.assertEqual(len(data["loops"]), 1)
        self.assertEqual(data["health"]["level"], "healthy")
        self.assertEqual(len(data["latency"]["command"]), len(data["latency"]["bounds_us"]) + 1)
        self.assertGreaterEqual(data["totals"]["connections"], 1)  # this request's own

    def test_data_has_the_inboxes_pending_and_dead_counts(self):
        # Without an inbox namespace: null (the page hides the table).
        server = self.start_server(CONFIG)
        self.assertIsNone(json.loads(get(server.port, "/dashboard/data", PASSWORD).body)
                          ["inboxes"])
        server.stop()
        config = dict(CONFIG, namespaces=[{"name": "inbox", "inbox": True, "inbox_size": 2,
                                           "inbox_overflow": "dead_letter_oldest"}])
        server = self.start_server(config)
        for n in range(3):  # the third makes room: the first is a dead letter (overflow)
            r = post(server.port, "/api/publish", {"channel": "inbox:#42", "data": {"n": n}},
                     "Authorization: apikey k\r\n")
            self.assertEqual(r.status, 200, r.body)
        post(server.port, "/api/publish", {"channel": "inbox:#7", "data": {}},
             "Authorization: apikey k\r\n")
        inboxes = json.loads(get(server.port, "/dashboard/data", PASSWORD).body)["inboxes"]
        self.assertEqual(inboxes, {"pending": 3, "dead": 1,
                                   "namespaces": [{"namespace": "inbox", "pending": 3}]})

    def test_admin_off_is_not_found(self):
        server = self.start_server({"admin_password": PASSWORD})
        for path in ("/dashboard", "/dashboard/data", "/dashboard/history"):
            self.assertEqual(get(server.port, path, PASSWORD).status, 404)
        r = post(server.port, "/dashboard/api/info", {},
                 basic(PASSWORD) + "X-Hermod-Admin: 1\r\n")
        self.assertEqual(r.status, 404)

    def test_history_is_kept_by_the_server_without_a_page(self):
        server = self.start_server(CONFIG)
        r = get(server.port, "/dashboard/history", None)
        self.assertEqual(r.status, 401)
        # Nobody polls: the server samples once a second by itself.
        deadline = time.monotonic() + DEADLINE_S
        while True:
            history = json.loads(get(server.port, "/dashboard/history", PASSWORD).body)
            if len(history["at_ms"]) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling a condition against a deadline
        self.assertGreaterEqual(len(history["at_ms"]), 3)
        self.assertEqual(history["interval_ms"], 1000)
        for key in ("messages_in", "messages_out", "publications_out", "resident_bytes",
                    "cpu_seconds", "clients", "subscriptions"):
            self.assertEqual(len(history[key]), len(history["at_ms"]), key)
        self.assertGreater(history["resident_bytes"][-1], 1 << 20)
        # Only what came after a time: a page asks for what it does not have.
        newest = history["at_ms"][-1]
        later = json.loads(get(server.port, "/dashboard/history?after=%d" % newest,
                               PASSWORD).body)
        self.assertTrue(all(t > newest for t in later["at_ms"]), later["at_ms"])
        data = json.loads(get(server.port, "/dashboard/data", PASSWORD).body)
        node = data["nodes"][0]
        self.assertEqual(len(data["nodes"]), 1)
        self.assertEqual(node["id"], "local")
        self.assertGreater(node["resident_bytes"], 1 << 20)
        self.assertRegex(node["version"], r"^\d+\.\d+")
        for key in ("uptime_s", "cpu_percent", "clients", "users", "channels", "subscriptions",
                    "messages_in_per_s", "messages_out_per_s"):
            self.assertIn(key, node)

    def test_the_server_api_with_the_admin_password(self):
        # No api_key at all: the API refuses everyone, the admin still acts.
        config = dict(CONFIG)
        del config["api_key"]
        server = self.start_server(config)
        body = {"channel": "c", "data": {"x": 1}}
        self.assertEqual(post(server.port, "/api/publish", body, "Authorization: apikey \r\n")
                         .status, 401)
        admin = basic(PASSWORD) + "X-Hermod-Admin: 1\r\n"
        self.assertEqual(post(server.port, "/dashboard/api/publish", body,
                              "X-Hermod-Admin: 1\r\n").status, 401)
        self.assertEqual(post(server.port, "/dashboard/api/publish", body,
                              basic("wrong") + "X-Hermod-Admin: 1\r\n").status, 401)
        # The credentials a browser would send on another site's behalf, without the header.
        self.assertEqual(post(server.port, "/dashboard/api/publish", body,
                              basic(PASSWORD)).status, 403)
        r = post(server.port, "/dashboard/api/publish", body, admin)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(json.loads(r.body), {"result": {}})  # no history: no position
        r = post(server.port, "/dashboard/api/channels", {"pattern": "*"}, admin)
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.body)["result"], {"channels": {}})
        self.assertEqual(post(server.port, "/dashboard/api/nosuch", {}, admin).status, 404)
        wait_logged(self, server, "dashboard: api publish from 127.0.0.1 answered 200")

    def test_admin_without_a_password_is_refused_at_start(self):
        server = h.Hermod(h.HERMOD, {"admin": True})
        self.addCleanup(server.cleanup)
        with self.assertRaises(AssertionError):
            server.start()
        self.assertIn("admin_password", server.stderr_text())


class DashboardBrowserTest(h.HermodTestCase):
    def test_chromium_shows_the_load(self):
        server = self.start_server(CONFIG, workers=2)
        artifacts = os.path.join(os.path.dirname(h.HERMOD), "test-artifacts")
        os.makedirs(artifacts, exist_ok=True)
        screenshot = os.path.join(artifacts, "dashboard.png")
        if os.path.exists(screenshot):
            os.remove(screenshot)
        out = node_runner.run_node_script(self, "dashboard_client.mjs", server, CHROMIUM,
                                          PASSWORD, "k", screenshot, timeout=180)
        seen = json.loads(out.splitlines()[0])
        self.assertEqual(seen["problems"], [])
        self.assertTrue(os.path.getsize(screenshot) > 10000)
        self.assertEqual(png_size(screenshot)[0], 1280)
        print("dashboard screenshot: %s" % screenshot)

    def test_chromium_searches_channels_and_acts(self):
        server = self.start_server(ACTIONS_CONFIG, workers=2)
        artifacts = os.path.join(os.path.dirname(h.HERMOD), "test-artifacts")
        os.makedirs(artifacts, exist_ok=True)
        screenshot = os.path.join(artifacts, "dashboard-actions.png")
        if os.path.exists(screenshot):
            os.remove(screenshot)
        out = node_runner.run_node_script(self, "dashboard_actions.mjs", server, CHROMIUM,
                                          PASSWORD, "k", SECRET, screenshot, timeout=120)
        seen = json.loads(out.splitlines()[0])
        print("dashboard screenshot: %s" % screenshot)
        width, height = png_size(screenshot)
        self.assertEqual(width, 1280)  # the viewport, at device scale 1
        self.assertGreaterEqual(height, 900)  # the full page: at least the viewport
        self.assertGreater(os.path.getsize(screenshot), 30000)
        pixels = seen["pixels"]
        self.assertEqual((pixels["width"], pixels["height"]), (width, height))
        # A blank page, or a chart that drew nothing, has (almost) no variance.
        self.assertGreater(pixels["stddev"], 10, pixels)
        self.assertGreater(pixels["chart_stddev"], 3, pixels)
        # The publication from the page reached the clients; the disconnect, unsubscribe and
        # history removal took effect (checked by the script against clients and the API).
        self.assertEqual(seen["presentUsers"], ["alice"])
        self.assertEqual(seen["historyLeft"], 0)
        wait_logged(self, server, "dashboard: api disconnect from 127.0.0.1 answered 200")


if __name__ == "__main__":
    h.main()
