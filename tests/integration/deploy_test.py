"""deploy/ checked with the tools that exist here, and against the real binary.

- Prometheus: `promtool check config`, `promtool check rules`, `promtool test rules` (the
  alert unit tests in deploy/prometheus/alerts_test.yml).
- The metric names that the alert rules, the Grafana dashboard and the Kubernetes HPA and
  prometheus-adapter rules use must all be exported by a running hermod: the test starts
  one, scrapes /metrics and fails on any name it does not expose. The label values they
  match on (`reason="replaced"`, `priority=~"high|critical"`) must be exposed too: a typo
  would make a filter match nothing (or everything, for `!=`) without an error.
- The broker families (`hermod_broker_*`, `hermod_circuit_breaker_*`) exist only with
  `broker: nats`: they are checked against a hermod connected to a real nats-server on a
  free port (skipped, saying so, only when nats-server is not installed: `scripts/deps
  --test` installs it).
- systemd: `systemd-analyze verify` on the unit (with the binary path pointed at this
  build), plus the hardening keys the unit must keep.
- docker-compose.yml and the Kubernetes manifests: parsed as YAML, with the fields each kind
  needs and the cross-references between them (selectors, ports, config, mounted paths).
- The Grafana dashboard and its provisioning: parsed, every panel queries the provisioned
  datasource, and every query parses as PromQL (promtool, with Grafana's variables set).
- The Dockerfile (no Docker daemon here, so it is not built): two stages, base images pinned
  to a Debian release, the build stage installs exactly scripts/deps' build list, every
  package exists in Debian (`apt-cache show`), and the runtime stage's packages provide
  every shared library `ldd` lists for the binary.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

import hermod_harness as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from cluster_test import NatsServer, wait_for  # noqa: E402  (the cluster tests' helpers)
from cluster_test import metric as sample_value  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
PROMETHEUS = os.path.join(DEPLOY, "prometheus")
K8S = os.path.join(DEPLOY, "k8s")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "hermod.json")
PROD_CONFIG = os.path.join(ROOT, "examples", "config", "prod.json")

# Prometheus' own series, not hermod's.
PROMETHEUS_SERIES = {"up"}
# Families exported only by a node with `broker: nats` (src/broker/link.cc).
BROKER_PREFIXES = ("hermod_broker_", "hermod_circuit_breaker_")
# Labels Prometheus adds to every scraped series; hermod does not expose them.
TARGET_LABELS = {"job", "instance", "namespace", "pod"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}


def promql_metric_names(expr):
    """The metric names a PromQL expression selects (functions, keywords, labels, strings,
    ranges, numbers and Grafana/adapter template variables left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"<<[^>]*>>", " ", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+", " ", e)
    e = re.sub(r"\boffset\s+-?\w+", " ", e)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("("):
            continue  # a function or aggregation
        if m.group(0).lower() in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def promql_label_matchers(expr):
    """(metric, label, operator, value) for each label matcher of a selector with a name."""
    for selector in _SELECTOR.finditer(expr):
        for m in _MATCHER.finditer(selector.group(2)):
            yield selector.group(1), m.group(1), m.group(2), m.group(3)


def matched_values(operator, value):
    """The label values a matcher names, if it names them plainly (a|b for regexes), else
    None (a real pattern, or a Grafana variable: nothing to compare)."""
    if "$" in value or "<<" in value:
        return None
    if operator in ("=", "!="):
        return [value]
    if re.fullmatch(r"[\w-]+(\|[\w-]+)*", value):
        return value.split("|")
    return None


def parse_exposition(text):
    """{name: {label: {values}}} of a /metrics body; names of TYPE lines too (no labels)."""
    exposed = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            exposed.setdefault(line.split()[2], {})
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
            labels = exposed.setdefault(m.group(1), {})
            for lm in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
                labels.setdefault(lm.group(1), set()).add(lm.group(2))
    return exposed


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_objects():
    objects = {}
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            for doc in load_yaml_docs(os.path.join(K8S, name)):
                objects.setdefault(doc["kind"], []).append((name, doc))
    return objects


def k8s_object(objects, kind, name):
    """The one object of kind named name (nats.yaml has a Service and a PDB of its own)."""
    found = [obj for _, obj in objects.get(kind, []) if obj["metadata"]["name"] == name]
    assert len(found) == 1, "%s %s: %d found" % (kind, name, len(found))
    return found[0]


class PromQlExtractorTest(h.unittest.TestCase):
    """The cross-check is only as good as the extractor: it must find every selected name."""

    def test_finds_selected_names_and_nothing_else(self):
        expr = ('sum by (instance) (rate(foo_total{job="a", x=~"$v"}[$__rate_interval])) '
                '/ on(job) group_left() bar_bytes > 0.9 and hermod:budget * 1e6 '
                '+ histogram_quantile(0.99, baz_bucket offset 5m)')
        self.assertEqual(promql_metric_names(expr),
                         {"foo_total", "bar_bytes", "hermod:budget", "baz_bucket"})
        self.assertEqual(promql_metric_names(
            'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'), set())
        self.assertEqual(promql_metric_names('hermod_x{namespace!="",pod!=""}'), {"hermod_x"})

    def test_finds_label_matchers(self):
        expr = ('sum(rate(a_total{instance=~"$instance", reason!="replaced", '
                'priority=~"high|critical"}[5m])) + b{name="broker"} + c{x=~"a.*"}')
        self.assertEqual(list(promql_label_matchers(expr)), [
            ("a_total", "instance", "=~", "$instance"), ("a_total", "reason", "!=", "replaced"),
            ("a_total", "priority", "=~", "high|critical"), ("b", "name", "=", "broker"),
            ("c", "x", "=~", "a.*")])
        self.assertEqual(matched_values("=~", "high|critical"), ["high", "critical"])
        self.assertIsNone(matched_values("=~", "a.*"))
        self.assertIsNone(matched_values("=~", "$instance"))
        exposed = parse_exposition('# TYPE a_total counter\na_total{loop="0",reason="x"} 1\n'
                                   'b 2\n')
        self.assertEqual(exposed, {"a_total": {"loop": {"0"}, "reason": {"x"}}, "b": {}})


class DeployTest(h.HermodTestCase):
    # --- Prometheus ------------------------------------------------------------------------

    def test_promtool_checks_the_config_and_rules(self):
        r = run(["promtool", "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(["promtool", "check", "rules", "alerts.yml"], cwd=PROMETHEUS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"SUCCESS: \d+ rules found")

    def test_promtool_alert_unit_tests_pass_and_cover_every_alert(self):
        r = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        alerts = {rule["alert"] for group in self.rules()["groups"] for rule in group["rules"]
                  if "alert" in rule}
        with open(os.path.join(PROMETHEUS, "alerts_test.yml")) as f:
            tests = yaml.safe_load(f)
        fired = {case["alertname"] for test in tests["tests"]
                 for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
        quiet = {case["alertname"] for test in tests["tests"]
                 for case in test.get("alert_rule_test", []) if not case.get("exp_alerts")}
        self.assertEqual(alerts - fired, set(), "alerts without a firing test")
        self.assertEqual(alerts - quiet, set(), "alerts without a test where they stay quiet")
        for name in ("HermodDown", "HermodNotReady", "HermodDegraded", "HermodLoopUnresponsive",
                     "HermodMemoryNearBudget", "HermodConnectionsNearLimit",
                     "HermodSlowConsumerDisconnects", "HermodBrokerBreakerOpen",
                     "HermodBrokerDisconnected", "HermodBrokerPublishFailures",
                     "HermodUrgentPushesDropped", "HermodPushesShed", "HermodCommandLatencyHigh",
                     "HermodAdmissionRejections", "HermodCommandsRateLimited"):
            self.assertIn(name, alerts)

    def rules(self):
        with open(os.path.join(PROMETHEUS, "alerts.yml")) as f:
            return yaml.safe_load(f)

    # --- the metric names against a running hermod -------------------------------------------

    def scrape(self, server):
        r = h.http_exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 200)
        return parse_exposition(r.body.decode())

    def used_metrics(self):
        """({name: [where]}, [(name, label, operator, value, where)]) over the rules, the
        dashboard and the HPA/adapter."""
        used, matchers = {}, []

        def add(expr, where):
            for name in promql_metric_names(expr):
                used.setdefault(name, []).append(where)
            for matcher in promql_label_matchers(expr):
                matchers.append(matcher + (where,))

        for group in self.rules()["groups"]:
            for rule in group["rules"]:
                add(rule["expr"], "alerts.yml " + rule.get("alert", rule.get("record", "")))
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                add(target["expr"], "dashboard panel %r" % panel["title"])
        for variable in dashboard["templating"]["list"]:
            m = re.match(r"label_values\((\w+),\s*\w+\)", variable["query"]["query"])
            self.assertIsNotNone(m, variable)
            used.setdefault(m.group(1), []).append("dashboard variable " + variable["name"])
        for _, hpa in k8s_objects()["HorizontalPodAutoscaler"]:
            for metric in hpa["spec"]["metrics"]:
                if metric["type"] == "Pods":
                    used.setdefault(metric["pods"]["metric"]["name"], []).append("hpa.yaml")
        for _, cm in k8s_objects()["ConfigMap"]:
            if "config.yaml" in cm.get("data", {}):
                for rule in yaml.safe_load(cm["data"]["config.yaml"])["rules"]:
                    add(rule["seriesQuery"], "prometheus-adapter seriesQuery")
                    add(rule["metricsQuery"], "prometheus-adapter metricsQuery")
        return used, matchers

    def check_exposed(self, exposed, broker):
        """Fails on a used name (of the broker families if broker, else of the others) that
        exposed lacks, or a label value a matcher names that no sample of it carries."""
        used, matchers = self.used_metrics()
        recorded = {rule["record"] for group in self.rules()["groups"]
                    for rule in group["rules"] if "record" in rule}

        def ours(name):
            return (name.startswith(BROKER_PREFIXES) == broker and name not in recorded
                    and name not in PROMETHEUS_SERIES)

        checked = {name: where for name, where in used.items() if ours(name)}
        missing = {name: where for name, where in checked.items() if name not in exposed}
        self.assertEqual(missing, {}, "names hermod does not expose at /metrics")
        wrong = []
        for name, label, operator, value, where in matchers:
            values = matched_values(operator, value)
            if not ours(name) or label in TARGET_LABELS or values is None:
                continue
            for v in values:
                if v not in exposed[name].get(label, set()):
                    wrong.append("%s: %s{%s%s\"%s\"}: no sample has %s=\"%s\" (exposed: %s)"
                                 % (where, name, label, operator, value, label, v,
                                    sorted(exposed[name].get(label, set()))))
        self.assertEqual(wrong, [], "label values hermod does not expose")
        return checked

    def test_every_metric_used_by_rules_dashboard_and_hpa_is_exposed(self):
        exposed = self.scrape(self.start_server({}, workers=2))
        self.assertIn("hermod_connections_active", exposed)
        checked = self.check_exposed(exposed, broker=False)
        self.assertGreaterEqual(len(checked), 20, sorted(checked))  # it has something to check
        # The broker families are a nats node's only: the partition above matches the binary.
        self.assertEqual([n for n in exposed if n.startswith(BROKER_PREFIXES)], [])
        for group in self.rules()["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    self.assertTrue(rule["record"].startswith("hermod:"), rule["record"])

    def test_broker_metrics_used_are_exposed_by_a_node_on_nats(self):
        nats = NatsServer()
        if shutil.which("nats-server") is None and not os.access(nats.binary, os.X_OK):
            self.skipTest("nats-server is not installed (scripts/deps --test installs it): "
                          "the hermod_broker_* and hermod_circuit_breaker_* names the rules "
                          "and the dashboard use are NOT checked")
        nats.start()
        self.addCleanup(nats.stop)
        server = self.start_server({"broker": "nats", "nats": {"url": nats.url}}, workers=2)
        wait_for("hermod_broker_connected 1",
                 lambda: sample_value(server.port, "hermod_broker_connected") == 1)
        exposed = self.scrape(server)
        checked = self.check_exposed(exposed, broker=True)
        for name in ("hermod_broker_connected", "hermod_circuit_breaker_state",
                     "hermod_broker_messages_total", "hermod_broker_publish_failures_total"):
            self.assertIn(name, checked, "neither the rules nor the dashboard use " + name)
        # The node's own families are there too: it is a whole hermod, not a broker stub.
        self.check_exposed(exposed, broker=False)

    # --- systemd -----------------------------------------------------------------------------

    def test_systemd_unit_verifies_and_keeps_its_hardening(self):
        with open(os.path.join(DEPLOY, "hermod.service")) as f:
            unit = f.read()
        keys = {}
        for line in unit.splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                keys.setdefault(key.strip(), []).append(value.strip())
        for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                           "PrivateTmp": "yes", "ProtectHome": "yes", "PrivateDevices": "yes",
                           "DynamicUser": "yes", "RestrictSUIDSGID": "yes"}.items():
            self.assertEqual(keys.get(key), [value], key)
        self.assertGreaterEqual(int(keys["LimitNOFILE"][0]), 65536)
        self.assertIn("serve --config", keys["ExecStart"][0])
        with open(PROD_CONFIG) as f:
            shutdown_ms = json.load(f)["shutdown_timeout_ms"]
        self.assertGreater(int(keys["TimeoutStopSec"][0]) * 1000, shutdown_ms)
        # systemd's own check, with ExecStart pointing at this build's binary.
        if shutil.which("systemd-analyze") is None:
            self.fail("systemd-analyze missing: scripts/deps --test installs systemd")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "hermod.service")
            with open(path, "w") as f:
                f.write(unit.replace("/usr/local/bin/hermod", h.HERMOD))
            r = run(["systemd-analyze", "verify", path])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stderr.strip(), "")

    def assert_state_on_nats(self, environment):
        """The config a node runs (prod.json with the HERMOD_* variables a deployment sets),
        as the binary resolves it: broker, history and presence all on NATS."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMOD_")}
        env.update({k: str(v) for k, v in environment.items()
                    if not str(v).startswith("${")})  # compose's required-secret syntax
        env.setdefault("HERMOD_TOKEN_HMAC_SECRET_KEY", "deploy-test")
        r = run([h.HERMOD, "genconfig", "--config", PROD_CONFIG], env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        effective = json.loads(r.stdout)
        self.assertEqual((effective["broker"], effective["history_engine"],
                          effective["presence_engine"]), ("nats", "nats", "nats"), environment)
        return effective

    # --- docker compose ------------------------------------------------------------------------

    def test_compose_runs_three_nodes_nats_prometheus_and_grafana(self):
        with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
            compose = yaml.safe_load(f)
        services = compose["services"]
        nodes = sorted(n for n in services if n.startswith("hermod-"))
        self.assertEqual(nodes, ["hermod-1", "hermod-2", "hermod-3"])
        self.assertTrue({"nats", "prometheus", "grafana"} <= set(services), sorted(services))
        for name, service in services.items():
            image = service["image"]
            self.assertRegex(image, r":[\w.-]+$", "%s: image without a tag" % name)
            self.assertNotRegex(image, r":latest$", name)
            for volume in service.get("volumes", []):
                host = volume.split(":")[0]
                if not host.startswith((".", "/")):  # a named volume, declared below
                    self.assertIn(host, compose.get("volumes") or {}, name)
                    continue
                self.assertTrue(os.path.exists(os.path.join(DEPLOY, host)),
                                "%s mounts missing %s" % (name, host))
        for node in nodes:
            self.assertEqual(services[node]["image"], services["hermod-1"]["image"])
            self.assertIn("serve", services[node]["command"])
            self.assertEqual(services[node]["build"]["dockerfile"], "deploy/Dockerfile")
            self.assertTrue(os.path.exists(os.path.join(DEPLOY, services[node]["build"]["context"],
                                                        "deploy", "Dockerfile")))
        # The cluster's state is on NATS: the nodes' environment, read by the binary itself,
        # puts fan-out, history and presence there, and nats-server keeps JetStream on a
        # volume that outlives the container.
        self.assert_state_on_nats(services["hermod-1"]["environment"])
        nats_command = services["nats"]["command"]
        self.assertIn("--jetstream", nats_command)
        store_dir = nats_command[nats_command.index("--store_dir") + 1]
        self.assertIn(store_dir, [v.split(":")[1] for v in services["nats"]["volumes"]])
        # Prometheus scrapes exactly the compose nodes on the port hermod listens on.
        with open(os.path.join(PROMETHEUS, "prometheus.yml")) as f:
            prometheus = yaml.safe_load(f)
        job = [j for j in prometheus["scrape_configs"] if j["job_name"] == "hermod"][0]
        targets = [t for c in job["static_configs"] for t in c["targets"]]
        with open(PROD_CONFIG) as f:
            port = json.load(f)["port"]
        self.assertEqual(sorted(targets), ["%s:%d" % (n, port) for n in nodes])
        # Grafana gets the provisioning folder and the dashboards where the provider looks.
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards",
                               "hermod.yml")) as f:
            provider = yaml.safe_load(f)["providers"][0]
        mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
        self.assertEqual(mounts["./grafana/dashboards"], provider["options"]["path"])
        self.assertEqual(mounts["./grafana/provisioning"], "/etc/grafana/provisioning")

    # --- Kubernetes ----------------------------------------------------------------------------

    def test_kubernetes_manifests_have_what_each_kind_needs(self):
        objects = k8s_objects()
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                     "ConfigMap"):
            self.assertIn(kind, objects)
        for kind, items in objects.items():
            if kind == "Kustomization":
                continue  # kustomize's own file: no metadata
            for name, obj in items:
                self.assertIn("apiVersion", obj, name)
                self.assertIn("name", obj["metadata"], name)
        deployment = k8s_object(objects, "Deployment", "hermod")
        self.assertEqual(deployment["apiVersion"], "apps/v1")
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod = deployment["spec"]["template"]
        self.assertLessEqual(selector.items(), pod["metadata"]["labels"].items())
        container = pod["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        with open(PROD_CONFIG) as f:
            prod = json.load(f)
        self.assertEqual(ports["http"], prod["port"])
        for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
            get = container[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertIn(get["port"], ports)
        self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
        self.assertFalse(container["securityContext"]["allowPrivilegeEscalation"])
        self.assertGreater(pod["spec"]["terminationGracePeriodSeconds"] * 1000,
                           prod["shutdown_timeout_ms"])
        volume = [v for v in pod["spec"]["volumes"] if "configMap" in v][0]
        configs = {obj["metadata"]["name"]: obj for _, obj in objects["ConfigMap"]}
        config = configs[volume["configMap"]["name"]]
        self.assertEqual(json.loads(config["data"]["hermod.json"]), prod,
                         "k8s/configmap.yaml differs from examples/config/prod.json")
        self.assertIn("/etc/hermod/hermod.json", container["args"])

        service = k8s_object(objects, "Service", "hermod")
        self.assertEqual(service["spec"]["selector"], selector)
        for port in service["spec"]["ports"]:
            self.assertIn(port["targetPort"], ports)

        pdb = k8s_object(objects, "PodDisruptionBudget", "hermod")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], selector)
        self.assertTrue("maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"])

        _, hpa = objects["HorizontalPodAutoscaler"][0]
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"])
        self.assertLessEqual(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
        kinds = {(m["type"], m.get("resource", {}).get("name")) for m in hpa["spec"]["metrics"]}
        self.assertIn(("Resource", "cpu"), kinds)
        self.assertIn(("Pods", None), kinds)

        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            kustomization = yaml.safe_load(f)
        files = sorted(n for n in os.listdir(K8S) if n.endswith(".yaml")
                       and n != "kustomization.yaml")
        self.assertEqual(sorted(kustomization["resources"]), files)

    def test_kubernetes_hermod_pods_cluster_over_the_shipped_nats(self):
        """3-20 replicas need a message bus. The manifests ship NATS with
        JetStream, hermod's environment points at its Service, and each link between them
        (Service selector, ports, the StatefulSet's routes) resolves inside the manifests."""
        objects = k8s_objects()
        nats = k8s_object(objects, "StatefulSet", "nats")
        pod = nats["spec"]["template"]
        self.assertLessEqual(nats["spec"]["selector"]["matchLabels"].items(),
                             pod["metadata"]["labels"].items())
        self.assertGreaterEqual(nats["spec"]["replicas"], 3)  # JetStream R3 survives one down
        container = pod["spec"]["containers"][0]
        self.assertRegex(container["image"], r"^nats:\d+\.\d+\.\d+")
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # The config: from its ConfigMap, at the path the args name, JetStream on.
        volume = [v for v in pod["spec"]["volumes"] if "configMap" in v][0]
        mount = [m for m in container["volumeMounts"] if m["name"] == volume["name"]][0]
        conf_name = [a for a in container["args"] if a.endswith(".conf")][0]
        self.assertEqual(os.path.dirname(conf_name), mount["mountPath"])
        conf = k8s_object(objects, "ConfigMap", volume["configMap"]["name"])["data"][
            os.path.basename(conf_name)]
        self.assertRegex(conf, r"(?m)^jetstream\s*\{")
        self.assertRegex(conf, r"(?m)^\s*store_dir:\s*/data/")
        self.assertIn("/data", [m["mountPath"] for m in container["volumeMounts"]
                                if m["name"] in [t["metadata"]["name"] for t in
                                                 nats["spec"]["volumeClaimTemplates"]]])
        self.assertEqual(int(re.search(r"(?m)^port:\s*(\d+)", conf).group(1)), ports["client"])
        lame_duck = re.search(r"(?m)^lame_duck_duration:\s*(\d+)s", conf)
        if lame_duck:  # clients move away before the kubelet's SIGKILL
            self.assertGreater(pod["spec"]["terminationGracePeriodSeconds"],
                               int(lame_duck.group(1)))
        cluster_port = int(re.search(r"cluster\s*\{[^}]*?port:\s*(\d+)", conf, re.S).group(1))
        self.assertEqual(cluster_port, ports["cluster"])
        # Routes name every pod of the StatefulSet through its headless Service.
        headless = k8s_object(objects, "Service", nats["spec"]["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertLessEqual(headless["spec"]["selector"].items(),
                             pod["metadata"]["labels"].items())
        routes = sorted(re.findall(r"nats://([\w.-]+:\d+)", conf))
        self.assertEqual(routes, ["%s-%d.%s:%d" % (nats["metadata"]["name"], i,
                                                   nats["spec"]["serviceName"], cluster_port)
                                  for i in range(nats["spec"]["replicas"])])
        # nats-server itself accepts the file (with the variable the pod sets).
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if os.access(binary, os.X_OK):
            with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
                f.write(conf)
                f.flush()
                r = run([binary, "-t", "-c", f.name], env=dict(os.environ, POD_NAME="nats-0"))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        else:
            self.fail("nats-server missing: scripts/deps --test installs it")

        # hermod: broker nats, nats.url naming the client Service on a port that reaches the
        # nats container's client port.
        hermod = k8s_object(objects, "Deployment", "hermod")["spec"]["template"]
        env = {e["name"]: e["value"] for e in hermod["spec"]["containers"][0]["env"]
               if "value" in e}
        effective = self.assert_state_on_nats(env)
        # JetStream's replicas cannot exceed the NATS pods.
        self.assertLessEqual(effective["nats"]["jetstream"]["replicas"], nats["spec"]["replicas"])
        self.assertLessEqual(effective["nats"]["presence"]["replicas"], nats["spec"]["replicas"])
        m = re.fullmatch(r"nats://([\w-]+):(\d+)", env.get("HERMOD_NATS__URL", ""))
        self.assertIsNotNone(m, env)
        client = k8s_object(objects, "Service", m.group(1))
        self.assertLessEqual(client["spec"]["selector"].items(), pod["metadata"]["labels"].items())
        port = [p for p in client["spec"]["ports"] if p["port"] == int(m.group(2))]
        self.assertEqual(len(port), 1, client["spec"]["ports"])
        self.assertIn(port[0]["targetPort"], (ports["client"], "client"))
        # The binary reads that environment with the ConfigMap's file into a config that
        # names the broker and the URL and passes validation.
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "hermod.json")
            with open(path, "w") as f:
                f.write(k8s_object(objects, "ConfigMap", "hermod-config")["data"]["hermod.json"])
            clean = {k: v for k, v in os.environ.items() if not k.startswith("HERMOD_")}
            r = run([h.HERMOD, "genconfig", "--config", path], env=dict(clean, **env))
        self.assertEqual(r.returncode, 0, r.stderr)
        config = json.loads(r.stdout)
        self.assertEqual(config["broker"], "nats")
        self.assertEqual(config["nats"]["url"], env["HERMOD_NATS__URL"])
        # Both pod specs keep the kubelet's service-link variables out.
        for spec in (hermod["spec"], pod["spec"]):
            self.assertIs(spec.get("enableServiceLinks"), False)

    # --- Grafana -------------------------------------------------------------------------------

    def test_dashboard_parses_and_queries_the_provisioned_datasource(self):
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources",
                               "prometheus.yml")) as f:
            uid = yaml.safe_load(f)["datasources"][0]["uid"]
        self.assertEqual(dashboard["uid"], "hermod")
        queried = [p for p in dashboard["panels"] if p["type"] != "row"]
        self.assertGreaterEqual(len(queried), 10)
        ids = [p["id"] for p in dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for panel in queried:
            self.assertTrue(panel["targets"], panel["title"])
            self.assertEqual(panel["datasource"]["uid"], uid, panel["title"])
            for target in panel["targets"]:
                self.assertTrue(target["expr"].strip(), panel["title"])
            grid = panel["gridPos"]
            self.assertLessEqual(grid["x"] + grid["w"], 24, panel["title"])
        # Every query parses as PromQL: promtool checks them as recording rules, with the
        # dashboard's variables replaced as Grafana would.
        rules = [{"record": "dashboard:panel%d_%s" % (panel["id"], target["refId"]),
                  "expr": target["expr"].replace("$__rate_interval", "1m")
                  .replace("$instance", ".*")}
                 for panel in queried for target in panel["targets"]]
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            r = run(["promtool", "check", "rules", f.name])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: %d rules found" % len(rules), r.stdout)

    # --- Dockerfile ----------------------------------------------------------------------------

    def dockerfile_stages(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            text = re.sub(r"\\\n", " ", f.read())
        args, stages = {}, []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word == "ARG" and not stages and "=" in rest:
                key, _, value = rest.partition("=")
                args[key] = value
            elif word == "FROM":
                image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
                alias = rest.split()[2] if " AS " in rest.upper() else None
                stages.append({"image": image, "alias": alias, "lines": []})
            elif stages:
                stages[-1]["lines"].append((word, rest))
        return stages

    @staticmethod
    def apt_packages(stage):
        packages = []
        for word, rest in stage["lines"]:
            if word != "RUN":
                continue
            for command in rest.split("&&"):
                if "apt-get install" in command:
                    packages += [p for p in command.split("apt-get install", 1)[1].split()
                                 if not p.startswith("-")]
        return packages

    def test_dockerfile_stages_pins_and_packages(self):
        stages = self.dockerfile_stages()
        self.assertEqual([s["alias"] for s in stages], ["build", "runtime"])
        self.assertRegex(stages[0]["image"], r"^debian:12\.\d+$")
        self.assertRegex(stages[1]["image"], r"^debian:12\.\d+-slim$")
        build, runtime = self.apt_packages(stages[0]), self.apt_packages(stages[1])
        with open(os.path.join(ROOT, "scripts", "deps")) as f:
            m = re.search(r"^build=\(([^)]*)\)", f.read(), re.M)
        self.assertEqual(sorted(build), sorted(m.group(1).split()),
                         "the build stage must install scripts/deps' build list")
        # One apt-cache call (each costs a second): it prints the records it finds.
        r = run(["apt-cache", "show", "--no-all-versions"] + build + runtime)
        found = set(re.findall(r"^Package: (\S+)$", r.stdout, re.M))
        self.assertEqual(set(build + runtime) - found, set(),
                         "not Debian packages (apt-cache show): " + r.stderr)
        words = [w for w, _ in stages[1]["lines"]]
        user = [rest for w, rest in stages[1]["lines"] if w == "USER"][-1]
        self.assertNotIn(user.split(":")[0], ("0", "root"))
        health = [rest for w, rest in stages[1]["lines"] if w == "HEALTHCHECK"][0]
        self.assertIn("/health/live", health)
        self.assertIn("ENTRYPOINT", words)
        self.assertTrue(any(w == "COPY" and rest.startswith("--from=build")
                            for w, rest in stages[1]["lines"]))
        # The runtime packages, with what they pull in, provide every library the binary links.
        r = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                 "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + runtime)
        self.assertEqual(r.returncode, 0, r.stderr)
        provided = set(runtime) | {line.split(":")[-1].strip().strip("<>")
                                   for line in r.stdout.splitlines()}
        provided = {p.split(":")[0] for p in provided}
        ldd = run(["ldd", h.HERMOD])
        self.assertEqual(ldd.returncode, 0, ldd.stderr)
        for line in ldd.stdout.splitlines():
            m = re.search(r"=>\s*(/\S+)", line)
            if not m or re.search(r"lib(asan|ubsan|lsan|tsan)", m.group(1)):
                continue  # the vdso, and a sanitizer build's runtimes
            owner = run(["dpkg", "-S", os.path.realpath(m.group(1))])
            if owner.returncode != 0:
                owner = run(["dpkg", "-S", m.group(1)])
            self.assertEqual(owner.returncode, 0, line)
            package = owner.stdout.split(":")[0]
            self.assertIn(package, provided, "%s (%s) is not in the runtime image"
                          % (m.group(1), package))


if __name__ == "__main__":
    h.main()
