"""WebSocket APIs with the Python `websockets` client against `turnpike local` running the
examples: the chat example's stage URL (from the Stage's status, read with kubectl) accepts a
connection with the example's API key over TLS, `$default` answers a message no route
selects, a connection without the key is refused with 403, and the PROTOCOL printer column
shows WEBSOCKET.

Every port is chosen by the OS on 127.0.0.1; every wait is bounded; the process is killed at
the end.
"""

from __future__ import annotations

import asyncio
import json
import ssl

import websockets
from websockets.exceptions import InvalidStatus

from test_controller_local import kubectl, local  # noqa: F401  (the fixture)

KEY = "chatKey0123456789abcdef"


def tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def chat(url):
    async with websockets.connect(
        url, ssl=tls(), additional_headers={"x-api-key": KEY}, open_timeout=10
    ) as ws:
        await ws.send(json.dumps({"action": "whoami"}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        pong = await ws.ping()
        await asyncio.wait_for(pong, 10)
        return answer


async def refused(url):
    try:
        async with websockets.connect(url, ssl=tls(), open_timeout=10):
            return None
    except InvalidStatus as e:
        return e.response.status_code


def test_chat_example_over_wss_with_the_key(local):  # noqa: F811
    kubeconfig, _ = local
    kubectl(
        kubeconfig, "wait", "--for=condition=Ready", "restapi/chat", "stage/chat-prod",
        "apikey/chatter", "-n", "default", "--timeout=30s",
    )
    url = kubectl(
        kubeconfig, "get", "stage", "chat-prod", "-n", "default", "-o", "jsonpath={.status.invokeUrl}"
    )
    assert url.startswith("https://"), url
    wss = "wss://" + url[len("https://"):]

    answer = asyncio.run(chat(wss))
    assert answer["error"] == "unknown action", answer
    assert answer["requestId"], answer

    assert asyncio.run(refused(wss)) == 403

    out = kubectl(kubeconfig, "get", "restapis", "chat", "-n", "default")
    assert "PROTOCOL" in out and "WEBSOCKET" in out, out
