"""`nats.jetstream.storage`, `nats.jetstream.replicas` (and `nats.presence.*`) reach nats-server.

- `engine: nats` with `nats.jetstream.storage: memory` creates the history stream with memory
  storage and one replica, as nats-server's own monitoring (`/jsz?streams=true&config=true`)
  reports it; `file` creates it on file; `nats.presence.storage` does the same for the
  presence bucket's stream (KV_<bucket>). Publications are stored there: the stream's
  message count follows them.
- `nats.jetstream.replicas: 3` (or `nats.presence.replicas: 3`) on a single nats-server stops
  start-up with a message naming the key, the server and the fix; no stream is left behind.

nats-server runs with -js on a temporary store dir, its client port chosen by itself and its
monitoring port a free one; every wait has a deadline; every process is stopped at the end.

Run: python3 jetstream_config_test.py --hermod PATH
"""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import hermod_harness as h  # noqa: E402
from nats_harness import NatsServer, api, free_port, wait_for  # noqa: E402


class MonitoredJetStream(NatsServer):
    """nats-server -js with its HTTP monitoring on a free port."""

    def __init__(self):
        self.monitor = free_port()
        super().__init__(jetstream=True, extra=["-m", str(self.monitor)])

    def streams(self):
        """name -> (config, state) of every stream, from /jsz."""
        url = "http://127.0.0.1:%d/jsz?streams=true&config=true" % self.monitor
        with urllib.request.urlopen(url, timeout=5) as r:
            jsz = json.loads(r.read())
        return {s["name"]: (s["config"], s["state"])
                for account in jsz.get("account_details") or []
                for s in account.get("stream_detail") or []}


def config(nats, **nats_keys):
    return {
        "engine": "nats",
        "nats": dict({"url": nats.url, "dial_timeout": "1s", "reconnect_wait": "100ms"},
                     **nats_keys),
        "api_key": "k",
        "presence": True,
        "history_size": 10,
        "history_ttl": "600s",
    }


class JetStreamConfigTest(h.HermodTestCase):
    def setUp(self):
        self.nats = MonitoredJetStream().start()
        self.addCleanup(self.nats.cleanup)

    def check_storage(self, storage, stream, bucket, prefix):
        node = self.start_server(config(self.nats, prefix=prefix,
                                        jetstream={"storage": storage, "stream": stream},
                                        presence={"storage": storage, "bucket": bucket}),
                                 echo=False)
        streams = self.nats.streams()
        self.assertIn(stream, streams)
        history, _ = streams[stream]
        self.assertEqual((history["storage"], history["num_replicas"]), (storage, 1))
        self.assertIn(prefix + ".history.>", history["subjects"])
        kv, _ = streams["KV_" + bucket]
        self.assertEqual((kv["storage"], kv["num_replicas"]), (storage, 1))
        for i in range(3):
            self.assertIn("result", api(node.port, "publish", {"channel": "c", "data": i}))
        wait_for("3 messages in " + stream,
                 lambda: self.nats.streams()[stream][1]["messages"] >= 3)

    def test_memory_storage(self):
        self.check_storage("memory", "HIST_MEM", "pres_mem", "jsmem")

    def test_file_storage(self):
        self.check_storage("file", "HIST_FILE", "pres_file", "jsfile")

    def refused(self, nats_keys, key):
        node = h.Hermod(h.HERMOD, config(self.nats, **nats_keys))
        self.addCleanup(node.cleanup)
        with self.assertRaises(AssertionError) as failed:
            node.start()
        message = str(failed.exception)
        self.assertIn("exited with 1", message)
        self.assertIn("%s is 3, but the nats-server at %s is not a JetStream cluster of 3 "
                      "servers" % (key, self.nats.url), message)
        self.assertIn("fix: set %s to 1" % key, message)
        return message

    def test_replicas_above_one_on_a_single_server_stop_start(self):
        self.refused({"jetstream": {"replicas": 3, "stream": "HIST_R3"}},
                     "nats.jetstream.replicas")
        self.assertNotIn("HIST_R3", self.nats.streams())
        self.refused({"presence": {"replicas": 3, "bucket": "pres_r3"}}, "nats.presence.replicas")
        self.assertNotIn("KV_pres_r3", self.nats.streams())


if __name__ == "__main__":
    h.main()
