"""kubectl (v1.32 on PATH) against `turnpike local`."""

from __future__ import annotations

import json
import time

import yaml

from conftest import FIXTURES

KINDS = ["restapi", "deployment", "stage", "usageplan", "apikey"]


def apply_fixtures(server) -> None:
    for k in KINDS:
        server.kubectl("apply", "-f", str(FIXTURES / f"{k}.yaml"))


def test_version_and_discovery(server):
    out = server.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"].startswith("v1.")
    res = server.kubectl("api-resources").stdout
    for name in ["configmaps", "deployments", "leases", "customresourcedefinitions", "endpointslices"]:
        assert name in res
    ns = server.kubectl("get", "ns", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(ns)


def test_apply_get_printer_columns_categories_short_names(crds):
    apply_fixtures(crds)
    out = crds.kubectl("get", "stages").stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "API", "STAGE", "DEPLOYMENT", "CANARY%", "URL", "READY"]
    # DEPLOYMENT, URL and READY come from the (empty) status.
    assert out.splitlines()[1].split() == ["petstore-prod", "petstore", "prod", "10"]
    everything = crds.kubectl("get", "turnpike").stdout
    for name in ["restapi.turnpike.dev/petstore", "deployment.turnpike.dev/petstore-v1",
                 "stage.turnpike.dev/petstore-prod", "usageplan.turnpike.dev/gold", "apikey.turnpike.dev/acme"]:
        assert name in everything
    assert "petstore-v1" in crds.kubectl("get", "apideploy").stdout
    # `deployments` still means apps/v1.
    res = crds.kubectl("get", "deployments")
    assert "petstore-v1" not in res.stdout
    assert "No resources found" in res.stderr
    assert "REGIONAL" in crds.kubectl("get", "rapi").stdout


def test_get_yaml(crds):
    apply_fixtures(crds)
    obj = yaml.safe_load(crds.kubectl("get", "restapi", "petstore", "-o", "yaml").stdout)
    assert obj["metadata"]["uid"]
    assert int(obj["metadata"]["resourceVersion"]) > 0
    assert obj["metadata"]["generation"] == 1
    assert obj["spec"]["endpointConfiguration"]["types"] == ["REGIONAL"]
    assert obj["spec"]["resources"]["/pets"]["GET"]["integration"]["type"] == "HTTP_PROXY"


def test_patch_merge_and_json(crds):
    apply_fixtures(crds)
    crds.kubectl("patch", "stage", "petstore-prod", "--type", "merge",
                 "-p", '{"spec":{"canarySettings":{"percentTraffic":25}}}')
    crds.kubectl("patch", "stage", "petstore-prod", "--type", "json",
                 "-p", '[{"op":"replace","path":"/spec/throttle/rateLimit","value":300}]')
    obj = json.loads(crds.kubectl("get", "stage", "petstore-prod", "-o", "json").stdout)
    assert obj["spec"]["canarySettings"]["percentTraffic"] == 25
    assert obj["spec"]["throttle"]["rateLimit"] == 300
    assert obj["metadata"]["generation"] == 3
    bad = crds.kubectl("patch", "stage", "petstore-prod", "--type", "merge",
                       "-p", '{"spec":{"canarySettings":{"percentTraffic":150}}}', check=False)
    assert bad.returncode != 0
    assert ("spec.canarySettings.percentTraffic: Invalid value: 150: spec.canarySettings.percentTraffic "
            "in body should be less than or equal to 100") in bad.stderr


def test_second_apply_is_a_three_way_merge(crds):
    apply_fixtures(crds)
    doc = yaml.safe_load((FIXTURES / "stage.yaml").read_text())
    doc["spec"]["throttle"]["rateLimit"] = 150
    del doc["spec"]["variables"]
    out = crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc)).stdout
    assert "configured" in out
    obj = json.loads(crds.kubectl("get", "stage", "petstore-prod", "-o", "json").stdout)
    assert obj["spec"]["throttle"]["rateLimit"] == 150
    assert "variables" not in obj["spec"], "a field removed from the config is removed"
    assert obj["metadata"]["generation"] == 2
    assert "unchanged" in crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc)).stdout


