"""Usage plans and API keys against real processes: the embedded API server (`turnpike local
--apiserver-only`), `turnpike run` gateways reaching it through its kubeconfig as they would a
cluster, a real `redis-server`, and kubectl.

- quota: three gateway processes on one Redis, clients spread over them with one key, then
  leaving one gateway idle: admitted <= quota and >= 99% of it; the usage summary in status
  (`kubectl get usageplans,apikeys` columns) and `/usage` read the shared counters;
- key rotation through the Secret without a restart, and a generated key Secret end to end;
- membership by label (a UsagePlan's apiKeySelector), following label changes;
  the usage summary of a single gateway without Redis;
- without Redis, two gateways count each other through their Leases and each enforces half
  of a quota; once one stops, the other enforces all of it.

Every port is chosen by the OS on 127.0.0.1; every wait is bounded; processes are killed at
the end. Needs `redis-server` (tests/setup.sh installs it).
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import BIN, Server, wait_for

NS = "default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A `redis-server` on a free loopback port, without persistence."""

    def __init__(self, work: pathlib.Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for("redis PONG", self.ping, 10)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


class Gateway:
    """One `turnpike run` process against the API server's kubeconfig."""

    def __init__(self, server: Server, work: pathlib.Path, name: str, *args: str) -> None:
        self.name = name
        self.addresses = work / f"{name}.json"
        self.log_path = work / f"{name}.log"
        log = open(self.log_path, "wb")
        env = dict(
            os.environ,
            KUBECONFIG=str(server.kubeconfig),
            RUST_LOG="warn",
            TURNPIKE_USAGE_STATUS_INTERVAL_MS="500",
        )
        self.proc = subprocess.Popen(
            [
                BIN, "run",
                "--public-addr", "127.0.0.1:0",
                "--private-addr", "127.0.0.1:0",
                "--admin-addr", "127.0.0.1:0",
                "--addresses-file", str(self.addresses),
                "--identity", name,
                "--lease-namespace", NS,
                "--holdoff-ms", "50",
                *args,
            ],
            stdout=log, stderr=log, env=env,
        )
        log.close()
        addrs = wait_for(f"{name} addresses", self._addresses)
        self.public = addrs["public"]
        self.admin = addrs["admin"]

    def _addresses(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log_path.read_text()}")
        try:
            return json.loads(self.addresses.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def admin_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def readyz(self) -> str:
        status, body = self.admin_get("/readyz")
        return body if status == 200 else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Client:
    """Keep-alive HTTPS connections to gateways (the gateways' certificates are self-signed)."""

    def __init__(self) -> None:
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.conns: dict[str, http.client.HTTPSConnection] = {}

    def get(self, addr: str, path: str, key: str | None = None) -> tuple[int, str, dict]:
        headers = {"x-api-key": key} if key else {}
        for attempt in range(2):
            conn = self.conns.get(addr)
            if conn is None:
                host, port = addr.rsplit(":", 1)
                conn = http.client.HTTPSConnection(host, int(port), context=self.ctx, timeout=10)
                self.conns[addr] = conn
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read().decode()
                return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}
            except (OSError, http.client.HTTPException):
                conn.close()
                del self.conns[addr]
                if attempt:
                    raise
        raise AssertionError("unreachable")


def api_yaml(quota: str) -> str:
    """RestApi `shop` (MOCK `GET /q` with a key, `GET /open` without), its prod Stage, and the
    UsagePlan `metered` on it with `quota`."""
    mock = """        integration:
          type: MOCK
          requestTemplates: {application/json: '{"statusCode": 200}'}
          integrationResponses:
            - statusCode: "200"
              responseTemplates: {application/json: '{"ok": true}'}"""
    return f"""apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {{name: shop, namespace: {NS}}}
spec:
  resources:
    /q:
      GET:
        apiKeyRequired: true
{mock}
    /open:
      GET:
{mock}
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {{name: shop-v1, namespace: {NS}}}
spec: {{restApiRef: {{name: shop}}}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {{name: shop-prod, namespace: {NS}}}
spec: {{restApiRef: {{name: shop}}, stageName: prod, deploymentRef: {{name: shop-v1}}}}
---
apiVersion: turnpike.dev/v1alpha1
kind: UsagePlan
metadata: {{name: metered, namespace: {NS}}}
spec:
  apiStages: [{{restApiRef: {{name: shop}}, stage: prod}}]
{quota}
"""


def key_yaml(name: str, value: str | None) -> str:
    """ApiKey `name` in plan `metered`: its value in Secret `{name}-value`, or generated."""
    value_from = f"\n  valueFrom: {{secretKeyRef: {{name: {name}-value, key: value}}}}" if value else ""
    secret = (
        f"""---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-value, namespace: {NS}, labels: {{turnpike.dev/api-key: "true"}}}}
stringData: {{value: {value}}}
"""
        if value
        else ""
    )
    return f"""---
apiVersion: turnpike.dev/v1alpha1
kind: ApiKey
metadata: {{name: {name}, namespace: {NS}}}
spec:
  usagePlanRefs: [{{name: metered}}]{value_from}
{secret}"""


def apply(server: Server, yaml_text: str) -> None:
    server.kubectl("apply", "-f", "-", input=yaml_text)


def api_id(server: Server) -> str:
    return wait_for(
        "apiId of shop",
        lambda: server.kubectl("get", "restapi", "shop", "-n", NS, "-o", "jsonpath={.status.apiId}").stdout,
    )


def path(api: str, resource: str) -> str:
    return f"/restapis/{api}/prod/_user_request_{resource}"


def status_of(server: Server, what: str) -> dict:
    return json.loads(server.kubectl("get", what, "-n", NS, "-o", "json").stdout).get("status", {})


def table(out: str) -> dict[str, dict[str, str]]:
    """`kubectl get` output by row name and column (cells cut at the header's offsets: empty
    cells stay empty)."""
    lines = out.splitlines()
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    rows = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows[cells[0]] = dict(zip(names, cells))
    return rows


def assert_forbidden(answer) -> None:
    status, body, headers = answer
    assert status == 403, body
    assert json.loads(body) == {"message": "Forbidden"}
    assert headers.get("x-amzn-errortype") == "ForbiddenException"


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path)
    yield r
    r.stop()


