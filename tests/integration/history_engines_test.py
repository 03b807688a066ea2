"""Bad input to history answers the same on every engine: memory, sqlite, nats.

Each case runs against three servers, one per engine (`engine: memory`; `engine: sqlite` on
a real file in a temporary directory; `engine: nats` on a real `nats-server -js` with a
temporary store directory), and every engine must give the memory engine's answer, which
is also asserted where the protocol fixes it:

- the server API `/api/history`: a huge `limit` (10**12: everything kept; 2**63, past int64:
  a request that is no request), a negative `limit` (every publication kept), `since` with a
  negative, fractional, string or past-uint64 offset (no request), an offset past the top
  (nothing), an epoch of another channel, an empty or missing epoch (112, unrecoverable
  position), `since` with `reverse`;
- channel names that must be escaped into NATS subjects or SQL parameters (dots, `*`, `>`,
  spaces, quotes, a backslash, unicode, percent signs, the longest name allowed): each keeps
  a history of its own, under its own name; one past the longest is refused;
- the client protocol: a `history` command with the same `since` and `limit` values, and a
  subscribe with `recover` and a bad `since` (another epoch: not recovered; a negative
  offset: the connection is cut as for any malformed command).

No answer is a 500, no server crashes (each is stopped with exit status 0 at the end), none
hangs (every exchange has a deadline).

Run: python3 history_engines_test.py --hermod PATH
"""

import json
import os
import shutil
import tempfile

import guard_client as g
import hermod_harness as h
from nats_harness import NatsServer

ENGINES = ("memory", "sqlite", "nats")
MAX_CHANNEL = 255  # channel_max_length, the default
CHANNEL = "log"
COUNT = 5
# Names a NATS subject cannot carry as they are, or SQL text would have to quote.
NAMES = ["a.b", "a..b.", ".", "a*b", "*", "a>b", ">", "a b", " ", "tab\there", "q\"uo'te",
         "'; drop table history; --", "back\\slash", "ünï·cødé✓", "%", "a%2Eb", "a%2eb",
         "$JS.API.STREAM.INFO", "_INBOX.x", ("x.*>" * 64)[:MAX_CHANNEL - 2] + "é"]


def base_config():
    return {
        "api_key": "k",
        "allow_anonymous_connect_without_token": True,
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "allow_history_for_client": True,
        "history_size": 100,
        "history_ttl": "600s",
        "force_recovery": True,
        "channel_name_ascii_only": False,  # unicode names reach the engines too
    }


