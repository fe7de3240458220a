#!/usr/bin/env python3
"""10,000 API keys on `turnpike local`: how long until every key is served, what the controller
spends compiling the table, and the process's memory.

Starts the embedded API server alone (`turnpike local --apiserver-only`) and one gateway
(`turnpike run`: controller + proxy) against its kubeconfig, as in a cluster, every port chosen
by the OS on 127.0.0.1; installs the CRDs; applies one RestApi with a keyed MOCK method, its Stage and one UsagePlan,
then creates N labelled Secrets + N ApiKeys in the plan with W concurrent `kubectl create`
writers. Reports:

- the time from the last create returning until every writer's last key is admitted (200
  with its value) and the controller holds all N Secrets (`turnpike_controller_cached_secrets`);
- the controller's compile time for the full table: the `took` of the last "routing table
  published" (world + compile + publish, Secret reads excluded) and the mean of
  `turnpike_controller_rebuild_seconds` (Secret reads included);
- how many Events the first gateway published (a key not Ready until its Secret is read,
  then Ready: how often depends on how the creates race the Secret watch);
- the compile time of the whole table once every key is served: EDITS (default 10) Stage
  edits, one rebuild each, median and max;
- the RSS of the gateway process (controller + proxy, not the API server) before the keys and
  after (VmRSS), and per key; after the edits, from /proc/PID/smaps_rollup, how much of it is
  anonymous memory and how much is freed memory the allocator has not handed back yet
  (LazyFree: counted in RSS until the kernel needs it);
- the same for the anonymous memory alone (smaps_rollup `Anonymous`: the heap the allocator
  took from the kernel, with its free pages and size-class rounding): RSS also counts the
  binary's code pages, file-backed and shared with every process running it, which grow with
  the code that has run rather than with the keys; and both once settled: the readings after
  the creates and after the edits may land while the writes the creates caused still run (a
  status per key, then each key's first usage summary), so the first gateway is read again
  once the last key's first summary is written, every 2 s for 40 s, the last reading kept;
- then the first gateway is stopped and a new one started with every key there: how long
  until it serves them all, and its RSS and anonymous memory over the first one's base (what
  the keys hold, without the churn of their creation), read once its first usage summaries
  round (every 30 s) has written every key's summary.

The gateways run with the allocator settings the image sets (the Dockerfile's `ENV
MIMALLOC_*`), unless the environment sets them.

Usage: benches/scale/api_keys.py [keys=10000] [writers=8]
Needs: target/release/turnpike (or $TURNPIKE_BIN), kubectl. Run from the repository root.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TURNPIKE_BIN", str(ROOT / "target" / "release" / "turnpike"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")
NS = "default"
# The allocator settings of the image (the Dockerfile's ENV: why there).
MIMALLOC_ENV = dict(
    pair.split("=", 1)
    for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ENV MIMALLOC_")
    for pair in line.split()[1:]
)
# Stage edits after every key is served, each timed as one rebuild of the whole table.
EDITS = int(os.environ.get("EDITS", "10"))


def wait_for(what, fn, deadline=120.0, every=0.05):
    end = time.monotonic() + deadline
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def settle(pid: int, what: str, ready) -> list[int]:
    """Once `ready()`, the anonymous memory of `pid` every 2 s for 40 s (a usage summaries
    round starts 30 s after the last one ended, and holds every summary until its last write
    returns)."""
    wait_for(what, ready, deadline=180, every=1.0)
    samples = []
    for _ in range(20):
        time.sleep(2)
        samples.append(smaps_kib(pid)["Anonymous"])
    return samples


def smaps_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def value(i: int) -> str:
    return f"ScaleKey{i:08d}abcdefghijkl"


def key_docs(i: int) -> str:
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: key-{i}, namespace: {NS}, labels: {{turnpike.dev/api-key: "true"}}}}
stringData: {{value: {value(i)}}}
---
apiVersion: turnpike.dev/v1alpha1
kind: ApiKey
metadata: {{name: key-{i}, namespace: {NS}}}
spec:
  valueFrom: {{secretKeyRef: {{name: key-{i}, key: value}}}}
  usagePlanRefs: [{{name: plan}}]
"""


