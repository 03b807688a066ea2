"""README.md's commands and snippets, run as written against the real binary.

Each fenced block of README.md is marked with an HTML comment on the line before it,
`<!-- readme-test: NAME -->`, and read from README.md itself: a block without a mark, or a
mark this file does not know, fails. What changes from the README:

- the ports: a server started on 8000 (the default), 8001, 8002, or nats-server on 4222
  listens on a free port instead, and later commands and snippets get that port in place of
  the README's;
- the lines that start a server (`scripts/serve`, `build/hermod serve`, `nats-server`, with
  or without `&`) are started by the test, which waits for their `listening` line and stops
  them at the end (exit status 0 required); `scripts/serve ARGS` runs `hermod serve ARGS`,
  which is what scripts/serve execs once it has built (checked below); `kill %N` stops the
  N-th of them;
- `npm install centrifuge ws` links the node_modules that `npm ci` installed in
  tests/integration/centrifuge (the same two packages, pinned) instead of downloading;
- the two set-up commands (they install packages and run the whole CI) are not run: they
  must be the scripts .ci/run and scripts/serve use.

Everything else runs in one bash session per section, in a temporary folder laid out like
the repository root (`build/hermod`, `examples/`, `hermod` on PATH): each command must exit
0, and an output block shown after a command must be exactly what it printed. Every family
/metrics exposes (one node, and a node in cluster mode) must be in README's metrics tables,
and every family there must be exposed.
"""

import fnmatch
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import tempfile
import time

import guard_client as g
import hermod_harness as h

from nats_harness import NatsServer, metric  # the cluster tests' helpers

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
README = os.path.join(ROOT, "README.md")
CENTRIFUGE_DIR = os.path.join(ROOT, "tests", "integration", "centrifuge")
DEADLINE_S = 30
KNOWN = {"setup", "quick-start", "quick-start-output", "config", "node-setup", "echo-js",
         "subscriber-js", "publish", "subscriber-output", "usage", "tokens", "cluster"}
_MARK = re.compile(r"<!-- readme-test: ([\w-]+) -->")
_SERVER = re.compile(r"^(scripts/serve|build/hermod serve|hermod serve|nats-server)\b(.*?)"
                     r"\s*(&)?\s*$")
_README_PORTS = ("8000", "8001", "8002", "4222")


def readme_blocks():
    """{name: text} of the marked fenced blocks; fails on a fence without a mark."""
    blocks = {}
    with open(README) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            m = _MARK.fullmatch(lines[i - 1].strip()) if i > 0 else None
            if m is None:
                raise AssertionError("README.md line %d: a fenced block without a "
                                     "`<!-- readme-test: NAME -->` line before it" % (i + 1))
            end = lines.index("```", i + 1)
            if m.group(1) in blocks:
                raise AssertionError("README.md: two blocks named %s" % m.group(1))
            blocks[m.group(1)] = "\n".join(lines[i + 1:end])
            i = end
        i += 1
    return blocks


def commands(block):
    """The block's shell commands: continuation lines joined, a heredoc kept with its
    command, blank and comment lines left out."""
    out = []
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        command = lines[i]
        i += 1
        while command.endswith("\\") and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        heredoc = re.search(r"<<-?'?(\w+)'?", command)
        if heredoc:
            while i < len(lines):
                command += "\n" + lines[i]
                i += 1
                if lines[i - 1] == heredoc.group(1):
                    break
        if command.strip() and not command.lstrip().startswith("#"):
            out.append(command)
    return out


