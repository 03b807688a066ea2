"""hermod-bench's fan-out with subscribers on hermod's streamed transports.

`-p sse` subscribes over /connection/fragments (anonymous, the channel in the query) or, with
`--token`, over /connection/uni_sse (the token's `channels` claim); `-p http_stream` over
/connection/uni_http_stream; the publisher stays on the WebSocket. Against the real hermod,
every run is briefly paced (bounded load) and must report every publication delivered to
every subscriber: 0 lost, 0 undelivered, 0 errors, with latencies counted as over WebSocket.
"""

import json
import os
import subprocess
import tempfile

import guard_client as g
import hermod_harness as h

SECRET = "bench-secret"
CONFIG = {
    "token_hmac_secret_key": SECRET,
    "allow_anonymous_connect_without_token": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "allow_publish_for_client": True,
    "client_command_rate_limit": {"total": {"rate": 0}, "publish": {"rate": 0}},
    "uni_sse": True,
    "uni_http_stream": True,
    "fragments": True,
}
SUBSCRIBERS = 20
RATE = 100


class BenchStreamTest(h.HermodTestCase):
    def test_stream_subscribers_lose_nothing(self):
        bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")
        self.assertTrue(os.access(bench, os.X_OK), "hermod-bench not built next to hermod")
        server = self.start_server(CONFIG, workers=1, echo=False)
        token = g.jwt({"sub": "bench", "channels": ["hb0"]}, key=SECRET)
        runs = [("sse", []), ("sse", ["--token", token]), ("http_stream", ["--token", token]),
                ("hermod", [])]
        with tempfile.TemporaryDirectory(prefix="hermod-bench-stream-") as tmp:
            for protocol, args in runs:
                with self.subTest(protocol=protocol, token=bool(args)):
                    report = os.path.join(tmp, "%s-%d.json" % (protocol, len(args)))
                    argv = [bench, "fanout", "-u",
                            "ws://127.0.0.1:%d/connection/websocket" % server.port,
                            "-p", protocol, "-c", str(SUBSCRIBERS), "-r", str(RATE), "-d", "2",
                            "--no-progress", "--drain", "2", "--json", report] + args
                    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                       text=True, timeout=60, preexec_fn=h.raise_nofile_limit)
                    out = r.stdout + r.stderr
                    self.assertEqual(r.returncode, 0, out)
                    with open(report) as f:
                        m = json.load(f)["summary"]
                    self.assertGreater(m["delivered"], SUBSCRIBERS * RATE, out)
                    self.assertEqual(m["delivered"], m["expected"], out)
                    self.assertEqual((m["lost"], m["undelivered"], m["duplicates"], m["errors"]),
                                     (0, 0, 0, 0), out)
                    self.assertRegex(r.stdout, r"errors 0, loss 0%", out)


if __name__ == "__main__":
    h.main()
