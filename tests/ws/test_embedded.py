"""The client against the embedded server (quvel_ws.server): features Soketi does not push over the socket."""

from __future__ import annotations

from quvel_ws import WebSocketService
from quvel_ws.server import AppConfig, PusherServer
from tests.ws.helpers import Collector


async def test_subscription_count_events() -> None:
    app = AppConfig(subscription_count_events=True, subscription_count_interval=0.01)
    async with PusherServer(apps=[app], port=0) as server:
        first, second = WebSocketService(server.ws_url), WebSocketService(server.ws_url)
        try:
            counts = Collector(first.channel("lobby").subscription_count)
            await counts.wait(lambda c: 1 in c)
            other = Collector(second.channel("lobby").subscribed)
            await counts.wait(lambda c: c[-1] == 2)
            late = Collector(first.channel("lobby").subscription_count)  # the latest is replayed
            assert late.items == [2]
            other.dispose()
            await counts.wait(lambda c: c[-1] == 1)
        finally:
            await first.shutdown()
            await second.shutdown()


async def test_restart_with_4200_resubscribes_and_refires_subscribed() -> None:
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url, immediate_retry_jitter=0.05)
        try:
            ch = ws.channel("news")
            subscribed = Collector(ch.subscribed)
            got = Collector(ch.listen(".Tick"))
            await subscribed.first()
            await server.restart()  # closes every client with 4200, listens again on the same port
            await subscribed.count(2)
            await server.trigger("news", "Tick", {"n": 1})
            assert await got.first() == {"n": 1}
        finally:
            await ws.shutdown()
