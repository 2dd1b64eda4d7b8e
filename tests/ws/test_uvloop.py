"""The client and the embedded server on uvloop (what uvicorn and NiceGUI run when uvloop is installed).

uvloop's transports are not ``asyncio.Transport`` subclasses; the client and the server must work
with any transport that has the methods they call."""

from __future__ import annotations

import asyncio

import uvloop

from quvel_ws import WebSocketService
from quvel_ws.server import AppConfig, PusherServer
from tests.ws.helpers import Collector


async def _round_trip() -> tuple[str, object]:
    loop_type = type(asyncio.get_running_loop()).__module__
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url)
        try:
            ch = ws.channel("news")
            got = Collector(ch.listen(".Tick"))
            await Collector(ch.subscribed).first(within=10)
            await server.trigger("news", "Tick", {"n": 1})
            return loop_type, await got.first(within=10)
        finally:
            await ws.shutdown()


def test_client_and_server_run_on_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop_type, data = runner.run(_round_trip())
    assert loop_type.startswith("uvloop")
    assert data == {"n": 1}
