"""Our own rules for the Kubernetes manifests, beyond the API schemas that
kubernetes-validate checks: probes, resources and the Pod Security
"restricted" settings on every container, a NetworkPolicy for every workload,
credentials only from Secrets, RabbitMQ's peer discovery and quorum queues
wired up, and what each overlay promises (replicas, autoscaling, disruption
budgets). Pure functions over parsed YAML documents, each returning a list of
problems, one clear sentence each; check.py renders the overlays and feeds
them in, test_check.py proves they bite.
"""

import re

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
CLUSTER_SCOPED_KINDS = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass",
}
# Env var names that hold credentials, which must come from a Secret.
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|COOKIE|CREDENTIAL|AUTH", re.IGNORECASE)
# A URL with a password in it (scheme://user:password@host).
URL_PASSWORD = re.compile(r"://[^/\s:@]*:([^@/\s]+)@")
# A password set in a configuration file (rabbitmq.conf's default_pass = x).
CONF_PASSWORD = re.compile(r"\s*([\w.]*pass\w*)\s*[=:]\s*\S", re.IGNORECASE)
# A Kubernetes variable reference, $(NAME): filled in from the environment.
VAR_REF = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")
SAFE_SECCOMP = {"RuntimeDefault", "Localhost"}
RESOURCE_KEYS = [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]

# What each overlay promises: replica counts (exact, or at least), which
# Deployments an HPA scales (from at least the given count) and which
# workloads a PodDisruptionBudget protects.
PROFILES = {
    "dev": {
        "exact": {"gateway": 1, "trips": 1, "airports": 1, "rabbitmq": 1,
                  "trips-redis": 1, "airports-redis": 1},
        "at_least": {}, "hpa": {}, "pdb": [],
    },
    "prod": {
        "exact": {"rabbitmq": 3, "trips-redis": 1, "airports-redis": 1},
        "at_least": {"trips": 2, "airports": 2},
        "hpa": {"gateway": 2},
        "pdb": ["gateway", "trips", "airports", "rabbitmq"],
    },
}


def ref(doc):
    """Kind/name, how the problems name an object."""
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_template(doc):
    """The pod (metadata, spec) a workload runs."""
    spec = doc.get("spec", {})
    if doc["kind"] == "Pod":
        return doc.get("metadata", {}), spec
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {})
    return template.get("metadata", {}), template.get("spec", {})


def workloads(docs):
    return [d for d in docs if d.get("kind") in WORKLOAD_KINDS]


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions) matches."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def is_empty(selector):
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


def check_containers(docs):
    """Probes, resources and the restricted security settings everywhere."""
    problems = []
    for doc in workloads(docs):
        _, pod = pod_template(doc)
        pod_sc = pod.get("securityContext") or {}
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(field):
                problems.append(f"{ref(doc)}: {field} is set; the restricted profile forbids it")
        for volume in pod.get("volumes") or []:
            if "hostPath" in volume:
                problems.append(f"{ref(doc)}: volume {volume['name']} is a hostPath")
        regular = [(c, True) for c in pod.get("containers") or []]
        init = [(c, False) for c in pod.get("initContainers") or []]
        for container, needs_probes in regular + init:
            where = f"{ref(doc)}: container {container.get('name')}"
            if needs_probes:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not container.get(probe):
                        problems.append(f"{where}: no {probe}")
            problems += [f"{where}: {p}" for p in security_problems(container, pod_sc)]
            resources = container.get("resources") or {}
            for section, key in RESOURCE_KEYS:
                if key not in (resources.get(section) or {}):
                    problems.append(f"{where}: no resources.{section}.{key}")
    return problems


def security_problems(container, pod_sc):
    """What keeps a container from the Pod Security "restricted" profile
    (plus a read-only root file system, which we ask of every container)."""
    sc = container.get("securityContext") or {}
    effective = {**pod_sc, **sc}
    problems = []
    if sc.get("privileged"):
        problems.append("privileged: true; nothing here needs the host's devices")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("securityContext.allowPrivilegeEscalation must be false")
    if effective.get("runAsNonRoot") is not True:
        problems.append("securityContext.runAsNonRoot must be true")
    if effective.get("runAsUser") == 0:
        problems.append("runs as root (runAsUser: 0)")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("securityContext.readOnlyRootFilesystem must be true")
    capabilities = sc.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append("securityContext.capabilities.drop must include ALL")
    if capabilities.get("add"):
        problems.append(f"adds capabilities {capabilities['add']}")
    seccomp = (effective.get("seccompProfile") or {}).get("type")
    if seccomp not in SAFE_SECCOMP:
        problems.append(f"seccompProfile.type is {seccomp}, not RuntimeDefault")
    return problems


