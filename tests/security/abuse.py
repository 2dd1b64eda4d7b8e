"""Abuse scenarios against the embedded server: loopback only, bounded in time and count.

Each returns its figures (a dict); ``tests/security/test_abuse.py`` checks generous bounds on them and
``python -m tests.security.abuse`` prints them for the table in ``docs/security.md``. Resident memory
is read from ``/proc`` of a ``quvel serve`` process, so the client's own memory is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import websockets

from quvel_ws.server import AppConfig, Limits, PusherServer
from tests.peers import read_json_line

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATTACKER = "127.0.0.2"  # Linux routes all of 127/8 to lo: the attacker gets its own address


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], list[str]]]:
    """``quvel serve`` on a free loopback port; yields (process, info line, stderr lines so far)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--app-secret", "abuse-secret", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        yield proc, read_json_line(proc, timeout=20), lines
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


async def _open(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: bytes) -> float:
    """Send ``trickle`` one byte every 0.25 s until the server closes; seconds until it did."""
    started = time.monotonic()
    for byte in trickle:
        if reader.at_eof():
            break
        writer.write(bytes([byte]))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        with contextlib.suppress(asyncio.TimeoutError):
            if await asyncio.wait_for(reader.read(), 0.25) is not None and reader.at_eof():
                break
    writer.close()
    return time.monotonic() - started


async def slowloris(head_timeout: float = 2.0) -> dict[str, float]:
    """Head, handshake and body trickled at 4 bytes/s: seconds until the server closed each."""
    limits = Limits(head_timeout=head_timeout, body_grace=1.0, min_body_rate=1024)
    endless = b"X-Padding: " + b"a" * 10_000
    async with PusherServer(limits=limits) as server:
        results = {}
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + endless
        results["head"] = await _closed_after(*await _open(server.port), head)
        handshake = (
            b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + endless
        )
        results["handshake"] = await _closed_after(*await _open(server.port), handshake)
        reader, writer = await _open(server.port)
        writer.write(b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n")
        results["body"] = await _closed_after(reader, writer, b"{" * 2048)  # deadline 1 + 2048/1024 s
        results["body_deadline"] = 1.0 + 2048 / 1024
        results["head_deadline"] = head_timeout
        return results


async def _honest_latency_ms(url: str) -> float:
    started = time.perf_counter()
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}}))
        await asyncio.wait_for(ws.recv(), 10)
    return (time.perf_counter() - started) * 1000


