"""The `sqlite` engine with the real binary and a real file.

- kill -9 while a publisher calls the API in a loop; restart on the same file: every
  publication answered 200 is in history with the offset it was answered with, the epoch is
  the same, and offsets continue from there. Idempotency keys survive too.
- kill -9 at once after a batch of keyed publications *without* history was answered: their
  keys were stored before the answer, so retrying them after the restart publishes nothing.
- The file removed under a running server: publications to channels with history are
  refused with an error (API and client publish), never answered as published; channels
  without history keep working; /health shows the `store` check degraded and
  hermod_store_errors_total counts.
- history_remove is answered once the removal is committed; with the file gone it answers
  error 100, never 200 for a removal that was then lost, and the history is unchanged.
- A corrupt file, or one hermod may not write, stops start-up with a message naming it.
- A file of the first schema (with the expiry index) is upgraded in place and serves its
  history; its expired publications are deleted without that index; a file of a later
  schema version is refused with a message naming it and left unchanged.
- A file of schema version 1 (publications keyed by the channel's name) is migrated to
  version 2 (by the channel's id) at start-up: history, epochs, top offsets (one with its
  history removed too), recovery and idempotency keys are as they were, offsets continue,
  and the migrated file opens again as version 2.
- An API batch of inbox publications with `parallel: true` is stored in fewer transactions
  than publications (without it: one each), answered in command order, refusals of a full
  inbox in their places; so is a batch of 200 publications to a channel with history.
- Without `sqlite.path` the file is `hermod.db` in the working directory, in WAL mode, and
  /metrics shows `hermod_store_queue_depth{engine="sqlite"} 0` once publications are answered.
- A flood of pipelined client publishes faster than the writer commits: the publishers'
  reads pause while the writer is behind (hermod_read_pauses_total) and resume as it drains,
  so the queue never reaches sqlite.max_queue (nothing refused) and every publish is
  answered; after kill -9 each answered one is in history.
- The same with HTTP API publishes pipelined on one keep-alive connection: its reads pause
  while the writer is behind, so what it pipelines waits in its socket instead of overflowing
  what the connection keeps behind an unfinished answer; every publish is answered 200 and,
  after kill -9, in history.
"""

import json
import os
import re
import shutil
import signal
import sqlite3
import tempfile
import threading
import time

import guard_client as g
import hermod_harness as h


def config(path):
    return {
        "api_key": "k",
        "engine": "sqlite",
        "sqlite": {"path": path},
        "allow_publish_for_client": True,
        "allow_subscribe_for_client": True,
        "allow_anonymous_connect_without_token": True,
        "allow_subscribe_for_anonymous": True,
        "allow_publish_for_anonymous": True,
        "namespaces": [
            {"name": "h", "history_size": 100000, "history_ttl": "600s",
             "allow_publish_for_client": True, "allow_subscribe_for_client": True,
             "allow_publish_for_anonymous": True, "allow_subscribe_for_anonymous": True},
            {"name": "live", "allow_publish_for_client": True,
             "allow_subscribe_for_client": True, "allow_publish_for_anonymous": True,
             "allow_subscribe_for_anonymous": True},
        ],
    }


