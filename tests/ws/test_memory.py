"""Bounded client memory: a message over ``max_message_bytes`` is skipped as it streams past, never
buffered, and the event loop keeps running while it does (the server is another process, so the
memory measured is the client's alone)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quvel_ws import GlobalEvent, ProtocolError, WebSocketService, WsError
from tests.ws.helpers import Collector

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def rss_peak_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def reset_rss_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:  # "5": reset the peak RSS (VmHWM) to the current RSS
        refs.write("5")


async def receive_big_message(size: int, fragments: int = 1) -> tuple[int, float, list[WsError]]:
    """(peak RSS growth in KiB, longest loop stall in s, errors) while a ``size``-byte message arrives."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ws.big_frame_server",
        str(size),
        str(fragments),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = int(await proc.stdout.readline())
        ws = WebSocketService(f"ws://127.0.0.1:{port}/app/app-key")
        errors: Collector[WsError] = Collector(ws.errors)
        after: Collector[GlobalEvent] = Collector(ws.global_events)
        stall = 0.0
        done = False

        async def ticker() -> None:
            nonlocal stall
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                stall = max(stall, now - last)
                last = now

        reset_rss_peak()
        before = rss_peak_kib()
        tick = asyncio.create_task(ticker())
        try:
            await ws.connect(timeout=10)
            await after.first(within=60)
        finally:
            done = True
            await tick
            await ws.shutdown()
        return rss_peak_kib() - before, stall, errors.items
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("fragments", [1, 64])
async def test_a_64_mib_message_costs_no_memory_and_does_not_stall_the_loop(fragments: int) -> None:
    growth, stall, errors = await receive_big_message(64 * MIB, fragments)
    print(f"64 MiB in {fragments} frame(s): peak RSS +{growth / 1024:.1f} MiB, stall {stall * 1000:.1f} ms")
    dropped = [e for e in errors if isinstance(e, ProtocolError)]
    assert [e.reason for e in dropped] == [f"dropped a {64 * MIB}-byte message: over the {MIB}-byte limit"]
    assert growth < 8 * 1024  # KiB
    assert stall < 1.0  # generous (a shared CI machine): the figure itself is in benchmarks/
