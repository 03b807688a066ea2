"""Kubernetes' service-link variables do not stop hermod.

The kubelet gives every container, for each Service of its namespace, variables named after
the Service. A Service named `hermod` yields HERMOD_SERVICE_HOST, HERMOD_PORT=tcp://... and
more, which hermod's strict HERMOD_* reader once took for unknown keys: exit 2, and pods in
CrashLoopBackOff. The test starts the real binary with exactly the variables the kubelet
sets for the Services `hermod` (port 8000 named http) and `hermod-nats`, and checks that the
reader stays strict for everything else, HERMOD_PORT=8123 being the port key.
"""

import json
import os
import subprocess

import hermod_harness as h

CLUSTER_IP = "10.96.12.34"
NATS_IP = "10.96.40.2"
# What the kubelet sets (Kubernetes docs, Service > Discovering services > Environment
# variables; pkg/kubelet/envvars): for each port NAME_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR},
# for the first port NAME_PORT, and NAME_SERVICE_PORT_<portname> for named ports.
SERVICE_LINKS = {
    "HERMOD_SERVICE_HOST": CLUSTER_IP,
    "HERMOD_SERVICE_PORT": "8000",
    "HERMOD_SERVICE_PORT_HTTP": "8000",
    "HERMOD_PORT": "tcp://%s:8000" % CLUSTER_IP,
    "HERMOD_PORT_8000_TCP": "tcp://%s:8000" % CLUSTER_IP,
    "HERMOD_PORT_8000_TCP_PROTO": "tcp",
    "HERMOD_PORT_8000_TCP_PORT": "8000",
    "HERMOD_PORT_8000_TCP_ADDR": CLUSTER_IP,
    "HERMOD_NATS_SERVICE_HOST": NATS_IP,
    "HERMOD_NATS_SERVICE_PORT": "4222",
    "HERMOD_NATS_SERVICE_PORT_CLIENT": "4222",
    "HERMOD_NATS_PORT": "tcp://%s:4222" % NATS_IP,
    "HERMOD_NATS_PORT_4222_TCP": "tcp://%s:4222" % NATS_IP,
    "HERMOD_NATS_PORT_4222_TCP_PROTO": "tcp",
    "HERMOD_NATS_PORT_4222_TCP_PORT": "4222",
    "HERMOD_NATS_PORT_4222_TCP_ADDR": NATS_IP,
}


def environment(**variables):
    """This process's environment without any HERMOD_*, plus variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMOD_")}
    env.update(variables)
    return env


def genconfig(env):
    return subprocess.run([h.HERMOD, "genconfig"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


class KubernetesEnvironmentTest(h.HermodTestCase):
    def test_serves_with_the_kubelet_service_link_variables(self):
        env = environment(HERMOD_LOG_LEVEL="debug", **SERVICE_LINKS)
        server = self.start_server(env=env)
        r = h.http_exchange(server.port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 200)
        line = next((l for l in server.log if "service-link" in l), None)
        self.assertIsNotNone(line, server.stderr_text())
        for name in SERVICE_LINKS:
            self.assertIn(name, line.split())
        # The real key in the same environment was applied and is reported as applied.
        config = next(l for l in server.log if "config: " in l)
        self.assertIn("HERMOD_LOG_LEVEL", config)
        self.assertNotIn("HERMOD_SERVICE_HOST", config)

    def test_hermod_port_is_the_port_key_unless_it_is_a_service_link(self):
        r = genconfig(environment(**SERVICE_LINKS))
        self.assertEqual(r.returncode, 0, r.stderr)
        default_port = json.loads(genconfig(environment()).stdout)["port"]
        self.assertEqual(json.loads(r.stdout)["port"], default_port)
        r = genconfig(environment(HERMOD_PORT="8123"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["port"], 8123)

    def test_other_unknown_variables_are_still_refused(self):
        for name, value in [("HERMOD_NO_SUCH_KEY", "1"),
                            # Service-link names with values the kubelet never sets.
                            ("HERMOD_SERVICE_HOST", "not an address"),
                            ("HERMOD_PORT_8000_TCP_PORT", "9000"),
                            ("HERMOD_PORT_8000_TCP", "tcp://%s:9000" % CLUSTER_IP),
                            ("HERMOD_PORT_8000_TCP_PROTO", "udp"),
                            ("HERMOD_SERVICE_PORT", "http")]:
            with self.subTest(name=name, value=value):
                r = genconfig(environment(**{name: value}))
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("unknown environment variable " + name, r.stderr)
        r = genconfig(environment(HERMOD_PORT="tcp8000"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("HERMOD_PORT", r.stderr)


if __name__ == "__main__":
    h.main()
