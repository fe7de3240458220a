"""The Helm v4 SDK (`helm-python-sdk`, libhelm_c) against `turnpike local`: install, upgrade and
uninstall of a small chart (configmap, secret, service, deployment). Release records live in
Secrets, which Helm's storage writes as protobuf."""

from __future__ import annotations

import json

import helm_python as helm

from conftest import CHART


def test_install_upgrade_uninstall(server):
    with helm.Config(kubeconfig_path=str(server.kubeconfig), namespace="default") as cfg:
        rel = cfg.install(str(CHART), "demo", {"greeting": "hi"}, timeout=30)
        assert rel["status"] == "deployed" and rel["revision"] == 1
        cm = json.loads(server.kubectl("get", "configmap", "demo-config", "-o", "json").stdout)
        assert cm["data"] == {"greeting": "hi"}
        for kind, name in [("secret", "demo-secret"), ("service", "demo-svc"), ("deployment", "demo-web")]:
            server.kubectl("get", kind, name)
        secret = json.loads(server.kubectl("get", "secret", "demo-secret", "-o", "json").stdout)
        assert secret["data"] == {"password": "bm90LWEtcmVhbC1wYXNzd29yZA=="}, "stringData is folded into data"
        assert "stringData" not in secret

        rel = cfg.upgrade(str(CHART), "demo", {"greeting": "bye", "replicaCount": 2}, timeout=30)
        assert rel["status"] == "deployed" and rel["revision"] == 2
        cm = json.loads(server.kubectl("get", "configmap", "demo-config", "-o", "json").stdout)
        assert cm["data"] == {"greeting": "bye"}
        dep = json.loads(server.kubectl("get", "deployment", "demo-web", "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 2
        assert [r["revision"] for r in cfg.history("demo")] == [1, 2]
        assert [r["name"] for r in cfg.list()] == ["demo"]

        cfg.uninstall("demo", timeout=30)
        for kind, name in [("configmap", "demo-config"), ("secret", "demo-secret"),
                           ("service", "demo-svc"), ("deployment", "demo-web")]:
            res = server.kubectl("get", kind, name, check=False)
            assert res.returncode != 0 and "NotFound" in res.stderr
        assert cfg.list(all_states=True) == []
        releases = server.kubectl("get", "secrets", "-l", "owner=helm", "-o", "name").stdout.split()
        assert releases == []
