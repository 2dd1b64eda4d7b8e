"""container.ws: built lazily from config, authorising through api.client, shut down with the container."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import pytest

from quvel_store.container import Config, ServiceContainer
from quvel_store.errors import ServiceNotConfigured
from quvel_ws import WebSocketService
from quvel_ws.server import AppConfig, PusherServer
from tests.store.container.conftest import (
    WS_APP_KEY,
    WS_APP_SECRET,
    WS_TOKEN,
    XSRF_DECODED,
    LaravelLikeServer,
)


class ExplicitWs:
    """Stands in for a WebSocketService the application built itself."""

    def __init__(self) -> None:
        self.shutdowns = 0

    async def shutdown(self) -> None:
        self.shutdowns += 1


def test_unconfigured_ws_says_how_to_configure_it() -> None:
    container = ServiceContainer(Config(env=False))
    assert not container.has_service("ws")
    with pytest.raises(ServiceNotConfigured, match="QUVEL_WS_URL"):
        _ = container.ws
    with pytest.raises(ServiceNotConfigured, match="ws_url"):
        container.get_service("ws")


def test_missing_quvel_ws_class_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The only way to produce an install without quvel_ws.WebSocketService is to hide it."""
    monkeypatch.setitem(sys.modules, "quvel_ws", types.ModuleType("quvel_ws"))
    container = ServiceContainer(Config({"ws_url": "ws://127.0.0.1:1/app/k"}, env=False))
    with pytest.raises(ServiceNotConfigured, match=r"quvel_ws\.WebSocketService cannot be imported"):
        _ = container.ws


async def test_explicit_ws_is_used_and_shut_down() -> None:
    explicit = ExplicitWs()
    async with ServiceContainer(Config(env=False), ws=explicit) as container:  # type: ignore[arg-type]
        assert container.ws is explicit
        assert container.has_service("ws")
    assert explicit.shutdowns == 1
    replaced, later = ExplicitWs(), ExplicitWs()
    container = ServiceContainer(Config(env=False))
    container.ws = replaced  # type: ignore[assignment]
    container.ws = later  # type: ignore[assignment]
    await container.ready()
    assert replaced.shutdowns == 1
    assert container.ws is later


async def test_ws_is_built_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUVEL_WS_URL", "ws://127.0.0.1:1/app/app-key")
    monkeypatch.setenv("QUVEL_API_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("QUVEL_SERVER_RENDERING", "yes")
    async with ServiceContainer() as container:
        ws = container.ws
        assert isinstance(ws, WebSocketService)
        assert container.ws is ws
        assert ws.server_rendering is True
        assert ws.http_client is container.api.client
        assert container.service_names.index("api") < container.service_names.index("ws")
    assert container.api.client.is_closed


@pytest.mark.parametrize("endpoint", [None, "/api/broadcasting/auth"])
async def test_private_channel_auth_goes_through_api_client(
    http_api: LaravelLikeServer, endpoint: str | None
) -> None:
    """End to end: a private channel on the embedded Pusher server, authorised by the API server with
    the session's XSRF token and the bearer token that api.client carries."""
    app = AppConfig(id="1", key=WS_APP_KEY, secret=WS_APP_SECRET)
    async with PusherServer(apps=[app], port=0) as server:
        settings = {"api_url": http_api.url, "ws_url": server.ws_url}
        if endpoint is not None:
            settings["ws_auth_endpoint"] = endpoint
        config = Config(settings, env=False)
        async with ServiceContainer(config) as container:
            await container.api.csrf_cookie()
            container.api.set_token(WS_TOKEN)
            channel = container.ws.private("orders.1")
            loop = asyncio.get_running_loop()
            subscribed: asyncio.Future[Any] = loop.create_future()
            received: asyncio.Future[Any] = loop.create_future()
            channel.subscribed.subscribe(lambda s: subscribed.done() or subscribed.set_result(s))
            channel.listen(".OrderShipped").subscribe(lambda e: received.done() or received.set_result(e))
            await asyncio.wait_for(subscribed, 10)
            await server.trigger("private-orders.1", "OrderShipped", {"id": 1})
            assert await asyncio.wait_for(received, 10) == {"id": 1}
            ws = container.ws
        auth = [s for s in http_api.seen if s.path == (endpoint or "/broadcasting/auth")]
        assert len(auth) == 1
        assert auth[0].headers["authorization"] == f"Bearer {WS_TOKEN}"
        assert auth[0].headers["x-xsrf-token"] == XSRF_DECODED
        assert "laravel_session=sess123" in auth[0].headers["cookie"]
        assert container.api.client.is_closed
        with pytest.raises(Exception, match="shut down"):
            ws.private("orders.2").subscribed.subscribe(lambda _: None)


async def test_user_sign_in_uses_the_configured_endpoint_and_api_credentials(
    http_api: LaravelLikeServer,
) -> None:
    app = AppConfig(id="1", key=WS_APP_KEY, secret=WS_APP_SECRET)
    async with PusherServer(apps=[app], port=0) as server:
        config = Config(
            {"api_url": http_api.url, "ws_url": server.ws_url, "ws_user_auth_endpoint": "/custom/user-auth"},
            env=False,
        )
        async with ServiceContainer(config) as container:
            container.api.set_token(WS_TOKEN)
            container.ws.signin()
            seen = await asyncio.to_thread(http_api.wait_for, "/custom/user-auth", 10)
    assert seen.headers["authorization"] == f"Bearer {WS_TOKEN}"


async def test_server_rendering_needs_no_ws_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request container renders with the same actions the browser runs; their ws calls are inert."""
    monkeypatch.delenv("QUVEL_WS_URL", raising=False)
    async with ServiceContainer(config={"server_rendering": True}) as container:
        assert container.has_service("ws")
        ws = container.ws
        assert isinstance(ws, WebSocketService)
        assert ws.server_rendering is True
        seen: list[object] = []
        done: list[bool] = []
        ws.channel("orders").listen("Shipped").subscribe(seen.append, on_completed=lambda: done.append(True))
        assert seen == []
        assert done == [True]
    async with ServiceContainer(config={}) as container:
        assert not container.has_service("ws")
        with pytest.raises(ServiceNotConfigured, match="QUVEL_WS_URL"):
            _ = container.ws
