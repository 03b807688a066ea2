"""GET /dashboard: the live dashboard, in headless Debian Chromium driven by playwright-core
(node/dashboard_client.mjs) while a bounded load runs, plus its access rules over raw HTTP:
401 without the admin password or with a wrong one, 404 when `admin` is off.

The screenshot is kept as a test artifact in <build dir>/test-artifacts/dashboard.png (the
path is printed).
"""

import base64
import json
import os
import shutil

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

    def test_admin_off_is_not_found(self):
        server = self.start_server({"admin_password": PASSWORD})
        for path in ("/dashboard", "/dashboard/data"):
            self.assertEqual(get(server.port, path, PASSWORD).status, 404)

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
        print("dashboard screenshot: %s" % screenshot)


if __name__ == "__main__":
    h.main()
