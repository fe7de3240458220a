"""`turnpike local` as users run it: embedded API server + controller + proxy in one process,
`-f config/examples` applied at start through the API, then kubectl and the Python client read
what the controller wrote and the gateway answers on the invoke URL from status.

Every port is chosen by the OS on 127.0.0.1 (`gateway.json` in the data dir names the
listeners); every wait is bounded; the process is killed at the end.
"""

from __future__ import annotations

import json
import os
import pathlib
import ssl
import subprocess
import urllib.request

import pytest
import yaml
from kubernetes import client, config

from conftest import wait_for

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TURNPIKE_BIN", str(REPO / "target" / "debug" / "turnpike"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")


@pytest.fixture
def local(tmp_path):
    data = tmp_path / "data"
    log = open(tmp_path / "turnpike.log", "wb")
    proc = subprocess.Popen(
        [
            BIN, "local",
            "--data-dir", str(data),
            "--apiserver-addr", "127.0.0.1:0",
            "--public-addr", "127.0.0.1:0",
            "--private-addr", "127.0.0.1:0",
            "--admin-addr", "127.0.0.1:0",
            "-f", str(REPO / "config" / "examples"),
        ],
        stdout=log,
        stderr=log,
        env=dict(os.environ, RUST_LOG="info,turnpike::access_log=off"),
    )

    def gateway():
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "turnpike.log").read_text())
        try:
            return json.loads((data / "gateway.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    try:
        addrs = wait_for("gateway.json", gateway)
        yield data / "kubeconfig", addrs
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


def kubectl(kubeconfig, *args):
    res = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, f"kubectl {args}: {res.stderr}"
    return res.stdout


def https_get(url):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_samples_ready_and_served_through_the_invoke_url(local):
    kubeconfig, addrs = local
    kubectl(
        kubeconfig, "wait", "--for=condition=Ready",
        "restapis,apideploy,stages,usageplans,apikeys", "--all", "-n", "default", "--timeout=30s",
    )
    # The Python client reads the status the controller wrote.
    config.load_kube_config(config_file=str(kubeconfig))
    api = client.CustomObjectsApi()
    stage = api.get_namespaced_custom_object("turnpike.dev", "v1alpha1", "default", "stages", "petstore-prod")
    url = stage["status"]["invokeUrl"]
    assert url.startswith(f"https://{addrs['public']}/restapis/"), url
    assert url.endswith("/prod/_user_request_/"), url
    ready = next(c for c in stage["status"]["conditions"] if c["type"] == "Ready")
    assert ready["observedGeneration"] == stage["metadata"]["generation"]
    assert ready["lastTransitionTime"]

    status, body = https_get(url + "ping")
    assert status == 200, body
    assert json.loads(body) == {"pong": True}

    # Unknown paths answer like AWS.
    status, body = https_get(url + "nope")
    assert status == 403, body
    assert json.loads(body) == {"message": "Missing Authentication Token"}

    # The admin listener: ready once a table is published; controller metrics present.
    with urllib.request.urlopen(f"http://{addrs['admin']}/readyz", timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://{addrs['admin']}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert "turnpike_controller_leader 1" in text

    # Printer columns read the status: the URL column is filled.
    out = kubectl(kubeconfig, "get", "stages", "-n", "default")
    assert url in out, out

    # Rollback-style edit through kubectl: a stage pointed at a missing Deployment says so.
    kubectl(kubeconfig, "patch", "stage", "petstore-prod", "-n", "default", "--type=merge",
            "-p", '{"spec":{"deploymentRef":{"name":"missing"}}}')

    def reason():
        obj = yaml.safe_load(kubectl(kubeconfig, "get", "stage", "petstore-prod", "-n", "default", "-o", "yaml"))
        conds = {c["type"]: c for c in obj["status"]["conditions"]}
        return conds["ResolvedRefs"]["reason"] if conds["ResolvedRefs"]["status"] == "False" else None

    assert wait_for("DeploymentNotFound", reason) == "DeploymentNotFound"
