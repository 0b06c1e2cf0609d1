"""Proves `make k8s-check` bites: starting from the committed overlays
(rendered by the real kubectl), each test breaks one thing (a missing probe,
a privileged container, a root user, a missing policy, a committed or
literal secret, a broken promise of the prod overlay...) and expects exactly
the problem that names it, never echoing a secret. One test runs the whole
checker on a tree with a missing probe, a schema error and a committed
Secret, and expects exit status 1 and all three messages.

Run by `make k8s-check`: python -m unittest discover -s deploy/k8s
"""

import contextlib
import copy
import io
import shutil
import tempfile
import unittest
from pathlib import Path

import yaml

import check
import rules

SECRET = "hunter2-not-a-placeholder"


def render(overlay):
    """The committed overlay as kubectl kustomize renders it (a clean clone
    with the example secrets)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = check.render_copy(check.HERE, check.committed_files(check.HERE), tmp)
        text = check.run([str(check.VENV_BIN / "kubectl"), "kustomize",
                          str(tree / "overlays" / overlay)], "kubectl kustomize")
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs, kind, name, index=0, init=False):
    spec = find(docs, kind, name)["spec"]["template"]["spec"]
    return spec["initContainers" if init else "containers"][index]


def env(docs, kind, name, var):
    return next(e for e in container(docs, kind, name)["env"] if e["name"] == var)


class RenderedRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rendered = {overlay: render(overlay) for overlay in ("dev", "prod")}

    def docs(self, overlay="prod"):
        return copy.deepcopy(self.rendered[overlay])

    def assertOnly(self, docs, expected, overlay="prod"):
        problems = rules.check_rendered(docs, overlay)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(expected, problems[0])
        self.assertNotIn(SECRET, problems[0])

    def test_committed_overlays_pass(self):
        for overlay in ("dev", "prod"):
            self.assertEqual(rules.check_rendered(self.docs(overlay), overlay), [], overlay)

    def test_missing_probe(self):
        docs = self.docs()
        del container(docs, "Deployment", "trips")["livenessProbe"]
        self.assertOnly(docs, "Deployment/trips: container trips: no livenessProbe")

    def test_privileged_container(self):
        docs = self.docs()
        container(docs, "Deployment", "gateway")["securityContext"]["privileged"] = True
        self.assertOnly(docs, "Deployment/gateway: container gateway: privileged: true")

    def test_root_user(self):
        docs = self.docs()
        find(docs, "StatefulSet", "trips-redis")["spec"]["template"]["spec"][
            "securityContext"]["runAsUser"] = 0
        self.assertOnly(docs, "StatefulSet/trips-redis: container redis: runs as root")

    def test_escalation_capabilities_and_writable_root(self):
        for field, value, expected in [
                ("allowPrivilegeEscalation", True,
                 "securityContext.allowPrivilegeEscalation must be false"),
                ("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}, "adds capabilities"),
                ("capabilities", {}, "securityContext.capabilities.drop must include ALL"),
                ("readOnlyRootFilesystem", False,
                 "securityContext.readOnlyRootFilesystem must be true"),
                ("seccompProfile", {"type": "Unconfined"}, "seccompProfile.type is Unconfined")]:
            docs = self.docs()
            container(docs, "Deployment", "airports")["securityContext"][field] = value
            self.assertOnly(docs, f"Deployment/airports: container airports: {expected}")

    def test_init_container_without_limits(self):
        docs = self.docs()
        del container(docs, "StatefulSet", "rabbitmq", init=True)["resources"]["limits"]["memory"]
        self.assertOnly(docs, "container erlang-cookie: no resources.limits.memory")

    def test_workload_without_its_policy(self):
        docs = [d for d in self.docs()
                if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "trips")]
        self.assertOnly(docs, "Deployment/trips: no NetworkPolicy of its own selects its pods")

    def test_policy_naming_no_workload(self):
        docs = self.docs()
        peer = find(docs, "NetworkPolicy", "trips")["spec"]["egress"][1]["to"][0]
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = "trip-redis"
        self.assertOnly(docs, "NetworkPolicy/trips: pod selector")

    def test_no_default_deny(self):
        docs = self.docs()
        find(docs, "NetworkPolicy", "default-deny")["spec"]["policyTypes"] = ["Ingress"]
        self.assertOnly(docs, "no default-deny NetworkPolicy")

    def test_namespace_not_restricted(self):
        docs = self.docs()
        find(docs, "Namespace", "airbridge")["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"] = "baseline"
        self.assertOnly(docs, "Namespace/airbridge: label pod-security.kubernetes.io/enforce")

    def test_literal_secrets(self):
        docs = self.docs()
        password = env(docs, "Deployment", "gateway", "RABBIT_PASSWORD")
        self.assertIn("secretKeyRef", password.pop("valueFrom"))
        password["value"] = SECRET
        self.assertOnly(docs, "Deployment/gateway: container gateway: env RABBIT_PASSWORD "
                              "has a literal value")
        docs = self.docs()
        env(docs, "Deployment", "trips", "REDIS_URL")["value"] = \
            f"redis://:{SECRET}@trips-redis:6379/0"
        self.assertOnly(docs, "env REDIS_URL has a password in its URL")
        docs = self.docs()
        container(docs, "StatefulSet", "airports-redis")["args"][-1] = SECRET
        self.assertOnly(docs, "--requirepass is given a literal")

    def rabbitmq_config(self, docs):
        return next(d for d in docs if d["kind"] == "ConfigMap"
                    and "rabbitmq.conf" in d.get("data", {}))

    def test_password_in_rabbitmq_conf(self):
        docs = self.docs()
        self.rabbitmq_config(docs)["data"]["rabbitmq.conf"] += f"\ndefault_pass = {SECRET}\n"
        self.assertOnly(docs, "rabbitmq.conf sets a password (default_pass)")

    def test_classic_queues_by_default(self):
        docs = self.docs()
        config = self.rabbitmq_config(docs)
        config["data"]["rabbitmq.conf"] = config["data"]["rabbitmq.conf"].replace(
            "default_queue_type = quorum", "default_queue_type = classic")
        self.assertOnly(docs, "does not set default_queue_type = quorum")

    def test_peer_discovery_without_rbac(self):
        docs = self.docs()
        find(docs, "Role", "rabbitmq-peer-discovery")["rules"][0]["verbs"] = ["list"]
        self.assertOnly(docs, "may not get endpoints, which peer discovery reads")

    def test_peer_discovery_service_not_headless(self):
        docs = self.docs()
        find(docs, "Service", "rabbitmq-nodes")["spec"]["publishNotReadyAddresses"] = False
        self.assertOnly(docs, "Service/rabbitmq-nodes: must be headless")

    def test_prod_promises(self):
        docs = self.docs()
        find(docs, "Deployment", "trips")["spec"]["replicas"] = 1
        self.assertOnly(docs, "Deployment/trips: replicas 1, prod wants at least 2")
        docs = [d for d in self.docs() if d["kind"] != "HorizontalPodAutoscaler"]
        self.assertOnly(docs, "Deployment/gateway: no HorizontalPodAutoscaler scales it")
        docs = self.docs()
        find(docs, "HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] = 1
        self.assertOnly(docs, "HorizontalPodAutoscaler/gateway: minReplicas below 2")
        docs = [d for d in self.docs() if not (d["kind"] == "PodDisruptionBudget"
                                               and d["metadata"]["name"] == "rabbitmq")]
        self.assertOnly(docs, "StatefulSet/rabbitmq: no PodDisruptionBudget protects it")
        docs = self.docs()
        find(docs, "StatefulSet", "rabbitmq")["spec"]["replicas"] = 2
        self.assertOnly(docs, "StatefulSet/rabbitmq: replicas 2, prod wants 3")

    def test_dev_promises(self):
        docs = self.docs("dev")
        find(docs, "StatefulSet", "rabbitmq")["spec"]["replicas"] = 3
        self.assertOnly(docs, "StatefulSet/rabbitmq: replicas 3, dev wants 1", "dev")


class CommittedTree(unittest.TestCase):
    """scan_tree over small trees made for the purpose."""

    def scan(self, tree):
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in tree.items():
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_text(text)
            return check.scan_tree(tmp, sorted(tree))

    KUSTOMIZATION = "secretGenerator:\n  - name: s\n    envs: [secrets.env]\n"
    EXAMPLE = "RABBIT_USER=airbridge\nRABBIT_PASSWORD=change-me\n"

    def test_clean_tree_passes(self):
        self.assertEqual(self.scan({"base/kustomization.yaml": self.KUSTOMIZATION,
                                    "base/secrets.env.example": self.EXAMPLE}), [])

    def test_committed_secret_manifest(self):
        for field in ("data", "stringData"):
            problems = self.scan({
                "base/kustomization.yaml": self.KUSTOMIZATION,
                "base/secrets.env.example": self.EXAMPLE,
                "base/leak.yaml": f"apiVersion: v1\nkind: Secret\nmetadata: {{name: leak}}\n"
                                  f"{field}: {{password: {SECRET}}}\n"})
            self.assertEqual(problems, ["base/leak.yaml: Secret leak with data is committed; "
                                        "use the secretGenerator"])

    def test_committed_env_file_and_literals(self):
        problems = self.scan({
            "base/kustomization.yaml": self.KUSTOMIZATION
            + f"  - name: t\n    literals: [password={SECRET}]\n",
            "base/secrets.env": f"RABBIT_PASSWORD={SECRET}\n",
            "base/secrets.env.example": f"RABBIT_PASSWORD={SECRET}\n"})
        self.assertEqual(len(problems), 4, problems)
        for expected in ["secretGenerator t has literals",
                         "base/secrets.env: a secretGenerator source is committed",
                         "base/secrets.env:1: RABBIT_PASSWORD has a value",
                         "base/secrets.env.example:1: RABBIT_PASSWORD has a value"]:
            self.assertTrue(any(expected in p for p in problems), (expected, problems))
        self.assertFalse(any(SECRET in p for p in problems))

    def test_missing_example(self):
        self.assertEqual(self.scan({"base/kustomization.yaml": self.KUSTOMIZATION}),
                         ["base/secrets.env.example: missing; a clean clone cannot render"])


class WholeChecker(unittest.TestCase):
    def test_bad_tree_fails_with_every_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "k8s"
            for name in check.committed_files(check.HERE):
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(check.HERE / name, root / name)
            trips = root / "base/trips.yaml"
            text = trips.read_text()
            start = text.index("          livenessProbe:")
            end = text.index("          resources:", start)
            trips.write_text(text[:start] + text[end:])
            gateway = root / "base/gateway.yaml"
            gateway.write_text(gateway.read_text().replace("targetPort: grpc", "targetPorts: grpc"))
            (root / "base/leak.yaml").write_text(
                f"apiVersion: v1\nkind: Secret\nmetadata: {{name: leak}}\n"
                f"stringData: {{password: {SECRET}}}\n")
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = check.main(["--root", str(root)])
        self.assertEqual(status, 1, out.getvalue() + err.getvalue())
        errors = err.getvalue()
        for overlay in ("dev", "prod"):
            self.assertIn(f"overlays/{overlay}: Deployment/trips: container trips: "
                          "no livenessProbe", errors)
            self.assertIn(f"kubernetes-validate --strict ({overlay}) failed", errors)
        self.assertIn("'targetPorts' was unexpected", errors)
        self.assertIn("base/leak.yaml: Secret leak with data is committed", errors)
        self.assertNotIn(SECRET, errors + out.getvalue())


if __name__ == "__main__":
    unittest.main()
