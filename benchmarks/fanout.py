"""Fan-out: one signed HTTP trigger delivered to 1, 100 and 1,000 subscribed WebSockets.

Runs the embedded server (``quvel serve`` in its own process) and Soketi 1.6.1 in the same run, with
the same client: one process holding every subscriber on a minimal asyncio WebSocket reader (so the
client costs as little as possible and costs the same for both servers).

- latency: sequential triggers; for each, the time from sending the HTTP request to each delivery;
  p50/p99 over all deliveries.
- throughput: triggers kept 8 in flight; delivered messages per second until the last delivery.
- server cost (embedded only, in-process): time of one publish to N sockets, i.e. one JSON encode plus
  N ``transport.write`` calls, which is where a fan-out's time goes.

``--cluster`` instead runs ``quvel serve --redis`` nodes on a local redis-server: the latency one Redis
hop adds (subscribers on node B, triggers to node A, against both on one node without Redis) and the
throughput of 2 nodes (subscribers split, triggers alternating) against 1 node, in the same run; the
hop is measured for both bus transports (``--redis-transport stream``, the default, and ``pubsub``).

Usage: ``python benchmarks/fanout.py [--sizes 1,100,1000] [--rounds 200] [--only embedded|soketi]``
or ``python benchmarks/fanout.py --cluster [--sizes 1,100,1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quvel_ws.server import sign_params  # noqa: E402

KEY, SECRET, APP_ID = "app-key", "app-secret", "1"
PING = b'{"event":"pusher:ping"'
_CHANNEL = "bench"


def client_frame(payload: bytes) -> bytes:
    """A masked client text frame (mask key 0: RFC-valid and leaves the payload as is)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, 0x80 | n)) + b"\x00\x00\x00\x00" + payload
    return bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big") + b"\x00\x00\x00\x00" + payload


PONG_FRAME = client_frame(b'{"event":"pusher:pong","data":{}}')