@pytest.fixture
def gateways(crds):
    started: list[Gateway] = []
    yield started
    for g in started:
        g.stop(signal.SIGKILL)


def test_quota_is_exact_across_three_gateway_processes_on_one_redis(crds, redis, gateways, tmp_path):
    quota, key = 1000, "SharedKey0123456789abcdefg"
    apply(crds, api_yaml(f"  quota: {{limit: {quota}, period: DAY}}") + key_yaml("k", key))
    for i in range(3):
        gateways.append(
            Gateway(crds, tmp_path, f"gw{i}", "--redis-url", redis.url, "--redis-failure-mode", "closed")
        )
    api = api_id(crds)
    probe = Client()
    for g in gateways:
        wait_for(f"{g.name} shares limits", lambda: "limits: shared" in g.readyz())
        wait_for(f"{g.name} serves", lambda: probe.get(g.public, path(api, "/open"))[0] == 200)
        wait_for(f"{g.name} knows the key", lambda: probe.get(g.public, path(api, "/q"))[0] == 403)

    admitted = 0
    lock = threading.Lock()
    errors: list[str] = []
    # Phase 1: clients spread over all three gateways; phase 2 (after half the quota): the third
    # gateway is left idle, so what it leased must come back for the quota to be reached.
    half = threading.Event()

    def client(c: int) -> None:
        nonlocal admitted
        cl = Client()
        i, refused_since = c, None
        end = time.monotonic() + 60
        while time.monotonic() < end:
            targets = gateways[:2] if half.is_set() else gateways
            status, body, headers = cl.get(targets[i % len(targets)].public, path(api, "/q"), key)
            i += 1
            if status == 200:
                refused_since = None
                with lock:
                    admitted += 1
                    if admitted >= quota // 2:
                        half.set()
            elif status == 429:
                if body != '{"message":"Limit Exceeded"}' or headers.get("x-amzn-errortype") != "LimitExceededException":
                    errors.append(f"429: {body} {headers}")
                    return
                # Refused for 2 s: the idle gateway's slice (given back within 1 s) is used up.
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since > 2.0:
                    return
                time.sleep(0.02)
            else:
                errors.append(f"{status}: {body}")
                return

    day = time.gmtime().tm_yday
    threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    if time.gmtime().tm_yday != day:
        pytest.skip("the quota's day ended during the test: its count started again")
    assert not errors, errors
    assert admitted <= quota, f"admitted {admitted} of a quota of {quota}"
    assert admitted >= quota * 0.99, f"admitted {admitted}: under 99% of the quota of {quota}"

    # The leader's usage summary reads the shared counters: kubectl's columns show it.
    def summary():
        s = status_of(crds, "usageplan/metered").get("usage")
        return s if s and s["used"] >= admitted else None

    plan = wait_for("the plan's usage summary", summary)
    assert plan["period"] == "DAY"
    assert plan["used"] <= quota and plan["used"] + plan["remaining"] == quota, plan
    key_usage = wait_for("the key's usage summary", lambda: status_of(crds, "apikey/k").get("usage"))
    assert key_usage[0]["usagePlan"] == "metered"
    assert key_usage[0]["used"] >= admitted, key_usage
    # The columns show the summary the leader last wrote.
    plan = status_of(crds, "usageplan/metered")["usage"]
    out = crds.kubectl("get", "usageplans", "-n", NS).stdout
    row = table(out)["metered"]
    assert (row["USED"], row["REMAINING"]) == (str(plan["used"]), str(plan["remaining"])), out
    key_usage = status_of(crds, "apikey/k")["usage"]
    out = crds.kubectl("get", "apikeys", "-n", NS).stdout
    assert table(out)["k"]["USED"] == str(key_usage[0]["used"]), out

    # Any gateway reports every gateway's usage from Redis.
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    key_id = status_of(crds, "apikey/k")["keyId"]
    status, body = gateways[2].admin_get(f"/usage?usagePlan={NS}/metered&startDate={today}&endDate={today}")
    assert status == 200, body
    used, remaining = json.loads(body)["items"][key_id][0]
    assert admitted <= used <= quota and remaining == quota - used, body


def test_key_rotation_and_a_generated_key_without_restart(crds, gateways, tmp_path):
    old, new = "RotateOld0123456789abcdef", "RotateNew0123456789abcdef"
    apply(crds, api_yaml("  quota: {limit: 1000, period: MONTH}") + key_yaml("rot", old) + key_yaml("gen", None))
    gw = Gateway(crds, tmp_path, "gw", "--replicas", "1")
    gateways.append(gw)
    api = api_id(crds)
    cl = Client()
    wait_for("the key is admitted", lambda: cl.get(gw.public, path(api, "/q"), old)[0] == 200)
    assert_forbidden(cl.get(gw.public, path(api, "/q"), new))

    # Rotation: the Secret changes; the gateway (same process) refuses the old value.
    apply(crds, key_yaml("rot", new))
    wait_for("the new value is admitted", lambda: cl.get(gw.public, path(api, "/q"), new)[0] == 200)
    assert_forbidden(cl.get(gw.public, path(api, "/q"), old))
    assert gw.proc.poll() is None, "no restart"

    # A generated key: the value is in the Secret the leader created, readable with kubectl.
    encoded = wait_for(
        "the generated Secret",
        lambda: crds.kubectl("get", "secret", "gen-apikey", "-n", NS, "-o", "jsonpath={.data.value}", check=False).stdout,
    )
    generated = base64.b64decode(encoded).decode()
    assert len(generated) >= 20 and generated.isalnum()
    wait_for("the generated key is admitted", lambda: cl.get(gw.public, path(api, "/q"), generated)[0] == 200)
    secret = json.loads(crds.kubectl("get", "secret", "gen-apikey", "-n", NS, "-o", "json").stdout)
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "ApiKey"

    # The usage summary of one gateway without Redis: its own counters, exact.
    for _ in range(5):
        assert cl.get(gw.public, path(api, "/q"), new)[0] == 200

    def used(name, n):
        u = status_of(crds, f"apikey/{name}").get("usage")
        return u if u and u[0]["used"] == n else None

    # rot: one request with the old value, one with the new while waiting, five more.
    rot = wait_for("rot's usage summary", lambda: used("rot", 7))
    assert rot[0]["remaining"] == 993 and rot[0]["period"] == "MONTH", rot
    wait_for("gen's usage summary", lambda: used("gen", 1))
    out = crds.kubectl("get", "apikeys", "-n", NS).stdout
    row = table(out)["rot"]
    assert (row["USED"], row["REMAINING"]) == ("7", "993"), out
    plan = wait_for(
        "the plan's usage summary",
        lambda: (s := status_of(crds, "usageplan/metered").get("usage")) and s["used"] == 8 and s,
    )
    # The plan: both keys (rot 7, gen 1), each with 1000 a month.
    assert plan["remaining"] == 2 * 1000 - 8, plan


