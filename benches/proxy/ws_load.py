"""WebSocket load for benches/proxy/websocket.sh (the Python `websockets` client):

- `idle URL N`: opens N connections (500 at a time), prints `open N`, then holds them until
  its stdin closes;
- `echo URL CONNS SECONDS`: CONNS connections each send `{"action":"echo"}` and wait for the
  answer, again and again, for SECONDS; prints `echoed COUNT`.
"""

from __future__ import annotations

import asyncio
import sys
import time

import websockets


async def connect(url: str):
    return await websockets.connect(url, open_timeout=60, ping_interval=None, compression=None)


async def idle(url: str, n: int) -> None:
    conns = []
    while len(conns) < n:
        batch = min(500, n - len(conns))
        conns += await asyncio.gather(*(connect(url) for _ in range(batch)))
    print(f"open {len(conns)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


async def echo(url: str, conns: int, seconds: float) -> None:
    sockets = await asyncio.gather(*(connect(url) for _ in range(conns)))
    end = time.monotonic() + seconds
    counts = [0] * conns

    async def run(i: int, ws) -> None:
        while time.monotonic() < end:
            await ws.send('{"action":"echo"}')
            await ws.recv()
            counts[i] += 1

    await asyncio.gather(*(run(i, ws) for i, ws in enumerate(sockets)))
    print(f"echoed {sum(counts)}", flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "idle":
        asyncio.run(idle(url, int(sys.argv[3])))
    else:
        asyncio.run(echo(url, int(sys.argv[3]), float(sys.argv[4])))