def test_builtin_apply_twice_uses_strategic_merge(server):
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]}]}}},
    }
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump(dep))
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    dep["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    assert "configured" in server.kubectl("apply", "-f", "-", input=yaml.safe_dump(dep)).stdout
    got = json.loads(server.kubectl("get", "deployment", "web", "-o", "json").stdout)
    cs = got["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["web", "side"]
    assert cs[0]["image"] == "nginx:2" and cs[0]["env"] == [{"name": "A", "value": "1"}]
    server.kubectl("label", "deployment", "web", "tier=fe")
    assert json.loads(server.kubectl("get", "deploy", "web", "-o", "json").stdout)["metadata"]["labels"] == {"tier": "fe"}


def test_server_side_apply_and_conflicts(crds):
    assert "serverside-applied" in crds.kubectl("apply", "--server-side", "-f", str(FIXTURES / "usageplan.yaml")).stdout
    doc = yaml.safe_load((FIXTURES / "usageplan.yaml").read_text())
    doc["spec"]["quota"]["limit"] = 5
    res = crds.kubectl("apply", "--server-side", "--field-manager", "other", "-f", "-",
                       input=yaml.safe_dump(doc), check=False)
    assert res.returncode != 0
    assert "conflict" in res.stderr.lower() and ".spec.quota.limit" in res.stderr
    crds.kubectl("apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", "-",
                 input=yaml.safe_dump(doc))
    obj = json.loads(crds.kubectl("get", "usageplan", "gold", "-o", "json", "--show-managed-fields").stdout)
    assert obj["spec"]["quota"]["limit"] == 5
    managers = {m["manager"] for m in obj["metadata"]["managedFields"]}
    assert {"kubectl", "other"} <= managers


def test_explain(crds):
    out = crds.kubectl("explain", "stage.spec.canarySettings").stdout
    assert "percentTraffic" in out and "KIND:       Stage" in out
    out = crds.kubectl("explain", "restapi.spec.endpointConfiguration.types").stdout
    assert "FIELD: types" in out


def test_unknown_fields_are_rejected_by_strict_validation(crds):
    doc = yaml.safe_load((FIXTURES / "restapi.yaml").read_text())
    doc["spec"]["bogus"] = 1
    res = crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert res.returncode != 0
    assert 'unknown field "spec.bogus"' in res.stderr


def test_status_subresource_and_wait(crds):
    apply_fixtures(crds)
    cond = {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}
    # The main endpoint ignores status...
    crds.kubectl("patch", "restapi", "petstore", "--type", "merge", "-p",
                 json.dumps({"status": {"apiId": "ignored"}}))
    obj = json.loads(crds.kubectl("get", "restapi", "petstore", "-o", "json").stdout)
    assert "status" not in obj or "apiId" not in obj.get("status", {})
    # ...the status endpoint changes only status, without a generation bump.
    crds.kubectl("patch", "restapi", "petstore", "--subresource", "status", "--type", "merge", "-p",
                 json.dumps({"status": {"apiId": "a1b2c3d4e5", "conditions": [cond]}, "spec": {"description": "no"}}))
    obj = json.loads(crds.kubectl("get", "restapi", "petstore", "-o", "json").stdout)
    assert obj["status"]["apiId"] == "a1b2c3d4e5"
    assert obj["spec"]["description"] == "The pet store API"
    assert obj["metadata"]["generation"] == 1
    crds.kubectl("wait", "--for=condition=Ready", "restapi/petstore", "--timeout=10s")
    out = crds.kubectl("get", "restapi", "petstore").stdout
    assert "a1b2c3d4e5" in out and "True" in out


def test_watch_sees_added_modified_deleted(crds):
    proc = crds.kubectl_popen("get", "stages", "--watch", "--output-watch-events", "--request-timeout=20s")
    try:
        time.sleep(1.0)
        crds.kubectl("apply", "-f", str(FIXTURES / "stage.yaml"))
        crds.kubectl("patch", "stage", "petstore-prod", "--type", "merge", "-p", '{"spec":{"description":"w"}}')
        crds.kubectl("delete", "stage", "petstore-prod")
        seen: list[str] = []
        deadline = time.monotonic() + 15
        assert proc.stdout is not None
        while "DELETED" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "petstore-prod" in line:
                seen.append(line.split()[0])
        assert seen[:3] == ["ADDED", "MODIFIED", "DELETED"], seen
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_delete(crds):
    apply_fixtures(crds)
    out = crds.kubectl("delete", "-f", str(FIXTURES / "apikey.yaml")).stdout
    assert 'apikey.turnpike.dev "acme" deleted' in out
    res = crds.kubectl("get", "apikey", "acme", check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr
    crds.kubectl("delete", "crd", "stages.turnpike.dev")
    res = crds.kubectl("get", "stages", check=False)
    assert res.returncode != 0


def test_describe_diff_and_dry_run(crds):
    apply_fixtures(crds)
    out = crds.kubectl("describe", "stage", "petstore-prod").stdout
    assert "Name:" in out and "petstore-prod" in out
    doc = yaml.safe_load((FIXTURES / "stage.yaml").read_text())
    doc["spec"]["stageName"] = "prod"
    doc["spec"]["throttle"]["rateLimit"] = 7
    res = crds.kubectl("diff", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert res.returncode == 1, res.stderr  # 1 = differences found
    assert "rateLimit: 7" in res.stdout
    crds.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc))
    obj = json.loads(crds.kubectl("get", "stage", "petstore-prod", "-o", "json").stdout)
    assert obj["spec"]["throttle"]["rateLimit"] == 100, "dry run stored nothing"


def test_local_apply_flag(tmp_path):
    from conftest import CRDS, Server

    s = Server(tmp_path / "data", tmp_path, ["--apply", str(CRDS), "--apply", str(FIXTURES / "restapi.yaml")])
    s.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            res = s.kubectl("get", "restapi", "petstore", check=False)
            if res.returncode == 0:
                break
            time.sleep(0.2)
        assert "REGIONAL" in res.stdout
    finally:
        s.kill()


def test_imperative_create_of_protobuf_kinds(server):
    # kubectl's typed clients send these as protobuf.
    server.kubectl("create", "namespace", "demo")
    server.kubectl("-n", "demo", "create", "serviceaccount", "bot")
    server.kubectl("-n", "demo", "create", "configmap", "c", "--from-literal=a=b")
    server.kubectl("-n", "demo", "create", "secret", "generic", "s", "--from-literal=p=q")
    ns = json.loads(server.kubectl("get", "ns", "demo", "-o", "json").stdout)
    assert ns["status"]["phase"] == "Active" and "generateName" not in ns["metadata"]
    secret = json.loads(server.kubectl("-n", "demo", "get", "secret", "s", "-o", "json").stdout)
    assert secret["data"] == {"p": "cQ=="}
    server.kubectl("delete", "namespace", "demo", "--timeout=15s")
    res = server.kubectl("get", "ns", "demo", check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr
