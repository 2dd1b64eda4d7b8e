"""Reverb's error answers (``tests/ws/reverb_server.py``): a refused signature fails the subscription it
answers and is never retried on a timer; errors of one message keep the socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from quvel_ws import (
    ConnectionState,
    ServerError,
    SubscriptionRefused,
    WebSocketService,
    WsError,
)
from tests.ws.conftest import AuthServer
from tests.ws.helpers import Collector, in_thread, until
from tests.ws.reverb_server import ReverbLikeServer

FAST = {"subscription_timeout": 0.4, "backoff_initial": 0.05, "backoff_max": 0.2}


@pytest.fixture
def reverb() -> Iterator[ReverbLikeServer]:
    server = ReverbLikeServer().start()
    yield server
    server.stop()


async def test_refused_subscription_is_not_retried_on_a_timer(reverb: ReverbLikeServer) -> None:
    asked: list[str] = []

    async def forged(channel: str, socket_id: str) -> dict[str, str]:
        asked.append(socket_id)
        return {"auth": "app-key:" + "0" * 64}

    ws = WebSocketService(reverb.ws_url, authorizer=forged, **FAST)  # type: ignore[arg-type]
    try:
        ch = ws.channel("forged", "private")
        errors: Collector[WsError] = Collector(ch.errors)
        service_errors: Collector[WsError] = Collector(ws.errors)
        fine = Collector(ws.channel("fine").subscribed)
        error = await errors.first()
        await fine.first()
        # Four subscription timeouts and ten retry ceilings later: still the one attempt.
        await asyncio.sleep(4 * FAST["subscription_timeout"] + 10 * FAST["backoff_max"])
        assert reverb.subscribe_count("private-forged") == 1
        assert len(asked) == 1  # the app's /broadcasting/auth was not hit again
        assert isinstance(error, SubscriptionRefused)
        assert (error.code, error.message, error.status) == (4009, "Connection is unauthorized", 4009)
        assert errors.items == [error]
        assert not any(isinstance(e, ServerError) for e in service_errors.items)  # reported once
        assert ws.current_state is ConnectionState.CONNECTED
        # A reconnect is the next attempt.
        first_socket = ws.socket_id
        await in_thread(reverb.restart, True)
        await until(lambda: reverb.subscribe_count("private-forged") == 2, 15)
        await errors.count(2)
        assert asked[1] != first_socket
    finally:
        await ws.shutdown()


async def test_refused_subscription_on_the_subscribe_callback(
    reverb: ReverbLikeServer, auth_server: AuthServer
) -> None:
    ws = WebSocketService(reverb.ws_url, auth_endpoint=auth_server.url + "/broadcasting/auth")
    auth_server.fail["private-orders"] = {"auth": "app-key:" + "f" * 64}  # a 200 with a wrong signature
    try:
        got: asyncio.Future[WsError] = asyncio.get_running_loop().create_future()
        await ws.subscribe("orders", "private", on_error=got.set_result)
        error = await asyncio.wait_for(got, 10)
        assert isinstance(error, SubscriptionRefused)
        assert error.channel == "private-orders"
    finally:
        await ws.shutdown()


async def test_unsupported_signin_is_a_4200_and_the_socket_stays(reverb: ReverbLikeServer) -> None:
    ws = WebSocketService(reverb.ws_url, user_authenticator=_user_auth)
    try:
        errors: Collector[WsError] = Collector(ws.errors)
        await Collector(ws.channel("news").subscribed).first()
        ws.signin()
        await errors.wait(lambda items: any(isinstance(e, ServerError) for e in items))
        (error,) = [e for e in errors.items if isinstance(e, ServerError)]
        assert (error.code, error.message) == (4200, "Invalid message format")
        assert ws.current_state is ConnectionState.CONNECTED
        socket = ws.socket_id
        await Collector(ws.channel("other").subscribed).first()
        assert ws.socket_id == socket  # the same socket goes on
    finally:
        await ws.shutdown()


async def _user_auth(socket_id: str) -> dict[str, str]:
    return {"auth": "app-key:" + "0" * 64, "user_data": '{"id":"1"}'}


async def test_rate_limit_4301_is_reported_the_socket_kept_and_the_subscription_retried() -> None:
    reverb = ReverbLikeServer(rate_limit=2).start()
    ws = WebSocketService(reverb.ws_url, **FAST)  # type: ignore[arg-type]
    try:
        errors: Collector[WsError] = Collector(ws.errors)
        states = Collector(ws.state)
        subscribed = [Collector(ws.channel(f"room{i}").subscribed) for i in range(5)]
        for collector in subscribed:  # the refused ones time out and are retried
            await collector.first(within=15)
        limited = [e for e in errors.items if isinstance(e, ServerError)]
        assert limited
        assert all((e.code, e.message) == (4301, "Rate limit exceeded") for e in limited)
        assert states.items.count(ConnectionState.CONNECTED) == 1  # one socket throughout
        assert ws.current_state is ConnectionState.CONNECTED
    finally:
        await ws.shutdown()
        await in_thread(reverb.stop)
