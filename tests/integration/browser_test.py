"""hermod against headless Debian Chromium driven by playwright-core (node/browser_client.mjs).

The page is about:blank, whose Origin is "null": the server allows any origin here.
"""

import json
import shutil

import node_runner
import hermod_harness as h

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class BrowserTest(h.HermodTestCase):
    def test_chromium_negotiates_deflate_and_echoes(self):
        server = self.start_server({"websocket": {"allowed_origins": ["*"]}})
        out = node_runner.run_node_script(self, "browser_client.mjs", server, CHROMIUM,
                                          timeout=180)
        seen = json.loads(out.splitlines()[0])
        self.assertIn("permessage-deflate", seen["extensions"])
        self.assertEqual(seen["close"]["code"], 1000)


if __name__ == "__main__":
    h.main()