async def pending_handshakes(n: int = 500, cap: int = 200) -> dict[str, Any]:
    """``n`` half-sent handshakes from one address (past the per-address cap) and from many (past the
    server cap): how many stay open, and how fast an honest client is still served."""
    out: dict[str, Any] = {"attackers": n}
    limits = Limits(max_pending_connections=cap, max_pending_per_address=cap // 2, head_timeout=30)
    async with PusherServer(limits=limits) as server:
        writers = []
        for i in range(n):
            source = ATTACKER if i % 2 == 0 else f"127.0.{1 + i % 200}.{2 + i % 250}"
            with contextlib.suppress(OSError):
                _reader, writer = await _open(server.port, source)
                writer.write(b"GET /app/app-key HTTP/1.1\r\nHost: x\r\n")
                writers.append(writer)
        await asyncio.sleep(0.3)
        stats = server.stats()
        out.update(
            pending=stats["pending"], refused=stats["pending_refused"], evicted=stats["pending_evicted"]
        )
        latencies = sorted([await _honest_latency_ms(server.ws_url) for _ in range(10)])
        out["honest_ms_median"] = round(latencies[5], 1)
        out["honest_ms_max"] = round(latencies[-1], 1)
        for writer in writers:
            writer.close()
    return out


async def many_channels(n: int = 100_000) -> dict[str, Any]:
    """One socket subscribes ``n`` public channels: how many are accepted, and the server's RSS."""
    with serve() as (proc, info, _lines):
        await asyncio.sleep(0.5)
        before = rss_mb(proc.pid)
        ok = refused = 0
        async with websockets.connect(info["ws"], max_queue=None) as ws:
            await ws.recv()

            async def read() -> None:  # concurrently: a client that does not read is dropped
                nonlocal ok, refused
                while ok + refused < n:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if msg["event"] == "pusher_internal:subscription_succeeded":
                        ok += 1
                    elif msg["event"] == "pusher:subscription_error":
                        refused += 1

            reader = asyncio.create_task(read())
            for i in range(n):
                await ws.send(f'{{"event":"pusher:subscribe","data":{{"channel":"c{i}"}}}}')
                if i % 200 == 0:
                    while i - (ok + refused) > 2000:  # noqa: ASYNC110 - keep up with the answers
                        await asyncio.sleep(0.001)
            await reader
            after = rss_mb(proc.pid)
    return {
        "subscribes": n,
        "accepted": ok,
        "refused": refused,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
    }


class _HungEndpoint:
    """Accepts connections and never answers (a webhook receiver that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


async def hung_webhook(seconds: float = 60.0) -> dict[str, Any]:
    """Channel occupied/vacated webhooks toward an endpoint that never answers, for ``seconds``."""
    hung = _HungEndpoint()
    try:
        with serve("--webhook", f"http://127.0.0.1:{hung.port}/hook") as (proc, info, lines):
            async with websockets.connect(info["ws"]) as ws:
                await ws.recv()
                before = rss_mb(proc.pid)
                peak = before
                deadline = time.monotonic() + seconds
                events = 0
                while time.monotonic() < deadline:
                    for i in range(200):  # each pair: channel_occupied + channel_vacated
                        await ws.send(f'{{"event":"pusher:subscribe","data":{{"channel":"w{i}"}}}}')
                        await ws.send(f'{{"event":"pusher:unsubscribe","data":{{"channel":"w{i}"}}}}')
                    events += 400
                    while True:  # read the confirmations so neither side buffers
                        try:
                            await asyncio.wait_for(ws.recv(), 0.01)
                        except TimeoutError:
                            break
                    peak = max(peak, rss_mb(proc.pid))
                after = rss_mb(proc.pid)
            dropped_lines = [line for line in lines if "webhook queue full" in line]
    finally:
        hung.close()
    return {
        "seconds": seconds,
        "webhook_events": events,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_after_mb": round(after, 1),
        "drop_log_lines": len(dropped_lines),
    }


async def hostile_client_logs(frames: int = 20_000) -> dict[str, Any]:
    """A client sending frames that cost the server a warning (a slow consumer, a bug...), under -v:
    bytes of server log. The server answers bad frames on the wire and does not log them."""
    with serve("--enable-client-events") as (_proc, info, lines):
        async with websockets.connect(info["ws"]) as ws:
            await ws.recv()
            for i in range(frames):
                await ws.send(
                    [
                        "not json",
                        '{"event":"client-x","channel":"nope","data":{}}',
                        '{"event":"pusher:subscribe","data":"x"}',
                    ][i % 3]
                )
            with contextlib.suppress(asyncio.TimeoutError):
                while True:
                    await asyncio.wait_for(ws.recv(), 0.5)
        await asyncio.sleep(0.5)
    return {"frames": frames, "server_log_bytes": sum(len(line) for line in lines)}


async def hostile_server_logs(errors: int = 20_000) -> dict[str, Any]:
    """A server sending ``errors`` identical ``pusher:error`` frames to ``quvel listen``: bytes it writes
    to stderr (one line per error before the fix)."""
    async with PusherServer(apps=[AppConfig(secret="s")]) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "quvel",
            "listen",
            server.ws_url,
            "--channel",
            "news",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(200):
            if server.socket_ids():
                break
            await asyncio.sleep(0.05)
        sid = server.socket_ids()[0]
        frame = '{"event":"pusher:error","data":{"code":4301,"message":"hostile"}}'
        for i in range(errors):
            server.send_raw(sid, frame)
            if i % 500 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(1.0)
        proc.terminate()
        _out, err = await asyncio.wait_for(proc.communicate(), 10)
    return {"errors": errors, "listen_stderr_bytes": len(err), "lines": err.count(b"\n")}


async def main() -> None:
    only = sys.argv[1:]
    scenarios: dict[str, Any] = {
        "slowloris": slowloris,
        "pending_handshakes": pending_handshakes,
        "many_channels": many_channels,
        "hung_webhook": lambda: hung_webhook(float(os.environ.get("ABUSE_WEBHOOK_SECONDS", "60"))),
        "hostile_client_logs": hostile_client_logs,
        "hostile_server_logs": hostile_server_logs,
    }
    for name, scenario in scenarios.items():
        if not only or name in only:
            print(name, json.dumps(await scenario()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
