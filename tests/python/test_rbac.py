"""The controller's RBAC, from the chart, against `turnpike local` with `kubectl auth can-i`.

config/rbac/controller.yaml is the chart's serviceaccount.yaml + rbac.yaml rendered (Helm SDK)
with the default values as release `turnpike` in `default`; `UPDATE_RBAC=1` rewrites it. The
embedded API server answers SelfSubjectAccessReviews from the stored RBAC objects and the
impersonation headers of `kubectl --as`, so these tests check what the rendered RBAC grants,
as a real API server's RBAC authorizer would.
"""

from __future__ import annotations

import json
import os

import helm_python as helm
import pytest

from conftest import REPO

CHART = REPO / "charts" / "turnpike"
CONFIG_RBAC = REPO / "config" / "rbac" / "controller.yaml"
SA = "system:serviceaccount:turnpike-system:turnpike"
TEMPLATES = ["turnpike/templates/serviceaccount.yaml", "turnpike/templates/rbac.yaml"]
HEADER = """\
# GENERATED from charts/turnpike (templates/serviceaccount.yaml and templates/rbac.yaml, default
# values, release `turnpike` in namespace `default`): do not edit; change the chart, then run
#   UPDATE_RBAC=1 .venv/bin/python -m pytest tests/python/test_rbac.py -k config_rbac
# `kubectl apply -f config/rbac` installs the ServiceAccount `default/turnpike` with a
# cluster-wide ClusterRole; the chart's `watchNamespaces` value gives namespaced Roles instead.
"""


def render(values: dict, namespace: str) -> str:
    chart = helm.Chart.load(str(CHART))
    try:
        out = chart.render(values, name="turnpike", namespace=namespace)
    finally:
        chart.close()
    return "".join(out[t] for t in TEMPLATES)


def can_i(server, verb: str, resource: str, namespace: str | None, sa: str = SA) -> bool:
    """`kubectl auth can-i` as `sa`; `resource/sub` asks about a subresource."""
    ns = ["-n", namespace] if namespace else ["-A"]
    resource, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    res = server.kubectl("auth", "can-i", verb, resource, *ns, *extra, f"--as={sa}", check=False)
    answer = res.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource}: {res.stdout}{res.stderr}"
    return answer == "yes"


def install(server, values: dict, namespaces: list[str]) -> None:
    for ns in namespaces:
        server.kubectl("create", "namespace", ns)
    server.kubectl("apply", "-f", "-", input=render(values, "turnpike-system"))


def test_config_rbac_is_the_chart_rendered():
    rendered = HEADER + render({}, "default").lstrip("\n")
    if os.environ.get("UPDATE_RBAC") == "1":
        CONFIG_RBAC.write_text(rendered)
    assert CONFIG_RBAC.read_text() == rendered, "config/rbac is stale: run with UPDATE_RBAC=1"


def test_config_rbac_applies_as_is(crds):
    crds.kubectl("apply", "-f", str(CONFIG_RBAC.parent))
    sa = "system:serviceaccount:default:turnpike"
    assert can_i(crds, "list", "apikeys.turnpike.dev", None, sa)
    assert can_i(crds, "create", "leases.coordination.k8s.io", "default", sa)
    assert not can_i(crds, "create", "leases.coordination.k8s.io", "kube-system", sa)


def test_cluster_wide(crds):
    install(crds, {}, ["turnpike-system", "shop"])
    for ns in [None, "shop", "kube-system"]:
        assert can_i(crds, "list", "apikeys.turnpike.dev", ns)
        assert can_i(crds, "watch", "secrets", ns)
    assert can_i(crds, "patch", "apikeys.turnpike.dev/status", "shop")
    assert not can_i(crds, "update", "apikeys.turnpike.dev/status", "shop")
    assert can_i(crds, "create", "secrets", "shop"), "generated key Secrets"
    for verb in ["get", "update", "patch", "delete"]:
        assert not can_i(crds, verb, "secrets", "shop"), verb
    assert not can_i(crds, "patch", "apikeys.turnpike.dev", "shop"), "spec is the user's"
    assert not can_i(crds, "create", "leases.coordination.k8s.io", "shop")
    assert can_i(crds, "update", "leases.coordination.k8s.io", "turnpike-system")
    assert not can_i(crds, "list", "secrets", "shop", "system:serviceaccount:shop:default")


@pytest.mark.parametrize("kind", ["secrets", "apikeys.turnpike.dev", "services", "configmaps"])
def test_namespaced(crds, kind):
    install(crds, {"watchNamespaces": ["team-a", "team-b"]}, ["turnpike-system", "team-a", "team-b", "other"])
    for ns in ["team-a", "team-b"]:
        assert can_i(crds, "list", kind, ns)
        assert can_i(crds, "watch", kind, ns)
    for ns in ["kube-system", "other", "default", None]:
        assert not can_i(crds, "list", kind, ns), ns
        assert not can_i(crds, "watch", kind, ns), ns
    assert not can_i(crds, "get", kind, "team-a")


def test_namespaced_secret_writes(crds):
    install(crds, {"watchNamespaces": ["team-a"]}, ["turnpike-system", "team-a", "other"])
    assert can_i(crds, "create", "secrets", "team-a"), "generated key Secrets"
    for ns in ["kube-system", "other", "turnpike-system"]:
        assert not can_i(crds, "create", "secrets", ns), ns
    for verb in ["get", "update", "patch", "delete"]:
        for ns in ["team-a", "kube-system"]:
            assert not can_i(crds, verb, "secrets", ns), (verb, ns)
    assert can_i(crds, "get", "leases.coordination.k8s.io", "turnpike-system")
    assert not can_i(crds, "list", "clusterroles.rbac.authorization.k8s.io", None)


def test_subject_access_review_names_its_subject(crds):
    install(crds, {"watchNamespaces": ["team-a"]}, ["turnpike-system", "team-a"])

    def review(user: str, groups: list[str], namespace: str) -> dict:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {"verb": "watch", "resource": "secrets", "namespace": namespace},
            },
        }
        code, out = crds.raw("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json.dumps(body))
        assert code == 201, out
        return out["status"]

    assert review(SA, [], "team-a")["allowed"] is True
    assert review(SA, [], "kube-system")["allowed"] is False
    assert review("alice", [], "team-a")["allowed"] is False
    assert review("alice", ["system:masters"], "kube-system")["allowed"] is True
