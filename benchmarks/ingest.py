"""Client ingest benchmark: how many Pusher events per second a client turns into application callbacks.

A firehose server (a separate process, so it does not share the client's CPU) sends N pre-encoded event
frames of about 200 bytes as fast as the socket takes them once the client subscribes. Measured in one
run, same machine, same minute:

  (a) a bare ``websockets`` receive loop with ``json.loads`` of the frame and of ``data``
  (b) ``ws.channel(...).listen(...)`` with one subscriber (quvel_ws)
  (c) (b) folded into a quvel_store store through an action (when quvel_store has Store/connect)
  (d) asyncpusher 0.2.5, pysher 1.0.8 (``pip install asyncpusher==0.2.5 pysher==1.0.8``) and pusher-js 8.6.0
      under Node (``peers/node_modules``), where installed

plus p50/p99 latency from frame arrival (the client's socket read) to the subscriber at 1,000 events/s
(and, for comparison, from the server's write), and memory per subscribed channel with 1,000 channels
on one connection.

    python benchmarks/ingest.py [--events 50000] [--repeat 3] [--only a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAYLOAD_PAD = "x" * 120


# --- the firehose server (runs in its own process) ----------------------------------------------------


def _frame(text: str) -> bytes:
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def _event_text(channel: str, i: int, sent: float | None = None) -> str:
    data: dict[str, Any] = {"i": i, "pad": PAYLOAD_PAD}
    if sent is not None:
        data["t"] = sent
    return json.dumps({"event": "App\\Events\\Tick", "channel": channel, "data": json.dumps(data)})


async def _serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    writer.write(
        _frame(
            json.dumps(
                {
                    "event": "pusher:connection_established",
                    "data": json.dumps({"socket_id": "1.1", "activity_timeout": 120}),
                }
            )
        )
    )
    streams: list[asyncio.Task[None]] = []
    try:
        while True:
            head = await reader.readexactly(2)
            opcode, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4) if head[1] & 0x80 else b"\0\0\0\0"
            raw = await reader.readexactly(n)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(raw))
            if opcode == 8:
                writer.write(b"\x88\x02\x03\xe8")
                await writer.drain()
                break
            if opcode != 1:
                continue
            msg = json.loads(payload)
            event, data = msg.get("event"), msg.get("data") or {}
            if event == "pusher:ping":
                writer.write(_frame('{"event":"pusher:pong","data":{}}'))
            elif event == "pusher:subscribe":
                channel = data["channel"]
                writer.write(
                    _frame(
                        json.dumps({"event": "pusher_internal:subscription_succeeded", "channel": channel})
                    )
                )
                if channel.startswith("bench-"):
                    _, count, rate = channel.split("-")
                    streams.append(
                        asyncio.get_running_loop().create_task(
                            _stream(writer, channel, int(count), float(rate))
                        )
                    )
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        for task in streams:
            task.cancel()
        writer.close()


async def _stream(writer: asyncio.StreamWriter, channel: str, count: int, rate: float) -> None:
    if rate <= 0:  # firehose: everything pre-encoded, written in large chunks
        frames = [_frame(_event_text(channel, i)) for i in range(count)]
        for start in range(0, count, 512):
            writer.write(b"".join(frames[start : start + 512]))
            await writer.drain()
        return
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(count):
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(_frame(_event_text(channel, i, time.perf_counter())))


def _server_main(port_queue: Any) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_serve_client, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class Firehose:
    def __enter__(self) -> Firehose:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        self.proc = ctx.Process(target=_server_main, args=(queue,), daemon=True)
        self.proc.start()
        self.port = int(queue.get(timeout=20))
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/app/bench"


# --- the clients ------------------------------------------------------------------------------------


async def run_bare_websockets(url: str, n: int) -> float:
    """(a) ``websockets`` asyncio client: ``recv()`` loop + ``json.loads`` of frame and data."""
    import websockets

    async with websockets.connect(url, compression=None, max_size=None) as conn:
        json.loads(await conn.recv())
        await conn.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": f"bench-{n}-0"}}))
        json.loads(await conn.recv())  # subscription_succeeded
        count = 0
        start = time.perf_counter()
        while count < n:
            msg = json.loads(await conn.recv())
            json.loads(msg["data"])
            count += 1
        return time.perf_counter() - start


async def run_quvel(url: str, n: int) -> float:
    """(b) ``ws.channel(...).listen(...)`` with one subscriber."""
    from quvel_ws import WebSocketService

    ws = WebSocketService(url)
    done = asyncio.get_running_loop().create_future()
    state = {"count": 0, "start": 0.0}

    def on_event(data: Any) -> None:
        state["count"] += 1
        if state["count"] == 1:
            state["start"] = time.perf_counter()
        if state["count"] == n and not done.done():
            done.set_result(time.perf_counter())

    sub = ws.channel(f"bench-{n}-0").listen("Tick").subscribe(on_event)
    end: float = await asyncio.wait_for(done, 120)
    sub.dispose()
    await ws.shutdown()
    return (end - state["start"]) * n / max(n - 1, 1)


async def run_quvel_store(url: str, n: int, batched: bool = False) -> float | None:
    """(c) (b) folded into a quvel_store store's state through an action: one patch per event, or
    (``batched``) one per socket read through ``listen_batches``."""
    try:
        from pydantic import BaseModel

        from quvel_store import ServiceContainer, Store, action, create_app
    except ImportError:
        return None
    from quvel_ws import WebSocketService

    class TickState(BaseModel):
        count: int = 0
        last: int = -1

    done = asyncio.get_running_loop().create_future()
    marks = {"start": 0.0, "first": 1}

    class TickStore(Store[TickState]):
        id = "ticks"

        @action
        def watch(self) -> None:
            channel = self.container.ws.channel(f"bench-{n}-0")
            if batched:
                self.connect(channel.listen_batches("Tick"), self.received_many)
            else:
                self.connect(channel.listen("Tick"), self.received)

        @action
        def received_many(self, batch: list[dict[str, Any]]) -> None:
            def change(state: TickState) -> None:
                state.count += len(batch)
                state.last = batch[-1]["i"]

            self.patch(change)
            self._check(len(batch))

        @action
        def received(self, data: dict[str, Any]) -> None:
            def change(state: TickState) -> None:
                state.count += 1
                state.last = data["i"]

            self.patch(change)
            self._check(1)

        def _check(self, added: int) -> None:
            count = self.state.count
            if count == added:
                marks["start"] = time.perf_counter()
                marks["first"] = added
            if count >= n and not done.done():
                done.set_result(time.perf_counter())

    container = ServiceContainer(ws=WebSocketService(url))
    store = create_app(container, stores=[TickStore]).use(TickStore)
    store.watch()
    end: float = await asyncio.wait_for(done, 300)
    store.dispose()
    await container.shutdown()
    return (end - marks["start"]) * n / max(n - marks["first"], 1)


async def run_asyncpusher(url: str, n: int) -> float | None:
    try:
        from asyncpusher.pusher import Pusher  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    port = int(url.split(":")[2].split("/", maxsplit=1)[0])
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"count": 0, "start": 0.0}

    async def on_event(data: Any) -> None:  # asyncpusher awaits its callbacks
        state["count"] += 1
        if state["count"] == 1:
            state["start"] = time.perf_counter()
        if state["count"] == n and not done.done():
            done.set_result(time.perf_counter())

    pusher = Pusher("bench", custom_host="127.0.0.1", custom_port=port, secure=False, loop=loop)
    await pusher.connect()
    channel = await pusher.subscribe(f"bench-{n}-0")
    channel.bind("App\\Events\\Tick", on_event)
    end: float = await asyncio.wait_for(done, 120)
    await pusher.disconnect()
    return (end - state["start"]) * n / max(n - 1, 1)


def run_pysher(url: str, n: int) -> float | None:
    try:
        import pysher  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    port = int(url.split(":")[2].split("/", maxsplit=1)[0])
    done = threading.Event()
    state = {"count": 0, "start": 0.0, "end": 0.0}

    def on_event(data: Any) -> None:
        state["count"] += 1
        if state["count"] == 1:
            state["start"] = time.perf_counter()
        if state["count"] == n:
            state["end"] = time.perf_counter()
            done.set()

    client = pysher.Pusher("bench", custom_host="127.0.0.1", port=port, secure=False)

    def connected(_: Any) -> None:
        client.subscribe(f"bench-{n}-0").bind("App\\Events\\Tick", on_event)

    client.connection.bind("pusher:connection_established", connected)
    client.connect()
    if not done.wait(180):
        client.disconnect()
        return None
    client.disconnect()
    return (state["end"] - state["start"]) * n / max(n - 1, 1)


PUSHER_JS = r"""
const Pusher = require('pusher-js');
const [port, n] = process.argv.slice(-2).map(Number);
const p = new Pusher('bench', {cluster: '', wsHost: '127.0.0.1', wsPort: port, wssPort: port, forceTLS: false,
                               enabledTransports: ['ws'], enableStats: false});