class SqliteEngineTest(h.HermodTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hermod-sqlite-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "hermod.db")

    def history(self, port, channel):
        r = json.loads(g.api_call(port, "history", {"channel": channel, "limit": -1}).body)
        return r["result"]

    def transactions(self, port):
        r = h.http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        m = re.search(r'^hermod_store_operations_total\{engine="sqlite",kind="trim"\} (\S+)$',
                      r.body.decode(), re.M)
        return float(m.group(1)) if m else 0.0

    def test_a_parallel_batch_of_inbox_publications_shares_group_commits(self):
        # Without parallel each publication waits for its commit before the next runs: one
        # transaction each. With it they are queued together, and the answer still lists
        # every one in command order, a full inbox's refusals in their places.
        c = config(self.path)
        c["namespaces"].append({"name": "inbox", "inbox": True, "inbox_size": 100})
        server = self.start_server(c)

        def batch(first, n, parallel):
            commands = [{"publish": {"channel": "inbox:#42", "data": {"n": first + i}}}
                        for i in range(n)]
            r = g.api_call(server.port, "batch", {"commands": commands, "parallel": parallel})
            self.assertEqual(r.status, 200, r.body)
            return json.loads(r.body)["replies"]

        before = self.transactions(server.port)
        replies = batch(1, 40, False)
        sequential = self.transactions(server.port) - before
        self.assertEqual([x["publish"]["offset"] for x in replies], list(range(1, 41)))
        self.assertGreaterEqual(sequential, 40)

        before = self.transactions(server.port)
        replies = batch(41, 40, True)
        parallel = self.transactions(server.port) - before
        self.assertEqual([x["publish"]["offset"] for x in replies], list(range(41, 81)))
        self.assertLess(parallel, 20, "a parallel batch committed one by one")
        self.assertEqual(len({x["publish"]["epoch"] for x in replies}), 1)

        # 20 more fit (inbox_size 100): the last 10 of 30 are refused, in their places.
        replies = batch(81, 30, True)
        self.assertEqual([x["publish"]["offset"] for x in replies[:20]], list(range(81, 101)))
        self.assertEqual([x["error"]["code"] for x in replies[20:]], [111] * 10)

        # Stored in command order: the inbox's status lists offsets 1..100, each with its n.
        r = json.loads(g.api_call(server.port, "inbox_status", {"channel": "inbox:#42"}).body)
        offsets = [e["offset"] for e in r["result"]["publications"]]
        self.assertEqual(offsets, list(range(1, 101)))

    def test_a_parallel_batch_of_history_publications_shares_group_commits(self):
        # History publications, not only inbox ones: 200 queued together by one batch are
        # committed in a few transactions (hermod_store_operations_total{kind="trim"}: one
        # per transaction), where one after another they are one each.
        server = self.start_server(config(self.path))

        def batch(first, n, parallel):
            commands = [{"publish": {"channel": "h:burst", "data": {"n": first + i}}}
                        for i in range(n)]
            r = g.api_call(server.port, "batch", {"commands": commands, "parallel": parallel})
            self.assertEqual(r.status, 200, r.body)
            return json.loads(r.body)["replies"]

        before = self.transactions(server.port)
        replies = batch(1, 20, False)
        self.assertEqual([x["publish"]["offset"] for x in replies], list(range(1, 21)))
        self.assertGreaterEqual(self.transactions(server.port) - before, 20)

        before = self.transactions(server.port)
        replies = batch(21, 200, True)
        parallel = self.transactions(server.port) - before
        self.assertEqual([x["publish"]["offset"] for x in replies], list(range(21, 221)))
        self.assertLess(parallel, 20, "a burst of history publications committed one by one")
        self.assertEqual(len(self.history(server.port, "h:burst")["publications"]), 220)

    def test_the_default_file_is_hermod_db_in_the_working_directory_in_wal_mode(self):
        # No sqlite.path: the file is hermod.db where hermod runs (its config elsewhere),
        # in WAL mode (its -wal file beside it while it runs), and /metrics shows the
        # engine's queue as empty once the publications are answered.
        cfg = config(self.path)
        del cfg["sqlite"]
        server = self.start_server(cfg, cwd=self.dir)
        for n in range(5):
            r = g.api_call(server.port, "publish", {"channel": "h:feed", "data": {"n": n}})
            self.assertEqual(r.status, 200, r.body)
        self.assertTrue(os.path.exists(self.path), os.listdir(self.dir))
        self.assertTrue(os.path.exists(self.path + "-wal"), os.listdir(self.dir))
        with sqlite3.connect(self.path) as db:
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            self.assertEqual(db.execute("SELECT count(*) FROM pubs").fetchone()[0], 5)
        body = h.http_exchange(
            server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ).body.decode()
        self.assertRegex(body, r'(?m)^hermod_store_queue_depth\{engine="sqlite"\} 0$')
        self.assertGreaterEqual(self.transactions(server.port), 5)

    def test_every_answered_publication_survives_kill_9(self):
        # Not start_server: its teardown wants exit status 0, and this one is killed.
        server = h.Hermod(h.HERMOD, config(self.path), workers=2)
        self.addCleanup(server.cleanup)
        server.start()
        answered = {}  # offset -> n
        epochs = set()
        stop = threading.Event()
        failures = []

        def publish_loop():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = g.api_call(server.port, "publish", {"channel": "h:feed", "data": {"n": n}})
                except (OSError, EOFError, AssertionError):
                    return  # the server is gone: unanswered, so promised nothing
                if r.status != 200:
                    return
                body = json.loads(r.body)
                if "result" not in body:
                    failures.append(body)
                    return
                answered[body["result"]["offset"]] = n
                epochs.add(body["result"]["epoch"])

        keyed = json.loads(g.api_call(server.port, "publish", {
            "channel": "h:keyed", "data": {}, "idempotency_key": "once"}).body)["result"]
        publisher = threading.Thread(target=publish_loop)
        publisher.start()
        try:
            g.wait_for(lambda: len(answered) >= 300, timeout=60, what="300 publications")
            os.kill(server.pid, signal.SIGKILL)  # mid-loop: a publication may be in flight
            server.wait_exit()
        finally:
            stop.set()
            publisher.join()
        self.assertEqual(failures, [])
        self.assertEqual(len(epochs), 1)
        epoch = epochs.pop()

        again = self.start_server(config(self.path), workers=2)
        result = self.history(again.port, "h:feed")
        self.assertEqual(result["epoch"], epoch)
        held = {p["offset"]: p["data"]["n"] for p in result["publications"]}
        for offset, n in answered.items():
            self.assertEqual(held.get(offset), n, "answered offset %d lost or changed" % offset)
        # Offsets are contiguous from 1, and the top is at least every answered one.
        self.assertEqual(sorted(held), list(range(1, result["offset"] + 1)))
        self.assertGreaterEqual(result["offset"], max(answered))
        r = json.loads(g.api_call(again.port, "publish",
                                  {"channel": "h:feed", "data": {"n": -1}}).body)["result"]
        self.assertEqual(r, {"offset": result["offset"] + 1, "epoch": epoch})
        # The key published before the crash still names its publication.
        r = json.loads(g.api_call(again.port, "publish", {
            "channel": "h:keyed", "data": {}, "idempotency_key": "once"}).body)["result"]
        self.assertEqual(r, keyed)

    def paused_then_killed(self, server, channel):
        """The history of channel after a flood that paused reads and refused nothing, then
        kill -9 and a restart on the same file."""
        self.assertGreater(g.metric(server.port, "hermod_read_pauses_total"), 0)
        self.assertEqual(g.metric(server.port, "hermod_store_errors_total", reason="queue_full"), 0)
        os.kill(server.pid, signal.SIGKILL)  # every publish was answered: all are stored
        server.wait_exit()
        again = self.start_server(config(self.path), workers=1)
        return self.history(again.port, channel)

    def test_a_flood_of_client_publishes_pauses_reads_and_loses_nothing(self):
        cfg = config(self.path)
        # Small reads (a pause takes effect after the read being handled) and a writer that
        # commits few at a time, so the flood outruns it by far; max_queue a few reads over
        # the pause mark. Without the pause the queue passes max_queue and publishes are
        # refused.
        cfg["read_buffer_bytes"] = 16384
        cfg["client_command_rate_limit"] = {"total": {"rate": 0}, "publish": {"rate": 0}}
        cfg["sqlite"].update({"max_batch": 16, "max_queue": 256, "pause_reads_at": 64,
                              "resume_reads_at": 16})
        server = h.Hermod(h.HERMOD, cfg, workers=1)
        self.addCleanup(server.cleanup)
        server.start()
        clients, frames, per_frame = 2, 25, 80
        body = "x" * 1000
        replies = {}  # client index -> [reply]
        errors = []

        def flood(i):
            c = g.Client(server.port)
            self.addCleanup(c.close)
            c.connect()
            ids = []
            # Sent by a thread of its own: a paused server stops reading, so the send blocks
            # while this thread reads the replies.
            def send():
                for f in range(frames):
                    ids.extend(c.send(*[("publish", {"channel": "h:flood", "data": {
                        "c": i, "n": f * per_frame + k, "pad": body}})
                        for k in range(per_frame)]))
            sender = threading.Thread(target=send)
            sender.start()
            got = []
            try:
                while len(got) < frames * per_frame:
                    m = c.read_message(timeout=60)
                    if "id" in m:
                        got.append(m)
            except AssertionError as e:
                errors.append(repr(e))
            sender.join()
            replies[i] = got

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        total = clients * frames * per_frame
        for i in range(clients):
            refused = [m for m in replies[i] if "error" in m]
            self.assertEqual(len(refused), 0, "client %d: refused, e.g. %r" % (i, refused[:1]))
            self.assertEqual(len(replies[i]), frames * per_frame)
        result = self.paused_then_killed(server, "h:flood")
        self.assertEqual(result["offset"], total)
        held = sorted((p["data"]["c"], p["data"]["n"]) for p in result["publications"])
        self.assertEqual(held, [(i, n) for i in range(clients) for n in range(frames * per_frame)])

    def test_pipelined_api_publishes_pause_reads_and_lose_nothing(self):
        cfg = config(self.path)
        # A connection serves one request at a time and keeps what is pipelined behind it up
        # to one request's size (here 3 KiB): a client that pipelines faster than the writer
        # commits overflows that unless the connection stops being read while the writer is
        # behind. Without the pause (pause_reads_at 0) the connection is closed with
        # publications unanswered.
        cfg["read_buffer_bytes"] = 4096
        cfg["http"] = {"max_header_bytes": 1024, "max_body_bytes": 2048}
        cfg["sqlite"].update({"max_batch": 4, "pause_reads_at": 1, "resume_reads_at": 0})
        server = h.Hermod(h.HERMOD, cfg, workers=1)
        self.addCleanup(server.cleanup)
        server.start()
        count, pad = 400, "x" * 1000
        requests = b""
        for n in range(count):
            body = json.dumps({"channel": "h:piped", "data": {"n": n, "pad": pad}}).encode()
            requests += (b"POST /api/publish HTTP/1.1\r\nHost: a\r\nX-API-Key: k\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body)) + body
        sock = h.connect(server.port, timeout=60)
        self.addCleanup(sock.close)
        # Sent by a thread of its own: a paused server stops reading, so sendall blocks while
        # this thread reads the answers.
        def send():
            try:
                sock.sendall(requests)
            except OSError:
                pass  # the server closed it: what it answered is checked below
        sender = threading.Thread(target=send)
        sender.start()
        reader = h.ResponseReader(sock)
        answers = []
        try:
            while len(answers) < count:
                answers.append(reader.read(timeout=60))
        except (EOFError, OSError):
            pass  # closed by the server: the answers missing fail below
        finally:
            if len(answers) < count:
                sock.close()  # the sender's sendall fails at once
            sender.join()
        self.assertEqual(len(answers), count, "the connection closed after %d answers" % len(answers))
        self.assertEqual([a.status for a in answers], [200] * count)
        offsets = [json.loads(a.body)["result"]["offset"] for a in answers]
        self.assertEqual(offsets, list(range(1, count + 1)))
        result = self.paused_then_killed(server, "h:piped")
        self.assertEqual(result["offset"], count)
        self.assertEqual([p["data"]["n"] for p in result["publications"]], list(range(count)))

    def test_keys_of_publications_without_history_are_stored_before_the_answer(self):
        server = h.Hermod(h.HERMOD, config(self.path), workers=2)
        self.addCleanup(server.cleanup)
        server.start()
        first = g.Client(server.port)
        self.addCleanup(first.close)
        first.connect()
        first.subscribe("live:keyed")
        batch = {"commands": [
            {"publish": {"channel": "live:keyed", "data": {"n": n}, "idempotency_key": "k%d" % n}}
            for n in range(100)]}
        r = g.api_call(server.port, "batch", batch)
        os.kill(server.pid, signal.SIGKILL)  # at once: the answer is all that was promised
        server.wait_exit()
        self.assertEqual(r.status, 200)
        replies = json.loads(r.body)["replies"]
        self.assertEqual(replies, [{"publish": {}}] * 100)
        # The subscriber of the killed server got each once.
        got = []
        while True:
            try:
                got.append(first.next_publication("live:keyed")["data"]["n"])
            except (g.ClosedError, OSError, AssertionError):
                break
        self.assertEqual(got, list(range(len(got))))

        again = self.start_server(config(self.path), workers=2)
        second = g.Client(again.port)
        self.addCleanup(second.close)
        second.connect()
        second.subscribe("live:keyed")
        r = g.api_call(again.port, "batch", batch)
        self.assertEqual(json.loads(r.body)["replies"], [{"publish": {}}] * 100)
        # Retried with the same keys: answered, published to nobody; a publication without a
        # key after them arrives first.
        g.api_call(again.port, "publish", {"channel": "live:keyed", "data": {"n": "end"}})
        self.assertEqual(second.next_publication("live:keyed")["data"], {"n": "end"})

    def test_a_failing_file_refuses_publications_with_history_and_degrades_health(self):
        server = self.start_server(config(self.path), workers=2)
        r = json.loads(g.api_call(server.port, "publish", {"channel": "h:a", "data": {}}).body)
        self.assertEqual(r["result"]["offset"], 1)
        c = g.Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        c.subscribe("live:x")
        os.remove(self.path)  # the server's file is gone: nothing more can be stored in it
        for _ in range(3):
            r = json.loads(g.api_call(server.port, "publish", {"channel": "h:a", "data": {}}).body)
            self.assertNotIn("result", r)
            self.assertEqual(r["error"]["code"], 100)
        reply = c.call("publish", {"channel": "h:a", "data": {}})
        self.assertEqual(reply.get("error", {}).get("code"), 100, reply)
        # A channel without history does not need the store.
        r = json.loads(g.api_call(server.port, "publish", {"channel": "live:x", "data": {"v": 1}}).body)
        self.assertIn("result", r)
        self.assertEqual(c.next_publication("live:x")["data"], {"v": 1})

        def store_check():
            health = json.loads(h.http_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").body)
            checks = [k for k in health["checks"] if k["name"] == "store"]
            return checks and checks[0]["level"] == "degraded" and checks[0]

        check = g.wait_for(store_check, what="the store check degraded")
        self.assertIn(self.path, check["detail"])
        self.assertGreaterEqual(g.metric(server.port, "hermod_store_errors_total",
                                         engine="sqlite"), 4)

    def test_history_remove_is_answered_after_it_is_stored_or_with_an_error(self):
        server = self.start_server(config(self.path), workers=2)
        for channel in ("h:gone", "h:kept"):
            for n in range(3):
                r = json.loads(g.api_call(server.port, "publish",
                                          {"channel": channel, "data": {"n": n}}).body)
                self.assertIn("result", r)
        r = json.loads(g.api_call(server.port, "history_remove", {"channel": "h:gone"}).body)
        self.assertEqual(r, {"result": {}})
        # Answered after the commit: the next read sees it gone, the position kept.
        view = self.history(server.port, "h:gone")
        self.assertEqual(view.get("publications", []), [])
        self.assertEqual(view["offset"], 3)
        os.remove(self.path)  # nothing more can be stored in the file
        r = json.loads(g.api_call(server.port, "history_remove", {"channel": "h:kept"}).body)
        self.assertNotIn("result", r)
        self.assertEqual(r["error"]["code"], 100, r)
        view = self.history(server.port, "h:kept")
        self.assertEqual([p["data"]["n"] for p in view["publications"]], [0, 1, 2])

    def test_a_corrupt_or_unwritable_file_stops_start_up_naming_it(self):
        with open(self.path, "wb") as f:
            f.write(b"this is not a database" * 1000)
        server = h.Hermod(h.HERMOD, config(self.path))
        self.addCleanup(server.cleanup)
        with self.assertRaises(AssertionError):
            server.start()
        self.assertIn(self.path, server.stderr_text())
        self.assertIn("move the file aside", server.stderr_text())
        if os.geteuid() == 0:
            return  # root writes read-only files
        os.remove(self.path)
        os.chmod(self.dir, 0o500)
        self.addCleanup(os.chmod, self.dir, 0o700)
        server = h.Hermod(h.HERMOD, config(self.path))
        self.addCleanup(server.cleanup)
        with self.assertRaises(AssertionError):
            server.start()
        self.assertIn(self.path, server.stderr_text())

    def legacy_file(self, version):
        """A file of schema version 0 (with the expiry index pubs_expires) or 1 (without
        it): publications keyed by the channel's name, as hermod wrote them."""
        db = sqlite3.connect(self.path)
        db.executescript("""
            PRAGMA journal_mode=WAL;
            CREATE TABLE meta(channel TEXT PRIMARY KEY, epoch TEXT NOT NULL,
                top INTEGER NOT NULL, expires INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE pubs(channel TEXT NOT NULL, offset INTEGER NOT NULL,
                expires INTEGER NOT NULL, pub BLOB NOT NULL);
            CREATE UNIQUE INDEX pubs_key ON pubs(channel, offset);
            CREATE TABLE keys(channel TEXT NOT NULL, key TEXT NOT NULL,
                offset INTEGER NOT NULL, epoch TEXT NOT NULL, expires INTEGER NOT NULL,
                PRIMARY KEY(channel, key));
            CREATE INDEX keys_expires ON keys(expires);
        """)
        if version == 0:
            db.execute("CREATE INDEX pubs_expires ON pubs(expires)")
        else:
            db.execute("PRAGMA user_version=%d" % version)
        return db

    def assert_schema_2(self):
        db = sqlite3.connect(self.path)
        try:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            self.assertFalse(names & {"pubs_expires", "pubs_key", "pubs_v1"}, names)
            self.assertIn("pubs_chan", names)
        finally:
            db.close()

    def test_a_file_of_the_first_schema_is_upgraded_and_one_of_a_later_is_refused(self):
        db = self.legacy_file(0)
        future = int((time.time() + 600) * 1000)
        past = int((time.time() - 600) * 1000)
        db.execute("INSERT INTO meta VALUES('h:old','ep0',3,?)", (future,))
        for offset, expires in [(1, past), (2, future), (3, future)]:
            pub = json.dumps({"data": {"n": offset}, "offset": offset}).encode()
            db.execute("INSERT INTO pubs VALUES('h:old',?,?,?)", (offset, expires, pub))
        db.commit()
        db.close()
        server = self.start_server(config(self.path), workers=1)
        result = self.history(server.port, "h:old")
        self.assertEqual((result["epoch"], result["offset"]), ("ep0", 3))
        self.assertEqual([p["data"]["n"] for p in result["publications"]], [2, 3])
        r = json.loads(g.api_call(server.port, "publish", {"channel": "h:old", "data": {"n": 4}}).body)
        self.assertEqual(r["result"]["offset"], 4)
        # The expired publication is deleted by the writer, without the index.
        g.api_call(server.port, "publish", {"channel": "h:other", "data": {}})
        g.wait_for(lambda: self.rows("h:old") == [2, 3, 4], what="the expired row deleted")
        server.stop()
        self.assert_schema_2()
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA user_version=7")
        db.commit()
        db.close()
        with open(self.path, "rb") as f:
            before = f.read()
        server = h.Hermod(h.HERMOD, config(self.path))
        self.addCleanup(server.cleanup)
        with self.assertRaises(AssertionError):
            server.start()
        self.assertIn(self.path, server.stderr_text())
        self.assertIn("written by a newer hermod (schema version 7", server.stderr_text())
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_a_file_of_schema_1_is_migrated_with_history_epochs_recovery_and_keys(self):
        db = self.legacy_file(1)
        future = int((time.time() + 600) * 1000)
        db.executemany("INSERT INTO meta VALUES(?,?,?,?)", [
            ("h:a", "ea", 5, future), ("h:b", "eb", 2, future),
            ("h:removed", "er", 7, 0)])  # history_remove'd: its position only
        # The two channels' rows interleaved, as a shared transaction stores them; h:a's
        # first two trimmed.
        for channel, offset in [("h:a", 3), ("h:b", 1), ("h:a", 4), ("h:b", 2), ("h:a", 5)]:
            pub = json.dumps({"data": {"c": channel, "n": offset}, "offset": offset}).encode()
            db.execute("INSERT INTO pubs VALUES(?,?,?,?)", (channel, offset, future, pub))
        db.execute("INSERT INTO keys VALUES('h:a','k4',4,'ea',?)", (future,))
        db.commit()
        db.close()

        def view(port, channel):
            r = self.history(port, channel)
            return r["epoch"], r["offset"], [p["data"]["n"] for p in r.get("publications", [])]

        server = self.start_server(config(self.path), workers=1)
        self.assertEqual(view(server.port, "h:a"), ("ea", 5, [3, 4, 5]))
        self.assertEqual(view(server.port, "h:b"), ("eb", 2, [1, 2]))
        self.assertEqual(view(server.port, "h:removed"), ("er", 7, []))
        # The key stored before names its publication: nothing is published again.
        r = json.loads(g.api_call(server.port, "publish", {
            "channel": "h:a", "data": {"n": 0}, "idempotency_key": "k4"}).body)
        self.assertEqual(r["result"], {"offset": 4, "epoch": "ea"})
        c = g.Client(server.port)
        self.addCleanup(c.close)
        c.connect()
        sub = c.subscribe("h:a", recoverable=True, recover=True, offset=3, epoch="ea")
        self.assertTrue(sub.get("recovered"), sub)
        self.assertEqual([p["data"]["n"] for p in sub["publications"]], [4, 5])
        # Offsets continue in each channel's epoch; a new channel's rows are its own.
        for channel, expected in [("h:b", 3), ("h:removed", 8), ("h:new", 1)]:
            r = json.loads(g.api_call(server.port, "publish",
                                      {"channel": channel, "data": {"n": expected}}).body)
            self.assertEqual(r["result"]["offset"], expected, r)
        server.stop()
        self.assert_schema_2()

        # Opened again as version 2: the same.
        again = self.start_server(config(self.path), workers=1)
        self.assertEqual(view(again.port, "h:a"), ("ea", 5, [3, 4, 5]))
        self.assertEqual(view(again.port, "h:b"), ("eb", 3, [1, 2, 3]))
        self.assertEqual(view(again.port, "h:removed"), ("er", 8, [8]))
        self.assertEqual(view(again.port, "h:new")[1:], (1, [1]))
        self.assertEqual(self.rows("h:b"), [1, 2, 3])

    def rows(self, channel):
        db = sqlite3.connect(self.path)
        try:
            return [r[0] for r in db.execute(
                "SELECT offset FROM pubs JOIN meta ON meta.id=pubs.chan WHERE meta.channel=? "
                "ORDER BY offset", (channel,))]
        finally:
            db.close()


if __name__ == "__main__":
    h.main()