def metric_tables(text):
    """The family names (or patterns) in README's `| family |` tables: `{a,b}` expanded,
    `_suffix` completed from the name before it (hermod_x_bytes, _max_bytes: hermod_x_max_bytes)."""
    names = []
    in_table = False
    for line in text.split("\n"):
        if line.startswith("| family |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        if not in_table or line.startswith("| ---"):
            continue
        previous = None
        for item in re.findall(r"`([^`]+)`", line.split("|")[1]):
            m = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", item)
            for name in ([m.group(1) + x + m.group(3) for x in m.group(2).split(",")]
                         if m else [item]):
                if name.startswith("_"):
                    name = previous.rsplit("_", 1)[0] + name
                else:
                    previous = name
                names.append(name)
    return names


class Session:
    """One bash session in a folder laid out like the repository root, and the servers
    its commands start."""

    def __init__(self, test):
        self.test = test
        self.dir = tempfile.mkdtemp(prefix="hermod-readme-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        bench = os.path.join(os.path.dirname(h.HERMOD), "hermod-bench")  # `hermod bench`
        for sub in ("bin", "build"):
            os.mkdir(os.path.join(self.dir, sub))
            os.symlink(h.HERMOD, os.path.join(self.dir, sub, "hermod"))
            os.symlink(bench, os.path.join(self.dir, sub, "hermod-bench"))
        os.symlink(os.path.join(ROOT, "examples"), os.path.join(self.dir, "examples"))
        env = dict(os.environ, PATH=os.path.join(self.dir, "bin") + ":" + os.environ["PATH"])
        self.env = env
        self.ports = {}  # README's port -> the one listening
        self.jobs = []  # servers started with `&`, for `kill %N`
        self.count = 0
        self.stderr = open(os.path.join(self.dir, "bash.stderr"), "w+")
        self.bash = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=self.dir, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, start_new_session=True)
        test.addCleanup(self.close)

    def close(self):
        self.bash.stdin.close()
        try:
            self.bash.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.bash.kill()
            self.bash.wait()
        self.bash.stdout.close()
        self.stderr.close()

    def rewrite(self, text):
        for readme_port, port in self.ports.items():
            text = re.sub(r"(?<!\d)%s(?!\d)" % readme_port, str(port), text)
        return text

    def shell(self, command, timeout=DEADLINE_S):
        """Runs one command in the session's bash; returns its stdout; fails unless it
        exits 0."""
        self.count += 1
        marker = "__readme_test_%d__" % self.count
        script = "%s\n__rc=$?; printf '\\n%s %%d\\n' $__rc\n" % (command, marker)
        self.bash.stdin.write(script.encode())
        self.bash.stdin.flush()
        out = b""
        deadline = time.monotonic() + timeout
        fd = self.bash.stdout.fileno()
        while ("\n%s " % marker).encode() not in out or not out.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("%r did not finish in %ss; output %r" % (command, timeout,
                                                                              out))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("bash ended during %r" % command)
            out += chunk
        text, _, rc = out.decode().rpartition("\n%s " % marker)
        self.stderr.seek(0)
        errors = self.stderr.read()
        self.test.assertEqual(int(rc), 0, "%r exited %s; stdout %r; stderr %s"
                              % (command, rc.strip(), text, errors[-2000:]))
        return text

    def cwd(self):
        return self.shell("pwd").strip()

    def start_server(self, program, args, background):
        args = shlex.split(args)
        if program == "nats-server":
            self.test.assertEqual(args[:3], ["-a", "127.0.0.1", "-p"], args)
            readme_port = args[3]
            server = NatsServer().start()
            self.test.addCleanup(server.stop)
        else:
            readme_port = "8000"  # the default
            for flag in ("--port", "-p"):
                if flag in args:
                    i = args.index(flag)
                    readme_port = args[i + 1]
                    del args[i:i + 2]
            server = h.Hermod(h.HERMOD, argv=["serve"] + args + ["--port", "0"],
                              cwd=self.cwd())
            self.test.addCleanup(server.cleanup)
            server.start()
            self.test.addCleanup(lambda: server.proc.poll() is not None or server.stop())
        self.ports[readme_port] = server.port
        if background:
            self.jobs.append(server)
        return server

    def run(self, command, before=None):
        """One README command: a server started, `kill %N`, or a shell command (its
        stdout returned)."""
        command = self.rewrite(command)
        m = _SERVER.match(command)
        if m:
            self.start_server(m.group(1).replace("build/hermod serve", "hermod serve")
                              .replace("scripts/serve", "hermod serve"), m.group(2),
                              m.group(3) is not None)
            return None
        kill = re.fullmatch(r"kill %(\d+)", command.strip())
        if kill:
            self.jobs[int(kill.group(1)) - 1].stop()  # SIGTERM, exit 0 required
            return None
        if command.strip() == "npm install centrifuge ws":
            with open(os.path.join(CENTRIFUGE_DIR, "package.json")) as f:
                dependencies = json.load(f)["dependencies"]
            self.test.assertEqual(sorted(dependencies), ["centrifuge", "ws"])
            modules = os.path.join(CENTRIFUGE_DIR, "node_modules")
            self.test.assertTrue(os.path.isdir(modules), "run `npm ci` in " + CENTRIFUGE_DIR)
            command = "ln -s %s node_modules" % shlex.quote(modules)
        if before:
            before(command)
        return self.shell(command)

    def run_block(self, text, before=None):
        """Every command of a block; the stdout of the last one."""
        out = None
        for command in commands(text):
            out = self.run(command, before)
        return out


class ReadmeTest(h.HermodTestCase):
    @classmethod
    def setUpClass(cls):
        cls.blocks = readme_blocks()

    def block(self, name):
        self.assertIn(name, KNOWN)
        self.assertIn(name, self.blocks, "README.md has no block named " + name)
        return self.blocks[name]

    def test_every_block_is_marked_and_known(self):
        self.assertEqual(set(self.blocks), KNOWN)

    def test_the_two_commands_are_what_ci_and_serve_run(self):
        setup = [c.split()[0] for c in commands(self.block("setup"))]
        self.assertEqual(setup, ["scripts/serve", "scripts/test"])
        for script in setup:
            self.assertTrue(os.access(os.path.join(ROOT, script), os.X_OK), script)
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            self.assertIn("exec scripts/test", f.read())
        with open(os.path.join(ROOT, "scripts", "serve")) as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
        # What the quick start's `scripts/serve ARGS` becomes here.
        self.assertEqual(lines[-1], 'exec build/hermod serve "$@"')

    def test_quick_start_and_the_node_clients(self):
        s = Session(self)
        out = s.run_block(self.block("quick-start"))
        self.assertEqual(out.rstrip("\n"), self.block("quick-start-output"))
        s.run_block(self.block("config"))
        port = s.ports["8000"]
        s.run_block(self.block("node-setup"))
        client_dir = s.cwd()
        with open(os.path.join(client_dir, "package.json")) as f:
            self.assertEqual(json.load(f).get("type"), "module")
        with open(os.path.join(client_dir, "echo.js"), "w") as f:
            f.write(s.rewrite(self.block("echo-js")))
        self.assertEqual(s.run("node echo.js"), "hello\n")
        with open(os.path.join(client_dir, "subscriber.js"), "w") as f:
            f.write(s.rewrite(self.block("subscriber-js")))
        subscriber = subprocess.Popen(["node", "subscriber.js"], cwd=client_dir,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=s.env)
        self.addCleanup(subscriber.stderr.close)
        self.addCleanup(subscriber.stdout.close)
        self.addCleanup(subscriber.wait)
        self.addCleanup(subscriber.kill)

        def subscribed():
            r = g.api_call(port, "channels", {}, key="secret")
            return json.loads(r.body)["result"]["channels"].get("news", {}).get("num_clients")
        g.wait_for(subscribed, DEADLINE_S, "subscriber.js to subscribe to news")
        out = s.run_block(self.block("publish"))
        self.assertIn("result", json.loads(out))
        expected = self.block("subscriber-output")
        fd = subscriber.stdout.fileno()
        printed, deadline = b"", time.monotonic() + DEADLINE_S
        while expected.encode() + b"\n" not in printed:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("subscriber.js printed %r, not %r" % (printed, expected))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("subscriber.js exited: %s" % subscriber.stderr.read())
            printed += chunk
        self.assertEqual(printed.decode(), expected + "\n")

    def test_the_command_synopsis_matches_the_binary(self):
        s = Session(self)
        command, help_text = None, ""
        for line in self.block("usage").split("\n"):
            words = line.split()
            if words[0] == "hermod":  # else a continuation of the command before
                command = words[1]
                help_text = s.shell("hermod %s --help" % command)
            for flag in re.findall(r"(--[\w-]+)", line.split("#")[0]):
                self.assertIn(flag, help_text, "hermod %s --help has no %s" % (command, flag))

    def test_tokens(self):
        s = Session(self)
        out = s.run_block(self.block("tokens"))
        claims = json.loads(out)
        self.assertEqual(claims["sub"], "42")
        self.assertEqual(claims["info"], {"name": "Ann"})

    def test_cluster_example(self):
        s = Session(self)
        holder = {}

        def before(command):
            if command.startswith("curl") and "client" not in holder:
                # The README's subscriber on :8002, once both nodes reach NATS and a probe
                # crossed from :8001 (on a channel of its own).
                a, b = s.ports["8001"], s.ports["8002"]
                for port in (a, b):
                    g.wait_for(lambda: metric(port, "hermod_broker_connected") == 1,
                               DEADLINE_S, "node %d connected to NATS" % port)
                c = g.Client(b)
                self.addCleanup(c.close)
                c.connect()
                c.subscribe("chat")
                c.subscribe("probe")
                n = 0
                while c.try_publication("probe", 0.2) is None:
                    n += 1
                    self.assertLess(n, 100, "no probe crossed from :8001 to :8002")
                    g.api_call(a, "publish", {"channel": "probe", "data": n})
                holder["client"] = c
        out = s.run_block(self.block("cluster"), before)
        self.assertNotIn("error", json.loads(out))
        sent = json.loads(re.search(r"-d '([^']*)'", self.block("cluster")).group(1))
        self.assertEqual(holder["client"].next_publication("chat", DEADLINE_S)["data"],
                         sent["data"])

    def test_every_metric_family_is_in_the_tables(self):
        nats = NatsServer(jetstream=True).start()
        self.addCleanup(nats.cleanup)
        exposed = set()
        for config in ({}, {"broker": "nats", "presence_engine": "nats",
                            "nats": {"url": nats.url}},
                       {"proxy_rpc_endpoint": "http://127.0.0.1:9/rpc"}):
            server = self.start_server(config)
            r = h.http_exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            exposed |= set(re.findall(r"^# TYPE (\S+)", r.body.decode(), re.M))
        with open(README) as f:
            documented = metric_tables(f.read())
        missing = sorted(f for f in exposed
                         if not any(fnmatch.fnmatchcase(f, p) for p in documented))
        self.assertEqual(missing, [], "exposed, not in README's metrics tables")
        stale = sorted(p for p in documented
                       if not any(fnmatch.fnmatchcase(f, p) for f in exposed))
        self.assertEqual(stale, [], "in README's metrics tables, not exposed")


if __name__ == "__main__":
    h.main()