let count = 0, start = 0;
p.subscribe(`bench-${n}-0`).bind('App\\Events\\Tick', () => {
  count++;
  if (count === 1) start = performance.now();
  if (count === n) { console.log(JSON.stringify({seconds: (performance.now() - start) / 1000 * n / (n - 1)}));
                     p.disconnect(); process.exit(0); }
});
"""


def run_pusher_js(url: str, n: int) -> float | None:
    node_modules = ROOT / "peers" / "node_modules"
    if shutil.which("node") is None or not (node_modules / "pusher-js").exists():
        return None
    port = url.split(":")[2].split("/", maxsplit=1)[0]
    env = dict(os.environ, NODE_PATH=str(node_modules))
    out = subprocess.run(
        ["node", "-e", PUSHER_JS, port, str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return float(json.loads(line)["seconds"])
    print(f"  pusher-js failed: {out.stderr[-300:]}", file=sys.stderr)
    return None


# --- latency and memory -----------------------------------------------------------------------------


def _percentiles(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6


Latency = dict[str, tuple[float, float]]
"""p50/p99 in µs: "arrival" (the socket read that brought the frame → the subscriber, the issue's
measure) and "write" (the firehose's write → the subscriber: adds the loopback hop and the wake-up)."""


async def quvel_latency(url: str, n: int, rate: float) -> Latency:
    """Frame arrival is the moment the transport's ``data_received`` is called with the read holding it
    (quvel_ws delivers synchronously inside that call, so the last arrival is the event's own)."""
    from quvel_ws import WebSocketService
    from quvel_ws.client._transport import WebSocketTransport

    arrival = [0.0]
    original = WebSocketTransport.data_received

    def timed(self: WebSocketTransport, data: bytes) -> None:
        arrival[0] = time.perf_counter()
        original(self, data)

    WebSocketTransport.data_received = timed  # type: ignore[method-assign]
    try:
        ws = WebSocketService(url)
        done = asyncio.get_running_loop().create_future()
        from_arrival: list[float] = []
        from_write: list[float] = []

        def on_event(data: Any) -> None:
            now = time.perf_counter()
            from_arrival.append(now - arrival[0])
            from_write.append(now - data["t"])
            if len(from_arrival) == n and not done.done():
                done.set_result(None)

        sub = ws.channel(f"bench-{n}-{rate:g}").listen("Tick").subscribe(on_event)
        await asyncio.wait_for(done, n / rate + 60)
        sub.dispose()
        await ws.shutdown()
    finally:
        WebSocketTransport.data_received = original  # type: ignore[method-assign]
    return {"arrival": _percentiles(from_arrival), "write": _percentiles(from_write)}


async def bare_latency(url: str, n: int, rate: float) -> Latency:
    """Frame arrival is the ``data_received`` call whose read completed the frame, stamped per text
    frame as websockets parses it; the clock stops when ``recv()`` has returned and both
    ``json.loads`` are done."""
    import collections

    import websockets
    from websockets.asyncio.client import ClientConnection
    from websockets.frames import Frame, Opcode

    class TimedConnection(ClientConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.arrival = 0.0
            self.arrivals: collections.deque[float] = collections.deque()

        def data_received(self, data: bytes) -> None:
            self.arrival = time.perf_counter()
            super().data_received(data)

        def process_event(self, event: Any) -> None:
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.arrivals.append(self.arrival)
            super().process_event(event)

    from_arrival: list[float] = []
    from_write: list[float] = []
    async with websockets.connect(url, compression=None, create_connection=TimedConnection) as conn:
        assert isinstance(conn, TimedConnection)
        await conn.recv()
        await conn.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": f"bench-{n}-{rate:g}"}}))
        await conn.recv()
        conn.arrivals.clear()
        while len(from_arrival) < n:
            msg = json.loads(await conn.recv())
            sent = json.loads(msg["data"])["t"]
            now = time.perf_counter()
            from_arrival.append(now - conn.arrivals.popleft())
            from_write.append(now - sent)
    return {"arrival": _percentiles(from_arrival), "write": _percentiles(from_write)}


async def quvel_memory(url: str, channels: int) -> float:
    """Bytes allocated per subscribed channel (one subscriber each), confirmed by the server."""
    from quvel_ws import WebSocketService

    ws = WebSocketService(url)
    await ws.connect(timeout=10)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    confirmed = 0
    all_done = asyncio.get_running_loop().create_future()

    def on_subscribed(_: Any) -> None:
        nonlocal confirmed
        confirmed += 1
        if confirmed == channels and not all_done.done():
            all_done.set_result(None)

    subs = []
    for i in range(channels):
        ch = ws.channel(f"mem.{i}")
        subs.append(ch.listen("Tick").subscribe(lambda _: None))
        subs.append(ch.subscribed.subscribe(on_subscribed))
    await asyncio.wait_for(all_done, 60)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for s in subs:
        s.dispose()
    await ws.shutdown()
    return (after - before) / channels


# --- main -------------------------------------------------------------------------------------------


def _median_rate(n: int, runs: list[float | None]) -> str:
    values = [n / s for s in runs if s]
    if not values:
        return "n/a"
    return f"{statistics.median(values):>9,.0f}  (runs: {', '.join(f'{v:,.0f}' for v in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="a,b,c,d,latency,memory")
    parser.add_argument("--json", action="store_true", help="also print one JSON line of medians")
    args = parser.parse_args()
    only = set(args.only.split(","))
    n = args.events
    results: dict[str, Any] = {}
    with Firehose() as server:
        url = server.url
        clients: list[tuple[str, str, Callable[[], Awaitable[float | None]] | Callable[[], float | None]]] = [
            ("a", "websockets recv loop + json.loads x2", lambda: run_bare_websockets(url, n)),
            ("b", "quvel_ws channel.listen, 1 subscriber", lambda: run_quvel(url, n)),
            ("c", "store action per event (listen)", lambda: run_quvel_store(url, n)),
            ("c", "store action per read (listen_batches)", lambda: run_quvel_store(url, n, True)),
            ("d", "asyncpusher 0.2.5", lambda: run_asyncpusher(url, n)),
            ("d", "pysher 1.0.8", lambda: run_pysher(url, n)),
            ("d", "pusher-js 8.6.0 (Node)", lambda: run_pusher_js(url, n)),
        ]
        print(
            f"events/s, {n:,} events of ~200 bytes, median of {args.repeat} (Python {sys.version.split()[0]})"
        )
        for key, label, fn in clients:
            if key not in only:
                continue
            runs: list[float | None] = []
            for _ in range(args.repeat):
                result = fn()
                if asyncio.iscoroutine(result):
                    result = asyncio.run(result)
                runs.append(result)  # type: ignore[arg-type]
                if result is None:
                    break
            print(f"  ({key}) {label:<42} {_median_rate(n, runs)}")
            values = [n / s for s in runs if s]
            results[label] = statistics.median(values) if values else None
        if "latency" in only:
            rate, count = 1000.0, 5000
            for label, measure in (("websockets loop", bare_latency), ("quvel_ws listen", quvel_latency)):
                lat = asyncio.run(measure(url, count, rate))
                for key, what in (("arrival", "frame arrival"), ("write", "server write ")):
                    p50, p99 = lat[key]
                    print(
                        f"  latency at {rate:g} events/s, {label}, {what} → subscriber:"
                        f" p50 {p50:7.0f} µs  p99 {p99:7.0f} µs"
                    )
            p50, p99 = lat["arrival"]
            results["latency_us"] = {"p50": p50, "p99": p99, "from": "frame arrival"}
        if "memory" in only:
            per = asyncio.run(quvel_memory(url, 1000))
            print(f"  memory per subscribed channel (1,000 channels, 1 subscriber each): {per:,.0f} bytes")
            results["bytes_per_channel"] = per
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