BASE = f"""apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {{name: scale, namespace: {NS}}}
spec:
  resources:
    /k:
      GET:
        apiKeyRequired: true
        integration:
          type: MOCK
          requestTemplates: {{application/json: '{{"statusCode": 200}}'}}
          integrationResponses: [{{statusCode: "200"}}]
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {{name: scale-v1, namespace: {NS}}}
spec: {{restApiRef: {{name: scale}}}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {{name: scale-prod, namespace: {NS}}}
spec: {{restApiRef: {{name: scale}}, stageName: prod, deploymentRef: {{name: scale-v1}}}}
---
apiVersion: turnpike.dev/v1alpha1
kind: UsagePlan
metadata: {{name: plan, namespace: {NS}}}
spec:
  apiStages: [{{restApiRef: {{name: scale}}, stage: prod}}]
  throttle: {{rateLimit: 1000, burstLimit: 100}}
  quota: {{limit: 1000000, period: MONTH}}
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    writers = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    work = pathlib.Path(tempfile.mkdtemp(prefix="turnpike-scale-"))
    data = work / "data"
    log_path = work / "turnpike.log"
    # The allocator settings the image sets (Dockerfile), unless the caller sets others.
    env = dict(MIMALLOC_ENV, **os.environ)
    env["RUST_LOG"] = "warn,turnpike_controller::index=debug"
    procs = []
    with open(work / "apiserver.log", "wb") as log:
        procs.append(subprocess.Popen(
            [BIN, "local", "--apiserver-only", "--data-dir", str(data), "--apiserver-addr", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=log,
        ))
    try:
        kubeconfig = str(data / "kubeconfig")
        wait_for("kubeconfig", lambda: (data / "kubeconfig").exists())

        def kubectl(*args: str, stdin: str | None = None) -> str:
            r = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=stdin,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise SystemExit(f"kubectl {args[:2]}: {r.stderr[-2000:]}")
            return r.stdout

        kubectl("apply", "-f", str(ROOT / "crds"))
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
        def gateway(log_path: pathlib.Path, addresses: pathlib.Path) -> subprocess.Popen:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [BIN, "--log-format", "json", "run", "--public-addr", "127.0.0.1:0",
                     "--private-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
                     "--addresses-file", str(addresses), "--identity", "scale"],
                    stdout=subprocess.DEVNULL, stderr=log, env=dict(env, KUBECONFIG=kubeconfig),
                )
            procs.append(proc)
            return proc

        proc = gateway(log_path, work / "gateway.json")
        addrs = wait_for("gateway.json", lambda: (work / "gateway.json").exists()
                         and json.loads((work / "gateway.json").read_text()))
        kubectl("apply", "-f", "-", stdin=BASE)
        api = wait_for("apiId", lambda: kubectl("get", "restapi", "scale", "-n", NS,
                                                "-o", "jsonpath={.status.apiId}"))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        url = f"https://{addrs['public']}/restapis/{api}/prod/_user_request_/k"

        def status(key: str | None) -> int:
            req = urllib.request.Request(url, headers={"x-api-key": key} if key else {})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        wait_for("the stage is served", lambda: status(None) == 403)
        rss_before = rss_kib(proc.pid)
        anon_before = smaps_kib(proc.pid)["Anonymous"]

        def metrics() -> str:
            with urllib.request.urlopen(f"http://{addrs['admin']}/metrics", timeout=10) as r:
                return r.read().decode()

        def metric(name: str) -> float:
            m = re.search(rf"^{name} (\S+)$", metrics(), re.M)
            return float(m.group(1)) if m else 0.0

        chunks = [range(w, n, writers) for w in range(writers)]
        files = []
        for w, chunk in enumerate(chunks):
            f = work / f"keys-{w}.yaml"
            f.write_text("".join(key_docs(i) for i in chunk))
            files.append(f)
        started = time.monotonic()
        threads = [threading.Thread(target=kubectl, args=("create", "-f", str(f))) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        created = time.monotonic()
        lasts = [chunk[-1] for chunk in chunks if len(chunk)]
        try:
            wait_for("every writer's last key admitted",
                     lambda: all(status(value(i)) == 200 for i in lasts), deadline=300, every=0.02)
        except SystemExit:
            print("answers:", [status(value(i)) for i in lasts],
                  "cached Secrets:", metric("turnpike_controller_cached_secrets"), file=sys.stderr)
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise
        served = time.monotonic()
        wait_for(f"{n} cached Secrets",
                 lambda: metric("turnpike_controller_cached_secrets") >= n, deadline=300)
        cached = time.monotonic()
        time.sleep(2)  # let the last rebuild's log line land
        rss_after = rss_kib(proc.pid)
        anon_after = smaps_kib(proc.pid)["Anonymous"]
        took = published(log_path)
        # Steady state: every key is served; edit the Stage EDITS times, one rebuild each,
        # and read each rebuild's compile time (the whole table with every key in it).
        steady = []
        for e in range(EDITS):
            before = len(published(log_path))
            kubectl("patch", "stage", "scale-prod", "-n", NS, "--type", "merge", "-p",
                    json.dumps({"spec": {"variables": {"edit": str(e)}}}))
            wait_for("the edit's rebuild", lambda: len(published(log_path)) > before, deadline=60)
            steady.append(published(log_path)[-1])
        rss_steady = rss_kib(proc.pid)
        smaps = smaps_kib(proc.pid)
        text = metrics()
        # Both readings above may land while the writes the creates caused still run (a status
        # per key, then every key's first usage summary, 16 at a time): read the first gateway
        # as the restarted one is read below, once the last key's first summary is written,
        # every 2 s for 40 s (a summaries round starts every 30 s), and keep the last reading.
        last = max(f"key-{i}" for i in range(n))

        def summarized_since(stamp: str) -> bool:
            """Whether the usage summary of `last` (the key a round writes last) is dated
            `stamp` or later."""
            return kubectl("get", "apikey", last, "-n", NS, "-o",
                           "jsonpath={.status.usage[0].updated}") >= stamp

        # Any date is later than "0"; no summary is not.
        first_samples = settle(proc.pid, "the first gateway's usage summary of the last key",
                               lambda: summarized_since("0"))
        rss_settled = rss_kib(proc.pid)
        anon_settled = first_samples[-1]
        # The Events the creation caused (a key not Ready until its Secret is read, then Ready).
        events = len(kubectl("get", "events.events.k8s.io", "-A", "--no-headers").splitlines())
        # A gateway that starts with every key there: what the keys themselves hold, without
        # the churn of their creation (the first gateway stopped; the new one leads).
        proc.terminate()
        proc.wait(timeout=60)
        proc = gateway(work / "turnpike-2.log", work / "gateway-2.json")
        addrs = wait_for("gateway-2.json", lambda: (work / "gateway-2.json").exists()
                         and json.loads((work / "gateway-2.json").read_text()))
        url = f"https://{addrs['public']}/restapis/{api}/prod/_user_request_/k"
        restarted = time.monotonic()
        restart_stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        wait_for("every writer's last key admitted after the restart",
                 lambda: all(status(value(i)) == 200 for i in lasts), deadline=300, every=0.05)
        wait_for(f"{n} cached Secrets after the restart",
                 lambda: metric("turnpike_controller_cached_secrets") >= n, deadline=300)
        restart_served = time.monotonic() - restarted
        time.sleep(2)
        anon_served = smaps_kib(proc.pid)["Anonymous"]
        # What a gateway holds with the keys includes what its first usage summaries round
        # keeps (the round writes every key's summary; the leader remembers what it wrote):
        # read the memory once the round has reached the key it writes last.
        samples = settle(proc.pid, "the new leader's first usage summaries round",
                         lambda: summarized_since(restart_stamp))
        rss_restarted = rss_kib(proc.pid)
        anon_restarted = samples[-1]
        s = re.search(r"^turnpike_controller_rebuild_seconds_sum (\S+)$", text, re.M)
        c = re.search(r"^turnpike_controller_rebuild_seconds_count (\S+)$", text, re.M)
        mean = float(s.group(1)) / float(c.group(1)) if s and c and float(c.group(1)) else float("nan")
        print(f"keys: {n} (Secrets + ApiKeys), writers: {writers} x kubectl create")
        print(f"creates: {created - started:.1f} s for {2 * n} objects")
        print(f"last create → every writer's last key admitted: {served - created:.2f} s")
        print(f"last create → all {n} Secrets cached: {cached - created:.2f} s")
        print(f"compile (world + compile + publish) of the last table: {took[-1] if took else 'n/a'}"
              f" (of {len(took)} rebuilds; max {max(took, key=parse_duration) if took else 'n/a'})")
        print(f"rebuild mean incl. Secret reads: {mean * 1000:.1f} ms")
        print(f"Events published by the first gateway: {events}")
        steady_s = sorted(parse_duration(t) for t in steady)
        if steady_s:
            print(f"compile with all {n} keys, {EDITS} Stage edits: median "
                  f"{steady_s[len(steady_s) // 2] * 1000:.1f} ms, max {steady_s[-1] * 1000:.1f} ms")
        print(f"RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after"
              f" ({(rss_after - rss_before) / n:.2f} KiB per key with its Secret),"
              f" {rss_steady / 1024:.1f} MiB after the edits"
              f" ({(rss_steady - rss_before) / n:.2f} KiB per key),"
              f" {rss_settled / 1024:.1f} MiB settled"
              f" ({(rss_settled - rss_before) / n:.2f} KiB per key)")
        print(f"a gateway started with the {n} keys there: every key served in {restart_served:.2f} s;"
              f" RSS {rss_restarted / 1024:.1f} MiB"
              f" ({(rss_restarted - rss_before) / n:.2f} KiB per key over the first gateway's base)")
        print(f"anonymous memory (the heap; RSS also counts the binary's code pages, file-backed and"
              f" shared, which grow with the code run, not with keys): {anon_before / 1024:.1f} MiB"
              f" before, {anon_after / 1024:.1f} MiB after ({(anon_after - anon_before) / n:.2f} KiB"
              f" per key), {smaps.get('Anonymous', 0) / 1024:.1f} MiB after the edits"
              f" ({(smaps.get('Anonymous', 0) - anon_before) / n:.2f} KiB per key),"
              f" {anon_settled / 1024:.1f} MiB settled ({(anon_settled - anon_before) / n:.2f} KiB"
              f" per key: once the last key's first usage summary is written, every 2 s for 40 s"
              f" after, MiB: {' '.join(f'{a / 1024:.1f}' for a in first_samples)}); the gateway started"
              f" with the keys there: {anon_served / 1024:.1f} MiB"
              f" ({(anon_served - anon_before) / n:.2f} KiB per key) once it serves them all,"
              f" {anon_restarted / 1024:.1f} MiB ({(anon_restarted - anon_before) / n:.2f} KiB"
              f" per key) after its first usage summaries round (every 2 s after it, MiB:"
              f" {' '.join(f'{a / 1024:.1f}' for a in samples)})")
        print(f"smaps_rollup after the edits: Rss {smaps.get('Rss', 0) / 1024:.1f} MiB,"
              f" Anonymous {smaps.get('Anonymous', 0) / 1024:.1f} MiB,"
              f" LazyFree {smaps.get('LazyFree', 0) / 1024:.1f} MiB")
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def published(log_path: pathlib.Path) -> list[str]:
    """The `took` of every "routing table published" line (JSON lines carry fields flat)."""
    took = [json.loads(line).get("took") for line in log_path.read_text().splitlines()
            if "routing table published" in line]
    return [t for t in took if t]


def parse_duration(s: str) -> float:
    m = re.match(r"([\d.]+)(ns|µs|us|ms|s)$", s)
    if not m:
        return 0.0
    scale = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    return float(m.group(1)) * scale


if __name__ == "__main__":
    main()
