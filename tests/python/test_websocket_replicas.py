"""WebSocket APIs across gateway replicas: two `turnpike run` processes on one real
`redis-server` (`--redis-url`), a Python `websockets` client connected to replica A, and the
`@connections` API called on replica B's private listener:

- POST through B arrives at the client on A, GET through B describes it, DELETE through B
  closes it (1000);
- once A is killed (SIGKILL: no clean-up), B answers 410 GoneException for A's connection,
  and A's ownership record in Redis is gone within its TTL (`--websocket-owner-ttl-secs 2`).

The backend is a real HTTP server (a thread) that answers the `whoami` route with the AWS
event it received, so the client learns its connection id from `requestContext`. Every port
is chosen by the OS on 127.0.0.1; every wait is bounded; processes are killed at the end.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import signal
import socket
import ssl
import threading

import pytest
import websockets

from conftest import wait_for
from test_usage_plans import NS, Gateway, Redis, apply  # noqa: F401

TTL = 2


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every POST with its body (the AWS event)."""

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def api_yaml(backend: str) -> str:
    return f"""
apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {{name: rooms, namespace: {NS}}}
spec:
  endpointConfiguration: {{types: [REGIONAL]}}
  protocolType: WEBSOCKET
  routeSelectionExpression: $request.body.action
  routes:
    $connect:
      integration:
        type: MOCK
        integrationResponses: [{{statusCode: "200"}}]
    whoami:
      routeResponseSelectionExpression: $default
      integration: {{type: HTTP_PROXY, uri: "http://{backend}/whoami"}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {{name: rooms-v1, namespace: {NS}}}
spec: {{restApiRef: {{name: rooms}}}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {{name: rooms-prod, namespace: {NS}}}
spec: {{restApiRef: {{name: rooms}}, stageName: prod, deploymentRef: {{name: rooms-v1}}}}
"""


def tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def private_of(g: Gateway) -> str:
    return json.loads(g.addresses.read_text())["private"]


def manage(g: Gateway, api: str, method: str, cid: str, body: bytes | None = None):
    """`{method} …/@connections/{cid}` on the gateway's private listener."""
    host, port = private_of(g).rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=tls(), timeout=15)
    try:
        path = f"/restapis/{api}/prod/_user_request_/@connections/{cid.replace('=', '%3D')}"
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def redis_exists(r: Redis, key: str) -> bool:
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        s.sendall(f"EXISTS {key}\r\n".encode())
        return s.recv(16).startswith(b":1")


async def open_client(g: Gateway, api: str):
    """A connected client on `g` and its connection id."""
    ws = await websockets.connect(
        f"wss://{g.public}/restapis/{api}/prod/_user_request_", ssl=tls(), open_timeout=10
    )
    await ws.send(json.dumps({"action": "whoami"}))
    event = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, event["requestContext"]["connectionId"]


def serves(g: Gateway, api: str) -> bool:
    async def attempt():
        try:
            ws, _ = await open_client(g, api)
            await ws.close()
            return True
        except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError, KeyError):
            return False

    return asyncio.run(attempt())


def test_connections_calls_reach_a_client_on_another_replica_through_redis(crds, echo, tmp_path):
    redis = Redis(tmp_path)
    flags = ("--redis-url", redis.url, "--websocket-owner-ttl-secs", str(TTL))
    a = Gateway(crds, tmp_path, "wsa", *flags)
    b = Gateway(crds, tmp_path, "wsb", *flags)
    try:
        apply(crds, api_yaml(echo))
        api = wait_for(
            "apiId of rooms",
            lambda: crds.kubectl("get", "restapi", "rooms", "-n", NS, "-o", "jsonpath={.status.apiId}").stdout,
        )
        for g in (a, b):
            wait_for(f"{g.name} serves rooms", lambda g=g: serves(g, api), 60)

        async def across() -> None:
            ws, cid = await open_client(a, api)
            status, body, _ = await asyncio.to_thread(manage, b, api, "POST", cid, b"hello from B")
            assert status == 200, body
            assert await asyncio.wait_for(ws.recv(), 10) == "hello from B"

            status, body, _ = await asyncio.to_thread(manage, b, api, "GET", cid)
            assert status == 200, body
            info = json.loads(body)
            assert info["connectedAt"].endswith("Z") and info["identity"]["sourceIp"] == "127.0.0.1", info

            status, body, _ = await asyncio.to_thread(manage, b, api, "DELETE", cid)
            assert status == 204, body
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1000

            status, _, headers = await asyncio.to_thread(manage, b, api, "POST", cid, b"late")
            assert status == 410 and headers.get("x-amzn-errortype") == "GoneException"

        asyncio.run(across())

        async def orphan() -> str:
            ws, cid = await open_client(a, api)
            assert redis_exists(redis, f"tp:{{ws:{cid}}}:owner")
            a.stop(signal.SIGKILL)
            await asyncio.wait_for(ws.wait_closed(), 10)
            return cid

        cid = asyncio.run(orphan())
        status, body, headers = manage(b, api, "POST", cid, b"anyone?")
        assert status == 410, body
        assert headers.get("x-amzn-errortype") == "GoneException"
        # The dead replica's record expires by itself within the TTL (polled, bounded).
        wait_for("the ownership record expires", lambda: not redis_exists(redis, f"tp:{{ws:{cid}}}:owner"), TTL + 5)
        assert manage(b, api, "GET", cid)[0] == 410
        assert manage(b, api, "DELETE", cid)[0] == 410
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)
        redis.stop()