def check_network_policies(docs):
    """A default deny, and a policy of its own for every workload; every pod
    selector in a policy matches some workload (a typo there silently cuts a
    path)."""
    problems = []
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    pods = [(doc, pod_template(doc)[0].get("labels") or {}) for doc in workloads(docs)]
    deny = [p for p in policies if is_empty(p["spec"].get("podSelector"))
            and {"Ingress", "Egress"} <= set(p["spec"].get("policyTypes") or [])
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not deny:
        problems.append("no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and "
                        "Egress, no rules)")
    for doc, labels in pods:
        if not any(not is_empty(p["spec"].get("podSelector"))
                   and selects(p["spec"]["podSelector"], labels)
                   and p["metadata"].get("namespace") == doc["metadata"].get("namespace")
                   for p in policies):
            problems.append(f"{ref(doc)}: no NetworkPolicy of its own selects its pods "
                            f"(labels {labels})")
    for policy in policies:
        selectors = [policy["spec"].get("podSelector")]
        for rule in (policy["spec"].get("ingress") or []) + (policy["spec"].get("egress") or []):
            selectors += [peer["podSelector"] for peer in
                          (rule.get("from") or []) + (rule.get("to") or [])
                          if "podSelector" in peer and "namespaceSelector" not in peer]
        for selector in selectors:
            if not is_empty(selector) and not any(selects(selector, labels) for _, labels in pods):
                problems.append(f"{ref(policy)}: pod selector {selector} matches no workload")
    return problems


def check_namespaces(docs):
    """Everything in a namespace of ours, each held to Pod Security restricted."""
    problems = []
    namespaces = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Namespace"}
    if not namespaces:
        problems.append("no Namespace object: nothing labels it pod-security restricted")
    for name, ns in namespaces.items():
        labels = ns["metadata"].get("labels") or {}
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append(f"Namespace/{name}: label pod-security.kubernetes.io/enforce "
                            "is not restricted")
    for doc in docs:
        if doc.get("kind") not in CLUSTER_SCOPED_KINDS and \
                doc.get("metadata", {}).get("namespace") not in namespaces:
            problems.append(f"{ref(doc)}: not in a namespace this overlay creates")
    return problems


def check_credentials(docs):
    """Credentials come from Secrets: no literal password in an env var, a
    URL, a command line or a ConfigMap."""
    problems = []
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            for key in doc.get("data") or {}:
                if SECRET_NAME.search(key):
                    problems.append(f"{ref(doc)}: key {key} looks like a credential; put it in "
                                    "secrets.env")
            for key, text in (doc.get("data") or {}).items():
                for line in text.splitlines():
                    setting = CONF_PASSWORD.match(line)
                    if setting:
                        problems.append(f"{ref(doc)}: {key} sets a password ({setting.group(1)}); "
                                        "credentials belong in secrets.env")
    for doc in workloads(docs):
        _, pod = pod_template(doc)
        for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            where = f"{ref(doc)}: container {container.get('name')}"
            for env in container.get("env") or []:
                value = env.get("value")
                if value is None:
                    continue
                if SECRET_NAME.search(env["name"]) and not VAR_REF.fullmatch(value):
                    problems.append(f"{where}: env {env['name']} has a literal value; take it "
                                    "from a Secret (valueFrom.secretKeyRef)")
                password = URL_PASSWORD.search(value)
                if password and not VAR_REF.fullmatch(password.group(1)):
                    problems.append(f"{where}: env {env['name']} has a password in its URL; "
                                    "use $(VAR) from a Secret")
            argv = (container.get("command") or []) + (container.get("args") or [])
            for flag, value in zip(argv, argv[1:]):
                if re.match(r"--?\w*pass", flag) and not VAR_REF.fullmatch(value):
                    problems.append(f"{where}: {flag} is given a literal; use $(VAR) from a "
                                    "Secret")
    return problems


def conf_value(text, key):
    """The value of `key = value` in a rabbitmq.conf (sysctl format)."""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key and not line.lstrip().startswith("#"):
            return value.strip()
    return None


def check_rabbitmq(docs):
    """The RabbitMQ StatefulSet forms its cluster through the Kubernetes peer
    discovery plugin (enabled, configured, its headless Service listing
    not-ready nodes, RBAC to read its endpoints) and defaults to quorum
    queues."""
    problems = []
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc.get("kind"), {})[doc["metadata"]["name"]] = doc
    sts = by_kind.get("StatefulSet", {}).get("rabbitmq")
    if sts is None:
        return ["no StatefulSet/rabbitmq"]
    _, pod = pod_template(sts)
    configs = [by_kind.get("ConfigMap", {}).get(v["configMap"]["name"])
               for v in pod.get("volumes") or [] if "configMap" in v]
    config = next((c for c in configs if c and "rabbitmq.conf" in (c.get("data") or {})), None)
    if config is None:
        return [f"{ref(sts)}: mounts no ConfigMap with a rabbitmq.conf"]
    conf = config["data"]["rabbitmq.conf"]
    if "rabbitmq_peer_discovery_k8s" not in config["data"].get("enabled_plugins", ""):
        problems.append(f"{ref(config)}: enabled_plugins lacks rabbitmq_peer_discovery_k8s")
    if conf_value(conf, "default_queue_type") != "quorum":
        problems.append(f"{ref(config)}: rabbitmq.conf does not set default_queue_type = quorum")
    if conf_value(conf, "cluster_formation.peer_discovery_backend") not in (
            "k8s", "rabbit_peer_discovery_k8s"):
        problems.append(f"{ref(config)}: rabbitmq.conf does not use the k8s peer discovery backend")
    service_name = conf_value(conf, "cluster_formation.k8s.service_name")
    service = by_kind.get("Service", {}).get(service_name)
    if service_name != sts["spec"].get("serviceName") or service is None:
        problems.append(f"{ref(config)}: cluster_formation.k8s.service_name ({service_name}) is "
                        f"not the StatefulSet's Service ({sts['spec'].get('serviceName')})")
    elif service["spec"].get("clusterIP") != "None" or \
            not service["spec"].get("publishNotReadyAddresses"):
        problems.append(f"{ref(service)}: must be headless and publish not-ready addresses")
    account = pod.get("serviceAccountName")
    roles = [by_kind.get("Role", {}).get(b["roleRef"]["name"])
             for b in by_kind.get("RoleBinding", {}).values()
             if any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                    for s in b.get("subjects") or [])]
    if not any(role and any("endpoints" in r.get("resources", []) and "get" in r.get("verbs", [])
                            for r in role.get("rules") or []) for role in roles):
        problems.append(f"{ref(sts)}: its ServiceAccount ({account}) may not get endpoints, "
                        "which peer discovery reads")
    return problems