class Subscriber(asyncio.Protocol):
    """Handshake, subscribe, then count frames as cheaply as Python allows."""

    def __init__(self, host: str, port: int, on_delivery: Callable[[float], None]) -> None:
        self.host, self.port = host, port
        self.on_delivery = on_delivery
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshaken = False
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /app/{KEY}?protocol=7&client=bench&version=1 HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(buf[:200]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.handshaken = True
        i, n = 0, len(buf)
        while n - i >= 2:
            length = buf[i + 1] & 0x7F
            head = 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                head = 10
            if n - i < head + length:
                break
            start = i + head
            if self.ready.done():
                if buf[start : start + len(PING)] == PING:
                    assert self.transport is not None
                    self.transport.write(PONG_FRAME)
                else:
                    self.on_delivery(now)
            else:
                self._setup(bytes(buf[start : start + length]))
            i = start + length
        del buf[:i]

    def _setup(self, payload: bytes) -> None:
        msg = json.loads(payload)
        assert self.transport is not None
        if msg["event"] == "pusher:connection_established":
            sub = json.dumps({"event": "pusher:subscribe", "data": {"channel": _CHANNEL}}).encode()
            self.transport.write(client_frame(sub))
        elif msg["event"] == "pusher_internal:subscription_succeeded":
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before subscribing: {exc}"))


class Run:
    """Subscribers of one server, and the trigger loop."""

    def __init__(self, host: str, port: int | list[int]) -> None:
        self.host = host
        self.ports = port if isinstance(port, list) else [port]
        self.t0: dict[int, float] = {}
        self.latencies: list[float] = []
        self.delivered = 0
        self.expected = 0
        self.done: asyncio.Event = asyncio.Event()
        self.transports: list[asyncio.Transport] = []
        self.current_t0 = 0.0
        self.record = True

    def on_delivery(self, now: float) -> None:
        self.delivered += 1
        if self.record:
            self.latencies.append(now - self.current_t0)
        if self.delivered >= self.expected:
            self.done.set()

    async def connect(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        for start in range(0, n, 100):
            batch = []
            for i in range(min(100, n - start)):
                port = self.ports[(start + i) % len(self.ports)]  # spread over the nodes
                transport, proto = await loop.create_connection(
                    lambda port=port: Subscriber(self.host, port, self.on_delivery), self.host, port
                )
                self.transports.append(transport)  # type: ignore[arg-type]
                batch.append(proto.ready)
            await asyncio.wait_for(asyncio.gather(*batch), 60)

    def close(self) -> None:
        for t in self.transports:
            t.abort()


async def trigger(client: httpx.AsyncClient, base: str, data: str) -> None:
    path = f"/apps/{APP_ID}/events"
    body = json.dumps({"name": "Tick", "channel": _CHANNEL, "data": data}).encode()
    params = sign_params("POST", path, {}, key=KEY, secret=SECRET, body=body)
    resp = await client.post(
        base + path, params=params, content=body, headers={"Content-Type": "application/json"}
    )
    resp.raise_for_status()


async def measure(
    host: str,
    port: int,
    n: int,
    rounds: int,
    throughput_msgs: int,
    sub_ports: list[int] | None = None,
    trigger_ports: list[int] | None = None,
) -> dict[str, float]:
    """``sub_ports``: where subscribers connect (round robin); ``trigger_ports``: where the throughput
    triggers go (round robin). Both default to ``port``; latency triggers always go to ``port``."""
    base = f"http://{host}:{port}"
    bases = [f"http://{host}:{p}" for p in (trigger_ports or [port])]
    run = Run(host, sub_ports or port)
    await run.connect(n)
    payload = json.dumps({"price": 101.25, "symbol": "ACME", "ts": 0, "pad": "x" * 120})
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):  # warm-up
            run.expected, run.delivered, run.record = n, 0, False
            run.done.clear()
            await trigger(client, base, payload)
            await asyncio.wait_for(run.done.wait(), 30)
        run.record = True
        for _ in range(rounds):
            run.expected, run.delivered = n, 0
            run.done.clear()
            run.current_t0 = time.perf_counter()
            await trigger(client, base, payload)
            await asyncio.wait_for(run.done.wait(), 30)
        lat = sorted(run.latencies)

        run.record = False
        run.expected, run.delivered = n * throughput_msgs, 0
        run.done.clear()
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                await trigger(client, bases[i % len(bases)], payload)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(throughput_msgs)))
        await asyncio.wait_for(run.done.wait(), 120)
        elapsed = time.perf_counter() - started
    run.close()
    return {
        "subscribers": n,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "msgs_per_s": n * throughput_msgs / elapsed,
    }


def start_embedded(port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quvel",
            "serve",
            "--port",
            str(port),
            "--app-id",
            APP_ID,
            "--app-key",
            KEY,
            "--app-secret",
            SECRET,
            "--max-payload",
            "102400",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())
    return proc


async def in_process_publish_cost(n: int, repeats: int = 50) -> float:
    """µs per delivery of one publish on the embedded server, measured inside the server process."""
    from quvel_ws.server import PusherServer

    async with PusherServer() as server:
        run = Run("127.0.0.1", server.port)
        await run.connect(n)
        state = server._state(None)
        payload = json.dumps({"price": 101.25, "symbol": "ACME", "ts": 0, "pad": "x" * 120})
        best = float("inf")
        for _ in range(repeats):
            run.expected, run.delivered, run.record = n, 0, False
            run.done.clear()
            t = time.perf_counter()
            state.publish(_CHANNEL, "Tick", payload)
            best = min(best, time.perf_counter() - t)
            await asyncio.wait_for(run.done.wait(), 30)
        run.close()
    return best / n * 1e6


