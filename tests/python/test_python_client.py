"""The Python `kubernetes` client (PyPI) against `turnpike local`."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import FIXTURES

G, V = "turnpike.dev", "v1alpha1"


def restapi(name: str, labels: dict | None = None) -> dict:
    doc = yaml.safe_load((FIXTURES / "restapi.yaml").read_text())
    doc["metadata"] = {"name": name, "labels": labels or {}}
    return doc


def test_custom_object_crud(crds):
    api = client.CustomObjectsApi(crds.api_client())
    created = api.create_namespaced_custom_object(G, V, "default", "restapis", restapi("a", {"team": "x"}))
    assert created["metadata"]["generation"] == 1
    api.create_namespaced_custom_object(G, V, "default", "restapis", restapi("b", {"team": "y"}))
    got = api.get_namespaced_custom_object(G, V, "default", "restapis", "a")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = api.list_namespaced_custom_object(G, V, "default", "restapis", label_selector="team=x")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    patched = api.patch_namespaced_custom_object(G, V, "default", "restapis", "a", {"spec": {"description": "p"}})
    assert patched["spec"]["description"] == "p" and patched["metadata"]["generation"] == 2
    got["spec"]["description"] = "replaced"
    got["metadata"]["resourceVersion"] = patched["metadata"]["resourceVersion"]
    replaced = api.replace_namespaced_custom_object(G, V, "default", "restapis", "a", got)
    assert replaced["spec"]["description"] == "replaced"
    status = api.patch_namespaced_custom_object_status(
        G, V, "default", "restapis", "a", {"status": {"apiId": "abcdefghij"}})
    assert status["status"]["apiId"] == "abcdefghij"
    # A stale resourceVersion is a 409 Conflict.
    with pytest.raises(ApiException) as e:
        api.replace_namespaced_custom_object(G, V, "default", "restapis", "a", got)
    assert e.value.status == 409
    api.delete_namespaced_custom_object(G, V, "default", "restapis", "a")
    with pytest.raises(ApiException) as e:
        api.get_namespaced_custom_object(G, V, "default", "restapis", "a")
    assert e.value.status == 404
    assert len(api.list_cluster_custom_object(G, V, "restapis")["items"]) == 1


def test_core_api(server):
    core = client.CoreV1Api(server.api_client())
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1", labels={"a": "b"}), data={"k": "v"})
    core.create_namespaced_config_map("default", cm)
    got = core.read_namespaced_config_map("c1", "default")
    assert got.data == {"k": "v"}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", cm)
    assert e.value.status == 409
    sec = client.V1Secret(metadata=client.V1ObjectMeta(name="s1"), string_data={"password": "x"})
    core.create_namespaced_secret("default", sec)
    core.delete_collection_namespaced_config_map("default", label_selector="a=b")
    assert core.list_namespaced_config_map("default").items == []


def test_watch_stream_sees_every_event(crds):
    api = client.CustomObjectsApi(crds.api_client())
    n = 10
    start_rv = api.list_namespaced_custom_object(G, V, "default", "restapis")["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []
    done = threading.Event()

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(api.list_namespaced_custom_object, G, V, "default", "restapis",
                           resource_version=start_rv, timeout_seconds=20):
            events.append((ev["type"], ev["object"]["metadata"]["name"]))
            if len(events) >= 3 * n:
                w.stop()
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(0.5)
    for i in range(n):
        api.create_namespaced_custom_object(G, V, "default", "restapis", restapi(f"w{i}"))
    for i in range(n):
        api.patch_namespaced_custom_object(G, V, "default", "restapis", f"w{i}", {"spec": {"description": "m"}})
    for i in range(n):
        api.delete_namespaced_custom_object(G, V, "default", "restapis", f"w{i}")
    assert done.wait(20), f"watch saw only {len(events)} events"
    expected = ([("ADDED", f"w{i}") for i in range(n)] + [("MODIFIED", f"w{i}") for i in range(n)]
                + [("DELETED", f"w{i}") for i in range(n)])
    assert events == expected
