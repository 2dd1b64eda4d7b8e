"""The close path cancels every timer it sets: a shut-down service (and what it holds: the transport,
the container, the HTTP client) is released at once, not after the close-handshake deadline."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from quvel_store import ServiceContainer
from quvel_ws import WebSocketService
from quvel_ws.server import AppConfig, PusherServer


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def _cycle(url: str) -> weakref.ref[ServiceContainer]:
    container = ServiceContainer(config={"ws_url": url, "api_url": "http://127.0.0.1:1"})
    async with container:
        await container.ws.connect(timeout=5)
    return weakref.ref(container)


async def test_a_closed_service_is_released_at_once() -> None:
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url)
        await ws.connect(timeout=5)
        released = weakref.ref(ws)
        await ws.shutdown()
        del ws
        for _ in range(20):  # the closing handshake completes within a few loop turns
            await asyncio.sleep(0.01)
            gc.collect()
            if released() is None:
                break
        assert released() is None, "a timer set on the close path still holds the service"


@pytest.mark.slow
async def test_1000_connected_create_shutdown_cycles_leave_nothing_behind() -> None:
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        for _ in range(50):  # warm up: imports, caches, the server's own buffers
            await _cycle(server.ws_url)
        await asyncio.sleep(0.1)
        gc.collect()
        baseline_objects = len(gc.get_objects())
        baseline_rss = _rss_mb()
        refs = [await _cycle(server.ws_url) for _ in range(1_000)]
        await asyncio.sleep(0.2)
        gc.collect()
        alive = sum(1 for ref in refs if ref() is not None)
        assert alive == 0, f"{alive} of 1000 containers still alive after shutdown"
        assert len(gc.get_objects()) < baseline_objects + 5_000
        assert _rss_mb() < baseline_rss + 30  # the leak grew RSS by >100 MB over 400 cycles