def check_profile(docs, profile):
    """Replica counts, autoscalers and disruption budgets an overlay promises."""
    problems = []
    promise = PROFILES[profile]
    named = {d["metadata"]["name"]: d for d in workloads(docs)}
    hpas = [d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"]
    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    wanted = {**promise["exact"], **promise["at_least"], **promise["hpa"]}
    for name in sorted(set(wanted) - set(named)):
        problems.append(f"{profile}: no workload named {name}")
    for name, doc in sorted(named.items()):
        replicas = doc["spec"].get("replicas")
        if name in promise["hpa"]:
            minimum = promise["hpa"][name]
            scalers = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == name
                       and h["spec"]["scaleTargetRef"]["kind"] == doc["kind"]]
            if not scalers:
                problems.append(f"{ref(doc)}: no HorizontalPodAutoscaler scales it")
            for hpa in scalers:
                if hpa["spec"].get("minReplicas", 1) < minimum:
                    problems.append(f"{ref(hpa)}: minReplicas below {minimum}")
            if replicas is not None and replicas < minimum:
                problems.append(f"{ref(doc)}: replicas {replicas}, below {minimum}")
            continue
        replicas = 1 if replicas is None else replicas
        if name in promise["exact"] and replicas != promise["exact"][name]:
            problems.append(f"{ref(doc)}: replicas {replicas}, {profile} wants "
                            f"{promise['exact'][name]}")
        if name in promise["at_least"] and replicas < promise["at_least"][name]:
            problems.append(f"{ref(doc)}: replicas {replicas}, {profile} wants at least "
                            f"{promise['at_least'][name]}")
    for name in promise["pdb"]:
        doc = named.get(name)
        labels = pod_template(doc)[0].get("labels") or {} if doc else {}
        if doc and not any(selects(p["spec"].get("selector"), labels) for p in pdbs):
            problems.append(f"{ref(doc)}: no PodDisruptionBudget protects it")
    return problems


def check_rendered(docs, profile=None):
    """Every rule over one rendered overlay."""
    docs = [d for d in docs if d]
    problems = (check_containers(docs) + check_network_policies(docs) + check_namespaces(docs)
                + check_credentials(docs) + check_rabbitmq(docs))
    if profile in PROFILES:
        problems += check_profile(docs, profile)
    return problems
