"""One integration run under valgrind memcheck: a short scenario against
`valgrind --error-exitcode=1 --leak-check=full hermod`, and the process must exit 0 after
SIGTERM: any invalid read or write, use of uninitialised memory, or definite/possible leak
fails it. The release binary is used: its -march=x86-64-v2 -mpclmul (SSE4.2, POPCNT,
PCLMUL) are instructions valgrind executes; there is no AVX-512 in it.

Scenario: anonymous clients connect, subscribe and publish; the API publishes; a publish
burst meets its rate limit (111); a bad token is refused (3500); a malformed handshake gets
400; everything closes, then the server shuts down gracefully.
"""

import os
import shutil
import stat
import tempfile
import unittest

import guard_client as g
import hermod_harness as h

CONFIG = {"allow_anonymous_connect_without_token": True, "allow_subscribe_for_client": True,
          "allow_subscribe_for_anonymous": True, "allow_publish_for_client": True,
          "history_size": 10, "history_ttl": "60s", "allow_history_for_subscriber": True,
          "api_key": "k",
          "token_hmac_secret_key": g.SECRET, "client_connection_limit": 100}


@unittest.skipUnless(shutil.which("valgrind"), "valgrind is not installed")
class ValgrindTest(h.HermodTestCase):
    def test_short_scenario_is_clean_under_memcheck(self):
        tmp = tempfile.TemporaryDirectory(prefix="hermod-vg-")
        self.addCleanup(tmp.cleanup)
        wrapper = os.path.join(tmp.name, "hermod-under-valgrind")
        with open(wrapper, "w") as f:
            # exec: the pid the harness signals is valgrind's, which is hermod's.
            f.write("#!/bin/sh\nexec valgrind --quiet --error-exitcode=1 --leak-check=full "
                    "--track-fds=no %s \"$@\"\n" % h.HERMOD)
        os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IEXEC)
        server = h.Hermod(wrapper, CONFIG, workers=2, echo=False)
        self.addCleanup(server.cleanup)
        server.start()
        port = server.port

        sub = g.Client(port)
        self.addCleanup(sub.close)
        sub.connect()
        sub.call("subscribe", {"channel": "news"})
        pub = g.Client(port)
        self.addCleanup(pub.close)
        pub.connect()
        self.assertNotIn("error", pub.call("publish", {"channel": "news", "data": {"a": 1}}))
        self.assertEqual(sub.next_publication("news", timeout=30)["data"], {"a": 1})
        self.assertEqual(g.api_call(port, "publish", {"channel": "news", "data": 2}).status, 200)
        self.assertEqual(sub.next_publication("news", timeout=30)["data"], 2)
        ids = pub.send(*[("publish", {"channel": "news", "data": i}) for i in range(15)])
        codes = [pub.reply(i, timeout=30).get("error", {}).get("code") for i in ids]
        self.assertIn(111, codes)
        history = sub.call("history", {"channel": "news", "limit": 5}, timeout=30)
        self.assertEqual(len(history["history"]["publications"]), 5, history)

        bad = g.Client(port)
        bad.send(("connect", {"token": "not.a.token"}))
        self.assertEqual(bad.expect_close(timeout=30), 3500)
        bad.close()
        refused = h.http_exchange(port, h.upgrade_request(port, "/connection/websocket",
                                                          key="abc"), timeout=30)
        self.assertEqual(refused.status, 400)
        pub.close()
        sub.close()

        server.signal_stop()
        code = server.wait_exit(timeout=60)
        self.assertEqual(code, 0, "valgrind reported errors:\n" + server.stderr_text())


if __name__ == "__main__":
    h.main()