async def cluster(sizes: list[int], rounds: int, throughput_msgs: int) -> None:
    from tests.cluster.conftest import RedisServer
    from tests.peers import free_port

    redis, redis_ps = RedisServer().start(), RedisServer().start()  # pub/sub nodes on their own Redis
    alone_port, a_port, b_port, pa_port, pb_port = (free_port() for _ in range(5))
    procs = [
        start_embedded(alone_port),
        start_embedded(a_port, "--redis", redis.url),
        start_embedded(b_port, "--redis", redis.url),
        start_embedded(pa_port, "--redis", redis_ps.url, "--redis-transport", "pubsub"),
        start_embedded(pb_port, "--redis", redis_ps.url, "--redis-transport", "pubsub"),
    ]
    rows: dict[str, dict[int, dict[str, float]]] = {"1 node": {}, "A->B": {}, "A->B ps": {}, "2 nodes": {}}
    try:
        for n in sizes:
            r = max(20, rounds if n < 1000 else rounds // 4)
            rows["1 node"][n] = await measure("127.0.0.1", alone_port, n, r, throughput_msgs)
            rows["A->B"][n] = await measure("127.0.0.1", a_port, n, r, throughput_msgs, sub_ports=[b_port])
            rows["A->B ps"][n] = await measure(
                "127.0.0.1", pa_port, n, r, throughput_msgs, sub_ports=[pb_port]
            )
            rows["2 nodes"][n] = await measure(
                "127.0.0.1", a_port, n, r, throughput_msgs, [a_port, b_port], [a_port, b_port]
            )
            for name, res in rows.items():
                print(
                    f"{name:8s} n={n:5d}  p50 {res[n]['p50_ms']:7.2f} ms  p99 {res[n]['p99_ms']:7.2f} ms  "
                    f"{res[n]['msgs_per_s']:10.0f} msgs/s",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        redis.stop()
        redis_ps.stop()
    print("\none Redis hop (subscribers on B, trigger to A) minus one node without Redis, stream | pub/sub:")
    for n in sizes:
        one, hop, ps = rows["1 node"][n], rows["A->B"][n], rows["A->B ps"][n]
        d50, d99 = hop["p50_ms"] - one["p50_ms"], hop["p99_ms"] - one["p99_ms"]
        p50, p99 = ps["p50_ms"] - one["p50_ms"], ps["p99_ms"] - one["p99_ms"]
        print(
            f"n={n:5d}  stream p50 {d50:+.2f} ms  p99 {d99:+.2f} ms | "
            f"pubsub p50 {p50:+.2f} ms  p99 {p99:+.2f} ms"
        )
    print("throughput, 2 nodes (subscribers split, triggers alternating) / 1 node:")
    for n in sizes:
        print(f"n={n:5d}  x{rows['2 nodes'][n]['msgs_per_s'] / rows['1 node'][n]['msgs_per_s']:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--throughput-msgs", type=int, default=200)
    parser.add_argument("--only", choices=["embedded", "soketi"], default=None)
    parser.add_argument("--cluster", action="store_true", help="quvel serve --redis nodes (see above)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.cluster:
        await cluster(sizes, args.rounds, args.throughput_msgs)
        return

    from tests.peers import SoketiServer, free_port

    results: dict[str, dict[int, dict[str, float]]] = {}
    for name in ("embedded", "soketi"):
        if args.only and name != args.only:
            continue
        port = free_port()
        stopper: Callable[[], Any]
        if name == "embedded":
            proc = start_embedded(port)
            stopper = proc.terminate
        else:
            soketi = SoketiServer(
                port=port, extra_env={"SOKETI_DEFAULT_APP_MAX_EVENT_PAYLOAD_IN_KB": "100"}
            ).start()
            stopper = soketi.stop
        try:
            results[name] = {}
            for n in sizes:
                rounds = max(20, args.rounds if n < 1000 else args.rounds // 4)
                res = await measure("127.0.0.1", port, n, rounds, args.throughput_msgs)
                results[name][n] = res
                print(
                    f"{name:9s} n={n:5d}  p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  "
                    f"{res['msgs_per_s']:10.0f} msgs/s",
                    flush=True,
                )
        finally:
            stopper()

    if "embedded" in results and "soketi" in results:
        print("\nratios (embedded / soketi): throughput higher is better, p99 lower is better")
        for n in sizes:
            e, s = results["embedded"][n], results["soketi"][n]
            ratio_tp, ratio_p99 = e["msgs_per_s"] / s["msgs_per_s"], e["p99_ms"] / s["p99_ms"]
            print(f"n={n:5d}  throughput x{ratio_tp:.2f}   p99 x{ratio_p99:.2f}")
    if not args.only or args.only == "embedded":
        print("\nembedded server, in-process cost of one publish (encode once + N transport.write):")
        for n in sizes:
            print(f"n={n:5d}  {await in_process_publish_cost(n):.2f} µs per delivery")


if __name__ == "__main__":
    asyncio.run(main())
