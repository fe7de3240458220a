"""Durability: every acknowledged write survives `kill -9`; resourceVersions continue upward
after a restart; concurrent writers are safe."""

from __future__ import annotations

import signal
import threading
import time

from kubernetes import client

from conftest import FIXTURES, Server


def test_kill_9_keeps_every_acknowledged_write(tmp_path):
    s = Server(tmp_path / "data", tmp_path)
    s.start()
    try:
        acked: dict[str, int] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def writer(t: int) -> None:
            core = client.CoreV1Api(s.api_client())
            i = 0
            while not stop.is_set() and i < 2000:
                name = f"t{t}-{i}"
                body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"i": str(i)})
                try:
                    r = core.create_namespaced_config_map("default", body, _request_timeout=5)
                except Exception:  # the server was killed mid-request: not acknowledged
                    return
                with lock:
                    acked[name] = int(r.metadata.resource_version)
                i += 1

        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
        for t in threads:
            t.start()
        # Kill once the writers have made progress (bounded: a loaded machine may be slow).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= 50:
                    break
            time.sleep(0.05)
        s.kill(signal.SIGKILL)  # while the writers are still writing
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert len(acked) > 10, "writers made progress before the kill"

        s.start()
        core = client.CoreV1Api(s.api_client())
        stored = {c.metadata.name: int(c.metadata.resource_version)
                  for c in core.list_namespaced_config_map("default").items}
        missing = sorted(set(acked) - set(stored))
        assert not missing, f"acknowledged but lost: {missing[:10]}"
        for name, rv in acked.items():
            assert stored[name] == rv
        # Every acknowledged rv is distinct (one global counter, no lost updates).
        assert len(set(acked.values())) == len(acked)
        new = core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after"), data={}))
        assert int(new.metadata.resource_version) > max(stored.values())
    finally:
        s.kill()


def test_restart_keeps_crds_and_custom_objects(crds):
    crds.kubectl("apply", "-f", str(FIXTURES / "restapi.yaml"))
    before = crds.kubectl("get", "restapi", "petstore", "-o", "jsonpath={.metadata.uid} {.metadata.resourceVersion}").stdout
    crds.kill(signal.SIGKILL)
    crds.start()
    after = crds.kubectl("get", "restapi", "petstore", "-o", "jsonpath={.metadata.uid} {.metadata.resourceVersion}").stdout
    assert before == after
    crds.kubectl("apply", "-f", str(FIXTURES / "stage.yaml"))
    assert "CANARY%" in crds.kubectl("get", "stages").stdout
