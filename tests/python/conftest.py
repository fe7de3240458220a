"""Fixtures for testing `turnpike local` with real clients (kubectl, the Python `kubernetes`
client, the Helm SDK).

Each test gets its own server: `$TURNPIKE_BIN local --apiserver-only --data-dir <tmp>
--apiserver-addr 127.0.0.1:0` (the API server alone: these tests pin its semantics, and no
controller may touch their objects) (TURNPIKE_BIN defaults to target/debug/turnpike), started as a subprocess and
considered up once `<tmp>/kubeconfig` exists. Every wait is bounded; the process is killed at
the end of the test.

Environment: TURNPIKE_BIN (the binary), KUBECTL (default `kubectl`, e.g.
/usr/lib/google-cloud-sdk/bin/kubectl.1.32 to pin a version).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import ssl
import subprocess
import time
import http.client

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TURNPIKE_BIN", str(REPO / "target" / "debug" / "turnpike"))
FIXTURES = REPO / "tests" / "apiserver" / "fixtures"
CRDS = REPO / "crds"
CHART = REPO / "tests" / "charts" / "tp-test"
START_TIMEOUT = 20.0
#: The kubectl to run (the gcloud dispatcher on PATH picks a version matching the server's).
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def wait_for(what, fn, deadline=30.0):
    """Polls `fn` every 100 ms until it returns something true (returned), at most `deadline`
    seconds."""
    end = time.monotonic() + deadline
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Server:
    """One `turnpike local` process over a data directory."""

    def __init__(self, data_dir: pathlib.Path, work: pathlib.Path, extra_args: list[str] | None = None) -> None:
        self.extra_args = extra_args or []
        self.data_dir = data_dir
        self.work = work
        self.kubeconfig = data_dir / "kubeconfig"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "server.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kubeconfig.exists():
            self.kubeconfig.unlink()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [BIN, "local", "--apiserver-only", "--data-dir", str(self.data_dir), "--apiserver-addr", "127.0.0.1:0", *self.extra_args],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.kubeconfig.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnpike exited early: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no kubeconfig after {START_TIMEOUT}s: {self.log.read_text()}")
            time.sleep(0.05)
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        self.server_url = cfg["clusters"][0]["cluster"]["server"]
        self.token = cfg["users"][0]["user"]["token"]
        self.ca_file = self.work / "ca.crt"
        import base64

        self.ca_file.write_bytes(base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.work / "kcache"), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def kubectl_popen(self, *args: str) -> subprocess.Popen[str]:
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.work / "kcache"), *args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def raw(
        self,
        method: str,
        path: str,
        body: str | bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        token: bool = True,
    ) -> tuple[int, dict]:
        """A raw HTTPS request; returns (status, decoded JSON body or {})."""
        host, port = self.server_url.removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
        headers = {"Content-Type": content_type, "Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, {}


@pytest.fixture
def server(tmp_path: pathlib.Path):
    s = Server(tmp_path / "data", tmp_path)
    s.start()
    yield s
    s.kill()


@pytest.fixture
def crds(server: Server) -> Server:
    server.kubectl("apply", "-f", str(CRDS))
    server.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=10s")
    return server