class HistoryEnginesTest(h.HermodTestCase):
    def setUp(self):
        self.nats = NatsServer(jetstream=True).start()
        self.addCleanup(self.nats.cleanup)
        self.dir = tempfile.mkdtemp(prefix="hermod-history-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.servers = {}
        for engine in ENGINES:
            config = base_config()
            config["engine"] = engine
            if engine == "sqlite":
                config["sqlite"] = {"path": os.path.join(self.dir, "hermod.db")}
            if engine == "nats":
                config["nats"] = {"url": self.nats.url, "dial_timeout": "1s",
                                  "reconnect_wait": "100ms"}
            self.servers[engine] = self.start_server(config, workers=2, echo=False)

    # --- answers, made comparable across engines ---

    def api(self, engine, method, params):
        """The answer of one API call: ("status", n) unless 200; ("error", code); or the
        result with each epoch named by the channel it belongs to."""
        r = g.api_call(self.servers[engine].port, method, params)
        if r.status != 200:
            return ("status", r.status)
        body = json.loads(r.body)
        if "error" in body:
            return ("error", body["error"]["code"])
        return ("result", body["result"])

    def publish(self, channel, count=COUNT):
        """count publications to channel on every engine; its epoch on each."""
        epochs = {}
        for engine in ENGINES:
            for i in range(1, count + 1):
                kind, result = self.api(engine, "publish", {"channel": channel,
                                                            "data": {"i": i, "ch": channel}})
                self.assertEqual(kind, "result", (engine, channel, result))
                self.assertEqual(result["offset"], i, (engine, channel))
            epochs[engine] = result["epoch"]
        return epochs

    def history(self, params, epochs=None):
        """The answer of /api/history on every engine, each checked against memory's; `since`
        with epoch "OWN" is given each engine's own epoch of the channel (epochs)."""
        answers = {}
        for engine in ENGINES:
            p = json.loads(json.dumps(params))
            if epochs and isinstance(p.get("since"), dict) and p["since"].get("epoch") == "OWN":
                p["since"]["epoch"] = epochs[engine]
            kind, result = self.api(engine, "history", p)
            if kind == "result":
                self.assertEqual(result["epoch"], epochs[engine] if epochs else result["epoch"],
                                 (engine, params))
                result = {"offset": result["offset"],
                          "publications": [(x["offset"], x["data"]) for x in
                                           result["publications"]]}
            answers[engine] = (kind, result)
        for engine in ENGINES[1:]:
            self.assertEqual(answers[engine], answers["memory"], (engine, params))
        return answers["memory"]

    def offsets(self, answer):
        kind, result = answer
        self.assertEqual(kind, "result", answer)
        return [offset for offset, _ in result["publications"]]

    # --- the server API ---

    def test_limit(self):
        epochs = self.publish(CHANNEL)
        every = list(range(1, COUNT + 1))
        for limit in (10 ** 12, 2 ** 62, 2 ** 63 - 1, -1, -2, -(2 ** 63)):
            self.assertEqual(self.offsets(self.history({"channel": CHANNEL, "limit": limit},
                                                       epochs)), every, limit)
            self.assertEqual(self.offsets(self.history(
                {"channel": CHANNEL, "limit": limit, "reverse": True}, epochs)), every[::-1])
        self.assertEqual(self.offsets(self.history({"channel": CHANNEL, "limit": 0}, epochs)),
                         [])
        self.assertEqual(self.offsets(self.history({"channel": CHANNEL}, epochs)), [])
        self.assertEqual(self.offsets(self.history({"channel": CHANNEL, "limit": 2}, epochs)),
                         [1, 2])
        for limit in (2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30, 1.5, "5", None, [5], {}):
            self.assertEqual(self.history({"channel": CHANNEL, "limit": limit}),
                             ("status", 400), limit)

    def test_since_offsets(self):
        epochs = self.publish(CHANNEL)
        since = lambda offset, **more: dict({"channel": CHANNEL, "limit": -1,  # noqa: E731
                                             "since": {"offset": offset, "epoch": "OWN"}}, **more)
        self.assertEqual(self.offsets(self.history(since(0), epochs)), [1, 2, 3, 4, 5])
        self.assertEqual(self.offsets(self.history(since(3), epochs)), [4, 5])
        # Reversed, `since` reads back from the offset (Centrifugo's order): what came before.
        self.assertEqual(self.offsets(self.history(since(3, reverse=True), epochs)), [2, 1])
        self.assertEqual(self.offsets(self.history(since(3, limit=1), epochs)), [4])
        for past in (COUNT, COUNT + 1, 10 ** 12, 2 ** 63, 2 ** 64 - 1):
            self.assertEqual(self.offsets(self.history(since(past), epochs)), [], past)
            self.assertEqual(self.offsets(self.history(since(past, reverse=True), epochs)),
                             [n for n in range(COUNT, 0, -1) if n < past], past)
        for bad in (-1, -(2 ** 63), 2 ** 64, 1.5, "3", "", None, [3], {"n": 3}):
            self.assertEqual(self.history(since(bad), epochs), ("status", 400), bad)
        for bad in ("x", 3, [], None):
            self.assertEqual(self.history({"channel": CHANNEL, "limit": -1, "since": bad}),
                             ("status", 400), bad)

    def test_since_epoch_of_another_channel(self):
        epochs = self.publish(CHANNEL)
        others = self.publish("other", 2)
        for engine in ENGINES:
            self.assertNotEqual(others[engine], epochs[engine], engine)
        for offset in (0, 1, 5, 10 ** 12):
            for reverse in (False, True):
                wrong = {"channel": CHANNEL, "limit": -1, "reverse": reverse,
                         "since": {"offset": offset}}
                for engine in ENGINES:
                    wrong["since"]["epoch"] = others[engine]
                    self.assertEqual(self.api(engine, "history", wrong), ("error", 112),
                                     (engine, offset))
        for epoch in ("x" * 10000, "ünï", "\u0000", "OWN "):
            self.assertEqual(self.history({"channel": CHANNEL, "limit": 1,
                                           "since": {"offset": 1, "epoch": epoch}}),
                             ("error", 112), epoch)
        # No epoch, or an empty one, is any epoch (Centrifugo's rule): read from the offset.
        self.assertEqual(self.offsets(self.history({"channel": CHANNEL, "limit": 1, "since": {
            "offset": 1, "epoch": ""}}, epochs)), [2])
        self.assertEqual(self.offsets(self.history({"channel": CHANNEL, "limit": 1, "since": {
            "offset": 1}}, epochs)), [2])
        self.assertEqual(self.history({"channel": CHANNEL, "limit": 1,
                                       "since": {"offset": 1, "epoch": 7}}), ("status", 400))
        # A channel nothing was published to: its own (new) epoch, no publications; any
        # other epoch is unrecoverable there too.
        self.assertEqual(self.history({"channel": "never", "limit": -1,
                                       "since": {"offset": 3, "epoch": "nope"}}),
                         ("error", 112))

    def test_channel_names_that_need_escaping(self):
        epochs = {name: self.publish(name, 2) for name in NAMES}
        for name in NAMES:
            answer = self.history({"channel": name, "limit": -1}, epochs[name])
            self.assertEqual(answer, ("result", {"offset": 2, "publications": [
                (1, {"i": 1, "ch": name}), (2, {"i": 2, "ch": name})]}), name)
            self.assertEqual(self.offsets(self.history(
                {"channel": name, "limit": -1, "since": {"offset": 1, "epoch": "OWN"}},
                epochs[name])), [2], name)
        for engine in ENGINES:
            # Names that escape alike ("a.b", "a%2Eb", "a%2eb") keep apart: their epochs differ.
            self.assertEqual(len({epochs[name][engine] for name in NAMES}), len(NAMES), engine)
        self.assertEqual(self.history({"channel": "y" * (MAX_CHANNEL + 1), "limit": -1}),
                         ("error", 107))
        self.assertEqual(self.history({"channel": "", "limit": -1}), ("error", 107))
        # history_remove of an escaped name empties it alone, keeping its position.
        for engine in ENGINES:
            self.assertEqual(self.api(engine, "history_remove", {"channel": "a.b"}),
                             ("result", {}), engine)
        self.assertEqual(self.history({"channel": "a.b", "limit": -1}, epochs["a.b"]),
                         ("result", {"offset": 2, "publications": []}))
        self.assertEqual(self.offsets(self.history({"channel": "a%2Eb", "limit": -1},
                                                   epochs["a%2Eb"])), [1, 2])

    def test_history_remove_of_a_channel_the_server_does_not_hold(self):
        """A durable engine keeps a channel's publications after the server freed the
        channel (no subscriber, nothing pending), and after a restart: history_remove must
        remove them then too, not answer {} and leave them."""
        epochs = {name: self.publish(name, 2) for name in ("gone", "kept")}
        for engine in ("sqlite", "nats"):
            old = self.servers[engine]
            old.stop()
            self.servers[engine] = self.start_server(old.config, workers=2, echo=False)
        for engine in ENGINES:
            self.assertEqual(self.api(engine, "history_remove", {"channel": "gone"}),
                             ("result", {}), engine)
        for engine in ("sqlite", "nats"):  # the memory engine's history did not survive
            answer = self.api(engine, "history", {"channel": "gone", "limit": -1})
            self.assertEqual(answer, ("result", {"epoch": epochs["gone"][engine], "offset": 2,
                                                 "publications": []}), engine)
            kind, result = self.api(engine, "history", {"channel": "kept", "limit": -1})
            self.assertEqual([p["offset"] for p in result["publications"]], [1, 2], engine)

    # --- the client protocol ---

    def client_answer(self, engine, method, params):
        """A command's reply on a fresh connection: ("error", code), ("closed", code) or
        ("result", result) with epochs checked and offsets listed."""
        c = g.Client(self.servers[engine].port)
        try:
            c.connect()
            m = c.call(method, params)
        except g.ClosedError as e:
            return ("closed", e.code)
        finally:
            c.close()
        if "error" in m:
            return ("error", m["error"]["code"])
        return ("result", m[method])

    def client_history(self, params, epochs):
        answers = {}
        for engine in ENGINES:
            p = json.loads(json.dumps(params))
            if isinstance(p.get("since"), dict) and p["since"].get("epoch") == "OWN":
                p["since"]["epoch"] = epochs[engine]
            kind, result = self.client_answer(engine, "history", p)
            if kind == "result":
                self.assertEqual(result.get("epoch"), epochs[engine], (engine, params))
                result = [x["offset"] for x in result.get("publications", [])]
            answers[engine] = (kind, result)
        for engine in ENGINES[1:]:
            self.assertEqual(answers[engine], answers["memory"], (engine, params))
        return answers["memory"]

    def test_client_history(self):
        epochs = self.publish(CHANNEL)
        for limit in (10 ** 12, 2 ** 63 - 1, -1, -7):
            self.assertEqual(self.client_history({"channel": CHANNEL, "limit": limit}, epochs),
                             ("result", [1, 2, 3, 4, 5]), limit)
        self.assertEqual(self.client_history({"channel": CHANNEL, "limit": -1, "since": {
            "offset": 3, "epoch": "OWN"}}, epochs), ("result", [4, 5]))
        self.assertEqual(self.client_history({"channel": CHANNEL, "limit": -1, "since": {
            "offset": 10 ** 12, "epoch": "OWN"}}, epochs), ("result", []))
        self.assertEqual(self.client_history({"channel": CHANNEL, "limit": -1, "since": {
            "offset": 1, "epoch": "another"}}, epochs), ("error", 112))
        # What no decoder takes is a malformed command: the connection is cut (3501).
        for bad in ({"limit": 2 ** 63}, {"limit": "5"},
                    {"limit": -1, "since": {"offset": -1, "epoch": "OWN"}},
                    {"limit": -1, "since": {"offset": "3", "epoch": "OWN"}},
                    {"limit": -1, "since": {"offset": 2 ** 64, "epoch": "OWN"}}):
            self.assertEqual(self.client_history(dict(bad, channel=CHANNEL), epochs),
                             ("closed", 3501), bad)
        for name in ("a.b", "a*b >", "q\"'", "ünï"):
            names = self.publish(name, 1)
            self.assertEqual(self.client_history({"channel": name, "limit": -1}, names),
                             ("result", [1]), name)

    def test_subscribe_with_recover_and_a_bad_since(self):
        epochs = self.publish(CHANNEL)

        def subscribe(since):
            answers = {}
            for engine in ENGINES:
                p = {"channel": CHANNEL, "recover": True}
                p.update(since)
                if p.get("epoch") == "OWN":
                    p["epoch"] = epochs[engine]
                kind, result = self.client_answer(engine, "subscribe", p)
                if kind == "result":
                    self.assertEqual(result["epoch"], epochs[engine], engine)
                    result = (result.get("recovered", False), result.get("offset"),
                              [x["offset"] for x in result.get("publications", [])])
                answers[engine] = (kind, result)
            for engine in ENGINES[1:]:
                self.assertEqual(answers[engine], answers["memory"], (engine, since))
            return answers["memory"]

        self.assertEqual(subscribe({"offset": 3, "epoch": "OWN"}), ("result", (True, 5, [4, 5])))
        self.assertEqual(subscribe({"offset": 5, "epoch": "OWN"}), ("result", (True, 5, [])))
        # Another epoch: not recovered, told the stream's position.
        for epoch in ("another", "x" * 1000):
            self.assertEqual(subscribe({"offset": 3, "epoch": epoch}),
                             ("result", (False, 5, [])), epoch)
        # An empty one is any epoch (Centrifugo's rule).
        self.assertEqual(subscribe({"offset": 3, "epoch": ""}), ("result", (True, 5, [4, 5])))
        # An offset past the top: the stream cannot give what the client claims to have seen.
        for past in (COUNT + 1, 10 ** 12, 2 ** 63, 2 ** 64 - 1):
            self.assertEqual(subscribe({"offset": past, "epoch": "OWN"}),
                             ("result", (False, 5, [])), past)
        for bad in ({"offset": -1, "epoch": "OWN"}, {"offset": "3", "epoch": "OWN"},
                    {"offset": 2 ** 64, "epoch": "OWN"}, {"offset": 3, "epoch": 7}):
            self.assertEqual(subscribe(bad), ("closed", 3501), bad)


if __name__ == "__main__":
    h.main()
