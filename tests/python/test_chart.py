"""The Helm chart (charts/turnpike) through the real Helm v4 library (`helm-python-sdk`):
lint and render with default and non-default values, bad values rejected by
values.schema.json with a message that names the field, every rendered manifest checked (the
kinds `turnpike local`'s API server serves by `kubectl apply --dry-run=server`, every built-in
kind against the Kubernetes OpenAPI models of the `kubernetes` client), the chart README's
value table equal to values.yaml, and `helm install`, upgrade and uninstall into the embedded
API server.
"""

from __future__ import annotations

import json
import re

import helm_python as helm
import kubernetes.client as k8s
import pytest
import yaml

from conftest import REPO

CHART = REPO / "charts" / "turnpike"

#: Non-default values touching every optional template and most settings.
CUSTOM = {
    "replicaCount": 3,
    "region": "eu-west-1",
    "baseDomain": "api.example.com",
    "logFormat": "text",
    "logLevel": "debug",
    "listeners": {"public": 10443, "private": 10444, "admin": 10090},
    "canaryHeader": "x-canary",
    "tls": {"secretName": "wildcard-tls"},
    "holdoff": {"ms": 50, "maxMs": 500},
    "requestHandling": {"allowUnderscoresInHeaders": True, "allowRawPathSegments": True},
    "limits": {"defaultRateLimit": 2500.5, "defaultBurstLimit": 1000000,
               "redis": {"urlSecret": {"name": "redis", "key": "url"}, "cluster": True, "failureMode": "closed"}},
    "cache": {"backend": "redis"},
    "websocket": {"idleTimeoutSecs": 300, "maxLifetimeSecs": 3600, "maxFrameBytes": 16384,
                  "maxMessageBytes": 65536, "ownerTtlSecs": 15},
    "admin": {"tokenSecret": {"name": "turnpike-admin", "key": "token"}},
    "service": {
        "public": {"type": "LoadBalancer", "port": 8443, "externalTrafficPolicy": "Local",
                   "loadBalancerClass": "example.com/lb",
                   "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}},
        "private": {"port": 8444, "annotations": {"example.com/private": "yes"}},
        "admin": {"port": 9999},
    },
    "extraArgs": ["--watch-namespace=apis"],
    "extraEnv": [{"name": "EXTRA", "value": "1"}],
    "podAnnotations": {"example.com/pod": "a"},
    "podLabels": {"team": "platform"},
    "imagePullSecrets": [{"name": "regcred"}],
    "topologySpread": {"zones": True, "whenUnsatisfiable": "DoNotSchedule"},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "networkPolicy": {"enabled": True, "adminFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    "priorityClassName": "system-cluster-critical",
}


def render(values=None, namespace="gateway") -> list[dict]:
    """The chart's manifests as release `tp` in `namespace` (NOTES.txt left out)."""
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values or {}, name="tp", namespace=namespace, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs, kind, suffix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert found, f"no {kind} *{suffix} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


@pytest.mark.parametrize("values", [{}, CUSTOM], ids=["defaults", "custom"])
def test_lint_is_clean(values):
    report = helm.lint(str(CHART), values, strict=True, namespace="gateway")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_defaults_render_a_hardened_two_replica_deployment():
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    for kind in ["Deployment", "PodDisruptionBudget", "Service"]:
        assert kind in kinds, kinds
    for kind in ["HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy"]:
        assert kind not in kinds, f"{kind} is opt-in"
    dep = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [c] = pod["containers"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert c["args"][0] == "run" and "--log-format=json" in c["args"]
    # Without Redis each replica enforces its share of every limit, the replicas counted from
    # their own Leases (an HPA may change the count): no fixed --replicas.
    assert not any(a.startswith("--replicas") for a in c["args"]), c["args"]
    assert "--default-rate-limit=10000" in c["args"], c["args"]
    assert "--cache-backend=memory" in c["args"] and not any(a.startswith("--admin-token") for a in c["args"])
    env = {e["name"] for e in c["env"]}
    assert {"POD_NAMESPACE", "POD_NAME", "TURNPIKE_REGION", "TURNPIKE_BASE_DOMAIN"} <= env, "leader election needs the pod's identity"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    # Without a TLS Secret the pods generate a self-signed certificate: nothing to mount.
    assert not any(a.startswith("--tls-") for a in c["args"]) and "volumes" not in pod
    assert by_kind(docs, "Service", "-public")["spec"]["type"] == "LoadBalancer"
    assert by_kind(docs, "Service", "-private")["spec"]["type"] == "ClusterIP"
    assert by_kind(docs, "Service", "-admin")["spec"]["ports"][0]["port"] == 9090


def test_custom_values_reach_the_manifests():
    docs = render(CUSTOM)
    dep = by_kind(docs, "Deployment")
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    for arg in ["--public-addr=0.0.0.0:10443", "--private-addr=0.0.0.0:10444", "--admin-addr=0.0.0.0:10090",
                "--log-format=text", "--canary-header=x-canary", "--holdoff-ms=50", "--holdoff-max-ms=500",
                "--watch-namespace=apis", "--allow-underscores-in-headers", "--allow-raw-path-segments",
                "--default-rate-limit=2500.5", "--default-burst-limit=1000000", "--redis-cluster",
                "--redis-failure-mode=closed", "--cache-backend=redis",
                "--admin-token-file=/etc/turnpike/admin/token", "--websocket-idle-timeout-secs=300",
                "--websocket-max-lifetime-secs=3600", "--websocket-max-frame-bytes=16384",
                "--websocket-max-message-bytes=65536", "--websocket-owner-ttl-secs=15"]:
        assert arg in c["args"], (arg, c["args"])
    # The TLS Secret is mounted read-only and its files named on the command line.
    assert {"--tls-cert-file=/etc/turnpike/tls/tls.crt", "--tls-key-file=/etc/turnpike/tls/tls.key"} <= set(c["args"])
    # So is the admin token Secret (the cache flush takes it as a bearer token).
    assert c["volumeMounts"] == [{"name": "tls", "mountPath": "/etc/turnpike/tls", "readOnly": True},
                                 {"name": "admin-token", "mountPath": "/etc/turnpike/admin", "readOnly": True}]
    assert pod["volumes"] == [{"name": "tls", "secret": {"secretName": "wildcard-tls"}},
                              {"name": "admin-token", "secret": {"secretName": "turnpike-admin",
                                                                 "items": [{"key": "token", "path": "token"}]}}]
    # The Redis URL comes from its Secret, never the pod spec; limits are shared, not divided.
    [redis] = [e for e in c["env"] if e["name"] == "TURNPIKE_REDIS_URL"]
    assert redis["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "url"}
    assert not any(a.startswith(("--redis-url", "--replicas")) for a in c["args"]), c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["TURNPIKE_REGION"] == "eu-west-1" and env["TURNPIKE_BASE_DOMAIN"] == "api.example.com"
    assert env["RUST_LOG"] == "debug" and env["EXTRA"] == "1"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"public": 10443, "private": 10444, "admin": 10090}
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]] == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    public = by_kind(docs, "Service", "-public")
    assert public["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    assert public["spec"]["externalTrafficPolicy"] == "Local" and public["spec"]["loadBalancerClass"] == "example.com/lb"
    assert public["spec"]["ports"][0]["port"] == 8443
    assert by_kind(docs, "Service", "-private")["spec"]["ports"][0]["port"] == 8444
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    sm = by_kind(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom" and sm["spec"]["endpoints"][0]["port"] == "admin"
    admin = by_kind(docs, "Service", "-admin")
    assert all(admin["metadata"]["labels"][k] == v for k, v in sm["spec"]["selector"]["matchLabels"].items()), \
        "the ServiceMonitor selects the admin Service"
    np = by_kind(docs, "NetworkPolicy")
    assert np["spec"]["ingress"][2]["from"] == CUSTOM["networkPolicy"]["adminFrom"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"logFormat": "yaml"}, "at '/logFormat'"),
        ({"listeners": {"public": 70000, "private": 9443, "admin": 9090}}, "at '/listeners/public'"),
        ({"replicaCount": 0}, "at '/replicaCount'"),
        ({"replicas": 3}, "'replicas' not allowed"),
        ({"service": {"public": {"type": "Ingress", "port": 443}}}, "at '/service/public/type'"),
        ({"region": "EU West"}, "at '/region'"),
        ({"canaryHeader": "x canary"}, "at '/canaryHeader'"),
        ({"autoscaling": {"targetCPUUtilizationPercentage": 150}}, "at '/autoscaling/targetCPUUtilizationPercentage'"),
        ({"serviceMonitor": {"interval": "soon"}}, "at '/serviceMonitor/interval'"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"limits": {"redis": {"failureMode": "maybe"}}}, "at '/limits/redis/failureMode'"),
        ({"limits": {"redis": {"url": "http://redis:6379"}}}, "at '/limits/redis/url'"),
        ({"tls": {"secretName": "Wildcard TLS"}}, "at '/tls/secretName'"),
        ({"cache": {"backend": "disk"}}, "at '/cache/backend'"),
        ({"websocket": {"ownerTtlSecs": 0}}, "at '/websocket/ownerTtlSecs'"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(values, message):
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema(values)
    assert message in str(err.value), str(err.value)
    with pytest.raises(helm.HelmError):
        chart.render(values, name="tp", namespace="gateway", is_install=True)


def values_table() -> dict[str, str]:
    rows = {}
    for line in (CHART / "README.md").read_text().splitlines():
        m = re.match(r"^\| `([A-Za-z0-9_.]+)` \| (.*?) \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def leaves(value, prefix=""):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, value


def test_readme_lists_every_value_with_its_default():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = values_table()
    missing = [k for k, _ in leaves(values)
               if not any(k == row or k.startswith(row + ".") for row in table)]
    assert not missing, f"values missing from charts/turnpike/README.md: {missing}"
    for row, default in table.items():
        node = values
        for part in row.split("."):
            assert isinstance(node, dict) and part in node, f"README lists {row}, which values.yaml lacks"
            node = node[part]
        if not isinstance(node, dict):
            assert default == f"`{json.dumps(node)}`", f"{row}: README says {default}, values.yaml {json.dumps(node)}"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"]), "every top-level value is in the schema"


# === Manifests against the Kubernetes schemas ===

def check_model(obj, type_name: str, path: str, errors: list[str]) -> None:
    """Checks `obj` against a model of the `kubernetes` client (generated from the Kubernetes
    OpenAPI document): no unknown fields, the right shapes."""
    if type_name == "object":
        return
    if type_name.startswith(("list[", "List[")):
        if not isinstance(obj, list):
            errors.append(f"{path}: want a list")
            return
        for i, item in enumerate(obj):
            check_model(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith(("dict(", "Dict[")):
        if not isinstance(obj, dict):
            errors.append(f"{path}: want a map")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for k, v in obj.items():
            check_model(v, inner, f"{path}.{k}", errors)
        return
    scalars = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str}
    if type_name in scalars:
        if not isinstance(obj, scalars[type_name]):
            errors.append(f"{path}: want {type_name}, got {obj!r}")
        return
    model = getattr(k8s, type_name)
    if not isinstance(obj, dict):
        errors.append(f"{path}: want an object ({type_name})")
        return
    by_json = {v: k for k, v in model.attribute_map.items()}
    for key, value in obj.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        check_model(value, model.openapi_types[by_json[key]], f"{path}.{key}", errors)


def model_name(doc) -> str | None:
    group_version = doc["apiVersion"]
    version = group_version.split("/")[-1]
    name = f"{version.capitalize()}{doc['kind']}"
    return name if hasattr(k8s, name) else None


@pytest.mark.parametrize("values", [{}, CUSTOM], ids=["defaults", "custom"])
def test_every_manifest_matches_the_kubernetes_schemas(values, crds):
    server = crds
    docs = render(values)
    errors: list[str] = []
    unchecked = []
    for doc in docs:
        name = model_name(doc)
        if name:
            check_model(doc, name, f"{doc['kind']}/{doc['metadata']['name']}", errors)
        else:
            unchecked.append(doc)
    assert not errors, "\n".join(errors)
    # The one kind no model knows: the Prometheus Operator's ServiceMonitor.
    for doc in unchecked:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "ServiceMonitor", doc
        assert set(doc["spec"]) == {"selector", "endpoints"}, doc

    # The API server validates what it serves, as a cluster would, without storing anything.
    served = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceAccount",
              "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    server.kubectl("create", "namespace", "gateway")
    manifest = yaml.safe_dump_all([d for d in docs if d["kind"] in served])
    out = server.kubectl("apply", "--dry-run=server", "-n", "gateway", "-f", "-", input=manifest).stdout
    assert out.count("(server dry run)") == sum(d["kind"] in served for d in docs), out
    assert server.kubectl("get", "deployments", "-n", "gateway", "-o", "name").stdout.strip() == ""


def test_install_upgrade_uninstall_into_the_embedded_api_server(server):
    with helm.Config(kubeconfig_path=str(server.kubeconfig), namespace="default") as cfg:
        rel = cfg.install(str(CHART), "tp", {}, timeout=60)
        assert rel["status"] == "deployed" and rel["revision"] == 1
        docs = render({}, namespace="default")
        assert len(docs) >= 8, [d["kind"] for d in docs]
        for doc in docs:  # every object of the chart was created
            group = doc["apiVersion"].rpartition("/")[0]
            kind = f"{doc['kind']}.{group}" if group else doc["kind"]
            server.kubectl("get", kind, doc["metadata"]["name"], "-n", "default")
        for crd in ["restapis", "deployments", "stages", "usageplans", "apikeys"]:
            server.kubectl("get", "crd", f"{crd}.turnpike.dev")
        server.kubectl("get", "restapis")  # the CRDs are served

        rel = cfg.upgrade(str(CHART), "tp", {"replicaCount": 3, "logFormat": "text",
                                             "autoscaling": {"enabled": False}}, timeout=60)
        assert rel["status"] == "deployed" and rel["revision"] == 2
        dep = json.loads(server.kubectl("get", "deployment", "tp-turnpike", "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 3
        assert "--log-format=text" in dep["spec"]["template"]["spec"]["containers"][0]["args"]

        cfg.uninstall("tp", timeout=60)
        for kind, name in [("deployment", "tp-turnpike"), ("service", "tp-turnpike-public")]:
            res = server.kubectl("get", kind, name, check=False)
            assert res.returncode != 0 and "NotFound" in res.stderr
        # Helm keeps CRDs on uninstall, so users' APIs survive a reinstall.
        server.kubectl("get", "crd", "restapis.turnpike.dev")