def test_a_plan_takes_in_keys_by_label_and_follows_label_changes(crds, gateways, tmp_path):
    key = "LabelledKey0123456789abcd"
    selector = "  quota: {limit: 1000, period: MONTH}\n  apiKeySelector: {matchLabels: {tier: gold}}"
    unplanned = key_yaml("sel", key).replace("usagePlanRefs: [{name: metered}]", "usagePlanRefs: []")
    apply(crds, api_yaml(selector) + unplanned)
    gw = Gateway(crds, tmp_path, "gw", "--replicas", "1")
    gateways.append(gw)
    api = api_id(crds)
    cl = Client()
    wait_for("the stage is served", lambda: cl.get(gw.public, path(api, "/open"))[0] == 200)
    assert_forbidden(cl.get(gw.public, path(api, "/q"), key))

    # A label is metadata (no new generation): the change alone brings the key into the plan.
    crds.kubectl("label", "apikey", "sel", "-n", NS, "tier=gold")
    wait_for("the labelled key is admitted", lambda: cl.get(gw.public, path(api, "/q"), key)[0] == 200)
    wait_for("the plan counts it", lambda: status_of(crds, "usageplan/metered").get("apiKeyCount") == 1)
    crds.kubectl("label", "apikey", "sel", "-n", NS, "tier-")
    wait_for("the unlabelled key is refused", lambda: cl.get(gw.public, path(api, "/q"), key)[0] == 403)
    assert gw.proc.poll() is None, "no restart"


def test_without_redis_replicas_count_each_other_through_leases(crds, gateways, tmp_path):
    key = "HalvesKey0123456789abcdef"
    apply(crds, api_yaml("  quota: {limit: 20, period: DAY}") + key_yaml("k", key))
    a = Gateway(crds, tmp_path, "gw-a")
    b = Gateway(crds, tmp_path, "gw-b")
    gateways.extend([a, b])
    for g in (a, b):
        wait_for(f"{g.name} counts two replicas", lambda: "replicas: 2" in g.readyz())
    api = api_id(crds)
    cl = Client()
    wait_for("the key is known", lambda: cl.get(a.public, path(api, "/q"))[0] == 403)

    def drain(g: Gateway) -> int:
        n = 0
        for _ in range(100):
            status, body, headers = cl.get(g.public, path(api, "/q"), key)
            if status == 403:
                continue  # the key is not in this gateway's table yet
            if status == 429:
                assert body == '{"message":"Limit Exceeded"}', body
                return n
            assert status == 200, body
            n += 1
        raise AssertionError("never refused")

    # The quota's window is the UTC day: a test that runs across midnight sees its counts start
    # again, and cannot tell what was enforced.
    day = time.gmtime().tm_yday
    halves = drain(a)
    b.stop()
    wait_for("gw-a counts one replica", lambda: "replicas: 1" in a.readyz())
    whole = drain(a)
    if time.gmtime().tm_yday != day:
        pytest.skip("the quota's day ended during the test")
    assert halves == 10, "each of two replicas enforces half of the quota"
    assert whole == 10, "alone, a replica enforces the whole quota (10 used already)"
