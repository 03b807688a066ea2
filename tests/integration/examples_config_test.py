"""examples/config/: every profile passes `hermod checkconfig`, and `hermod serve` starts
with it (on 127.0.0.1, port 0) and answers /health, /health/live and /health/ready.

The profiles are found by listing the folder, so a new one is tested without editing this.
"""

import glob
import json
import os
import subprocess

import hermod_harness as h

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                        "config")
PROFILES = sorted(glob.glob(os.path.join(EXAMPLES, "*.json")))


class ExampleConfigTest(h.HermodTestCase):
    def test_the_three_profiles_exist_and_are_documented(self):
        names = {os.path.basename(p) for p in PROFILES}
        self.assertTrue({"dev.json", "prod.json", "high-scale.json"} <= names, names)
        with open(os.path.join(EXAMPLES, "README.md")) as f:
            readme = f.read()
        for name in names:
            self.assertIn(name, readme)

    def test_checkconfig_accepts_each(self):
        for path in PROFILES:
            with self.subTest(profile=os.path.basename(path)):
                p = subprocess.run([h.HERMOD, "checkconfig", path], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout.strip(), path + ": ok")

    def test_serve_starts_with_each_and_answers_health(self):
        for path in PROFILES:
            with self.subTest(profile=os.path.basename(path)):
                with open(path) as f:
                    config = json.load(f)
                # The harness passes the same keys back in its own file, and the flags
                # --bind 127.0.0.1 --port 0 --workers 1 on top (flags override the file);
                # --log-level info for the `listening on` line that high-scale's warn hides.
                server = self.start_server(config, echo=False, flags=["--log-level", "info"])
                for route in ("/health", "/health/live", "/health/ready"):
                    r = h.http_exchange(server.port, ("GET %s HTTP/1.1\r\nHost: x\r\n"
                                                      "Connection: close\r\n\r\n"
                                                      % route).encode())
                    self.assertEqual(r.status, 200, (route, r.body))
                body = json.loads(h.http_exchange(
                    server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").body)
                self.assertIn(body["level"], ("healthy", "degraded"), body)
                server.stop()


if __name__ == "__main__":
    h.main()
